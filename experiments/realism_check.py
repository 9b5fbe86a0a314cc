"""A quick realism score of one or more runs, for tuning: pixel readers and one FID each.

``python -m stargan_jax.evaluate`` is the full protocol (FID per target domain,
the classifier, charts); on 2 CPU cores it needs one Inception pass per
translation into every domain, several minutes a run. To compare many
training configs this script takes the cheaper figure that still answers "do
the translations look like real images": every test image is translated into
*one* target (the test grid's columns in turn, ``i % columns``), so N test
images give N translations, and their FID against the first N real training
images is read next to the floor at the same count (the first N real test
images against the same training images). With the pixel readers (built-in
datasets) it reports target reached and content preserved over all targets.

    python -m experiments.realism_check --workdirs=runs/a,runs/b --n=500 [--identity]

prints one markdown row per run and weights (``raw``, and ``ema`` when the run
kept one; ``--weights`` picks) and writes them to ``--out`` as JSON.
``--identity`` adds the FID of G(x, c_org), every test image into its own
labels: how far G moves images from real ones where it should change nothing,
against the same floor.

A joint run (several datasets) gets one row per source dataset: its test images
cycle over the grid's columns of every dataset (own targets and cross-dataset
ones, e.g. a face of ``faces`` given an expression of ``faces_expr``), and their
FID is read against that source dataset's real images, since a translation keeps
its source's faces. The pixel readers are then given per target dataset.

``--truth`` adds, for the built-in ``faces`` source, the FID of the same
translations drawn by the builder itself (each test face redrawn with its
column's labels, ``experiments/drawn_truth.py``): what a perfect G scores.
Translations that add what the real images never show (an expression on
``faces``' all-neutral faces) are far from them even when perfect, so this,
not the floor, is the least a G can score on such targets.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import flags

from experiments import drawn_truth
from stargan_jax import cli
from stargan_jax import inference
from stargan_jax.evaluation import fid as fid_lib
from stargan_jax.evaluation import pixels

FLAGS = cli.flag_values()
flags.DEFINE_list('workdirs', None, 'Run directories to score.', flag_values=FLAGS)
flags.DEFINE_integer('n', 500, 'Test images (= translations) and real training images.',
                     flag_values=FLAGS)
flags.DEFINE_integer('batch_size', 50, 'Batch size of G and Inception.', flag_values=FLAGS)
flags.DEFINE_string('out', None, 'JSON output file (default: none).', flag_values=FLAGS)
flags.DEFINE_list('weights', ['raw', 'ema'], "G's weights to score: raw, ema (where the run "
                  'kept an EMA), or both.', flag_values=FLAGS)
flags.DEFINE_bool('identity', False, "Also the FID of G(x, c_org), each test image 'translated' "
                  'into its own labels: what G changes where nothing should change.',
                  flag_values=FLAGS)
flags.DEFINE_bool('truth', False, "Also the FID of a perfect G's translations: the built-in "
                  "faces source's test faces drawn with the same targets (other sources: "
                  'not drawn).', flag_values=FLAGS)
flags.DEFINE_string('inception_weights', None, 'As evaluate --inception_weights.',
                    flag_values=FLAGS)


def target_labels(layout, source: int, c_org: np.ndarray) -> list[tuple[int, np.ndarray]]:
  """(dataset, its labels) of the test grid's columns for images of ``source``, every dataset's."""
  return [(t, c) for t in range(layout.num_datasets) for c in layout.test_targets(t, source, c_org)]


def target_columns(layout, source: int, c_org: np.ndarray) -> list[np.ndarray]:
  """G's labels of the test grid's columns for images of dataset ``source``, every dataset's."""
  return [layout.embed(t, c) for t, c in target_labels(layout, source, c_org)]


def one_target_translations(loaded: inference.LoadedModel, dataset, n: int,
                            batch_size: int, source: int = 0,
                            identity: bool = False, truth=None) -> np.ndarray:
  """uint8 translations of the first ``n`` test images, each into one target column.

  ``identity``: each into its own labels instead (G(x, c_org)). ``truth``
  (``drawn_truth.run_test_faces``' faces): the builder's drawings of the same
  translations instead of G's.
  """
  from stargan_jax import input_pipeline
  out = []
  seen = 0
  for batch in input_pipeline.eval_batches(dataset, batch_size, limit=n):
    x, c_org = np.asarray(batch['image'], np.float32), np.asarray(batch['label'], np.float32)
    if identity:
      y = loaded.translate_batched(x, loaded.layout.embed(source, c_org), batch_size)
    else:
      labels = target_labels(loaded.layout, source, c_org)
      col = (seen + np.arange(x.shape[0])) % len(labels)
      if truth is None:
        columns = [loaded.layout.embed(t, c) for t, c in labels]
        y = loaded.translate_batched(x, np.stack([columns[k][i] for i, k in enumerate(col)]),
                                     batch_size)
      else:
        y = drawn_truth.as_floats([
            drawn_truth.draw(face, x.shape[1], loaded.layout.specs[labels[k][0]], labels[k][1][i])
            for i, (face, k) in enumerate(zip(drawn_truth.faces_of(truth, x), col))])
    out.append(fid_lib.to_pixels(y))
    seen += x.shape[0]
  return np.concatenate(out)


