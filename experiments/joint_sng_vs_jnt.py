"""SNG vs JNT (paper section 4.5): one dataset alone vs jointly with another.

  python -m experiments.joint_sng_vs_jnt --sng_workdir=runs/demo --jnt_workdir=runs/joint
  python -m experiments.joint_sng_vs_jnt --sng_workdir=runs/celeba --jnt_workdir=runs/celeba_rafd \
      --dataset=celeba   # after python -m stargan_jax.evaluate on both runs

The SNG model is trained on ``--dataset`` only (``python -m stargan_jax.main``),
the JNT model on it and another dataset with the mask vector (``--preset=joint``
on the built-in pair). Both translate the same test images of ``--dataset``
into every domain of that dataset; the JNT model also into the other
dataset's domains (the cross-dataset targets, e.g. a CelebA face to a RaFD
expression, which the SNG model cannot do). How often a translation reaches
its target is read by the pixel readers (built-in pair) or by the domain
classifiers ``evaluate`` saved (CelebA/RaFD).

Writes ``joint_sng_vs_jnt.png`` (rows = test images; columns: input, SNG per
domain, JNT per domain, JNT cross-dataset) and ``joint_sng_vs_jnt.json``.
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
    own = c_org if trg == src else np.zeros((x.shape[0], spec.c_dim), np.float32)
    for k, c_trg in enumerate(spec.test_targets(own)):
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


def run(args) -> dict:
  sng = evaluate.load_model(args.sng_workdir, use_ema=args.use_ema)
  jnt = evaluate.load_model(args.jnt_workdir, use_ema=args.use_ema)
  if sng.layout.num_datasets != 1:
    raise ValueError(f'--sng_workdir={args.sng_workdir} holds a joint model '
                     f'({[s.dataset for s in sng.layout.specs]}); expected one dataset')
  name = args.dataset or sng.layout.specs[0].dataset
  s_idx = joint_common.spec_index(sng.layout, name)
  j_idx = joint_common.spec_index(jnt.layout, name)
  if sng.layout.specs[s_idx].names != jnt.layout.specs[j_idx].names:
    raise ValueError(f'the two models label {name!r} differently: SNG '
                     f'{list(sng.layout.specs[s_idx].names)}, JNT {list(jnt.layout.specs[j_idx].names)}')
  if sng.image_size != jnt.image_size:
    raise ValueError(f'SNG is {sng.image_size} px, JNT {jnt.image_size} px; compare equal sizes')
  dataset = evaluate.open_datasets(sng, args.data_dir)[s_idx]

  def batches():
    return input_pipeline.eval_batches(dataset, 50, limit=args.limit)

  result = {'dataset': name, 'sng_workdir': args.sng_workdir, 'jnt_workdir': args.jnt_workdir,
            'sng_step': sng.step, 'jnt_step': jnt.step,
            'sng': measure(sng, s_idx, s_idx, batches(),
                           joint_common.make_reader(sng, s_idx, args.classifier_dir)),
            'jnt': measure(jnt, j_idx, j_idx, batches(),
                           joint_common.make_reader(jnt, j_idx, args.classifier_dir)),
            'jnt_cross': {}}
  for j, spec in enumerate(jnt.layout.specs):
    if j != j_idx:
      result['jnt_cross'][spec.dataset] = measure(
          jnt, j_idx, j, batches(), joint_common.make_reader(jnt, j, args.classifier_dir))

  # The figure: the same test images through both models.
  batch = next(input_pipeline.eval_batches(dataset, args.num_images, limit=args.num_images))
  x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
  cols, titles = [x], ['input']
  for tag, loaded, idx in (('SNG', sng, s_idx), ('JNT', jnt, j_idx)):
    for j, spec in enumerate(loaded.layout.specs):
      own = c_org if j == idx else np.zeros((x.shape[0], spec.c_dim), np.float32)
      for k, c_trg in enumerate(spec.test_targets(own)):
        cols.append(loaded.translate_np(loaded.generator_params, x,
                                        loaded.layout.embed(j, c_trg)))
        titles.append(f'{tag} {spec.names[k]}')
  out = args.out or os.path.join(jnt.run_dir, 'experiments')
  result['figure'] = common.labelled_grid(cols, titles, os.path.join(out, 'joint_sng_vs_jnt.png'))
  result['json'] = common.write_json(result, os.path.join(out, 'joint_sng_vs_jnt.json'))
  return result


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--sng_workdir', required=True, help='Run trained on one dataset.')
  p.add_argument('--jnt_workdir', required=True, help='Run trained jointly (with the mask).')
  p.add_argument('--dataset', default=None, help='The shared dataset (default: the SNG one).')
  p.add_argument('--data_dir', default=None, help='TFDS data dir (default: the SNG run\'s).')
  p.add_argument('--classifier_dir', default=None,
                 help='Where evaluate saved the domain classifiers (default: each run\'s).')
  p.add_argument('--limit', type=int, default=None, help='Test images measured (default: all).')
  p.add_argument('--num_images', type=int, default=6, help='Rows of the figure.')
  p.add_argument('--out', default=None, help='Output dir (default: JNT_WORKDIR/experiments).')
  evaluate.add_use_ema_flag(p)  # for both runs
  return p


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  r = run(args)
  print(f'SNG ({r["dataset"]} only): target reached {r["sng"]["target_reached"]:.1%}')
  print(f'JNT (joint):            target reached {r["jnt"]["target_reached"]:.1%}')
  for name, m in r['jnt_cross'].items():
    print(f'JNT -> {name} domains (cross-dataset): target reached {m["target_reached"]:.1%}')
  print(f'wrote {r["figure"]} and {r["json"]}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
