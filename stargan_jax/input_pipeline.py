"""Input pipeline: prepared TFDS datasets read with ``tfds.data_source``, fed by grain.

The only module of the library that touches tfds and grain. Training batches
are deterministic given the seed: the dataset is shuffled per epoch, then
randomly flipped per element (both seeded by element position), and the
global batch ``b`` is split over ``process_count`` hosts so that host ``p``
reads only elements ``[p*b/P, (p+1)*b/P)`` of every global batch. The global
batch is therefore identical however many hosts read it, and the iterator's
state (a position) is saved in the training checkpoint so a resumed run sees
exactly the batches an uninterrupted one would.

Batches are dicts of numpy arrays: ``image`` N x H x W x 3 float32 in [-1, 1]
and ``label`` N x c float32 (0/1 attributes, or one-hot classes).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

import grain
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from data_prep import registry
from stargan_jax import labels as labels_lib


@dataclasses.dataclass
class Dataset:
  """A prepared dataset: its label spec and random-access sources per split."""

  name: str
  spec: labels_lib.DomainSpec
  image_size: int
  sources: dict[str, Any]
  label_indices: tuple[int, ...] | None  # attribute columns selected, in order

  def __len__(self):
    return len(self.sources['train'])

  def example(self, record) -> dict[str, np.ndarray]:
    """A TFDS record -> {'image': uint8 HxWx3 at image_size, 'label': float32 c}."""
    image = np.asarray(record['image'])
    if image.shape[0] != self.image_size or image.shape[1] != self.image_size:
      image = np.asarray(Image.fromarray(image).resize((self.image_size, self.image_size),
                                                       Image.BILINEAR))
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
  """Opens a prepared dataset (building the built-in ones on first use).

  ``attrs`` selects attribute labels by name, in the given order (attribute
  datasets only; default: the dataset's default selection or all of them).
  Given for a categorical dataset it is an error, unless
  ``attrs_apply_to_categorical`` is False (joint runs), where it is ignored.
  """
  builder = registry.get_builder(name, data_dir, image_size, manual_dir)
  if not builder.is_prepared():
    if prepare and (name in registry.AUTO_PREPARE or manual_dir is not None):
      builder = registry.prepare(name, data_dir, image_size, manual_dir)
    else:
      raise FileNotFoundError(
          f'dataset {name!r} at {image_size} px is not prepared in {data_dir!r} '
          f'(looked for {builder.data_dir}). Build it first with: python -m data_prep.build '
          f'--dataset={name} --image_size={image_size} --data_dir={data_dir} --manual_dir=DIR')
  features = builder.info.features
  if 'label' in features:
    if attrs and attrs_apply_to_categorical:
      raise ValueError(f'dataset {name!r} is categorical (classes {features["label"].names}); '
                       f'--attrs does not apply to it, got {list(attrs)}')
    spec = labels_lib.DomainSpec(name, tuple(features['label'].names), labels_lib.CATEGORICAL)
  else:
    valid = tuple(features['attributes'].keys())
    if not attrs:
      attrs = registry.default_attributes(name) or valid
    unknown = [a for a in attrs if a not in valid]
    if unknown:
      raise ValueError(f'unknown attribute(s) {unknown} for dataset {name!r}; '
                       f'valid attributes: {", ".join(valid)}')
    attrs = tuple(attrs)
    spec = labels_lib.DomainSpec(name, attrs, labels_lib.ATTRIBUTES,
                                 labels_lib.exclusive_group(attrs))
  sources = {split: builder.as_data_source(split=split) for split in builder.info.splits}
  return Dataset(name, spec, image_size, sources, None)


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


def train_iterator(dataset: Dataset, global_batch: int, seed: int, *, process_index: int = 0,
                   process_count: int = 1, num_threads: int = 4, prefetch: int = 4):
  """An endless, checkpointable iterator of this host's share of training batches."""
  if global_batch % process_count:
    raise ValueError(f'batch size {global_batch} is not divisible by the number of hosts '
                     f'{process_count}')
  if len(dataset) < global_batch:
    raise ValueError(f'dataset {dataset.name!r} has {len(dataset)} training images, fewer than '
                     f'the batch size {global_batch}')
  ds = grain.MapDataset.source(dataset.sources['train']).shuffle(seed=seed).repeat(None)
  ds = ds.map(_ToExample(dataset)).random_map(_RandomFlip(), seed=seed + 1)
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


def iterator_state(it) -> bytes:
  return json.dumps(it.get_state()).encode()


def restore_iterator_state(it, state: bytes) -> None:
  it.set_state(json.loads(state.decode() if isinstance(state, bytes) else state))
