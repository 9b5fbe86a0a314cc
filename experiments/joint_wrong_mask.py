"""The wrong-mask ablation (paper Figure 8): the mask vector tells G which labels to use.

  python -m experiments.joint_wrong_mask --workdir=runs/joint
  python -m experiments.joint_wrong_mask --workdir=runs/celeba_rafd --dataset=celeba

Takes a jointly trained model and the test images of ``--dataset`` (default:
its first dataset, CelebA's stand-in on the built-in pair). Every target of
that dataset is given twice: with the right mask (that dataset's) and with a
wrong one (another dataset's mask, the labels unchanged), as the paper feeds
a CelebA image with the RaFD mask. With the wrong mask G should ignore the
labels and fail to translate. Reports how often the target is reached in
both cases (pixel readers on the built-in pair, evaluate's classifiers on
CelebA/RaFD) and the mean absolute change of the image.

Writes ``joint_wrong_mask.png`` (per test image two rows: right mask, wrong
mask; columns: input, then each target domain) and ``joint_wrong_mask.json``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from experiments import common
from experiments import joint_common
from stargan_jax import evaluate
from stargan_jax import input_pipeline


def with_mask(layout, c_full: np.ndarray, dataset: int) -> np.ndarray:
  """The same label vector with the mask set to ``dataset``'s."""
  c = np.array(c_full, np.float32, copy=True)
  c[:, layout.cls_dim:] = 0.0
  c[:, layout.cls_dim + dataset] = 1.0
  return c


def run(args) -> dict:
  loaded = evaluate.load_model(args.workdir, use_ema=args.use_ema)
  layout = loaded.layout
  if layout.num_datasets < 2:
    raise ValueError(f'{args.workdir} holds a model of one dataset '
                     f'({layout.specs[0].dataset!r}); the mask needs a joint model')
  src = joint_common.spec_index(layout, args.dataset) if args.dataset else 0
  wrong = (src + 1) % layout.num_datasets if args.wrong_dataset is None else \
      joint_common.spec_index(layout, args.wrong_dataset)
  if wrong == src:
    raise ValueError('--wrong_dataset must differ from --dataset')
  spec = layout.specs[src]
  dataset = evaluate.open_datasets(loaded, args.data_dir)[src]
  reader = joint_common.make_reader(loaded, src, args.classifier_dir)
  stats = {m: {'hits': np.zeros(spec.c_dim), 'change': 0.0} for m in ('right', 'wrong')}
  n = 0
  for batch in input_pipeline.eval_batches(dataset, 50, limit=args.limit):
    x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
    for k, c_trg in enumerate(spec.test_targets(c_org)):
      full = layout.embed(src, c_trg)
      for mode, c in (('right', full), ('wrong', with_mask(layout, full, wrong))):
        y = loaded.translate_np(loaded.generator_params, x, c)
        stats[mode]['hits'][k] += reader(y, c_trg, k).sum()
        stats[mode]['change'] += float(np.abs(y - x).mean(axis=(1, 2, 3)).sum())
    n += x.shape[0]
  result = {'dataset': spec.dataset, 'wrong_mask_of': layout.specs[wrong].dataset,
            'workdir': args.workdir, 'step': loaded.step, 'images': n}
  for mode, s in stats.items():
    result[mode + '_mask'] = {
        'target_reached': float(s['hits'].sum() / max(n * spec.c_dim, 1)),
        'per_domain': {name: float(s['hits'][k] / max(n, 1)) for k, name in enumerate(spec.names)},
        'mean_abs_change': s['change'] / max(n * spec.c_dim, 1),
    }

  batch = next(input_pipeline.eval_batches(dataset, args.num_images, limit=args.num_images))
  x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
  rows_right, rows_wrong = [x], [x]
  for c_trg in spec.test_targets(c_org):
    full = layout.embed(src, c_trg)
    g_params = loaded.generator_params
    rows_right.append(loaded.translate_np(g_params, x, full))
    rows_wrong.append(loaded.translate_np(g_params, x, with_mask(layout, full, wrong)))
  # Interleave: image i right-mask row, then its wrong-mask row.
  cols = [np.stack([r for pair in zip(a, b) for r in pair]) for a, b in zip(rows_right, rows_wrong)]
  titles = ['input (rows: right / wrong mask)'] + list(spec.names)
  out = args.out or os.path.join(loaded.run_dir, 'experiments')
  result['figure'] = common.labelled_grid(cols, titles, os.path.join(out, 'joint_wrong_mask.png'))
  result['json'] = common.write_json(result, os.path.join(out, 'joint_wrong_mask.json'))
  return result


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True, help='A jointly trained run.')
  p.add_argument('--dataset', default=None, help='Dataset whose images are translated.')
  p.add_argument('--wrong_dataset', default=None, help='Whose mask is the wrong one.')
  p.add_argument('--data_dir', default=None, help='TFDS data dir (default: the run\'s).')
  p.add_argument('--classifier_dir', default=None, help='Where evaluate saved classifiers.')
  p.add_argument('--limit', type=int, default=None, help='Test images measured (default: all).')
  p.add_argument('--num_images', type=int, default=4, help='Images in the figure.')
  p.add_argument('--out', default=None, help='Output dir (default: WORKDIR/experiments).')
  evaluate.add_use_ema_flag(p)
  return p


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  r = run(args)
  for mode in ('right', 'wrong'):
    m = r[mode + '_mask']
    print(f'{r["dataset"]} images, {mode} mask: target reached {m["target_reached"]:.1%}, '
          f'mean abs change {m["mean_abs_change"]:.3f}')
  print(f'wrote {r["figure"]} and {r["json"]}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
