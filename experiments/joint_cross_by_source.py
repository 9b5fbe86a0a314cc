"""Which faces a jointly trained G fails on: cross-dataset reach split by the source's labels.

  python -m experiments.joint_cross_by_source --workdir=runs/joint
  python -m experiments.joint_cross_by_source --workdir=runs/joint --reader=classifier

The paper's Figure 1 task (a CelebA face given a RaFD expression) is never
trained for: G learns expressions only on the expression dataset's faces.
This script translates every test image of ``--source_dataset`` (default: the
run's first) into every domain of ``--target_dataset`` (default: the one
after it) and reports how often the target is reached, split by the source
image's own labels: for an attribute dataset once per attribute and value
(e.g. ``Male=1`` against ``Male=0``), for a categorical one per class. A
group far below the others names what the target dataset's faces lack.

The reader is the target dataset's pixel readers where it has them
(``--reader=auto``) or the domain classifier ``python -m stargan_jax.evaluate``
saved (``--reader=classifier``, the Table 3 protocol; run evaluate first), or
the run's own D (``--reader=discriminator``): the classifier G was trained
against, which shows where G was taught a target wrongly.

On the built-in pair (``faces`` into ``faces_expr``) each test face is also
drawn with each target expression by the builder itself (``--truth``, on by
default there): what a perfect G would produce. The same reader reads these
drawings, so each group's line says how much of the target the reader can
see at all: a reader that has never seen an expression on a beard misreads
the perfect translation too, and G's rate is judged against that ceiling.
Writes ``joint_cross_by_source.json`` and prints one line per group.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from absl import flags

from experiments import common
from experiments import drawn_truth
from experiments import joint_common
from stargan_jax import cli
from stargan_jax import inference
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib

PROG = 'python -m experiments.joint_cross_by_source'
FLAGS = cli.flag_values()
flags.DEFINE_string('workdir', None, 'A jointly trained run.', flag_values=FLAGS)
flags.mark_flag_as_required('workdir', flag_values=FLAGS)
flags.DEFINE_string('source_dataset', None, "Dataset whose test images are translated "
                    "(default: the run's first).", flag_values=FLAGS)
flags.DEFINE_string('target_dataset', None, 'Dataset whose domains they are translated into '
                    '(default: the one after the source).', flag_values=FLAGS)
flags.DEFINE_enum('reader', 'auto', ['auto', 'classifier', 'discriminator'],
                  "auto: the target dataset's pixel readers where it has them, else "
                  "evaluate's classifier; classifier: evaluate's classifier; discriminator: "
                  "the run's own D (what G was trained against).", flag_values=FLAGS)
flags.DEFINE_string('data_dir', None, "TFDS data directory (default: the run's).",
                    flag_values=FLAGS)
flags.DEFINE_boolean('truth', None, "Also read each face drawn with the target expression (a "
                     "perfect G's output); the built-in faces -> faces_expr pair only "
                     "(default: on there).", flag_values=FLAGS)
flags.DEFINE_string('out', None, 'Output folder (default: WORKDIR/experiments).',
                    flag_values=FLAGS)
joint_common.define_flags(FLAGS, num_images=None)


def source_groups(spec: labels_lib.DomainSpec, c_org: np.ndarray) -> list[tuple[str, np.ndarray]]:
  """(group name, which images of the batch belong to it) for every group of the source."""
  c_org = np.asarray(c_org)
  if spec.kind == labels_lib.CATEGORICAL:
    return [(name, c_org[:, k] == 1) for k, name in enumerate(spec.names)]
  return [(f'{name}={v}', c_org[:, k] == v) for k, name in enumerate(spec.names) for v in (1, 0)]


TRUTH_PAIR = (drawn_truth.SOURCE, 'faces_expr')  # (source, target) the truth is drawn for


def measure() -> dict:
  joint_common.check_flags(FLAGS)
  loaded = inference.load_model(FLAGS.workdir, use_ema=FLAGS.use_ema)
  layout = loaded.layout
  src, tgt = joint_common.dataset_pair(layout, FLAGS.workdir, FLAGS.source_dataset,
                                       FLAGS.target_dataset, 'target_dataset',
                                       'cross-dataset needs a joint model')
  spec, tspec = layout.specs[src], layout.specs[tgt]
  dataset = inference.open_datasets(loaded, FLAGS.data_dir)[src]
  pixels_first = FLAGS.reader == 'auto'
  if FLAGS.reader == 'discriminator':
    reader, reader_name = joint_common.discriminator_reader(loaded, tgt), 'discriminator'
  else:
    reader = joint_common.make_reader(loaded, tgt, FLAGS.classifier_dir, pixels_first)
    reader_name = 'pixels' if joint_common.reads_pixels(tspec, pixels_first) else 'classifier'
  pair = (spec.dataset, tspec.dataset)
  truth = FLAGS.truth if FLAGS.truth is not None else pair == TRUTH_PAIR
  cli.require(not truth or pair == TRUTH_PAIR,
              f'--truth: only the built-in pair faces -> faces_expr can be drawn, not '
              f'{pair[0]} -> {pair[1]}')
  faces_by_image = None
  if truth:
    faces_by_image = drawn_truth.run_test_faces(FLAGS.data_dir or loaded.cfg.data.data_dir,
                                                loaded.image_size)
  names = [g for g, _ in source_groups(spec, np.zeros((1, spec.c_dim)))]
  hits = {g: np.zeros(tspec.c_dim) for g in names}
  truth_hits = {g: np.zeros(tspec.c_dim) for g in names}
  both = {g: np.zeros(tspec.c_dim) for g in names}  # G and the truth both read as the target
  counts = dict.fromkeys(names, 0)
  all_hits, all_truth, all_both, n = (np.zeros(tspec.c_dim), np.zeros(tspec.c_dim),
                                      np.zeros(tspec.c_dim), 0)
  for batch in input_pipeline.eval_batches(dataset, 50, limit=FLAGS.limit):
    x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
    groups = source_groups(spec, c_org)
    batch_faces = drawn_truth.faces_of(faces_by_image, x) if truth else None
    for g, member in groups:
      counts[g] += int(member.sum())
    for k, c_trg in enumerate(layout.test_targets(tgt, src, c_org)):
      y = loaded.translate_np(loaded.generator_params, x, layout.embed(tgt, c_trg))
      ok = np.asarray(reader(y, c_trg, k), bool)
      all_hits[k] += ok.sum()
      for g, member in groups:
        hits[g][k] += (ok & member).sum()
      if truth:
        t = drawn_truth.truth_images(faces_by_image, x, tspec, c_trg, batch_faces)
        t_ok = np.asarray(reader(t, c_trg, k), bool)
        all_truth[k] += t_ok.sum()
        all_both[k] += (t_ok & ok).sum()
        for g, member in groups:
          truth_hits[g][k] += (t_ok & member).sum()
          both[g][k] += (t_ok & ok & member).sum()
    n += x.shape[0]

  def rates(h, count):
    return {'target_reached': float(h.sum() / max(count * tspec.c_dim, 1)), 'images': count,
            'per_domain': {t: float(h[k] / max(count, 1)) for k, t in enumerate(tspec.names)}}

  result = {'workdir': FLAGS.workdir, 'step': loaded.step, 'weights': loaded.generator_weights,
            'source': spec.dataset, 'target': tspec.dataset,
            'reader': reader_name,
            'all': rates(all_hits, n), 'by_source': {g: rates(hits[g], counts[g]) for g in names}}
  if truth:  # the same reader on the drawn truth: the most it can read of these targets
    def with_truth(t, b, count):
      r = rates(t, count)
      # of the translations whose perfect version the reader reads right, how many of G's it does
      r['g_reached_where_truth_read'] = float(b.sum() / max(t.sum(), 1))
      return r
    result['truth'] = {'all': with_truth(all_truth, all_both, n),
                       'by_source': {g: with_truth(truth_hits[g], both[g], counts[g])
                                     for g in names}}
  out = FLAGS.out or os.path.join(loaded.run_dir, 'experiments')
  result['json'] = common.write_json(result, os.path.join(out, 'joint_cross_by_source.json'))
  return result


@cli.command(FLAGS, PROG)
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.quiet_libraries()
  r = measure()
  head = (f'{r["source"]} images into {r["target"]} domains ({r["reader"]}, '
          f'{r["weights"]} G, step {r["step"]})')
  print(head)
  rows = [('all', r['all'])] + list(r['by_source'].items())
  truth = r.get('truth')
  if truth:
    print('  (truth: the same faces drawn with the target expression, read by the same reader)')
  for g, m in rows:
    per = ' '.join(f'{t}:{v:.0%}' for t, v in m['per_domain'].items())
    line = f'  {g:<16} {m["images"]:>5} images  target reached {m["target_reached"]:6.1%}'
    if truth:
      t = truth['all'] if g == 'all' else truth['by_source'][g]
      line += (f'  truth {t["target_reached"]:6.1%}  G where the truth reads right '
               f'{t["g_reached_where_truth_read"]:6.1%}')
    print(f'{line}  {per}')
  print(f'wrote {r["json"]}')


if __name__ == '__main__':
  sys.exit(main())
