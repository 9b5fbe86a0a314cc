"""TFDS builder for RaFD (Radboud Faces Database) from the files you were given.

Build command::

  python -m data_prep.build --dataset=rafd --image_size=128 --manual_dir=~/data \
      --data_dir=~/tensorflow_datasets        # optional: --crop_size=N

``--manual_dir`` (or its ``RaFD/`` subfolder) holds either

* the reference's layout ``train/<expression>/*.jpg`` and
  ``test/<expression>/*.jpg``: the split is kept, the 8 classes are the
  folder names in sorted order, and images are centre-cropped to
  ``--crop_size`` (default 256, the reference's ``rafd_crop_size``); or
* the raw release, one folder of files named like
  ``Rafd090_01_Caucasian_female_angry_frontal.jpg`` (camera angle, person,
  ethnicity, gender, expression, gaze). The expression is read from the name.
  Only the 45/90/135 degree camera angles are kept by default (the paper's
  4,824 images: 67 people x 8 expressions x 3 gazes x 3 angles; the 0 and 180
  degree profiles are dropped; change with ``--rafd_angles``). The split is
  by person, so no person is in both: the distinct person ids are sorted and
  ``n = max(1, round(0.1 * people))`` of them, evenly spaced through that
  list (positions ``floor((k + 0.5) * people / n)``, k = 0..n-1), are the
  test people (``--test_fraction`` changes 0.1). The raw photos are 681x1024
  with the face above the centre; without ``--crop_size`` the largest centred
  square (681x681) is cropped, which keeps the whole head. The reference's
  256 crop of its own pre-cropped faces is not reproducible from the raw
  files without a face detector.

Either way images are resized (bilinear) to the config's size at prepare time.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

import tensorflow_datasets as tfds

from stargan_jax import images
from stargan_jax.datasets import common
from stargan_jax.datasets.common import BuildError

EXPRESSIONS = ('angry', 'contemptuous', 'disgusted', 'fearful', 'happy', 'neutral', 'sad',
               'surprised')
DEFAULT_CROP = 256  # the reference's rafd_crop_size, for its pre-cropped images
DEFAULT_ANGLES = (45, 90, 135)
RAW_NAME = re.compile(r'^Rafd(\d{3})_(\d+)_([A-Za-z]+)_([A-Za-z]+)_([A-Za-z]+)_([A-Za-z]+)\.\w+$',
                      re.IGNORECASE)

EXPECTED_LAYOUT = """\
  MANUAL_DIR/RaFD/train/<expression>/*.jpg      (the reference's layout; RaFD/ may be
  MANUAL_DIR/RaFD/test/<expression>/*.jpg        MANUAL_DIR itself), expressions:
                                                 """ + ', '.join(EXPRESSIONS) + """
or the raw release, one folder of files named like
  MANUAL_DIR/RaFD/Rafd090_01_Caucasian_female_angry_frontal.jpg"""

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
RaFD is available to researchers on request at https://rafd.socsci.ru.nl/
(registration and a licence agreement; it cannot be downloaded automatically).
Put the images in --manual_dir in one of these layouts:
{EXPECTED_LAYOUT}
then run: {common.build_command('rafd')}"""


@dataclasses.dataclass
class RaFDConfig(tfds.core.BuilderConfig):
  image_size: int = 128


def make_config(image_size: int = 128) -> RaFDConfig:
  common.check_image_size('rafd', image_size)
  return RaFDConfig(name=f'{image_size}px', image_size=image_size,
                    description=f'RaFD expressions, {image_size} px')


def find_layout(manual_dir: str | None, image_size: int = 128) -> tuple[str, str]:
  """-> ('reference' | 'raw', root folder), or an error showing the expected layouts."""
  if manual_dir and os.path.isdir(manual_dir):
    for root in (os.path.join(manual_dir, 'RaFD'), os.path.join(manual_dir, 'rafd'), manual_dir):
      if os.path.isdir(os.path.join(root, 'train')) and os.path.isdir(os.path.join(root, 'test')):
        return 'reference', root
      if os.path.isdir(root) and any(RAW_NAME.match(f) for f in common.list_dir(root)):
        return 'raw', root
  raise common.LayoutError(
      f'RaFD: no images in a known layout in --manual_dir ({common.describe_dir(manual_dir)}). '
      f'Expected:\n{EXPECTED_LAYOUT}\nthen run: '
      f'{common.build_command("rafd", image_size, manual_dir or "DIR")}')


def reference_split(root: str) -> dict[str, list[tuple[str, int]]]:
  """{'train'|'test': [(path, class index)]} from ``root/{train,test}/<expression>/``."""
  out = {}
  for split in ('train', 'test'):
    split_dir = os.path.join(root, split)
    classes = common.subdirs(split_dir)
    if tuple(classes) != EXPRESSIONS:
      raise BuildError(f'{split_dir} must hold one folder per expression: '
                       f'{", ".join(EXPRESSIONS)}; missing: '
                       f'{common.some(set(EXPRESSIONS) - set(classes)) or "none"}, unexpected: '
                       f'{common.some(set(classes) - set(EXPRESSIONS)) or "none"}')
    out[split] = []
    for label, c in enumerate(classes):
      folder = os.path.join(split_dir, c)
      out[split].extend((os.path.join(folder, p), label)
                        for p in common.images_in_class_folder(folder))
  return out


def parse_raw_name(name: str) -> dict | None:
  m = RAW_NAME.match(name)
  if not m:
    return None
  angle, person, ethnicity, gender, expression, gaze = m.groups()
  return {'angle': int(angle), 'person': int(person), 'ethnicity': ethnicity, 'gender': gender,
          'expression': expression.lower(), 'gaze': gaze}


def pick_test_people(people, test_fraction: float | None = None) -> list[int]:
  """The test people: ``n = max(1, round(fraction * P))`` evenly spaced sorted person ids."""
  people = sorted(set(people))
  frac = common.test_fraction_or_default(test_fraction)
  if len(people) < 2:
    raise BuildError(f'the raw RaFD images show {len(people)} person(s); the person-wise split '
                     f'needs at least 2')
  n = min(max(1, round(frac * len(people))), len(people) - 1)
  return [people[math.floor((k + 0.5) * len(people) / n)] for k in range(n)]


def raw_split(root: str, angles=DEFAULT_ANGLES,
              test_fraction: float | None = None) -> dict[str, list[tuple[str, int]]]:
  """{'train'|'test': [(path, class index)]} from raw release names, split by person."""
  files = [f for f in common.list_dir(root) if images.is_image_file(f)]
  parsed = {f: parse_raw_name(f) for f in files}
  bad = [f for f, p in parsed.items() if p is None]
  if bad:
    raise BuildError(f'{len(bad)} image(s) in {root} are not named like RaFD\'s raw release '
                     f'(Rafd090_01_Caucasian_female_angry_frontal.jpg): {common.some(bad)}')
  unknown = [f for f, p in parsed.items() if p['expression'] not in EXPRESSIONS]
  if unknown:
    raise BuildError(f'{len(unknown)} image(s) in {root} name an unknown expression (expected '
                     f'one of {", ".join(EXPRESSIONS)}): {common.some(unknown)}')
  kept = {f: p for f, p in parsed.items() if p['angle'] in angles}
  missing = [e for e in EXPRESSIONS if not any(p['expression'] == e for p in kept.values())]
  if missing:
    raise BuildError(f'no images of expression(s) {", ".join(missing)} in {root} at camera '
                     f'angles {list(angles)}; every expression needs images')
  test = set(pick_test_people([p['person'] for p in kept.values()], test_fraction))
  out = {'train': [], 'test': []}
  for f in sorted(kept):
    p = kept[f]
    out['test' if p['person'] in test else 'train'].append(
        (os.path.join(root, f), EXPRESSIONS.index(p['expression'])))
  return out


class RaFD(common.LocalFilesBuilder):
  """RaFD faces with their 8 expressions as one-hot classes."""

  name = 'stargan_rafd'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [make_config(128), make_config(256)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def __init__(self, *, crop_size: int | None = None, angles=DEFAULT_ANGLES,
               test_fraction: float | None = None, **kwargs):
    self._crop_size, self._angles, self._test_fraction = crop_size, tuple(angles), test_fraction
    self._layout = None
    super().__init__(**kwargs)

  def layout(self) -> tuple[str, str]:
    if self._layout is None:
      self._layout = find_layout(self._manual_dir, self.builder_config.image_size)
    return self._layout

  def crop_size(self) -> int | None:
    if self._crop_size is not None:
      return self._crop_size
    return DEFAULT_CROP if self.layout()[0] == 'reference' else None

  def build_options(self) -> dict:
    if self._manual_dir is None:
      return None
    layout = self.layout()[0]
    options = {**super().build_options(), 'layout': layout, 'crop_size': self.crop_size()}
    if layout == 'raw':
      options.update(angles=list(self._angles), test_fraction=self._test_fraction or 0.1)
    return options

  def _info(self):
    return self.info_with_image({'label': tfds.features.ClassLabel(names=EXPRESSIONS)},
                                homepage='https://rafd.socsci.ru.nl/')

  def _split_generators(self, dl_manager):
    del dl_manager
    layout, root = self.layout()
    if layout == 'reference':
      if self._test_fraction is not None:
        raise BuildError('--test_fraction does not apply to RaFD in the reference layout, whose '
                         f'train/test folders are the split ({root})')
      splits = reference_split(root)
    else:
      splits = raw_split(root, self._angles, self._test_fraction)
    self.record_build_options()
    return {split: self._examples(root, items) for split, items in splits.items()}

  def _examples(self, root, items):
    work = ((os.path.relpath(p, root), p, os.path.relpath(p, root), {'label': label})
            for p, label in items)
    return self._generate_examples(work, self.crop_size())


def builder(data_dir: str, image_size: int, manual_dir: str | None = None,
            skip_corrupt: bool = False, num_workers: int | None = None,
            crop_size: int | None = None, rafd_angles=None, test_fraction: float | None = None,
            image_format: str = 'png', **unsupported) -> RaFD:
  common.reject_options('rafd', unsupported)
  common.check_positive('crop_size', crop_size)
  angles = DEFAULT_ANGLES if rafd_angles is None else tuple(int(a) for a in rafd_angles)
  return common.open_builder(RaFD, data_dir, make_config(image_size), manual_dir=manual_dir,
                             skip_corrupt=skip_corrupt, num_workers=num_workers,
                             crop_size=crop_size, angles=angles, test_fraction=test_fraction,
                             image_format=image_format)
