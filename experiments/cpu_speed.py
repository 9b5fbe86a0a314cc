"""This CPU's speed, in one run: our steps under each ``--conv_impl`` against the reference's.

  python -m experiments.cpu_speed --steps=3 --out=cpu_speed

Prints the CPU (``/proc/cpuinfo``'s model name, its kind as ``models.conv``
reads it: ``avx512f``, ``avx2`` (AVX2 without AVX-512) or ``other``, and what
``auto`` means on it), then one table: for the 32 px demo's sizes (G and D
conv_dim 16, 4 residual blocks, 5 strided convs; the paper's layers, as the
reference has them: transposed convs and no mask head, not the demo's) and the 128 px paper model
(conv_dim 64, 6 residual blocks, 6 strided convs), batch 16, float32, our D
step, G step, D + G and training iteration (a D step + 1/5 of a G step)
under ``auto``, ``xla`` and the other names (``stargan_jax.benchmark``,
medians of ``--steps`` blocked steps after a discarded first call), and the
reference PyTorch implementation's D and G steps
(``experiments.reference_speed``, in a subprocess, timed just before ours at
the same size), with the reference's time over ours (> 1: we are faster)
and xla's time over each name's (> 1: faster than XLA's own convolutions).
Writes ``OUT.json`` (every measurement) and ``OUT.md`` (the table).

A name that means the same forms as one already timed at that size (e.g.
``patches`` where ``auto`` is ``patches``) is listed with that one's times,
not timed twice. By default the 128 px model is timed under ``auto`` and
``xla`` only (``--impls_128``): ``xla``'s G step there is the slowest of all
(XLA's CPU gradients of strided transposed convs). About 10 minutes on an
idle 2-core CPU; timings on a shared machine mean little (the table's
``load`` column is the 1-minute load average when each row was measured).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import flags

from stargan_jax import benchmark
from stargan_jax import cli
from stargan_jax.models import conv

PROG = 'python -m experiments.cpu_speed'

# size -> (name, benchmark flags of the model)
MODELS = {
    32: ('demo', {'g_conv_dim': 16, 'd_conv_dim': 16, 'g_repeat_num': 4, 'd_repeat_num': 5}),
    128: ('paper', {'g_conv_dim': 64, 'd_conv_dim': 64, 'g_repeat_num': 6, 'd_repeat_num': 6}),
}
# --tiny (tests): the smallest model at 32 px, to check the script runs.
TINY_MODEL = ('tiny', {'g_conv_dim': 4, 'd_conv_dim': 4, 'g_repeat_num': 1, 'd_repeat_num': 5})

FLAGS = cli.flag_values()
flags.DEFINE_integer('steps', 3, 'Timed D steps and G steps (each) per measurement.',
                     flag_values=FLAGS)
flags.DEFINE_integer('batch_size', 16, 'Batch.', flag_values=FLAGS)
flags.DEFINE_list('sizes', ['32', '128'], 'Image sizes: 32 (the demo model), 128 (the paper\'s).',
                  flag_values=FLAGS)
flags.DEFINE_list('impls_32', ['auto', 'xla', 'patches', 'winograd'],
                  'conv_impl names timed at 32 px.', flag_values=FLAGS)
flags.DEFINE_list('impls_128', ['auto', 'xla'], 'conv_impl names timed at 128 px.',
                  flag_values=FLAGS)
flags.DEFINE_bool('reference', True, 'Also time the reference PyTorch steps (needs torch).',
                  flag_values=FLAGS)
flags.DEFINE_string('out', 'cpu_speed', 'Writes OUT.json and OUT.md.', flag_values=FLAGS)
flags.DEFINE_bool('tiny', False, 'A tiny model at 32 px only (checks that the script runs).',
                  flag_values=FLAGS)


def cpu_info() -> dict:
  info = conv.read_cpuinfo()
  d = benchmark.cpu_description()
  auto = conv.resolve('auto', 'cpu')
  return {**d, 'cpu_count': os.cpu_count(), 'auto': auto,
          'auto_forms': conv.describe(auto, 'cpu')['forms'],
          'flags_read': info is not None}


def measure_ours(size: int, model: dict, impl: str, batch: int, steps: int) -> dict:
  argv = [f'--image_size={size}', f'--batch_size={batch}', f'--steps={steps}',
          f'--conv_impl={impl}', '--input_batches=0', '--pipelined=false', '--devices=1']
  argv += [f'--{k}={v}' for k, v in model.items()]
  return benchmark.run(benchmark.parse_args(argv))


def measure_reference(size: int, model: dict, batch: int, steps: int) -> dict:
  """``experiments.reference_speed`` in a subprocess (its own threads, its own memory)."""
  cmd = [sys.executable, '-m', 'experiments.reference_speed', f'--image_size={size}',
         f'--batch_size={batch}', f'--steps={steps}', f'--conv_dim={model["g_conv_dim"]}',
         f'--g_repeat_num={model["g_repeat_num"]}', f'--d_repeat_num={model["d_repeat_num"]}']
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
  if proc.returncode:
    raise cli.UserError(f'the reference timing failed ({" ".join(cmd[1:])}): '
                        f'{proc.stderr.strip().splitlines()[-1:] or proc.returncode}')
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _times(r: dict) -> dict:
  d, g = r['d_step_seconds'], r['g_step_seconds']
  return {'d_step': d, 'g_step': g, 'd_plus_g': d + g, 'iteration': d + g / 5}


def rows_for(size: int, name: str, results: dict, reference: dict | None) -> list[dict]:
  """The table's rows for one size: the reference's, then ours by name, with ratios."""
  rows = []
  ref = _times(reference) if reference else None
  if reference:
    rows.append({'size': size, 'model': name, 'implementation': 'reference (PyTorch)',
                 'forms': '', **ref, 'load': reference.get('load_average_1min')})
  xla = _times(results['xla']) if 'xla' in results else None
  for impl, r in results.items():
    t = _times(r)
    row = {'size': size, 'model': name, 'implementation': f'ours, {impl}',
           'forms': f"G {r['g_conv_impl']}, D {r['d_conv_impl']}", **t,
           'load': r.get('load_average_1min'), 'same_as': r.get('same_as')}
    if ref:
      row.update({f'reference_over_ours_{k}': ref[k] / t[k] for k in t})
    if xla:
      row.update({f'xla_over_this_{k}': xla[k] / t[k] for k in t})
    rows.append(row)
  return rows


def markdown(cpu: dict, rows: list[dict], steps: int, batch: int) -> str:
  lines = [f"CPU: {cpu.get('cpu_model')} ({cpu['cpu_kind']}), {cpu['cpu_count']} cores; "
           f"auto = {cpu['auto']} ({', '.join(f'{k}: {v}' for k, v in cpu['auto_forms'].items())})",
           f'batch {batch}, float32, medians of {steps} steps; ratios > 1: the reference (or '
           'xla) takes longer', '',
           '| size | model | implementation | forms | D step | G step | D + G | iteration '
           '(D + G/5) | reference / ours (D + G) | reference / ours (iteration) | '
           'xla / this (D + G) | load |',
           '|---|---|---|---|---|---|---|---|---|---|---|---|']
  fmt = lambda v, unit='': '' if v is None else f'{v:.3g}{unit}'
  for r in rows:
    impl = r['implementation'] + (f" (= {r['same_as']})" if r.get('same_as') else '')
    lines.append(
        f"| {r['size']} | {r['model']} | {impl} | {r['forms']} | {fmt(r['d_step'], ' s')} | "
        f"{fmt(r['g_step'], ' s')} | {fmt(r['d_plus_g'], ' s')} | {fmt(r['iteration'], ' s')} | "
        f"{fmt(r.get('reference_over_ours_d_plus_g'), 'x')} | "
        f"{fmt(r.get('reference_over_ours_iteration'), 'x')} | "
        f"{fmt(r.get('xla_over_this_d_plus_g'), 'x')} | {fmt(r.get('load'))} |")
  return '\n'.join(lines) + '\n'


@cli.command(FLAGS, PROG)
def main(rest) -> int:
  cli.require(not rest, f'unexpected arguments: {" ".join(rest)}')
  cli.require(FLAGS.steps >= 1 and FLAGS.batch_size >= 1, '--steps and --batch_size must be >= 1')
  import jax  # noqa: after the flags, so a bad flag fails fast
  cli.require(jax.default_backend() == 'cpu',
              f'this measures the CPU, but JAX runs on {jax.default_backend()}; '
              'set JAX_PLATFORMS=cpu')
  try:
    sizes = [int(s) for s in FLAGS.sizes]
  except ValueError:
    raise cli.UserError(f'--sizes must be image sizes (32, 128), got {FLAGS.sizes}') from None
  cli.require(all(s in MODELS for s in sizes), f'--sizes: 32 and/or 128, got {FLAGS.sizes}')
  impls = {32: FLAGS.impls_32, 128: FLAGS.impls_128}
  for names in impls.values():
    for impl in names:
      conv.check(impl)
  steps, batch = FLAGS.steps, FLAGS.batch_size
  if FLAGS.tiny:
    sizes, batch = [32], min(batch, 2)
  cpu = cpu_info()
  print(f"CPU: {cpu.get('cpu_model')} ({cpu['cpu_kind']}), {cpu['cpu_count']} cores; "
        f"auto = {cpu['auto']}", flush=True)
  t0 = time.perf_counter()
  record = {'cpu': cpu, 'jax_version': jax.__version__, 'steps': steps, 'batch_size': batch,
            'sizes': {}}
  rows = []
  for size in sizes:
    name, model = TINY_MODEL if FLAGS.tiny else MODELS[size]
    reference = measure_reference(size, model, batch, steps) if FLAGS.reference else None
    if reference:
      print(f"{size} px reference: D {reference['d_step_seconds']:.3g} s, "
            f"G {reference['g_step_seconds']:.3g} s", flush=True)
    results, by_forms = {}, {}
    for impl in dict.fromkeys(impls[size]):  # in order, once each
      forms = conv.resolve(impl, 'cpu')
      if forms in by_forms:  # the same program as one already timed
        results[impl] = {**results[by_forms[forms]], 'same_as': by_forms[forms]}
        continue
      results[impl] = measure_ours(size, model, impl, batch, steps)
      by_forms[forms] = impl
      print(f"{size} px {impl} ({forms}): D {results[impl]['d_step_seconds']:.3g} s, "
            f"G {results[impl]['g_step_seconds']:.3g} s", flush=True)
    record['sizes'][size] = {'model': name, 'model_flags': model, 'reference': reference,
                             'ours': results}
    rows += rows_for(size, name, results, reference)
  record['rows'] = rows
  record['seconds'] = time.perf_counter() - t0
  table = markdown(cpu, rows, steps, batch)
  out = os.path.abspath(os.path.expanduser(FLAGS.out))
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out + '.json', 'w') as f:
    json.dump(record, f, indent=1)
  with open(out + '.md', 'w') as f:
    f.write(table)
  print(table + f'\nwrote {out}.json and {out}.md ({record["seconds"]:.0f} s)', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
