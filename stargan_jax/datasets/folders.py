"""TFDS builder for your own images: a folder of class folders, or images + attributes.

Build command (one per dataset; the name after ``folder:`` is yours)::

  python -m data_prep.build --dataset=folder:horses --image_size=128 \
      --manual_dir=~/my_images --data_dir=~/tensorflow_datasets

then train with ``--datasets=folder:horses`` (plain ``--dataset=folder`` is
the same with the label ``default``). The layout of ``--manual_dir`` decides
the kind of labels:

* **Class folders** (one-hot domains, like RaFD): ``DIR/<class>/*.jpg``, the
  classes in sorted folder order, images found recursively. If ``DIR`` holds
  ``train/<class>/`` and ``test/<class>/`` that split is used; otherwise each
  class is split on its own: its file paths are sorted, shuffled with
  ``random.Random(1234)`` and the first n are test, n =
  ``round(--test_fraction * count)`` (default 0.1, at least 1, never all) or
  ``--test_count`` per class.
* **An attribute file** (multi-label domains, like CelebA): ``DIR/images/``
  (or ``DIR`` itself) plus a file in CelebA's ``list_attr_celeba.txt`` format
  given by ``--attr_file`` or named ``list_attr.txt``, ``attributes.txt`` or
  ``list_attr_celeba.txt`` in ``DIR``: line 1 the image count, line 2 the
  attribute names, then ``<path relative to the images folder> v v ...``
  with 1 / -1 (or 0). The same shuffle splits all images, n =
  ``round(--test_fraction * count)`` or ``--test_count`` in total. Choose the
  attributes to train on with ``--attrs`` (default: all).

Images are centre-cropped (``--crop_size``; default: the largest centred
square), resized (bilinear) to ``--image_size`` and stored as PNG. Unlike the
reference, EXIF orientation is applied first, as phone photos need it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from stargan_jax import images
from stargan_jax.datasets import celeba, common
from stargan_jax.datasets.common import BuildError, MissingFilesError

ATTR_FILE_NAMES = ('list_attr.txt', 'attributes.txt', 'list_attr_celeba.txt', 'list_attr.csv',
                   'list_attr_celeba.csv')
LABEL_RE = re.compile(r'^[A-Za-z0-9_]+$')
NAME_RE = re.compile(r'^[A-Za-z0-9_.\-]+$')
CLASSES, ATTRIBUTES = 'classes', 'attributes'

EXPECTED_LAYOUT = """\
  class folders:    MANUAL_DIR/<class>/*.jpg            (2 or more classes; or
                    MANUAL_DIR/{train,test}/<class>/*.jpg  to give the split yourself)
  an attribute file: MANUAL_DIR/images/*.jpg (or MANUAL_DIR/*.jpg) and
                    MANUAL_DIR/list_attr.txt in CelebA's format (or --attr_file=FILE)"""

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Put your own images in --manual_dir in one of these layouts:
{EXPECTED_LAYOUT}
then run: {common.build_command('folder:NAME')}"""


@dataclasses.dataclass
class Layout:
  kind: str  # CLASSES or ATTRIBUTES
  layout: str  # 'class_folders', 'class_folders_split' or 'attribute_file'
  root: str  # the class folders' parent, or the images folder
  names: tuple[str, ...]  # classes or attributes
  attr_file: str | None = None


def _check_names(names, what: str, where: str) -> None:
  bad = [n for n in names if not NAME_RE.match(n)]
  if bad:
    raise BuildError(f'{what} names in {where} may use only letters, digits, "_", "." and "-": '
                     f'{common.some(bad)}')


def find_layout(manual_dir: str | None, attr_file: str | None = None,
                dataset: str = 'folder:NAME', image_size: int = 128) -> Layout:
  """Which layout ``manual_dir`` is in, its classes or attributes; or a clear error."""
  command = common.build_command(dataset, image_size, manual_dir or 'DIR')
  if not manual_dir or not os.path.isdir(manual_dir):
    raise common.LayoutError(f'image folder: --manual_dir must be a folder of your images '
                             f'({common.describe_dir(manual_dir)}). Expected:\n'
                             f'{EXPECTED_LAYOUT}\nthen run: {command}')
  if attr_file is not None:
    path = os.path.expanduser(attr_file)
    if not os.path.isabs(path) and not os.path.exists(path):
      path = os.path.join(manual_dir, path)
    if not os.path.isfile(path):
      raise MissingFilesError(f'--attr_file={attr_file}: no such file (also looked in '
                              f'{manual_dir})')
    attr_file = path
  else:
    attr_file = next((os.path.join(manual_dir, n) for n in ATTR_FILE_NAMES
                      if os.path.isfile(os.path.join(manual_dir, n))), None)
  if attr_file is not None:
    image_dir = os.path.join(manual_dir, 'images')
    root = image_dir if os.path.isdir(image_dir) else manual_dir
    names, _ = _read_attributes(attr_file)
    _check_names(names, 'attribute', attr_file)
    return Layout(ATTRIBUTES, 'attribute_file', root, names, attr_file)
  dirs = common.subdirs(manual_dir)
  if {'train', 'test'} <= set(dirs) and common.subdirs(os.path.join(manual_dir, 'train')):
    classes = sorted(common.subdirs(os.path.join(manual_dir, 'train')))
    test_classes = sorted(common.subdirs(os.path.join(manual_dir, 'test')))
    if classes != test_classes:
      raise BuildError(f'{manual_dir}/train and {manual_dir}/test must hold the same class '
                       f'folders; only in train: {common.some(set(classes) - set(test_classes))}'
                       f'; only in test: {common.some(set(test_classes) - set(classes))}')
    layout = 'class_folders_split'
  else:
    classes, layout = sorted(dirs), 'class_folders'
  loose = [f for f in common.list_dir(manual_dir) if images.is_image_file(f)]
  if len(classes) < 2 or loose:
    why = (f'{len(loose)} image(s) lie directly in it, in no class folder: {common.some(loose)}'
           if loose else f'it has {len(classes)} class folder(s); StarGAN needs 2 or more domains')
    raise common.LayoutError(f'image folder {manual_dir}: {why}. Expected:\n{EXPECTED_LAYOUT}\n'
                             f'then run: {command}')
  _check_names(classes, 'class folder', manual_dir)
  return Layout(CLASSES, layout, manual_dir, tuple(classes))


@functools.lru_cache(maxsize=4)
def _read_attributes_cached(path: str, mtime: float):
  del mtime  # part of the cache key only
  return celeba.read_attr_file(path)


def _read_attributes(path: str):
  return _read_attributes_cached(path, os.path.getmtime(path))


def class_splits(layout: Layout, test_fraction=None, test_count=None):
  """{'train'|'test': [(relative path, class index)]} for a class-folder layout."""
  out = {'train': [], 'test': []}
  for label, c in enumerate(layout.names):
    if layout.layout == 'class_folders_split':
      for split in out:
        paths = common.images_in_class_folder(os.path.join(layout.root, split, c))
        out[split].extend((f'{split}/{c}/{p}', label) for p in paths)
    else:
      folder = os.path.join(layout.root, c)
      train, test = common.split_names(common.images_in_class_folder(folder), test_fraction,
                                       test_count, what=f'class folder {folder}')
      out['train'].extend((f'{c}/{p}', label) for p in train)
      out['test'].extend((f'{c}/{p}', label) for p in test)
  return out


def attribute_splits(layout: Layout, test_fraction=None, test_count=None):
  """{'train'|'test': [(relative path, {name: 0/1})]} for an attribute-file layout."""
  names, rows = _read_attributes(layout.attr_file)
  common.check_rows_match_images(layout.attr_file, (n for n, _ in rows), layout.root,
                                 common.images_under(layout.root))
  train, test = common.split_names([n for n, _ in rows], test_fraction, test_count,
                                    what=layout.attr_file)
  values = dict(rows)
  return {split: [(n, dict(zip(names, values[n]))) for n in split_names]
          for split, split_names in (('train', train), ('test', test))}


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
  label: str = 'default'
  image_size: int = 128


def make_config(label: str = 'default', image_size: int = 128) -> FolderConfig:
  if not LABEL_RE.match(label):
    raise BuildError(f'a folder dataset\'s name (after "folder:") may use only letters, digits '
                     f'and "_", got {label!r}')
  common.check_image_size('folder datasets', image_size)
  return FolderConfig(name=f'{label}_{image_size}px', label=label, image_size=image_size,
                      description=f'your images "{label}", {image_size} px')


class ImageFolder(common.LocalFilesBuilder):
  """Your images, labelled by class folder or by an attribute file."""

  name = 'stargan_image_folder'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [make_config()]
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def __init__(self, *, crop_size: int | None = None, test_fraction: float | None = None,
               test_count: int | None = None, attr_file: str | None = None, **kwargs):
    if test_fraction is not None and test_count is not None:
      raise BuildError('give --test_fraction or --test_count, not both')
    self._crop_size, self._attr_file = crop_size, attr_file
    self._test_fraction, self._test_count = test_fraction, test_count
    self._layout = None
    super().__init__(**kwargs)

  @property
  def dataset_name(self) -> str:
    label = self.builder_config.label
    return 'folder' if label == 'default' else f'folder:{label}'

  def layout(self) -> Layout:
    if self._layout is None:
      self._layout = find_layout(self._manual_dir, self._attr_file, self.dataset_name,
                                 self.builder_config.image_size)
    return self._layout

  def build_options(self) -> dict | None:
    if self._manual_dir is None:
      return None
    layout = self.layout()
    return {**super().build_options(), 'layout': layout.layout, 'names': list(layout.names),
            'crop_size': self._crop_size, 'test_fraction': self._test_fraction,
            'test_count': self._test_count}

  def _info(self):
    recorded = (self.recorded_metadata() or {}).get('build_options')
    if recorded is not None:
      # Prepared: the labels are the ones stored with the data, whatever
      # --manual_dir says now (it may be another dataset's folder). They are
      # rebuilt from metadata.json, which keeps the attributes' order
      # (features.json does not).
      kind = ATTRIBUTES if recorded['layout'] == 'attribute_file' else CLASSES
      names, image_format = recorded['names'], recorded['image_format']
    elif self._manual_dir is not None:
      kind, names, image_format = self.layout().kind, self.layout().names, self._image_format
    else:  # not prepared and nothing to prepare from: placeholder labels
      kind, names, image_format = CLASSES, ('a', 'b'), self._image_format
    if kind == CLASSES:
      labels = {'label': tfds.features.ClassLabel(names=names)}
    else:
      labels = {'attributes': tfds.features.FeaturesDict(
          {n: tfds.features.Scalar(dtype=np.int32) for n in names})}
    return self.info_with_image(labels, image_format=image_format)

  def _split_generators(self, dl_manager):
    del dl_manager
    layout = self.layout()
    self.record_build_options()
    if layout.kind == CLASSES:
      splits = class_splits(layout, self._test_fraction, self._test_count)
      extra = lambda label: {'label': label}
    else:
      splits = attribute_splits(layout, self._test_fraction, self._test_count)
      extra = lambda attrs: {'attributes': attrs}
    return {split: self._generate_examples(
        ((rel, os.path.join(layout.root, rel), rel, extra(v)) for rel, v in items),
        self._crop_size, exif_transpose=True) for split, items in splits.items()}


def builder(data_dir: str, image_size: int, manual_dir: str | None = None,
            label: str = 'default', skip_corrupt: bool = False, num_workers: int | None = None,
            crop_size: int | None = None, test_fraction: float | None = None,
            test_count: int | None = None, attr_file: str | None = None,
            image_format: str = 'png', **unsupported) -> ImageFolder:
  common.reject_options('folder datasets', unsupported)
  common.check_positive('crop_size', crop_size)
  return common.open_builder(ImageFolder, data_dir, make_config(label, image_size),
                             manual_dir=manual_dir, skip_corrupt=skip_corrupt,
                             num_workers=num_workers, crop_size=crop_size,
                             test_fraction=test_fraction, test_count=test_count,
                             attr_file=attr_file, image_format=image_format)
