"""TFDS builder for CelebA from the files you downloaded, with the reference's split.

Build command (its time and disk size: see the README)::

  python -m data_prep.build --dataset=celeba --image_size=128 \
      --manual_dir=~/data --data_dir=~/tensorflow_datasets   # also --image_size=256

``--manual_dir`` holds CelebA in one of these layouts (see
``MANUAL_DOWNLOAD_INSTRUCTIONS``): the reference's ``celeba/images/*.jpg`` +
``celeba/list_attr_celeba.txt``, or the original release's
``img_align_celeba/`` folder or ``img_align_celeba.zip`` (also under ``Img/``)
+ ``list_attr_celeba.txt`` (also under ``Anno/``; Kaggle's
``list_attr_celeba.csv`` works too). Every example keeps all 40 attributes
(0/1; the file's -1 is 0) and its file name; the training job picks the
attributes by name (default: Black_Hair, Blond_Hair, Brown_Hair, Male, Young).
Images are centre-cropped to 178x178 and resized (bilinear) to the config's
size at prepare time; that is the reference's ``CenterCrop(178)`` +
``Resize``, so the stored pixels are the ones it trains on. The train/test
split is exactly the reference's (``official_split``).
"""

from __future__ import annotations

import dataclasses
import os
import random
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from stargan_jax import images
from stargan_jax.datasets import common
from stargan_jax.datasets.common import BuildError

CELEBA_ATTRIBUTES = (
    '5_o_Clock_Shadow', 'Arched_Eyebrows', 'Attractive', 'Bags_Under_Eyes', 'Bald', 'Bangs',
    'Big_Lips', 'Big_Nose', 'Black_Hair', 'Blond_Hair', 'Blurry', 'Brown_Hair', 'Bushy_Eyebrows',
    'Chubby', 'Double_Chin', 'Eyeglasses', 'Goatee', 'Gray_Hair', 'Heavy_Makeup',
    'High_Cheekbones', 'Male', 'Mouth_Slightly_Open', 'Mustache', 'Narrow_Eyes', 'No_Beard',
    'Oval_Face', 'Pale_Skin', 'Pointy_Nose', 'Receding_Hairline', 'Rosy_Cheeks', 'Sideburns',
    'Smiling', 'Straight_Hair', 'Wavy_Hair', 'Wearing_Earrings', 'Wearing_Hat',
    'Wearing_Lipstick', 'Wearing_Necklace', 'Wearing_Necktie', 'Young')
DEFAULT_ATTRIBUTES = ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male', 'Young')
CROP_SIZE = 178  # the reference's celeba_crop_size
NUM_TEST = 1999  # the reference keeps shuffled lines i with i + 1 < 2000 for testing
SPLIT_SEED = 1234

ATTR_FILE_CANDIDATES = ('celeba/list_attr_celeba.txt', 'list_attr_celeba.txt',
                        'Anno/list_attr_celeba.txt', 'list_attr_celeba.csv')
IMAGE_CANDIDATES = ('celeba/images', 'images', 'img_align_celeba/img_align_celeba',
                    'img_align_celeba', 'Img/img_align_celeba', 'img_align_celeba.zip',
                    'Img/img_align_celeba.zip')

