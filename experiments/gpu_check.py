"""The GPU check: the step benchmark at 128 px on one GPU, in one run of under 8 minutes.

On a machine with an NVIDIA GPU (Python 3.12; a newer JAX with CUDA)::

  python3.12 -m venv .venv && . .venv/bin/activate
  pip install -e . -U "jax[cuda12]"    # or "jax[cuda13]" for a CUDA 13 driver
  python -m experiments.gpu_check --out=gpu_check.jsonl    # under 8 minutes (--budget_s)

Runs ``stargan_jax.benchmark`` on the paper's model (conv_dim 64, 6 residual
blocks, 6 strided convs) at 128 px for float32 and bfloat16, batch 16 and 64,
and both forms of D's strided convs (``--d_conv_impl``: ``xla``, XLA's own;
``patches``, patches @ kernel, whose gradient penalty's double backward is a
matmul's: the double backward of a strided conv is a known slow path of XLA
on GPUs too, jax issues 8537 and 23783); G uses ``--g_conv_impls`` (default
``auto``, XLA's own convs on a GPU; ``--g_conv_impls=auto,patches`` also
times its transposed convs sub-pixel). Each measurement prints one JSON line
(the benchmark's, including ``projected_schedule_hours``: the paper's 200k
iterations at the measured step times); at the end a markdown table of
them. Measurements are ordered so the most informative come first, and a
measurement that would end after ``--budget_s`` is skipped (said so), so the
run fits the device time. Compiled programs are cached in ``--cache_dir``,
so a rerun on the same machine skips most compilation.

Without a GPU it stops with a message; ``--tiny`` runs the same loop on a
tiny model on any platform (one step; the test suite runs it on the CPU).
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import flags

from stargan_jax import cli

PROG = 'python -m experiments.gpu_check'

FLAGS = cli.flag_values()
flags.DEFINE_list('dtypes', ['float32', 'bfloat16'], 'Compute dtypes.', flag_values=FLAGS)
flags.DEFINE_list('batch_sizes', ['16', '64'], 'Batches.', flag_values=FLAGS)
flags.DEFINE_list('d_conv_impls', ['xla', 'patches'], "D's convolution forms.",
                  flag_values=FLAGS)
flags.DEFINE_list('g_conv_impls', ['auto'], "G's convolution forms (auto: XLA's on a GPU; "
                  'patches: its transposed convs sub-pixel).', flag_values=FLAGS)
flags.DEFINE_integer('steps', 5, 'Timed D steps and G steps (each) per measurement.',
                     flag_values=FLAGS)
flags.DEFINE_float('peak_flops', None, 'Peak FLOP/s of one device for fraction_of_peak '
                   "(default: the benchmark's).", flag_values=FLAGS)
flags.DEFINE_float('budget_s', 420.0, 'Skip a measurement that would end after this many '
                   'seconds of the run.', flag_values=FLAGS)
flags.DEFINE_string('cache_dir', '~/.cache/stargan_jax_xla', 'Persistent compilation cache '
                    "('' for none).", flag_values=FLAGS)
flags.DEFINE_string('out', None, 'Also write the JSON lines to this file.', flag_values=FLAGS)
flags.DEFINE_bool('tiny', False, 'A tiny model at 32 px, one step, on any platform (checks '
                  'that the script runs).', flag_values=FLAGS)

TINY = ['--image_size=32', '--conv_dim=4', '--g_repeat_num=1', '--d_repeat_num=2']


def plan() -> list[tuple[str, int, str, str]]:
  """(dtype, batch, G form, D form): by batch, then dtype, then G's and D's forms."""
  return [(dtype, int(b), g, d) for b in FLAGS.batch_sizes for dtype in FLAGS.dtypes
          for g in FLAGS.g_conv_impls for d in FLAGS.d_conv_impls]


def summary(results: list[dict]) -> str:
  lines = ['| dtype | batch | G / D convs | D step | G step | iteration | images/s | '
           'fraction of peak | 200k iterations |', '|---|---|---|---|---|---|---|---|---|']
  for r in results:
    lines.append(
        f"| {r['dtype']} | {r['batch_size']} | {r['g_conv_impl']} / {r['d_conv_impl']} | "
        f"{r['d_step_seconds'] * 1e3:.1f} ms | {r['g_step_seconds'] * 1e3:.1f} ms | "
        f"{r['iteration_seconds'] * 1e3:.1f} ms | {r['images_per_second']:.0f} | "
        f"{r['fraction_of_peak']:.3f} | {r['projected_schedule_hours']:.2f} h |")
  return '\n'.join(lines)


@cli.command(FLAGS, PROG)
def main(rest) -> int:
  cli.require(not rest, f'unexpected arguments: {" ".join(rest)}')
  from stargan_jax import benchmark  # noqa: after the flags (imports JAX)
  from stargan_jax.models import conv
  import jax

  for d in FLAGS.d_conv_impls + FLAGS.g_conv_impls:
    conv.check(d)
  for dtype in FLAGS.dtypes:
    cli.require(dtype in ('float32', 'bfloat16'), f'--dtypes: float32, bfloat16; got {dtype}')
  try:
    jobs = plan()
  except ValueError:
    raise cli.UserError(f'--batch_sizes must be integers, got {FLAGS.batch_sizes}') from None
  platform = jax.default_backend()
  if platform != 'gpu' and not FLAGS.tiny:
    raise cli.UserError(
        f'no GPU: JAX {jax.__version__} runs on {platform} ({jax.devices()[0].device_kind}). '
        'Install JAX with CUDA (pip install -U "jax[cuda12]") on a machine with an NVIDIA '
        'GPU, or pass --tiny to check the script on this platform.')
  if FLAGS.cache_dir:
    jax.config.update('jax_compilation_cache_dir', os.path.expanduser(FLAGS.cache_dir))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  print(f'# {platform}: {jax.devices()[0].device_kind} x {jax.device_count()}, '
        f'JAX {jax.__version__}', flush=True)

  t0 = time.perf_counter()
  results, longest = [], 0.0
  out = open(os.path.expanduser(FLAGS.out), 'w') if FLAGS.out else None
  try:
    for dtype, batch, g_impl, d_impl in jobs:
      elapsed = time.perf_counter() - t0
      if results and elapsed + longest > FLAGS.budget_s:
        print(f'# skipped {dtype} batch {batch} G {g_impl} D {d_impl}: {elapsed:.0f} s used, '
              f'the longest measurement took {longest:.0f} s, '
              f'--budget_s={FLAGS.budget_s:.0f}', flush=True)
        continue
      argv = [f'--dtype={dtype}', f'--batch_size={batch}', f'--steps={FLAGS.steps}',
              f'--g_conv_impl={g_impl}', f'--d_conv_impl={d_impl}',
              '--input_batches=0', '--devices=1']
      if FLAGS.peak_flops:
        argv.append(f'--peak_flops={FLAGS.peak_flops}')
      argv += (TINY + ['--batch_size=2', '--steps=1']) if FLAGS.tiny else ['--image_size=128']
      t1 = time.perf_counter()
      r = benchmark.run(benchmark.parse_args(argv))
      longest = max(longest, time.perf_counter() - t1)
      results.append(r)
      line = json.dumps(r)
      print(line, flush=True)
      if out:
        out.write(line + '\n')
        out.flush()
  finally:
    if out:
      out.close()
  print(summary(results), flush=True)
  print(f'# {len(results)} of {len(jobs)} measurements in {time.perf_counter() - t0:.0f} s',
        flush=True)
  return 0 if len(results) == len(jobs) else 1


if __name__ == '__main__':
  sys.exit(main())
