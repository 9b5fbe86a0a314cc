"""The paper's RaFD facial expression figure: every test image in every class.

  python -m experiments.rafd_expression_grid --workdir=RUN
  python -m experiments.rafd_expression_grid --workdir=runs/classes_grid --train  # short run first

Columns: the input, then one column per class (RaFD's 8 expressions, and so
on the built-in ``faces_expr``, drawn by mouth and brows; on the built-in
``procedural_classes`` shapes the 4 fill patterns solid, hstripes, vstripes,
checker). Writes ``rafd_expression_grid.png`` (rows =
test images) and ``rafd_expression_grid.json``: per class, on ``--num_eval``
test images, how often the translation reads as the class (pixel readers on
the built-in dataset; otherwise the domain classifier that
``python -m stargan_jax.evaluate`` saved, when there is one), how often the
content is preserved (built-in only) and the mean absolute pixel change.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np

from experiments import common
from stargan_jax import cli
from stargan_jax import inference
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax.evaluation import pixels

PROG = 'python -m experiments.rafd_expression_grid'
FLAGS = cli.flag_values()
common.define_run_flags(FLAGS, default_datasets=['faces_expr'])
common.define_figure_flags(FLAGS)


def run(argv: Sequence[str]) -> dict:
  """Parses ``argv``, draws the figure and measures its columns; returns the numbers."""
  common.parse(FLAGS, argv, PROG)
  return make_figure()


def make_figure() -> dict:
  loaded = common.load_figure_run(FLAGS)
  layout = loaded.layout
  candidates = [j for j, s in enumerate(layout.specs) if s.kind == labels_lib.CATEGORICAL]
  if not candidates:
    raise cli.UserError(f'the checkpoint in {FLAGS.workdir} has no categorical dataset '
                        f'({[s.dataset for s in layout.specs]}); this figure needs RaFD-like '
                        f'classes (see experiments/celeba_attribute_grid.py for attributes)')
  j = candidates[0]
  spec = layout.specs[j]
  dataset = inference.open_datasets(loaded, FLAGS.data_dir)[j]
  builtin = spec.dataset in pixels.READERS and pixels.READERS[spec.dataset].categorical
  classifier = None if builtin else common.find_classifier(loaded, j, FLAGS.classifier_dir)

  def translate(x, k):
    c = np.zeros((x.shape[0], spec.c_dim), np.float32)
    c[:, k] = 1.0
    return loaded.translate_np(loaded.generator_params, x, layout.embed(j, c))

  batch = next(input_pipeline.eval_batches(dataset, FLAGS.num_images, limit=FLAGS.num_images))
  x = batch['image']
  images = [x] + [translate(x, k) for k in range(spec.c_dim)]
  out = common.out_dir(FLAGS)
  png = common.labelled_grid(images, ['Input'] + list(spec.names),
                             os.path.join(out, 'rafd_expression_grid.png'))

  stats = np.zeros((spec.c_dim, 4))  # reached, content, change, n
  for b in input_pipeline.eval_batches(dataset, 50, limit=FLAGS.num_eval):
    x = b['image']
    for k in range(spec.c_dim):
      x_fake = translate(x, k)
      if builtin:
        readers = pixels.READERS[spec.dataset]
        cls = readers.names.index(spec.names[k])
        stats[k, 0] += sum(readers.read(f) == cls for f in x_fake)
        stats[k, 1] += sum(pixels.content_preserved(spec.dataset, spec.dataset, a, f)
                           for a, f in zip(x, x_fake))
      elif classifier is not None:
        stats[k, 0] += int((classifier.predict(x_fake)[:, k] == 1.0).sum())
      stats[k, 2] += float(np.abs(x_fake - x).mean(axis=(1, 2, 3)).sum())
      stats[k, 3] += x.shape[0]
  can_read = builtin or classifier is not None
  numbers = {}
  for k, name in enumerate(spec.names):
    n = max(stats[k, 3], 1)
    numbers[name] = {
        'target_reached': stats[k, 0] / n if can_read else None,
        'content_preserved': stats[k, 1] / n if builtin else None,
        'mean_abs_change': stats[k, 2] / n,
        'images': int(stats[k, 3]),
    }
  reached = [v['target_reached'] for v in numbers.values()]
  result = {
      'figure': os.path.abspath(png), 'workdir': os.path.abspath(FLAGS.workdir),
      'checkpoint_step': loaded.step, 'dataset': spec.dataset,
      'reader': 'pixel readers' if builtin else
                ('domain classifier' if classifier is not None else None),
      'rule': 'target_reached: the translation reads as the target class',
      'target_reached_overall': float(np.mean(reached)) if can_read else None,
      'classes': numbers,
  }
  common.write_json(result, os.path.join(out, 'rafd_expression_grid.json'))
  print(f'Wrote {png} and rafd_expression_grid.json (step {loaded.step}, {spec.dataset})')
  for name, v in numbers.items():
    r = '-' if v['target_reached'] is None else f'{v["target_reached"]:.1%}'
    print(f'  {name:>14}: target reached {r}, mean |change| {v["mean_abs_change"]:.3f}')
  return result


@cli.command(FLAGS, PROG)
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.quiet_libraries()
  make_figure()


if __name__ == '__main__':
  sys.exit(main())
