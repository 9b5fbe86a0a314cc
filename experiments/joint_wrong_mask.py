"""The wrong-mask ablation (paper Figure 8): the mask vector tells G which labels to use.

  python -m experiments.joint_wrong_mask --workdir=runs/joint
  python -m experiments.joint_wrong_mask --workdir=runs/celeba_rafd --source_dataset=celeba

Takes a jointly trained model and the test images of ``--source_dataset`` (default:
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

import os
import sys
from typing import Sequence

import numpy as np
from absl import flags

from experiments import common
from experiments import joint_common
from stargan_jax import cli
from stargan_jax import inference
from stargan_jax import input_pipeline

PROG = 'python -m experiments.joint_wrong_mask'
FLAGS = cli.flag_values()
flags.DEFINE_string('workdir', None, 'A jointly trained run.', flag_values=FLAGS)
flags.mark_flag_as_required('workdir', flag_values=FLAGS)
flags.DEFINE_string('source_dataset', None, 'Dataset whose test images are translated (default: '
                    "the run's first).", flag_values=FLAGS)
flags.DEFINE_string('wrong_dataset', None, 'Whose mask is the wrong one (default: the dataset '
                    'after the source).', flag_values=FLAGS)
flags.DEFINE_string('data_dir', None, "TFDS data directory (default: the run's).",
                    flag_values=FLAGS)
flags.DEFINE_string('out', None, 'Output folder (default: WORKDIR/experiments).',
                    flag_values=FLAGS)
joint_common.define_flags(FLAGS, num_images=4)


def with_mask(layout, c_full: np.ndarray, dataset: int) -> np.ndarray:
  """The same label vector with the mask set to ``dataset``'s."""
  c = np.array(c_full, np.float32, copy=True)
  c[:, layout.cls_dim:] = 0.0
  c[:, layout.cls_dim + dataset] = 1.0
  return c


def run(argv: Sequence[str]) -> dict:
  """Parses ``argv``, measures both masks and writes the figure and JSON; returns the numbers."""
  common.parse(FLAGS, argv, PROG)
  return ablate()


def ablate() -> dict:
  joint_common.check_flags(FLAGS)
  loaded = inference.load_model(FLAGS.workdir, use_ema=FLAGS.use_ema)
  layout = loaded.layout
  src, wrong = joint_common.dataset_pair(layout, FLAGS.workdir, FLAGS.source_dataset,
                                         FLAGS.wrong_dataset, 'wrong_dataset',
                                         'the mask needs a joint model')
  spec = layout.specs[src]
  dataset = inference.open_datasets(loaded, FLAGS.data_dir)[src]
  reader = joint_common.make_reader(loaded, src, FLAGS.classifier_dir)
  g_params = loaded.generator_params
  stats = {m: {'hits': np.zeros(spec.c_dim), 'change': 0.0} for m in ('right', 'wrong')}
  n = 0
  for batch in input_pipeline.eval_batches(dataset, 50, limit=FLAGS.limit):
    x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
    for k, c_trg in enumerate(spec.test_targets(c_org)):
      full = layout.embed(src, c_trg)
      for mode, c in (('right', full), ('wrong', with_mask(layout, full, wrong))):
        y = loaded.translate_np(g_params, x, c)
        stats[mode]['hits'][k] += reader(y, c_trg, k).sum()
        stats[mode]['change'] += float(np.abs(y - x).mean(axis=(1, 2, 3)).sum())
    n += x.shape[0]
  result = {'dataset': spec.dataset, 'wrong_mask_of': layout.specs[wrong].dataset,
            'workdir': FLAGS.workdir, 'step': loaded.step, 'images': n}
  for mode, s in stats.items():
    result[mode + '_mask'] = {
        'target_reached': float(s['hits'].sum() / max(n * spec.c_dim, 1)),
        'per_domain': {name: float(s['hits'][k] / max(n, 1)) for k, name in enumerate(spec.names)},
        'mean_abs_change': s['change'] / max(n * spec.c_dim, 1),
    }

  batch = next(input_pipeline.eval_batches(dataset, FLAGS.num_images, limit=FLAGS.num_images))
  x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
  rows_right, rows_wrong = [x], [x]
  for c_trg in spec.test_targets(c_org):
    full = layout.embed(src, c_trg)
    rows_right.append(loaded.translate_np(g_params, x, full))
    rows_wrong.append(loaded.translate_np(g_params, x, with_mask(layout, full, wrong)))
  # Interleave: image i right-mask row, then its wrong-mask row.
  cols = [np.stack([r for pair in zip(a, b) for r in pair]) for a, b in zip(rows_right, rows_wrong)]
  titles = ['input (rows: right / wrong mask)'] + list(spec.names)
  out = FLAGS.out or os.path.join(loaded.run_dir, 'experiments')
  result['figure'] = common.labelled_grid(cols, titles, os.path.join(out, 'joint_wrong_mask.png'))
  result['json'] = common.write_json(result, os.path.join(out, 'joint_wrong_mask.json'))
  return result


@cli.command(FLAGS, PROG)
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.quiet_libraries()
  r = ablate()
  for mode in ('right', 'wrong'):
    m = r[mode + '_mask']
    print(f'{r["dataset"]} images, {mode} mask: target reached {m["target_reached"]:.1%}, '
          f'mean abs change {m["mean_abs_change"]:.3f}')
  print(f'wrote {r["figure"]} and {r["json"]}')


if __name__ == '__main__':
  sys.exit(main())