EXPECTED_LAYOUT = """\
  MANUAL_DIR/celeba/images/000001.jpg ... 202599.jpg     (the reference's layout)
  MANUAL_DIR/celeba/list_attr_celeba.txt
or the original release (Google Drive / Baidu / Kaggle):
  MANUAL_DIR/img_align_celeba/000001.jpg ...   or   MANUAL_DIR/img_align_celeba.zip
  MANUAL_DIR/list_attr_celeba.txt              (also found under Img/ and Anno/;
                                                Kaggle's list_attr_celeba.csv also works)"""

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download CelebA's "Align&Cropped Images" (img_align_celeba.zip, 1.4 GB) and
Anno/list_attr_celeba.txt from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html
(or run the reference's `bash download.sh celeba`), and put them in
--manual_dir like this (the zip may stay zipped):
{EXPECTED_LAYOUT}
then run: {common.build_command('celeba')}"""


# -- the attribute file ------------------------------------------------------


def read_attr_file(path: str) -> tuple[tuple[str, ...], list[tuple[str, np.ndarray]]]:
  """Parses an attribute file in CelebA's format -> (attribute names, [(file, 0/1 values)]).

  Format: line 1 the number of images, line 2 the attribute names, then one
  line per image: the file name and one value per attribute, 1 (present) or
  -1 (absent; 0 is accepted too). Kaggle's CSV (``image_id,<names>`` then
  ``file,v,v,...``) is read as well.
  """
  lines = _data_lines(path)
  csv = path.lower().endswith('.csv')
  if csv:
    header, data = lines[0].split(','), lines[1:]
    names = tuple(h.strip() for h in header[1:])
  else:
    if len(lines) < 2:
      raise BuildError(f'{path}: an attribute file needs a count line and a names line, '
                       f'found {len(lines)} line(s)')
    try:
      count = int(lines[0].strip())
    except ValueError:
      raise BuildError(f'{path}: line 1 must be the number of images, got {lines[0][:60]!r}')
    names, data = tuple(lines[1].split()), lines[2:]
    if count != len(data):
      raise BuildError(f'{path}: line 1 says {count} images but the file has {len(data)} image '
                       f'lines (truncated or edited?)')
  if not names:
    raise BuildError(f'{path}: no attribute names on the header line')
  if len(set(names)) != len(names):
    raise BuildError(f'{path}: duplicate attribute names in the header')
  rows, seen = [], set()
  for i, line in enumerate(data):
    fields = line.split(',') if csv else line.split()
    lineno = i + (2 if csv else 3)
    if len(fields) != len(names) + 1:
      raise BuildError(f'{path}, line {lineno}: expected a file name and {len(names)} values, '
                       f'got {len(fields)} fields: {line[:80]!r}')
    try:
      values = np.array([int(v) for v in fields[1:]])
    except ValueError:
      raise BuildError(f'{path}, line {lineno}: attribute values must be 1, -1 or 0: '
                       f'{line[:80]!r}')
    if not np.isin(values, (-1, 0, 1)).all():
      raise BuildError(f'{path}, line {lineno}: attribute values must be 1, -1 or 0: '
                       f'{line[:80]!r}')
    name = fields[0].strip()
    if name in seen:
      raise BuildError(f'{path}, line {lineno}: {name} appears twice')
    seen.add(name)
    rows.append((name, (values > 0).astype(np.int32)))
  return names, rows


def _data_lines(path: str) -> list[str]:
  """The file's lines, rstripped like the reference, without trailing blank lines."""
  with open(path) as f:
    lines = [line.rstrip() for line in f]
  while lines and not lines[-1]:
    lines.pop()  # the reference would crash on them; a trailing newline is harmless
  return lines


def split_of_names(names: list[str], num_test: int = NUM_TEST) -> tuple[list[str], list[str]]:
  """The reference's split of the data lines' file names, in the reference's order."""
  # The reference shuffles the data *lines* with the global ``random.seed(1234)``;
  # a shuffle permutes by length only, so shuffling the names with a private
  # ``random.Random(1234)`` (same generator, same seed) gives the same order
  # without touching global state.
  names = list(names)
  random.Random(SPLIT_SEED).shuffle(names)
  return names[num_test:], names[:num_test]


def official_split(attr_file_path: str) -> tuple[list[str], list[str]]:
  """(train_names, test_names) exactly as the reference's data loader splits CelebA.

  The data lines (after the 2 header lines) are shuffled with Python's
  ``random.seed(1234); random.shuffle(lines)``; shuffled lines 0..1998 are the
  test set (the first is 028136.jpg for the real file), the rest train. Names
  come in the reference's shuffled order.
  """
  lines = _data_lines(attr_file_path)
  data = lines[1:] if attr_file_path.lower().endswith('.csv') else lines[2:]
  sep = ',' if attr_file_path.lower().endswith('.csv') else None
  return split_of_names([line.split(sep)[0].strip() for line in data])


# -- the image files ---------------------------------------------------------


@dataclasses.dataclass
class CelebAFiles:
  attr_file: str
  images: str  # a folder or a zip file

  @property
  def is_zip(self) -> bool:
    return self.images.lower().endswith('.zip')

  def list_images(self) -> dict[str, str]:
    """Image base name -> path (folder) or member name (zip)."""
    found: dict[str, str] = {}
    if self.is_zip:
      try:
        with zipfile.ZipFile(self.images) as z:
          members = [m for m in z.namelist() if not m.endswith('/') and images.is_image_file(m)]
      except zipfile.BadZipFile as e:
        raise BuildError(f'{self.images} is not a valid zip file ({e}); download it again or '
                         f'unzip it and pass the folder')
    else:
      members = [e.name for e in os.scandir(self.images) if e.is_file()
                 and images.is_image_file(e.name)]
    for m in members:
      base = os.path.basename(m)
      if base in found:
        raise BuildError(f'{self.images} holds two images named {base}: {found[base]} and {m}')
      found[base] = m if self.is_zip else os.path.join(self.images, m)
    return found


