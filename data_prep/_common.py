"""What the builders that read the user's own files share.

Image preprocessing done once at prepare time (decode, centre crop, resize,
PNG), a bounded ordered thread pool for it, the handling of corrupt images
(an error naming the file, or skipped and counted with ``--skip_corrupt``),
deterministic train/test splits, the errors for missing or mismatched files,
and the base builder that records its build options next to the data so a
dataset is never silently rebuilt or reused with other options.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import json
import os
import random
from typing import Any, Callable, Iterable, Iterator, Sequence

import tensorflow_datasets as tfds
from absl import logging
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.ppm', '.tif', '.tiff')
IMAGE_FORMATS = ('png', 'jpeg')  # how prepared images are stored
JPEG_QUALITY = 95
SPLIT_SEED = 1234  # the reference's CelebA seed, reused for every split we choose ourselves
DEFAULT_TEST_FRACTION = 0.1


class ImageError(ValueError):
  """An image that cannot be used (corrupt, truncated or too small), naming its file."""


class CorruptImageError(ImageError):
  pass


class ImageTooSmallError(ImageError):
  pass


class LayoutError(FileNotFoundError):
  """The manual directory does not hold the files in any layout the builder knows."""


def is_image_file(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith('.')


def images_under(path: str) -> list[str]:
  """Image paths relative to ``path``, found recursively like torchvision's ImageFolder.

  '/'-separated, sorted, hidden files and folders skipped.
  """
  out = []
  for root, dirs, files in os.walk(path):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    rel = os.path.relpath(root, path)
    out.extend(f if rel == '.' else f'{rel}/{f}'.replace(os.sep, '/')
               for f in sorted(files) if is_image_file(f))
  return out


def some(names: Iterable[str], k: int = 5) -> str:
  """'a, b, c and 7 more': a few names of a possibly long list, for error messages."""
  names = sorted(names)
  shown = ', '.join(names[:k])
  return shown + (f' and {len(names) - k} more' if len(names) > k else '')


def build_command(dataset: str, image_size: int | str = 128, manual_dir: str = 'DIR',
                  extra: str = '') -> str:
  return (f'python -m data_prep.build --dataset={dataset} --image_size={image_size} '
          f'--manual_dir={manual_dir}' + (f' {extra}' if extra else ''))


def list_dir(path: str) -> list[str]:
  try:
    return sorted(os.listdir(path))
  except OSError:
    return []


def describe_dir(path: str | None) -> str:
  """One line saying what a directory holds, for 'expected layout' errors."""
  if path is None:
    return 'no --manual_dir was given'
  if not os.path.isdir(path):
    return f'{path} does not exist'
  entries = list_dir(path)
  if not entries:
    return f'{path} is empty'
  shown = [e + ('/' if os.path.isdir(os.path.join(path, e)) else '') for e in entries[:8]]
  more = f' and {len(entries) - 8} more' if len(entries) > 8 else ''
  return f'{path} holds: {", ".join(shown)}{more}'


# -- images ------------------------------------------------------------------


def center_crop_box(width: int, height: int, crop_w: int, crop_h: int) -> tuple[int, int, int, int]:
  """torchvision ``CenterCrop``'s box, with its rounding, so crops match the reference."""
  top = int(round((height - crop_h) / 2.0))
  left = int(round((width - crop_w) / 2.0))
  return left, top, left + crop_w, top + crop_h


def preprocess(source: str | bytes, name: str, crop_size: int | None, image_size: int,
               exif_transpose: bool = False,
               too_small_hint: str = 'use a smaller --crop_size or remove the file',
               image_format: str = 'png') -> bytes:
  """Decodes an image, centre-crops it, resizes it (bilinear) and encodes it (PNG or JPEG).

  ``source`` is a path or the encoded bytes; ``name`` is what errors call it.
  ``crop_size`` None crops the largest centred square. The reference applies
  ``CenterCrop(crop) -> Resize(size)`` from torchvision to PIL images, which
  is PIL's bilinear resize after the same crop box, so the stored pixels are
  the reference's (before its random flip and scaling). PNG keeps them exact
  (compression level 1: twice as fast to write as the default 6, 5% larger);
  JPEG (quality 95) takes a third of the disk and adds a small loss.
  """
  try:
    with (Image.open(source) if isinstance(source, str) else Image.open(io.BytesIO(source))) as im:
      im.load()  # a truncated file fails here, not later
      if exif_transpose:
        im = ImageOps.exif_transpose(im)
      im = im.convert('RGB')
  except FileNotFoundError:
    raise
  except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for bad data
    raise CorruptImageError(f'cannot read image {name}: {type(e).__name__}: {e}. It is corrupt '
                            f'or truncated; replace it, delete it, or pass --skip_corrupt to '
                            f'skip such files') from e
  w, h = im.size
  if crop_size is None:
    side = min(w, h)
    box = center_crop_box(w, h, side, side)
  else:
    if w < crop_size or h < crop_size:
      raise ImageTooSmallError(
          f'image {name} is {w}x{h} pixels, smaller than the {crop_size}x{crop_size} centre '
          f'crop; {too_small_hint}')
    box = center_crop_box(w, h, crop_size, crop_size)
  im = im.crop(box)
  if im.size != (image_size, image_size):
    im = im.resize((image_size, image_size), Image.BILINEAR)
  buf = io.BytesIO()
  if image_format == 'png':
    im.save(buf, format='PNG', compress_level=1)
  else:
    im.save(buf, format='JPEG', quality=JPEG_QUALITY)
  return buf.getvalue()


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], num_workers: int,
                window: int = 256) -> Iterator[tuple[Any, Any, BaseException | None]]:
  """Yields ``(item, fn(item), None)`` or ``(item, None, error)`` in input order.

  Threads, not processes: PIL releases the GIL while decoding, resizing and
  compressing, and threads need no pickling. At most ``window`` items are in
  flight, so memory stays bounded on 200k images.
  """

  def call(item):
    try:
      return fn(item), None
    except ImageError as e:
      return None, e

  if num_workers <= 1:
    for item in items:
      yield (item, *call(item))
    return
  pending = collections.deque()
  with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
    for item in items:
      pending.append((item, pool.submit(call, item)))
      if len(pending) >= window:
        item0, fut = pending.popleft()
        yield (item0, *fut.result())
    while pending:
      item0, fut = pending.popleft()
      yield (item0, *fut.result())


