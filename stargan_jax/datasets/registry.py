"""Name -> TFDS builder, for every dataset the trainer knows.

``get_builder(name, data_dir, image_size, manual_dir)`` returns an (unprepared
or prepared) builder; ``prepare`` also builds it when it is missing. Build
options (``crop_size``, ``skip_corrupt``, ...) go to the factory as keywords;
the factory rejects those that do not apply to its dataset. ``folder`` also
accepts ``folder:LABEL`` (``folder:horses``): one dataset per label, each
stored under its own config. The drawn datasets (``AUTO_PREPARE``) need no
files and are built on first use.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable

try:
  import fcntl
except ImportError:  # not POSIX: no lock, as before
  fcntl = None

import tensorflow_datasets as tfds

from stargan_jax import cli
from stargan_jax.datasets import celeba, common, drawn, folders, rafd


class UnknownDatasetError(cli.UserError, ValueError):
  """A dataset name the registry does not know."""


def _drawn(name: str, builder: Callable[..., tfds.core.DatasetBuilder], kind: str):
  def factory(data_dir, image_size, manual_dir=None, **unsupported):
    common.reject_options(name, unsupported, 'it is drawn, not read from files')
    return builder(data_dir, kind=kind, image_size=image_size)
  return factory


# name -> factory(data_dir, image_size, manual_dir=None, **options) -> builder
_FACTORIES: dict[str, Callable[..., tfds.core.DatasetBuilder]] = {
    'procedural': _drawn('procedural', drawn.procedural_builder, 'attributes'),
    'procedural_classes': _drawn('procedural_classes', drawn.procedural_builder, 'classes'),
    'faces': _drawn('faces', drawn.faces_builder, 'attributes'),
    'faces_expr': _drawn('faces_expr', drawn.faces_builder, 'expressions'),
    'celeba': celeba.builder,
    'rafd': rafd.builder,
    'folder': folders.builder,
}
# Default attribute selection per dataset (absent: all of its attributes, in its order).
_DEFAULT_ATTRIBUTES: dict[str, tuple[str, ...]] = {'celeba': celeba.DEFAULT_ATTRIBUTES}
# Datasets that need no files from the user and are built on first use.
AUTO_PREPARE = ('procedural', 'procedural_classes', 'faces', 'faces_expr')
# Names that also accept 'name:LABEL'; the factory gets label=LABEL.
_LABELLED = ('folder',)


def names() -> list[str]:
  return sorted(_FACTORIES)


def default_attributes(name: str) -> tuple[str, ...] | None:
  return _DEFAULT_ATTRIBUTES.get(name)


def _factory(name: str):
  """-> (factory, extra keywords) for a registered name or a labelled 'name:LABEL'."""
  if name in _FACTORIES:
    return _FACTORIES[name], {}
  base, sep, label = name.partition(':')
  if sep and base in _LABELLED and label:
    return _FACTORIES[base], {'label': label}
  labelled = ''.join(f', {n}:NAME' for n in _LABELLED)
  raise UnknownDatasetError(f'unknown dataset {name!r}; known datasets: {", ".join(names())}'
                            f'{labelled}')


def get_builder(name: str, data_dir: str, image_size: int, manual_dir: str | None = None,
                **options):
  factory, extra = _factory(name)
  manual_dir = os.path.expanduser(manual_dir) if manual_dir else None
  return factory(os.path.expanduser(data_dir), image_size, manual_dir=manual_dir, **extra,
                 **options)


@contextlib.contextmanager
def _build_lock(builder):
  """Holds an exclusive lock on ``<dataset dir>/<config>.lock`` while one process builds.

  Two runs started together on one data dir (two seeds of the joint demo, say)
  would otherwise both build a missing dataset, and the second one's final step
  fails: TFDS renames its ``incomplete.*`` directory onto the version directory
  the first one already made. With the lock the second waits, then finds the
  dataset prepared. Remote data dirs (``gs://...``) are not locked.
  """
  version_dir = os.fspath(builder.data_dir).rstrip('/')
  if fcntl is None or '://' in version_dir:
    yield
    return
  config_dir = os.path.dirname(version_dir)
  try:
    os.makedirs(os.path.dirname(config_dir), exist_ok=True)
    f = open(config_dir + '.lock', 'a')
  except OSError:  # a data dir this process cannot write to: the build itself says so
    yield
    return
  with f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def prepare(name: str, data_dir: str, image_size: int, manual_dir: str | None = None,
            **options):
  """Builds the dataset unless it is prepared; then checks it was built with these options."""
  b = get_builder(name, data_dir, image_size, manual_dir, **options)
  if not b.is_prepared():
    with _build_lock(b):
      # Another process may have built it while this one waited for the lock.
      b = get_builder(name, data_dir, image_size, manual_dir, **options)
      if not b.is_prepared():
        kwargs = {}
        if manual_dir is not None:
          kwargs['download_config'] = tfds.download.DownloadConfig(
              manual_dir=os.path.expanduser(manual_dir))
        b.download_and_prepare(**kwargs)
        return b
  if hasattr(b, 'check_prepared_options'):
    b.check_prepared_options()
  return b
