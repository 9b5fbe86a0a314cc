"""The paper's Table 3: classification error of synthesized expressions and parameter counts.

  python -m experiments.table3 --workdir=RUN
  python -m experiments.table3 --workdir=runs/table3 --train  # a short faces_expr run first

Runs the evaluation protocol of ``python -m stargan_jax.evaluate`` (a
ResNet-18 trained on the real training images, reused from
``--classifier_dir`` when saved there; every test image translated into every
domain and classified) and lays the result out as the paper's table, next to
the paper's numbers. The paper's table is on RaFD; on the built-in
``faces_expr`` stand-in (the default for ``--train``) only the
protocol is comparable, not the numbers. Writes ``table3.json``,
``table3.md`` and ``table3.png`` (classification error per target domain),
plus the evaluation's own files in ``OUT/evaluation``.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from absl import flags

from experiments import common
from stargan_jax import cli
from stargan_jax.evaluation import protocol
from stargan_jax.evaluation import report

PROG = 'python -m experiments.table3'
FLAGS = cli.flag_values()
common.define_run_flags(FLAGS, default_datasets=['faces_expr'])
flags.DEFINE_integer('limit', None, 'Test images per dataset (default: all).', flag_values=FLAGS)
cli.define_classifier_flags(FLAGS)

# The paper's Table 3 (RaFD): classification error, parameters.
PAPER_ROWS = (
    ('DIAT', 0.0410, '52.6M x 7'),
    ('CycleGAN', 0.0599, '52.6M x 14'),
    ('IcGAN', 0.0807, '67.8M x 1'),
    ('StarGAN', 0.0212, '53.2M x 1'),
    ('Real images', 0.0045, '-'),
)


def table(result: dict) -> tuple[dict, str]:
  p = result['parameters']
  rows = []
  for src, per_trg in result['translation'].items():
    e = per_trg[src]
    clf = result['classifier'][src]
    rows.append({'dataset': src, 'stargan_error': e['error'],
                 'real_images_error': clf['real_test_error'], 'translations': e['translations'],
                 'rule': e['rule'], 'per_domain': e['per_domain']})
  numbers = {
      'checkpoint_step': result['checkpoint_step'], 'workdir': result['workdir'],
      'parameters': p, 'rows': rows,
      'paper_rafd': [{'method': m, 'error': err, 'parameters': par} for m, err, par in PAPER_ROWS],
  }
  lines = ['# Table 3: classification error of translated images and parameters', '',
           '| method | classification error | # parameters |', '|---|---|---|']
  for m, err, par in PAPER_ROWS:
    lines.append(f'| {m} (paper, RaFD) | {100 * err:.2f}% | {par} |')
  for r in rows:
    lines.append(f'| StarGAN (this run, {r["dataset"]}, step {result["checkpoint_step"]}) | '
                 f'{100 * r["stargan_error"]:.2f}% | {p["total"] / 1e6:.2f}M x 1 |')
    lines.append(f'| Real images (this run\'s classifier, {r["dataset"]}) | '
                 f'{100 * r["real_images_error"]:.2f}% | - |')
  lines += ['', f'G {p["G"]:,} + D {p["D"]:,} = {p["total"]:,} parameters. '
            'Rule: a translation is ' + '; '.join(sorted({r['rule'] for r in rows})) + '.', '']
  for r in rows:
    lines += [f'Per target domain ({r["dataset"]}, {r["translations"]} translations): ' +
              ', '.join(f'{n} {100 * v:.2f}%' for n, v in r['per_domain'].items()) + '.', '']
  return numbers, '\n'.join(lines)


def run(argv: Sequence[str]) -> dict:
  """Parses ``argv``, evaluates and writes the table; returns its numbers."""
  common.parse(FLAGS, argv, PROG)
  return make_table()


def make_table() -> dict:
  cli.require(FLAGS.limit is None or FLAGS.limit > 0,
              f'--limit must be positive, got {FLAGS.limit}')
  common.ensure_run(FLAGS)
  out = common.out_dir(FLAGS)
  settings = protocol.EvalSettings(
      fid='off',  # Table 3 is the classification protocol; FID has its own run of evaluate
      data_dir=FLAGS.data_dir, out_dir=os.path.join(out, 'evaluation'),
      classifier_dir=FLAGS.classifier_dir, classifier=cli.classifier_settings(FLAGS),
      retrain_classifier=FLAGS.retrain_classifier, limit=FLAGS.limit, use_ema=FLAGS.use_ema)
  result = protocol.evaluate(FLAGS.workdir, FLAGS.step, settings)
  numbers, md = table(result)
  first = numbers['rows'][0]
  png = report.bar_chart(
      f'Table 3 protocol: classification error per target domain ({first["dataset"]})',
      list(first['per_domain']), list(first['per_domain'].values()),
      os.path.join(out, 'table3.png'),
      reference=[result['classifier'][first['dataset']]['real_test_error_per_domain'].get(n)
                 for n in first['per_domain']])
  numbers['figure'] = os.path.abspath(png)
  common.write_json(numbers, os.path.join(out, 'table3.json'))
  with open(os.path.join(out, 'table3.md'), 'w') as f:
    f.write(md)
  print(md)
  print(f'Wrote {png}, table3.json and table3.md in {out}')
  return numbers


@cli.command(FLAGS, PROG)
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.quiet_libraries()
  make_table()


if __name__ == '__main__':
  sys.exit(main())