def default_num_workers() -> int:
  return max(1, min(16, os.cpu_count() or 1))


# -- splits ------------------------------------------------------------------


def split_names(names: Sequence[str], test_fraction: float | None = None,
                test_count: int | None = None, seed: int = SPLIT_SEED,
                what: str = 'the dataset') -> tuple[list[str], list[str]]:
  """Deterministic split: sort, shuffle with ``random.Random(seed)``, first n are test.

  n is ``test_count`` if given, else ``round(test_fraction * len(names))``
  (default 10%), and at least 1 and at most ``len(names) - 1``, so both
  splits are non-empty. The result depends only on the set of names.
  """
  if test_count is not None and test_fraction is not None:
    raise ValueError('give --test_fraction or --test_count, not both')
  names = sorted(names)
  if len(names) < 2:
    raise ValueError(f'{what} has {len(names)} image(s); at least 2 are needed to have both a '
                     f'train and a test split')
  if test_count is not None:
    if not 1 <= test_count < len(names):
      raise ValueError(f'--test_count={test_count} must be between 1 and {len(names) - 1} '
                       f'({what} has {len(names)} images)')
    n = test_count
  else:
    frac = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    if not 0.0 < frac < 1.0:
      raise ValueError(f'--test_fraction must be in (0, 1), got {frac}')
    n = min(max(1, round(frac * len(names))), len(names) - 1)
  random.Random(seed).shuffle(names)
  return sorted(names[n:]), sorted(names[:n])


# -- builders ----------------------------------------------------------------


class LocalFilesBuilder(tfds.core.GeneratorBasedBuilder):
  """A builder that reads files the user has, from ``manual_dir``.

  Subclasses define ``build_options()`` (everything besides the config that
  decides the content; saved to ``metadata.json`` next to the data); their
  ``_split_generators`` pass ``(key, source, name, extra)`` work items to
  ``_generate_examples``.
  """

  def __init__(self, *, manual_dir: str | None = None, skip_corrupt: bool = False,
               num_workers: int | None = None, image_format: str = 'png', **kwargs):
    if image_format not in IMAGE_FORMATS:
      raise ValueError(f'--image_format must be one of {IMAGE_FORMATS}, got {image_format!r}')
    # Set before the base __init__, which may call _info().
    self._image_format = image_format
    self._manual_dir = os.path.expanduser(manual_dir) if manual_dir else None
    self._skip_corrupt = skip_corrupt
    self._num_workers = default_num_workers() if num_workers is None else num_workers
    self.skipped: list[str] = []  # messages of the images skipped by --skip_corrupt
    super().__init__(**kwargs)

  def build_options(self) -> dict | None:
    """The options that decide the content (None: unknown without the manual dir)."""
    return {'image_format': self._image_format}

  def image_feature(self) -> tfds.features.Image:
    size = self.builder_config.image_size
    return tfds.features.Image(shape=(size, size, 3), encoding_format=self._image_format)

  def record_build_options(self) -> None:
    """Called by ``_split_generators``: saves the options to ``metadata.json``."""
    self.info.metadata.update(build_options=self.build_options(), skipped_corrupt=[])

  def recorded_metadata(self) -> dict | None:
    path = os.path.join(os.fspath(self.data_path), 'metadata.json')
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)

  def check_prepared_options(self) -> None:
    """Raises if the prepared data was built with other options than requested now."""
    recorded = (self.recorded_metadata() or {}).get('build_options')
    wanted = self.build_options()
    if recorded is None or wanted is None:
      return
    wanted = json.loads(json.dumps(wanted))  # tuples -> lists, as recorded
    if recorded != wanted:
      diff = {k: (recorded.get(k), wanted.get(k)) for k in sorted(set(recorded) | set(wanted))
              if recorded.get(k) != wanted.get(k)}
      lines = ', '.join(f'{k}: built {a!r}, requested {b!r}' for k, (a, b) in diff.items())
      raise ValueError(f'{self.data_path} was already prepared with other options ({lines}). '
                       f'Delete that directory to rebuild it, or use another --data_dir.')

  def _generate_examples(self, items: Iterable[tuple[str, str | bytes, str, dict]],
               crop_size: int | None, exif_transpose: bool = False, **preprocess_kwargs):
    """Preprocesses work items in parallel and yields TFDS examples in order."""
    size = self.builder_config.image_size

    def work(item):
      _, source, name, _ = item
      return preprocess(source, name, crop_size, size, exif_transpose,
                        image_format=self._image_format, **preprocess_kwargs)

    for (key, _, name, extra), png, error in ordered_map(work, items, self._num_workers):
      if error is not None:
        if self._skip_corrupt and isinstance(error, CorruptImageError):
          self.skipped.append(name)
          self.info.metadata['skipped_corrupt'] = list(self.skipped)
          logging.warning('skipping %s', error)
          continue
        raise error
      yield key, {'image': io.BytesIO(png), 'file_name': name, **extra}
