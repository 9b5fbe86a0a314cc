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

The work done, per image at 128 px with the paper's model (conv_dim 64, 6
residual blocks, 6 strided convs in D), counting convolutions only (a
multiply-add = 2 FLOP): the D step 36.3 GFLOP (D on the real, fake and
interpolated images and the gradient penalty's double backward; G's forward
pass), the G step 122.8 GFLOP (G twice, D once, all weight gradients,
D's included); they scale with (size/128)^2. These are
``stargan_jax.benchmark``'s ``REFERENCE_D_STEP_FLOPS_128`` and
``REFERENCE_G_STEP_FLOPS_128``.

Needs the ``torch`` extra (``pip install -e '.[torch]'``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import types

from absl import flags

from stargan_jax import cli

PROG = 'python -m experiments.reference_speed'

FLAGS = cli.flag_values()
flags.DEFINE_integer('image_size', 128, 'Image size (px).', flag_values=FLAGS)
flags.DEFINE_integer('batch_size', 16, 'Batch.', flag_values=FLAGS)
flags.DEFINE_integer('steps', 3, 'Timed D steps and G steps (each).', flag_values=FLAGS)
flags.DEFINE_integer('conv_dim', 64, 'G and D conv_dim.', flag_values=FLAGS)
flags.DEFINE_integer('g_repeat_num', 6, 'Residual blocks in G.', flag_values=FLAGS)
flags.DEFINE_integer('d_repeat_num', 6, 'Strided convs in D.', flag_values=FLAGS)
flags.DEFINE_integer('c_dim', 5, 'Attribute labels.', flag_values=FLAGS)
flags.DEFINE_integer('threads', 0, 'Torch threads (0: every core).', flag_values=FLAGS)
flags.DEFINE_integer('seed', 0, 'Seed of the parameters and the random batch.',
                     flag_values=FLAGS)
flags.DEFINE_string('compare', None, "A JSON file written by 'python -m stargan_jax.benchmark' "
                    'at the same size and batch: also print our speed-up over the reference.',
                    flag_values=FLAGS)


def settings() -> types.SimpleNamespace:
  """The parsed flags as a namespace, checked (``cli.UserError`` for a bad value)."""
  args = types.SimpleNamespace(**{name: FLAGS[name].value for name in FLAGS
                                  if FLAGS[name].name == name})
  for name in ('image_size', 'batch_size', 'steps', 'conv_dim', 'c_dim'):
    cli.require(getattr(args, name) >= 1, f'--{name} must be >= 1, got {getattr(args, name)}')
  cli.require(args.image_size % 2**args.d_repeat_num == 0,
              f'--image_size={args.image_size} must be a multiple of 2**d_repeat_num='
              f'{2**args.d_repeat_num}')
  return args


def parse_args(argv) -> types.SimpleNamespace:
  """Parses a command line (without the program name) into the checked settings."""
  rest = cli.parse(FLAGS, list(argv), PROG)
  cli.require(not rest, f'unexpected arguments: {" ".join(rest)}')
  return settings()


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
    raise cli.UserError(f'--compare={path}: cannot read the JSON line of stargan_jax.benchmark '
                     f'({e})') from None
  for key in ('image_size', 'batch_size'):
    if ours.get(key) != ref[key]:
      raise cli.UserError(f'--compare={path}: {key} is {ours.get(key)} there but {ref[key]} here; '
                       f'compare runs of the same size and batch')
  d, g = ours['d_step_seconds'], ours['g_step_seconds']
  return {
      'ours_d_step_seconds': d, 'ours_g_step_seconds': g, 'ours_platform': ours.get('platform'),
      'speedup_d_step': ref['d_step_seconds'] / d,
      'speedup_g_step': ref['g_step_seconds'] / g,
      'speedup_d_plus_g': (ref['d_step_seconds'] + ref['g_step_seconds']) / (d + g),
      'speedup_iteration': ref['iteration_seconds'] / (d + g / 5),
  }


@cli.command(FLAGS, PROG)
def main(rest) -> int:
  cli.require(not rest, f'unexpected arguments: {" ".join(rest)}')
  print(json.dumps(run(settings())), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