def find_files(manual_dir: str | None, image_size: int = 128) -> CelebAFiles:
  """Finds the attribute file and the images in any known layout, or says what is expected."""
  attr = found = None
  if manual_dir and os.path.isdir(manual_dir):
    attr = next((os.path.join(manual_dir, c) for c in ATTR_FILE_CANDIDATES
                 if os.path.isfile(os.path.join(manual_dir, c))), None)
    for c in IMAGE_CANDIDATES:
      p = os.path.join(manual_dir, c)
      if (os.path.isfile(p) if c.endswith('.zip') else
          os.path.isdir(p) and any(images.is_image_file(n) for n in common.list_dir(p))):
        found = p
        break
  if attr is None or found is None:
    missing = ' and '.join(w for w, v in (('list_attr_celeba.txt', attr),
                                          ('the images', found)) if v is None)
    raise common.LayoutError(
        f'CelebA: {missing} not found in --manual_dir ({common.describe_dir(manual_dir)}). '
        f'Expected:\n{EXPECTED_LAYOUT}\nthen run: '
        f'{common.build_command("celeba", image_size, manual_dir or "DIR")}')
  return CelebAFiles(attr, found)


# -- the builder -------------------------------------------------------------


@dataclasses.dataclass
class CelebAConfig(tfds.core.BuilderConfig):
  image_size: int = 128


def make_config(image_size: int = 128) -> CelebAConfig:
  common.check_image_size('celeba', image_size)
  return CelebAConfig(name=f'{image_size}px', image_size=image_size,
                      description=f'centre crop {CROP_SIZE}, resized to {image_size} px')


class CelebA(common.LocalFilesBuilder):
  """CelebA faces with all 40 binary attributes; the reference's split and crop."""

  name = 'stargan_celeba'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [make_config(128), make_config(256)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def __init__(self, *, num_test: int = NUM_TEST, **kwargs):
    self._num_test = num_test
    super().__init__(**kwargs)

  def build_options(self) -> dict:
    return {**super().build_options(), 'num_test': self._num_test}

  def _info(self):
    # The test split keeps the reference's order, so sample grids show the
    # same first test faces (028136.jpg first).
    return self.info_with_image(
        {'attributes': tfds.features.FeaturesDict(
            {n: tfds.features.Scalar(dtype=np.int32) for n in CELEBA_ATTRIBUTES})},
        homepage='https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html')

  def _split_generators(self, dl_manager):
    del dl_manager
    self.record_build_options()
    files = find_files(self._manual_dir, self.builder_config.image_size)
    names, rows = read_attr_file(files.attr_file)
    if names != CELEBA_ATTRIBUTES:
      raise BuildError(f'{files.attr_file}: the header is not CelebA\'s 40 attributes '
                       f'(unexpected: {common.some(set(names) - set(CELEBA_ATTRIBUTES))}; '
                       f'missing: {common.some(set(CELEBA_ATTRIBUTES) - set(names))}). '
                       f'For your own attribute file use --dataset=folder.')
    if len(rows) <= self._num_test:
      raise BuildError(f'{files.attr_file} lists {len(rows)} images; the CelebA split puts '
                       f'{self._num_test} in the test set and needs more (a subset of CelebA: '
                       f'pass a smaller --test_count)')
    members = files.list_images()
    common.check_rows_match_images(files.attr_file, (n for n, _ in rows), files.images, members)
    train, test = split_of_names([n for n, _ in rows], self._num_test)
    values = dict(rows)
    return {'train': self._examples(files, members, train, values),
            'test': self._examples(files, members, test, values)}

  def _examples(self, files: CelebAFiles, members: dict[str, str], names, values):
    def items():
      z = zipfile.ZipFile(files.images) if files.is_zip else None
      try:
        for n in names:
          source = z.read(members[n]) if z else members[n]
          extra = {'attributes': dict(zip(CELEBA_ATTRIBUTES, values[n]))}
          yield n, source, n, extra
      finally:
        if z:
          z.close()

    return self._generate_examples(items(), CROP_SIZE,
                         too_small_hint='CelebA\'s aligned images are 178x218; remove the file')


def builder(data_dir: str, image_size: int, manual_dir: str | None = None,
            skip_corrupt: bool = False, num_workers: int | None = None,
            test_count: int | None = None, image_format: str = 'png', **unsupported) -> CelebA:
  """The CelebA builder; ``test_count`` (default 1,999, the reference's) is for subsets."""
  common.reject_options('celeba', unsupported, f'its crop is the reference\'s {CROP_SIZE}, its '
                        f'split the official one')
  common.check_positive('test_count', test_count)
  return common.open_builder(CelebA, data_dir, make_config(image_size), manual_dir=manual_dir,
                             skip_corrupt=skip_corrupt, num_workers=num_workers,
                             num_test=NUM_TEST if test_count is None else test_count,
                             image_format=image_format)
