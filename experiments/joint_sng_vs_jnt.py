"""SNG vs JNT (paper section 4.5): one dataset alone vs jointly with another.

  python -m experiments.joint_sng_vs_jnt --sng_workdir=runs/demo --jnt_workdir=runs/joint
  python -m experiments.joint_sng_vs_jnt --sng_workdir=runs/celeba --jnt_workdir=runs/celeba_rafd \
      --shared_dataset=celeba   # after python -m stargan_jax.evaluate on both runs

The SNG model is trained on ``--shared_dataset`` only (``python -m stargan_jax.main``),
the JNT model on it and another dataset with the mask vector (``--preset=joint``
on the built-in pair). Both translate the same test images of ``--shared_dataset``
into every domain of that dataset; the JNT model also into the other
dataset's domains (the cross-dataset targets, e.g. a CelebA face to a RaFD
expression, which the SNG model cannot do). How often a translation reaches
its target is read by the pixel readers (built-in pair) or by the domain
classifiers ``evaluate`` saved (CelebA/RaFD).

Writes ``joint_sng_vs_jnt.png`` (rows = test images; columns: input, SNG per
domain, JNT per domain, JNT cross-dataset) and ``joint_sng_vs_jnt.json``.
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
from stargan_jax import sampling

PROG = 'python -m experiments.joint_sng_vs_jnt'
FLAGS = cli.flag_values()
flags.DEFINE_string('sng_workdir', None, 'Run trained on one dataset.', flag_values=FLAGS)
flags.DEFINE_string('jnt_workdir', None, 'Run trained jointly (with the mask).', flag_values=FLAGS)
flags.mark_flags_as_required(['sng_workdir', 'jnt_workdir'], flag_values=FLAGS)
flags.DEFINE_string('shared_dataset', None, 'The dataset both runs were trained on (default: the '
                    'SNG one).', flag_values=FLAGS)
flags.DEFINE_string('data_dir', None, "TFDS data directory (default: the SNG run's).",
                    flag_values=FLAGS)
flags.DEFINE_string('out', None, 'Output folder (default: JNT_WORKDIR/experiments).',
                    flag_values=FLAGS)
joint_common.define_flags(FLAGS, num_images=6)


def measure(loaded, src: int, trg: int, batches, reader) -> dict:
  """Target-reached rate (and content kept on the built-in data) per domain of dataset trg."""
  layout = loaded.layout
  spec = layout.specs[trg]
  hits = np.zeros(spec.c_dim)
  kept = np.zeros(spec.c_dim)
  n = 0
  has_content = False
  for batch in batches:
    x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
    for k, c_trg in enumerate(layout.test_targets(trg, src, c_org)):
      y = loaded.translate_np(loaded.generator_params, x, layout.embed(trg, c_trg))
      hits[k] += reader(y, c_trg, k).sum()
      content = joint_common.content_kept(layout.specs[src], x, y, spec.dataset)
      if content is not None:
        has_content = True
        kept[k] += content.sum()
    n += x.shape[0]
  out = {'target_reached': float(hits.sum() / max(n * spec.c_dim, 1)),
         'per_domain': {name: float(hits[k] / max(n, 1)) for k, name in enumerate(spec.names)},
         'images': n}
  if has_content:
    out['content_preserved'] = float(kept.sum() / max(n * spec.c_dim, 1))
  return out


def run(argv: Sequence[str]) -> dict:
  """Parses ``argv``, measures both runs and writes the figure and JSON; returns the numbers."""
  common.parse(FLAGS, argv, PROG)
  return compare()


def compare() -> dict:
  joint_common.check_flags(FLAGS)
  sng = inference.load_model(FLAGS.sng_workdir, use_ema=FLAGS.use_ema)
  jnt = inference.load_model(FLAGS.jnt_workdir, use_ema=FLAGS.use_ema)
  if sng.layout.num_datasets != 1:
    raise cli.UserError(f'--sng_workdir={FLAGS.sng_workdir} holds a joint model '
                        f'({[s.dataset for s in sng.layout.specs]}); expected one dataset')
  name = FLAGS.shared_dataset or sng.layout.specs[0].dataset
  s_idx = joint_common.spec_index(sng.layout, name, 'shared_dataset')
  j_idx = joint_common.spec_index(jnt.layout, name, 'shared_dataset')
  if sng.layout.specs[s_idx].names != jnt.layout.specs[j_idx].names:
    raise cli.UserError(f'the two models label {name!r} differently: SNG '
                        f'{list(sng.layout.specs[s_idx].names)}, JNT '
                        f'{list(jnt.layout.specs[j_idx].names)}')
  if sng.image_size != jnt.image_size:
    raise cli.UserError(f'SNG is {sng.image_size} px, JNT {jnt.image_size} px; compare equal '
                        f'sizes')
  dataset = inference.open_datasets(sng, FLAGS.data_dir)[s_idx]

  def batches():
    return input_pipeline.eval_batches(dataset, 50, limit=FLAGS.limit)

  def reader(loaded, j):
    return joint_common.make_reader(loaded, j, FLAGS.classifier_dir)

  result = {'dataset': name, 'sng_workdir': FLAGS.sng_workdir, 'jnt_workdir': FLAGS.jnt_workdir,
            'sng_step': sng.step, 'jnt_step': jnt.step,
            'sng': measure(sng, s_idx, s_idx, batches(), reader(sng, s_idx)),
            'jnt': measure(jnt, j_idx, j_idx, batches(), reader(jnt, j_idx)),
            'jnt_cross': {}}
  for j, spec in enumerate(jnt.layout.specs):
    if j != j_idx:
      result['jnt_cross'][spec.dataset] = measure(jnt, j_idx, j, batches(), reader(jnt, j))

  # The figure: the same test images through both models, every domain of each.
  batch = next(input_pipeline.eval_batches(dataset, FLAGS.num_images, limit=FLAGS.num_images))
  x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
  cols, titles = [x], ['input']
  for tag, loaded, idx in (('SNG', sng, s_idx), ('JNT', jnt, j_idx)):
    cols += sampling.translation_columns(loaded.translate_np, loaded.generator_params,
                                         loaded.layout, idx, x, c_org)[1:]
    titles += [f'{tag} {n}' for spec in loaded.layout.specs for n in spec.names]
  out = FLAGS.out or os.path.join(jnt.run_dir, 'experiments')
  result['figure'] = common.labelled_grid(cols, titles, os.path.join(out, 'joint_sng_vs_jnt.png'))
  result['json'] = common.write_json(result, os.path.join(out, 'joint_sng_vs_jnt.json'))
  return result


@cli.command(FLAGS, PROG)
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.quiet_libraries()
  r = compare()
  print(f'SNG ({r["dataset"]} only): target reached {r["sng"]["target_reached"]:.1%}')
  print(f'JNT (joint):            target reached {r["jnt"]["target_reached"]:.1%}')
  for name, m in r['jnt_cross'].items():
    print(f'JNT -> {name} domains (cross-dataset): target reached {m["target_reached"]:.1%}')
  print(f'wrote {r["figure"]} and {r["json"]}')


if __name__ == '__main__':
  sys.exit(main())
