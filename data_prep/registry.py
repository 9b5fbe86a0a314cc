"""Name -> TFDS builder, for every dataset the trainer knows.

``get_builder(name, data_dir, image_size, manual_dir)`` returns an (unprepared
or prepared) builder; ``prepare`` also builds it when it is missing.
"""

from __future__ import annotations

import os
from typing import Callable

import tensorflow_datasets as tfds

from data_prep import procedural

# name -> factory(data_dir, image_size, manual_dir) -> builder
_FACTORIES: dict[str, Callable[..., tfds.core.DatasetBuilder]] = {
    'procedural': lambda data_dir, image_size, manual_dir=None: procedural.builder(
        data_dir, kind='attributes', image_size=image_size),
    'procedural_classes': lambda data_dir, image_size, manual_dir=None: procedural.builder(
        data_dir, kind='classes', image_size=image_size),
}
# Default attribute selection per dataset (None: all of its attributes).
_DEFAULT_ATTRIBUTES: dict[str, tuple[str, ...]] = {}
# Datasets that need no files from the user and are built on first use.
AUTO_PREPARE = ('procedural', 'procedural_classes')


def names() -> list[str]:
  return sorted(_FACTORIES)


def register(name: str, factory: Callable[..., tfds.core.DatasetBuilder],
             default_attributes: tuple[str, ...] | None = None) -> None:
  _FACTORIES[name] = factory
  if default_attributes:
    _DEFAULT_ATTRIBUTES[name] = tuple(default_attributes)


def default_attributes(name: str):
  return _DEFAULT_ATTRIBUTES.get(name)


def get_builder(name: str, data_dir: str, image_size: int, manual_dir: str | None = None):
  if name not in _FACTORIES:
    raise ValueError(f'unknown dataset {name!r}; known datasets: {", ".join(names())}')
  return _FACTORIES[name](os.path.expanduser(data_dir), image_size, manual_dir=manual_dir)


def prepare(name: str, data_dir: str, image_size: int, manual_dir: str | None = None):
  b = get_builder(name, data_dir, image_size, manual_dir)
  kwargs = {}
  if manual_dir is not None:
    kwargs['download_config'] = tfds.download.DownloadConfig(manual_dir=os.path.expanduser(manual_dir))
  b.download_and_prepare(**kwargs)
  return b
