"""What the dataset builders share.

Every builder: ``open_builder`` (a builder of a config, registered or not),
``reject_options`` and ``check_image_size`` (build flags that do not apply,
sizes out of range), and the errors, which are ``cli.UserError``s: the
command lines print them as one ``error:`` line.

The builders that read the user's own files (``LocalFilesBuilder``): the
preprocessing done once at prepare time (decode, centre crop, resize, PNG or
JPEG; ``stargan_jax.images``), a bounded ordered thread pool for it, the
handling of corrupt images (an error naming the file, or skipped and counted
with ``--skip_corrupt``), deterministic train/test splits, the messages for
missing or mismatched files, and the build options recorded next to the data
so a dataset is never silently rebuilt or reused with other options.
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

from stargan_jax import cli
from stargan_jax import images

IMAGE_FORMATS = ('png', 'jpeg')  # how prepared images are stored
JPEG_QUALITY = 95
SPLIT_SEED = 1234  # the reference's CelebA seed, reused for every split we choose ourselves
DEFAULT_TEST_FRACTION = 0.1


class BuildError(cli.UserError, ValueError):
  """Input a builder cannot use: a build flag, an attribute file, the files' names or labels."""


class MissingFilesError(cli.UserError, FileNotFoundError):
  """Files the builder needs are not where the user said they are."""


class LayoutError(MissingFilesError):
  """The manual directory does not hold the files in any layout the builder knows."""


class ImageError(BuildError):
  """An image that cannot be used (corrupt, truncated or too small), naming its file."""


class CorruptImageError(ImageError, images.UnreadableImageError):
  pass


class ImageTooSmallError(ImageError):
  pass


# -- every builder -------------------------------------------------------------


def open_builder(cls, data_dir: str, config: tfds.core.BuilderConfig, **kwargs):
  """``cls`` for ``config`` in ``data_dir``, stored as array_record files.

  TFDS refuses a config object equal to one of ``cls.BUILDER_CONFIGS`` (a
  twin of a registered config); it takes that one by name.
  """
  if config in cls.BUILDER_CONFIGS:
    config = config.name
  return cls(config=config, data_dir=data_dir, file_format='array_record', **kwargs)


def reject_options(dataset: str, options: dict, why: str = '') -> None:
  """Raises for build flags that do not apply to ``dataset``."""
  if options:
    raise BuildError(f'{dataset} does not take {", ".join("--" + k for k in sorted(options))}'
                     + (f' ({why})' if why else ''))


def check_image_size(dataset: str, image_size: int, low: int = 16, high: int = 1024) -> None:
  if not low <= image_size <= high:
    raise BuildError(f'--image_size must be in [{low}, {high}] for {dataset}, got {image_size}')


def check_positive(flag: str, value: int | None) -> None:
  if value is not None and value < 1:
    raise BuildError(f'--{flag} must be positive, got {value}')


# -- the user's files ----------------------------------------------------------


def images_under(path: str) -> list[str]:
  """Image paths relative to ``path``, found recursively like torchvision's ImageFolder.

  '/'-separated, sorted, hidden files and folders skipped.
  """
  out = []
  for root, dirs, files in os.walk(path):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    rel = os.path.relpath(root, path)
    out.extend(f if rel == '.' else f'{rel}/{f}'.replace(os.sep, '/')
               for f in sorted(files) if images.is_image_file(f))
  return out


def images_in_class_folder(folder: str) -> list[str]:
  """``images_under(folder)``, or an error if the class folder holds none."""
  paths = images_under(folder)
  if not paths:
    raise BuildError(f'class folder {folder} holds no images (files ending in '
                     f'{", ".join(images.IMAGE_EXTENSIONS)})')
  return paths


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


def subdirs(path: str) -> list[str]:
  """The folders in ``path``, sorted, hidden ones skipped."""
  return [d for d in list_dir(path)
          if not d.startswith('.') and os.path.isdir(os.path.join(path, d))]


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


