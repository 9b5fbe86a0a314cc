"""The reference PyTorch implementation's step times on this machine, as JSON.

  python -m experiments.reference_speed --image_size=128 --batch_size=16 --steps=3

Times ``solver.py``'s D step and G step (``experiments/torch_reference.py``:
the reference's networks and updates, statement for statement) on a random
batch with CelebA's 5 attribute labels: the median of ``--steps`` steps after
one discarded warm-up step of each. Run it next to ``python -m
stargan_jax.benchmark`` with the same size and batch on the same machine to
get the speed ratio on the same hardware; ``--compare=BENCH.json`` (that
benchmark's output) prints the ratios too. PyTorch runs eagerly, so there is
no compile to exclude; ``--threads`` defaults to every core, as PyTorch does.

Needs the ``torch`` extra (``pip install -e '.[torch]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog='python -m experiments.reference_speed',
                              description=__doc__.splitlines()[0])
  p.add_argument('--image_size', type=int, default=128)
  p.add_argument('--batch_size', type=int, default=16)
  p.add_argument('--steps', type=int, default=3, help='timed D steps and G steps (each)')
  p.add_argument('--conv_dim', type=int, default=64, help='G and D conv_dim')
  p.add_argument('--g_repeat_num', type=int, default=6)
  p.add_argument('--d_repeat_num', type=int, default=6)
  p.add_argument('--c_dim', type=int, default=5)
  p.add_argument('--threads', type=int, default=0, help='torch threads (0: every core)')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--compare', default=None,
                 help="a JSON file written by 'python -m stargan_jax.benchmark' at the same "
                      'size and batch: also print our speed-up over the reference')
  args = p.parse_args(argv)
  for name in ('image_size', 'batch_size', 'steps', 'conv_dim', 'c_dim'):
    if getattr(args, name) < 1:
      p.error(f'--{name} must be >= 1, got {getattr(args, name)}')
  if args.image_size % 2**args.d_repeat_num:
    p.error(f'--image_size={args.image_size} must be a multiple of 2**d_repeat_num='
            f'{2**args.d_repeat_num}')
  return args


def _median_time(fn, steps: int) -> tuple[float, list[float]]:
  fn()  # warm-up: allocator, oneDNN primitive caches
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), times


def run(args) -> dict:
  import torch

  from experiments.torch_reference import ReferenceSteps, TorchDiscriminator, TorchGenerator
  torch.manual_seed(args.seed)
  if args.threads:
    torch.set_num_threads(args.threads)
  G = TorchGenerator(args.conv_dim, args.c_dim, args.g_repeat_num)
  D = TorchDiscriminator(args.image_size, args.conv_dim, args.c_dim, args.d_repeat_num)
  solver = ReferenceSteps(G, D)
  n, s = args.batch_size, args.image_size
  x = torch.rand(n, 3, s, s) * 2 - 1
  c_org = (torch.rand(n, args.c_dim) > 0.5).float()
  c_trg = c_org[torch.randperm(n)]
  d_s, d_all = _median_time(lambda: solver.d_step(x, c_org, c_trg), args.steps)
  g_s, g_all = _median_time(lambda: solver.g_step(x, c_org, c_trg), args.steps)
  result = {
      'implementation': 'reference PyTorch (yunjey/stargan solver.py)',
      'torch_version': torch.__version__,
      'torch_threads': torch.get_num_threads(),
      'cpu_count': os.cpu_count(),
      'load_average_1min': round(os.getloadavg()[0], 2),
      'image_size': s, 'batch_size': n, 'conv_dim': args.conv_dim, 'c_dim': args.c_dim,
      'steps': args.steps,
      'd_step_seconds': d_s, 'd_step_seconds_all': d_all,
      'g_step_seconds': g_s, 'g_step_seconds_all': g_all,
      'iteration_seconds': d_s + g_s / 5,  # n_critic = 5
  }
  if args.compare:
    result.update(compare(result, args.compare))
  return result


def compare(ref: dict, path: str) -> dict:
  """Our benchmark's times against the reference's: speed-ups (> 1: we are faster)."""
  try:
    with open(path) as f:
      ours = json.loads(f.read().strip().splitlines()[-1])
  except (OSError, ValueError, IndexError) as e:
    raise SystemExit(f'--compare={path}: cannot read the JSON line of stargan_jax.benchmark '
                     f'({e})') from None
  for key in ('image_size', 'batch_size'):
    if ours.get(key) != ref[key]:
      raise SystemExit(f'--compare={path}: {key} is {ours.get(key)} there but {ref[key]} here; '
                       f'compare runs of the same size and batch')
  d, g = ours['d_step_seconds'], ours['g_step_seconds']
  return {
      'ours_d_step_seconds': d, 'ours_g_step_seconds': g, 'ours_platform': ours.get('platform'),
      'speedup_d_step': ref['d_step_seconds'] / d,
      'speedup_g_step': ref['g_step_seconds'] / g,
      'speedup_d_plus_g': (ref['d_step_seconds'] + ref['g_step_seconds']) / (d + g),
      'speedup_iteration': ref['iteration_seconds'] / (d + g / 5),
  }


def main(argv=None) -> int:
  args = parse_args(argv)
  print(json.dumps(run(args)), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
