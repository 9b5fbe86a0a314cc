"""Input pipeline: prepared TFDS datasets read with ``tfds.data_source``, fed by grain.

With ``stargan_jax.datasets`` (the builders, which it opens by name), the only
part of the library that touches tfds and grain. Training batches
are deterministic given the seed: the dataset is shuffled per epoch, then
randomly flipped per element (both seeded by element position), and the
global batch ``b`` is split over ``process_count`` hosts so that host ``p``
reads only elements ``[p*b/P, (p+1)*b/P)`` of every global batch. The global
batch is therefore identical however many hosts read it, and the iterator's
state (a position) is saved in the training checkpoint so a resumed run sees
exactly the batches an uninterrupted one would.

Batches are dicts of numpy arrays: ``image`` N x H x W x 3 float32 in [-1, 1]
and ``label`` N x c float32 (0/1 attributes, or one-hot classes).

What the user asks for and the data cannot give (an unknown dataset, one not
prepared or not at this image size, an unknown attribute, a batch larger than
the dataset) raises a ``cli.UserError``: one ``error:`` line from the tools.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Sequence

import grain
import numpy as np

from stargan_jax import cli
from stargan_jax import labels as labels_lib
from stargan_jax.datasets import common, registry

UnknownDatasetError = registry.UnknownDatasetError


class NotPreparedError(cli.UserError, FileNotFoundError):
  """The dataset is not prepared in the data directory (and cannot be built here)."""


class ImageSizeError(NotPreparedError):
  """The dataset is prepared in the data directory, but at other image sizes."""


class DataError(cli.UserError, ValueError):
  """What was asked of a prepared dataset does not fit it (--attrs, --batch_size)."""


@dataclasses.dataclass
class Dataset:
  """A prepared dataset: its label spec and random-access sources per split."""

  name: str
  spec: labels_lib.DomainSpec
  image_size: int
  sources: dict[str, Any]

  def __len__(self):
    return len(self.sources['train'])

  def example(self, record) -> dict[str, np.ndarray]:
    """A TFDS record -> {'image': uint8 HxWx3 at image_size, 'label': float32 c}."""
    image = np.asarray(record['image'])  # stored at image_size: the config is per size
    if self.spec.kind == labels_lib.CATEGORICAL:
      label = np.zeros(self.spec.c_dim, np.float32)
      label[int(record['label'])] = 1.0
    else:
      attrs = record['attributes']
      label = np.array([float(attrs[n]) > 0 for n in self.spec.names], np.float32)
    return {'image': image, 'label': label}


def open_dataset(name: str, data_dir: str, image_size: int, attrs: Sequence[str] | None = None,
                 prepare: bool = True, manual_dir: str | None = None,
                 attrs_apply_to_categorical: bool = True) -> Dataset:
  """Opens a prepared dataset, building it on first use if it can be built here.

  The drawn datasets (``registry.AUTO_PREPARE``) are built when missing, the
  others when ``manual_dir`` holds their files; ``prepare=False`` never builds.

  ``attrs`` selects attribute labels by name, in the given order (attribute
  datasets only; default: the dataset's default selection or all of them).
  Given for a categorical dataset it is an error, unless
  ``attrs_apply_to_categorical`` is False (joint runs), where it is ignored.
  """
  builder = registry.get_builder(name, data_dir, image_size, manual_dir)
  if not builder.is_prepared():
    if prepare and (name in registry.AUTO_PREPARE or manual_dir is not None):
      # A wrong --attrs is reported before the drawing or the build (a minute
      # or more), not after: these builders know their labels before their
      # data (fixed for the drawn sets, CelebA and RaFD; read from the folder
      # for --manual_dir's own images).
      _domain_spec(name, builder.info.features, attrs, attrs_apply_to_categorical)
      builder = registry.prepare(name, data_dir, image_size, manual_dir)
    else:
      _raise_not_prepared(name, data_dir, image_size, builder)
  spec = _domain_spec(name, builder.info.features, attrs, attrs_apply_to_categorical)
  sources = {split: builder.as_data_source(split=split) for split in builder.info.splits}
  return Dataset(name, spec, image_size, sources)


def _domain_spec(name: str, features, attrs, attrs_apply_to_categorical: bool
                 ) -> labels_lib.DomainSpec:
  """The dataset's domains from its TFDS features and ``--attrs`` (a DataError if they do not fit)."""
  if 'label' in features:
    if attrs and attrs_apply_to_categorical:
      raise DataError(f'dataset {name!r} is categorical (classes {features["label"].names}); '
                      f'--attrs does not apply to it, got {list(attrs)}')
    return labels_lib.DomainSpec(name, tuple(features['label'].names), labels_lib.CATEGORICAL)
  valid = tuple(features['attributes'].keys())
  if not attrs:
    attrs = registry.default_attributes(name) or valid
  unknown = [a for a in attrs if a not in valid]
  if unknown:
    raise DataError(f'unknown attribute(s) {unknown} for dataset {name!r}; '
                    f'valid attributes: {", ".join(valid)}')
  attrs = tuple(attrs)
  return labels_lib.DomainSpec(name, attrs, labels_lib.ATTRIBUTES,
                               labels_lib.exclusive_group(attrs))


def prepared_sizes(builder) -> list[int]:
  """The image sizes this builder's dataset is prepared at in its data_dir (other options equal).

  TFDS stores a config as ``DATA_DIR/<builder>/<config>/<version>``, and every
  config name here holds its size as ``<size>px``.
  """
  config = builder.builder_config
  builder_dir = os.path.dirname(os.path.dirname(os.fspath(builder.data_path)))
  head, _, tail = config.name.rpartition(f'{config.image_size}px')
  pattern = re.compile(re.escape(head) + r'(\d+)px' + re.escape(tail) + '$')
  sizes = []
  for entry in common.list_dir(builder_dir):
    m = pattern.match(entry)
    info = os.path.join(builder_dir, entry, str(builder.version), 'dataset_info.json')
    if m and os.path.exists(info):
      sizes.append(int(m.group(1)))
  return sorted(sizes)


def _raise_not_prepared(name: str, data_dir: str, image_size: int, builder) -> None:
  build = (f'python -m data_prep.build --dataset={name} --image_size={image_size} '
           f'--data_dir={data_dir}')
  if name not in registry.AUTO_PREPARE:
    build += ' --manual_dir=DIR'
  sizes = prepared_sizes(builder)
  if sizes:
    raise ImageSizeError(
        f'dataset {name!r} is prepared in {data_dir!r} at {", ".join(f"{s} px" for s in sizes)}, '
        f'not at {image_size} px: train at a prepared size (--image_size), or build this one '
        f'with: {build}')
  raise NotPreparedError(
      f'dataset {name!r} at {image_size} px is not prepared in {data_dir!r} '
      f'(looked for {builder.data_dir}). Build it first with: {build}')


class _ToExample(grain.transforms.Map):

  def __init__(self, dataset: Dataset):
    self._dataset = dataset

  def map(self, record):
    return self._dataset.example(record)


class _RandomFlip(grain.transforms.RandomMap):

  def random_map(self, element, rng: np.random.Generator):
    if rng.random() < 0.5:
      element = dict(element, image=element['image'][:, ::-1])
    return element


def _normalize(batch):
  return {'image': batch['image'].astype(np.float32) / 127.5 - 1.0, 'label': batch['label']}


class _HostShare(grain.MapDataset):
  """Host ``p``'s share of every global batch of a (infinite) element stream."""

  def __init__(self, parent: grain.MapDataset, global_batch: int, process_count: int,
               process_index: int):
    super().__init__(parent)
    self._global, self._local = global_batch, global_batch // process_count
    self._offset = process_index * self._local

  def __len__(self):
    return len(self._parent) // self._global * self._local

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    batch, i = divmod(index, self._local)
    return self._parent[batch * self._global + self._offset + i]

  def __str__(self):
    return f'_HostShare(global={self._global}, local={self._local}, offset={self._offset})'


# Training splits whose decoded pixels fit in this many MiB are decoded once into memory
# (``decoded_split``); larger ones are decoded from the prepared files at every read.
DEFAULT_CACHE_MB = 1024


class _DecodedSplit:
  """A split decoded once: ``images`` N x H x W x 3 uint8 and ``labels`` N x c float32.

  Reads return what ``Dataset.example`` returns for the same index, so the
  batches built on it are the same arrays, in the same order, as those read
  from the prepared files; only the PNG decoding at every read is gone.
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    self.images, self.labels = images, labels

  def __len__(self):
    return len(self.images)

  def __getitem__(self, index):
    return {'image': self.images[index], 'label': self.labels[index]}


def decoded_nbytes(dataset: Dataset, split: str = 'train') -> int:
  """What ``decoded_split`` would hold in memory, in bytes."""
  return len(dataset.sources[split]) * dataset.image_size ** 2 * 3


def fits_in_cache(dataset: Dataset, cache_mb: float, split: str = 'train') -> bool:
  """Whether ``train_iterator`` decodes ``split`` into memory under ``cache_mb`` (0: never)."""
  return bool(cache_mb) and decoded_nbytes(dataset, split) <= cache_mb * 2**20


def decoded_split(dataset: Dataset, split: str = 'train', num_threads: int = 4) -> _DecodedSplit:
  """Every example of ``split`` decoded into two arrays (in order, on ``num_threads`` threads)."""
  source = dataset.sources[split]
  n, size = len(source), dataset.image_size
  images = np.empty((n, size, size, 3), np.uint8)
  labels = np.empty((n, dataset.spec.c_dim), np.float32)
  ds = grain.MapDataset.source(source).map(_ToExample(dataset))
  read = grain.ReadOptions(num_threads=max(num_threads, 1), prefetch_buffer_size=64)
  for i, ex in enumerate(ds.to_iter_dataset(read)):
    images[i], labels[i] = ex['image'], ex['label']
  return _DecodedSplit(images, labels)


def train_iterator(dataset: Dataset, global_batch: int, seed: int, *, process_index: int = 0,
                   process_count: int = 1, num_threads: int = 4, prefetch: int = 4,
                   cache_mb: float = DEFAULT_CACHE_MB):
  """An endless, checkpointable iterator of this host's share of training batches.

  A training split whose decoded pixels fit in ``cache_mb`` MiB (0: never) is
  decoded once into memory first; the batches are the same either way (same
  shuffle, flips and order), so a run and its resume may differ in this setting.
  Every host decodes the whole split (it reads a share of every batch, and
  the shares cover every index).
  """
  if global_batch % process_count:
    raise DataError(f'batch size {global_batch} is not divisible by the number of hosts '
                     f'{process_count}')
  if len(dataset) < global_batch:
    raise DataError(f'dataset {dataset.name!r} has {len(dataset)} training images, fewer than '
                     f'the batch size {global_batch}')
  cached = fits_in_cache(dataset, cache_mb)
  source = decoded_split(dataset, num_threads=num_threads) if cached else dataset.sources['train']
  # The shuffle permutes indices only, so it picks the same examples from either source.
  ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
  if not cached:
    ds = ds.map(_ToExample(dataset))
  ds = ds.random_map(_RandomFlip(), seed=seed + 1)
  ds = _HostShare(ds, global_batch, process_count, process_index)
  ds = ds.batch(global_batch // process_count, drop_remainder=True).map(_normalize)
  read = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  return iter(ds.to_iter_dataset(read))


def eval_batches(dataset: Dataset, batch_size: int, split: str = 'test', limit: int | None = None):
  """Yields the split in order, unflipped; the last batch may be smaller."""
  source = dataset.sources[split]
  n = len(source) if limit is None else min(limit, len(source))
  ds = grain.MapDataset.source(source)[:n].map(_ToExample(dataset))
  ds = ds.batch(batch_size, drop_remainder=False).map(_normalize)
  yield from ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=2))

