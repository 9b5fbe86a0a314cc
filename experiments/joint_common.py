"""What the joint-training experiments share: their flags and reading translated images.

On the built-in pair the pixel readers say whether a translation reached its
target; on CelebA/RaFD the domain classifiers that ``python -m
stargan_jax.evaluate`` trained and saved for each run do (run it first).
"""

from __future__ import annotations

import numpy as np
from absl import flags

from experiments import common
from stargan_jax import cli
from stargan_jax import inference
from stargan_jax import labels as labels_lib
from stargan_jax.evaluation import pixels


def define_flags(fv: flags.FlagValues, num_images: int) -> None:
  """--classifier_dir, --limit, --num_images, --use_ema: what both scripts take alike."""
  flags.DEFINE_string('classifier_dir', None, "Where evaluate saved the domain classifiers "
                      "(default: each run's WORKDIR/classifier).", flag_values=fv)
  flags.DEFINE_integer('limit', None, 'Test images measured (default: all).', flag_values=fv)
  flags.DEFINE_integer('num_images', num_images, 'Test images in the figure.', flag_values=fv)
  cli.define_use_ema(fv)


def check_flags(fv: flags.FlagValues) -> None:
  for name in ('limit', 'num_images'):
    value = fv[name].value
    cli.require(value is None or value > 0, f'--{name} must be positive, got {value}')


class NoReaderError(cli.UserError, FileNotFoundError):
  """Nothing can read a dataset's translations: no pixel readers, no saved classifier."""


def make_reader(loaded: inference.LoadedModel, dataset: int, classifier_dir: str | None = None):
  """reader(images, c_trg, k) -> bool array: image i reads as target c_trg[i] on domain k."""
  spec = loaded.layout.specs[dataset]
  if spec.dataset in pixels.READABLE:
    def read(images, c_trg, k):
      return np.array([pixels.reads_as(spec, img, c, k)[0]
                       for img, c in zip(np.asarray(images), np.asarray(c_trg))])
    return read
  clf = common.find_classifier(loaded, dataset, classifier_dir)
  if clf is None:
    raise NoReaderError(
        f'no domain classifier for {spec.dataset!r} at {loaded.image_size} px: run '
        f'python -m stargan_jax.evaluate --workdir={loaded.run_dir} first')
  return classifier_reader(clf, spec)


def classifier_reader(clf, spec: labels_lib.DomainSpec):
  """reader(images, c_trg, k) by a domain classifier of ``evaluate``."""
  def read(images, c_trg, k):
    labels = clf.predict(np.asarray(images))
    if spec.kind == labels_lib.CATEGORICAL:
      return labels[:, k] == 1.0
    return labels[:, k] == np.asarray(c_trg)[:, k]
  return read


def content_kept(spec: labels_lib.DomainSpec, x, y, target: str | None = None) -> np.ndarray | None:
  """Content preserved per image of dataset ``spec`` translated into ``target``'s domains.

  Built-in datasets only; ``target`` defaults to the source's own dataset.
  """
  if spec.dataset not in pixels.READABLE:
    return None
  target = target or spec.dataset
  return np.array([pixels.content_preserved(spec.dataset, target, a, b)
                   for a, b in zip(np.asarray(x), np.asarray(y))])


def spec_index(layout: labels_lib.LabelLayout, name: str, flag: str) -> int:
  for i, s in enumerate(layout.specs):
    if s.dataset == name:
      return i
  raise cli.UserError(f'--{flag}={name}: the checkpoint was trained on '
                      f'{[s.dataset for s in layout.specs]}, not on {name!r}')