def score(workdir: str, n: int, batch_size: int, extractor,
          identity: bool = False, weights=('raw', 'ema'), truth: bool = False) -> list[dict]:
  rows = []
  faces_by_image = None  # the drawn test faces (--truth), the same for both weights
  for use_ema in [w == 'ema' for w in ('raw', 'ema') if w in weights]:
    loaded = inference.load_model(workdir, use_ema=use_ema)
    if use_ema and loaded.g_ema_params is None:
      continue
    datasets = inference.open_datasets(loaded)
    acc = pixels.translation_accuracy(loaded.translate_np, loaded.generator_params,
                                      loaded.layout, datasets, limit=n)
    for s, d in enumerate(datasets):
      train, _ = fid_lib.real_features(d, 'train', n, extractor, batch_size)
      test, _ = fid_lib.real_features(d, 'test', n, extractor, batch_size)
      ref = fid_lib.Reference(train, seed=0)
      fake = extractor(one_target_translations(loaded, d, n, batch_size, source=s))
      row = {'workdir': workdir, 'step': loaded.step, 'weights': loaded.generator_weights,
             'source': d.name, 'joint': len(datasets) > 1, 'n': int(fake.shape[0]),
             'fid': ref.fid(fake), 'floor': ref.fid(test[:fake.shape[0]])}
      row['fid_over_floor'] = row['fid'] / row['floor']
      if identity:
        row['identity_fid'] = ref.fid(extractor(one_target_translations(
            loaded, d, n, batch_size, source=s, identity=True)))
      if truth and d.name == drawn_truth.SOURCE and all(
          spec.dataset in drawn_truth.TARGETS for spec in loaded.layout.specs):
        if faces_by_image is None:
          faces_by_image = drawn_truth.run_test_faces(loaded.cfg.data.data_dir,
                                                      loaded.image_size)
        row['truth_fid'] = ref.fid(extractor(one_target_translations(
            loaded, d, n, batch_size, source=s, truth=faces_by_image)))
      if acc is not None:
        per_target = acc[d.name]
        total = sum(a['translations'] for a in per_target.values())
        for key, name in (('target', 'target_accuracy'), ('content', 'content_preserved'),
                          ('success', 'success')):
          row[key] = sum(a[name] * a['translations'] for a in per_target.values()) / total
        row['per_target'] = {t: {'target': a['target_accuracy'],
                                 'content': a['content_preserved'],
                                 'translations': a['translations']}
                             for t, a in per_target.items()}
      rows.append(row)
  return rows


def _pct(row, key):
  """The pixel readers' rate: one figure, or one per target dataset for a joint run."""
  if key not in row:
    return 'n/a'
  per = row.get('per_target', {})
  if len(per) > 1:
    return ', '.join(f'{t} {100 * a[key]:.1f}%' for t, a in per.items())
  return f'{100 * row[key]:.1f}%'


def _truth_cell(row) -> str:
  if 'truth_fid' not in row:
    return ' not drawn |'
  return f" {row['truth_fid']:.1f} ({row['truth_fid'] / row['floor']:.1f}x) |"


@cli.command(FLAGS, 'python -m experiments.realism_check')
def main(args):
  del args
  cli.require(FLAGS.workdirs, '--workdirs is required')
  cli.require(FLAGS.n >= 2, f'--n must be at least 2, got {FLAGS.n}')
  cli.require(FLAGS.weights and set(FLAGS.weights) <= {'raw', 'ema'},
              f'--weights must name raw, ema or both, got {",".join(FLAGS.weights)!r}')
  from stargan_jax.evaluation import inception
  extractor = inception.FeatureExtractor(FLAGS.inception_weights, batch_size=FLAGS.batch_size)
  rows = []
  print('| run | step | weights | target reached | content preserved | FID | floor | '
        'FID / floor |' + (' identity FID / floor |' if FLAGS.identity else '') +
        (' perfect G: FID / floor |' if FLAGS.truth else ''))
  print('|---|---|---|---|---|---|---|---|' + ('---|' if FLAGS.identity else '') +
        ('---|' if FLAGS.truth else ''))
  for w in FLAGS.workdirs:
    for row in score(w, FLAGS.n, FLAGS.batch_size, extractor, FLAGS.identity, FLAGS.weights,
                     FLAGS.truth):
      rows.append(row)
      name = os.path.basename(os.path.normpath(w))
      if row['joint']:
        name += f" ({row['source']} ->)"
      print(f"| {name} | {row['step']} | {row['weights']} | "
            f"{_pct(row, 'target')} | {_pct(row, 'content')} | {row['fid']:.1f} | "
            f"{row['floor']:.2f} | {row['fid_over_floor']:.1f}x |" +
            (f" {row['identity_fid']:.1f} / {row['floor']:.2f} |" if FLAGS.identity else '') +
            (_truth_cell(row) if FLAGS.truth else ''), flush=True)
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, 'w') as f:
      json.dump(rows, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