def check_rows_match_images(attr_file: str, row_names, image_dir: str, image_names) -> None:
  """Every row names an existing image and every image has a row, or an error names some."""
  rows, found = set(row_names), set(image_names)
  missing, extra = rows - found, found - rows
  if missing:
    raise MissingFilesError(f'{len(missing)} row(s) of {attr_file} name images that are not '
                            f'in {image_dir}: {some(missing)}')
  if extra:
    raise BuildError(f'{len(extra)} image(s) in {image_dir} have no row in {attr_file}: '
                     f'{some(extra)}. Add rows for them or move them out.')


# -- images ------------------------------------------------------------------


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
  (compression level 1: faster to write than the default 6, a little
  larger); JPEG (quality 95) takes a third of the disk and adds a small loss.
  """
  try:
    im = images.open_rgb(source, name, exif_transpose)
  except images.UnreadableImageError as e:
    raise CorruptImageError(f'{e}. It is corrupt or truncated; replace it, delete it, or pass '
                            f'--skip_corrupt to skip such files') from e.__cause__
  w, h = im.size
  if crop_size is not None and (w < crop_size or h < crop_size):
    raise ImageTooSmallError(
        f'image {name} is {w}x{h} pixels, smaller than the {crop_size}x{crop_size} centre '
        f'crop; {too_small_hint}')
  im = images.crop_and_resize(im, image_size, crop_size)
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


def test_fraction_or_default(test_fraction: float | None) -> float:
  frac = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
  if not 0.0 < frac < 1.0:
    raise BuildError(f'--test_fraction must be in (0, 1), got {frac}')
  return frac


def split_names(names: Sequence[str], test_fraction: float | None = None,
                test_count: int | None = None, seed: int = SPLIT_SEED,
                what: str = 'the dataset') -> tuple[list[str], list[str]]:
  """Deterministic split: sort, shuffle with ``random.Random(seed)``, first n are test.

  n is ``test_count`` if given, else ``round(test_fraction * len(names))``
  (default 10%), and at least 1 and at most ``len(names) - 1``, so both
  splits are non-empty. The result depends only on the set of names.
  """
  if test_count is not None and test_fraction is not None:
    raise BuildError('give --test_fraction or --test_count, not both')
  names = sorted(names)
  if len(names) < 2:
    raise BuildError(f'{what} has {len(names)} image(s); at least 2 are needed to have both a '
                     f'train and a test split')
  if test_count is not None:
    if not 1 <= test_count < len(names):
      raise BuildError(f'--test_count={test_count} must be between 1 and {len(names) - 1} '
                       f'({what} has {len(names)} images)')
    n = test_count
  else:
    n = min(max(1, round(test_fraction_or_default(test_fraction) * len(names))), len(names) - 1)
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
      raise BuildError(f'--image_format must be one of {IMAGE_FORMATS}, got {image_format!r}')
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

  def info_with_image(self, labels: dict, homepage: str | None = None,
                      image_format: str | None = None) -> tfds.core.DatasetInfo:
    """The DatasetInfo of an image, its file name and ``labels`` (feature name -> feature).

    ``image_format``: how the images are stored (default: as this build
    stores them). The examples keep their generation order (the test split
    stays in the order the builder chose, e.g. the reference's), and
    ``metadata`` is filled by ``record_build_options``.
    """
    size = self.builder_config.image_size
    image = tfds.features.Image(shape=(size, size, 3),
                                encoding_format=image_format or self._image_format)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({'image': image, 'file_name': tfds.features.Text(),
                                             **labels}),
        metadata=tfds.core.MetadataDict(), disable_shuffling=True, homepage=homepage)

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
      raise BuildError(f'{self.data_path} was already prepared with other options ({lines}). '
                       f'Delete that directory to rebuild it, or use another --data_dir.')

  def _generate_examples(self, items: Iterable[tuple[str, str | bytes, str, dict]],
                         crop_size: int | None, exif_transpose: bool = False,
                         **preprocess_kwargs):
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
