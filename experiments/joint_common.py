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


def define_flags(fv: flags.FlagValues, num_images: int | None) -> None:
  """--classifier_dir, --limit, --use_ema and (for a script with a figure) --num_images."""
  flags.DEFINE_string('classifier_dir', None, "Where evaluate saved the domain classifiers "
                      "(default: each run's WORKDIR/classifier).", flag_values=fv)
  flags.DEFINE_integer('limit', None, 'Test images measured (default: all).', flag_values=fv)
  if num_images is not None:
    flags.DEFINE_integer('num_images', num_images, 'Test images in the figure.', flag_values=fv)
  cli.define_use_ema(fv)


def check_flags(fv: flags.FlagValues) -> None:
  for name in ('limit', 'num_images'):
    if name in fv:
      value = fv[name].value
      cli.require(value is None or value > 0, f'--{name} must be positive, got {value}')


def dataset_pair(layout: labels_lib.LabelLayout, workdir: str, source: str | None,
                 other: str | None, other_flag: str, needs: str) -> tuple[int, int]:
  """(source index, other index) of a joint model from --source_dataset and --OTHER_FLAG.

  The source defaults to the model's first dataset, the other to the one after
  it; a one-dataset model is the user's mistake (``needs`` says why not).
  """
  if layout.num_datasets < 2:
    raise cli.UserError(f'{workdir} holds a model of one dataset '
                        f'({layout.specs[0].dataset!r}); {needs}')
  src = spec_index(layout, source, 'source_dataset') if source else 0
  j = (src + 1) % layout.num_datasets if other is None else spec_index(layout, other, other_flag)
  cli.require(j != src, f'--{other_flag} must differ from --source_dataset')
  return src, j


class NoReaderError(cli.UserError, FileNotFoundError):
  """Nothing can read a dataset's translations: no pixel readers, no saved classifier."""


def reads_pixels(spec: labels_lib.DomainSpec, pixels_first: bool = True) -> bool:
  """Whether ``make_reader`` reads this dataset with pixel readers (else a classifier)."""
  return pixels_first and spec.dataset in pixels.READABLE


def make_reader(loaded: inference.LoadedModel, dataset: int, classifier_dir: str | None = None,
                pixels_first: bool = True):
  """reader(images, c_trg, k) -> bool array: image i reads as target c_trg[i] on domain k.

  The dataset's pixel readers where it has them (unless ``pixels_first`` is
  False), else the domain classifier ``evaluate`` saved.
  """
  spec = loaded.layout.specs[dataset]
  if reads_pixels(spec, pixels_first):
    def read(images, c_trg, k):
      return np.array([pixels.reads_as(spec, img, c, k)[0]
                       for img, c in zip(np.asarray(images), np.asarray(c_trg))])
    return read
  clf = common.find_classifier(loaded, dataset, classifier_dir)
  if clf is None:
    raise NoReaderError(
        f'no domain classifier for {spec.dataset!r} at {loaded.image_size} px: run '
        f'python -m stargan_jax.evaluate --workdir={loaded.run_dir} first')

  def read(images, c_trg, k):
    labels = clf.predict(np.asarray(images))
    if spec.kind == labels_lib.CATEGORICAL:
      return labels[:, k] == 1.0
    return labels[:, k] == np.asarray(c_trg)[:, k]
  return read


def discriminator_reader(loaded: inference.LoadedModel, dataset: int):
  """reader(images, c_trg, k) as ``make_reader``'s, read by the run's own D.

  D's classification head on the dataset's slice of its outputs (argmax for
  a categorical dataset, logit > 0 per attribute): the reader G was trained
  against, so where it misreads a perfect translation, G was taught that
  target wrongly there.
  """
  spec = loaded.layout.specs[dataset]
  start, stop = loaded.layout.cls_slice(dataset)

  def read(images, c_trg, k):
    logits = loaded.classify_np(images)[:, start:stop]
    if spec.kind == labels_lib.CATEGORICAL:
      return logits.argmax(-1) == k
    return (logits[:, k] > 0) == (np.asarray(c_trg)[:, k] > 0.5)
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
