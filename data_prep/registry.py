"""Name -> TFDS builder, for every dataset the trainer knows.

``get_builder(name, data_dir, image_size, manual_dir)`` returns an (unprepared
or prepared) builder; ``prepare`` also builds it when it is missing. Build
options (``crop_size``, ``skip_corrupt``, ...) go to the factory as keywords;
the factory rejects those that do not apply to its dataset. A name registered
with ``labelled=True`` also accepts ``name:LABEL`` (``folder:horses``): one
dataset per label, each stored under its own config.
"""

from __future__ import annotations

import os
from typing import Callable

import tensorflow_datasets as tfds

from data_prep import celeba, faces, folders, procedural, rafd

def _procedural(kind: str):
  def factory(data_dir, image_size, manual_dir=None, **unsupported):
    if unsupported:
      raise ValueError('the procedural datasets take no ' +
                       ', '.join('--' + k for k in unsupported))
    return procedural.builder(data_dir, kind=kind, image_size=image_size)
  return factory


def _faces(kind: str):
  def factory(data_dir, image_size, manual_dir=None, **unsupported):
    if unsupported:
      raise ValueError('the faces datasets take no ' + ', '.join('--' + k for k in unsupported))
    return faces.builder(data_dir, kind=kind, image_size=image_size)
  return factory


# name -> factory(data_dir, image_size, manual_dir=None, **options) -> builder
_FACTORIES: dict[str, Callable[..., tfds.core.DatasetBuilder]] = {
    'procedural': _procedural('attributes'),
    'procedural_classes': _procedural('classes'),
    'faces': _faces('attributes'),
    'faces_expr': _faces('expressions'),
}
# Default attribute selection per dataset (None: all of its attributes).
_DEFAULT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    'faces': ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male', 'Young'),  # CelebA's default
}
# Datasets that need no files from the user and are built on first use.
AUTO_PREPARE = ('procedural', 'procedural_classes', 'faces', 'faces_expr')
# Names that also accept 'name:LABEL'; the factory gets label=LABEL.
_LABELLED: set[str] = set()


def names() -> list[str]:
  return sorted(_FACTORIES)


def register(name: str, factory: Callable[..., tfds.core.DatasetBuilder],
             default_attributes: tuple[str, ...] | None = None, labelled: bool = False) -> None:
  _FACTORIES[name] = factory
  if default_attributes:
    _DEFAULT_ATTRIBUTES[name] = tuple(default_attributes)
  if labelled:
    _LABELLED.add(name)


def default_attributes(name: str):
  return _DEFAULT_ATTRIBUTES.get(name)


def _factory(name: str):
  """-> (factory, extra keywords) for a registered name or a labelled 'name:LABEL'."""
  if name in _FACTORIES:
    return _FACTORIES[name], {}
  base, sep, label = name.partition(':')
  if sep and base in _LABELLED and label:
    return _FACTORIES[base], {'label': label}
  labelled = ''.join(f', {n}:NAME' for n in sorted(_LABELLED))
  raise ValueError(f'unknown dataset {name!r}; known datasets: {", ".join(names())}{labelled}')


def get_builder(name: str, data_dir: str, image_size: int, manual_dir: str | None = None,
                **options):
  factory, extra = _factory(name)
  manual_dir = os.path.expanduser(manual_dir) if manual_dir else None
  return factory(os.path.expanduser(data_dir), image_size, manual_dir=manual_dir, **extra,
                 **options)


def prepare(name: str, data_dir: str, image_size: int, manual_dir: str | None = None,
            **options):
  """Builds the dataset unless it is prepared; then checks it was built with these options."""
  b = get_builder(name, data_dir, image_size, manual_dir, **options)
  if b.is_prepared():
    if hasattr(b, 'check_prepared_options'):
      b.check_prepared_options()
    return b
  kwargs = {}
  if manual_dir is not None:
    kwargs['download_config'] = tfds.download.DownloadConfig(manual_dir=os.path.expanduser(manual_dir))
  b.download_and_prepare(**kwargs)
  return b


register('celeba', celeba.builder, default_attributes=celeba.DEFAULT_ATTRIBUTES)
register('rafd', rafd.builder)
register('folder', folders.builder, labelled=True)
