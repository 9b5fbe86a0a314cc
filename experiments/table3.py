"""The paper's Table 3: classification error of synthesized expressions and parameter counts.

  python -m experiments.table3 --workdir=RUN
  python -m experiments.table3 --workdir=runs/table3 --train  # a short procedural_classes run first

Runs the evaluation protocol of ``python -m stargan_jax.evaluate`` (a
ResNet-18 trained on the real training images, reused from
``--classifier_dir`` when saved there; every test image translated into every
domain and classified) and lays the result out as the paper's table, next to
the paper's numbers. The paper's table is on RaFD; on the built-in
``procedural_classes`` stand-in (the default for ``--train``) only the
protocol is comparable, not the numbers. Writes ``table3.json``,
``table3.md`` and ``table3.png`` (classification error per target domain),
plus the evaluation's own files in ``OUT/evaluation``.
"""

from __future__ import annotations

import argparse
import os
import sys

from experiments import common
from stargan_jax import evaluate

# REFERENCE.md, Table 3 (RaFD): classification error, parameters.
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


def run(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  common.add_run_flags(p, default_dataset='procedural_classes')
  p.add_argument('--limit', type=int, default=None, help='Test images per dataset (default: all).')
  evaluate.add_classifier_flags(p)
  args = p.parse_args(argv)
  common.ensure_run(args)
  out = common.out_dir(args)
  settings = evaluate.EvalSettings(
      fid='off',  # Table 3 is the classification protocol; FID has its own run of evaluate
      data_dir=args.data_dir, out_dir=os.path.join(out, 'evaluation'),
      classifier_dir=args.classifier_dir, classifier=evaluate.classifier_settings(args),
      retrain_classifier=args.retrain_classifier, limit=args.limit, use_ema=args.use_ema)
  result = evaluate.evaluate(args.workdir, args.step, settings)
  numbers, md = table(result)
  first = numbers['rows'][0]
  png = evaluate.bar_chart(
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


def main(argv=None) -> int:
  try:
    run(argv)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
