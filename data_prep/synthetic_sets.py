"""Writes "own data" face sets in CelebA's and RaFD's real on-disk layouts.

``python -m data_prep.synthetic_sets --layout=celeba --out=DIR --count=12000``
writes ``DIR/celeba/images/000001.jpg ...`` (178x218 JPEGs) and
``DIR/celeba/list_attr_celeba.txt`` (CelebA's format: the count, the 40
attribute names in CelebA's order, then ``000001.jpg -1  1 ...`` rows), the
reference's layout, so ``python -m data_prep.build --dataset=celeba
--manual_dir=DIR`` builds it like the real CelebA.

``--layout=rafd --count=1104`` writes ``DIR/RaFD/train/<expression>/*.jpg``
and ``DIR/RaFD/test/<expression>/*.jpg`` (256x256 JPEGs, the 8 expressions
equally often; per expression the last ``floor(0.1 * n)`` images, at least
one, are test: 125 train + 13 test each for 1104), the reference's RaFD
layout for ``--dataset=rafd``.

The faces are ``stargan_jax.faces``' cartoon faces, so their labels can be
read back from pixels. CelebA layout: hair colour (Black_Hair, Blond_Hair,
Brown_Hair, exactly one), Male and Young are drawn, uniformly and
independently; the other 35 CelebA attributes are NOT drawn and are written
as -1 (absent) for every image, so selecting them (``--attrs=Smiling``)
trains on a constant label. The face is drawn so that the builder's 178x178
centre crop holds all of it, like CelebA's aligned images, and the 20-pixel
bands above and below continue the drawing's background. RaFD layout: the
expression is drawn by ``render_expression`` with random content (position,
size, head shape, skin tone, background, hair colour and length).

Each image then goes through a camera-like pipeline, so that a set is not
the renderer's exact pixels: a small rotation (up to 4 degrees), scale (up
to 5%) and shift (up to 2.5% of the crop) about the face centre, slight
defocus blur (half the images), exposure, contrast, saturation and
white-balance (colour temperature) jitter, sensor noise (read noise plus
brightness-dependent shot noise), and JPEG compression at a quality drawn
from 85..95 (4:2:0 chroma, like camera JPEGs). The ranges keep the faces'
pixel readers working on most images (see tests/test_synthetic_sets.py).

Deterministic: image ``i`` is drawn from its own generator seeded by
``(seed, layout, i)`` (RaFD: its expression is ``i mod 8``), so a set is the
same whatever ``--workers`` is, and a larger ``--count`` draws the same first
images (RaFD: which of them are test depends on the count). Each JPEG is written under a hidden
temporary name and renamed when complete, and the attribute file (CelebA)
is written last, so a killed run never leaves a truncated image, nor a
CelebA set that looks complete. An existing non-empty ``--out`` is refused
unless ``--overwrite``, which deletes only the layout's folder
(``DIR/celeba`` or ``DIR/RaFD``) and its manifest before writing, and only
when the manifest shows that this tool wrote that folder (a real dataset
there is never deleted). ``DIR/synthetic_<layout>.json``, the manifest, is
written first (``"complete": false``) and rewritten at the end: how the set
was made, its label counts, and whether the run finished.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import json
import math
import os
import shutil
import sys
import time

import numpy as np
from absl import flags
from PIL import Image, ImageFilter

from stargan_jax import cli
from stargan_jax import faces
from stargan_jax.datasets import celeba, rafd

LAYOUTS = ('celeba', 'rafd')
DEFAULT_COUNT = {'celeba': 12000, 'rafd': 1104}
CELEBA_SIZE = (178, 218)  # width, height of CelebA's aligned images
RAFD_SIZE = (256, 256)
TEST_FRACTION = 0.1  # RaFD layout: per expression
_LAYOUT_ID = {'celeba': 0, 'rafd': 1}  # part of every image's seed
_LAYOUT_FOLDER = {'celeba': 'celeba', 'rafd': 'RaFD'}
_MAX_CELEBA_COUNT = 999999  # six-digit file names, as CelebA's
_GENERATOR = 'data_prep.synthetic_sets'


class UserError(cli.UserError, ValueError):
  """A problem with the command line or the output directory, shown as one line."""


# ---------------------------------------------------------------------------
# The camera: geometry, optics, exposure, sensor, compression.


@dataclasses.dataclass(frozen=True)
class Photo:
  """One image's camera parameters."""
  angle: float  # rotation about the face centre, degrees (counter-clockwise)
  scale: float
  shift: tuple[float, float]  # in fractions of the crop, x and y
  blur: float  # Gaussian radius in output pixels (0: none)
  exposure: float  # gain
  contrast: float  # about the image's mean luma
  saturation: float
  temperature: float  # > 0 warmer (red up, blue down), < 0 cooler
  read_noise: float  # standard deviation, [0, 1] units
  shot_noise: float  # standard deviation at full brightness (scales with sqrt)
  quality: int  # JPEG quality


def sample_photo(rng: np.random.Generator) -> Photo:
  return Photo(
      angle=float(rng.uniform(-4.0, 4.0)),
      scale=float(rng.uniform(0.95, 1.05)),
      shift=(float(rng.uniform(-0.025, 0.025)), float(rng.uniform(-0.025, 0.025))),
      blur=float(rng.uniform(0.3, 1.0)) if rng.random() < 0.5 else 0.0,
      exposure=float(rng.uniform(0.88, 1.12)),
      contrast=float(rng.uniform(0.88, 1.12)),
      saturation=float(rng.uniform(0.9, 1.1)),
      temperature=float(rng.uniform(-0.05, 0.05)),
      read_noise=float(rng.uniform(0.0, 0.012)),
      shot_noise=float(rng.uniform(0.0, 0.02)),
      quality=int(rng.integers(85, 96)),
  )


def _background_plane(img: np.ndarray) -> np.ndarray:
  """Least-squares colour plane (rows: 1, x, y in pixels) of the drawing's 3-pixel border."""
  h, w = img.shape[:2]
  ring = np.zeros((h, w), bool)
  ring[:3], ring[-3:], ring[:, :3], ring[:, -3:] = True, True, True, True
  y, x = np.nonzero(ring)
  design = np.stack([np.ones_like(x), x + 0.5, y + 0.5], 1).astype(np.float64)
  coef, *_ = np.linalg.lstsq(design, img[ring].astype(np.float64), rcond=None)
  return coef


def extend_background(drawing: np.ndarray, width: int, height: int, left: int,
                      top: int) -> np.ndarray:
  """A width x height canvas: the drawing at (left, top), its background plane around it.

  The drawn background is a plane in colour (a level, a tint and a linear
  gradient), so extrapolating the plane fitted to the drawing's border
  continues it seamlessly (the border is background: faces stay well
  inside the drawing).
  """
  coef = _background_plane(drawing)
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  x, y = x - left + 0.5, y - top + 0.5
  canvas = coef[0] + x[..., None] * coef[1] + y[..., None] * coef[2]
  canvas = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
  s = drawing.shape[0]
  canvas[top:top + s, left:left + drawing.shape[1]] = drawing
  return canvas


def photograph(drawing: np.ndarray, centre: tuple[float, float], size: tuple[int, int],
               photo: Photo, rng: np.random.Generator) -> Image.Image:
  """The drawing (the centre crop's content) seen by a camera, as a ``size`` image.

  ``drawing`` is S x S and fills the output's centre S x S crop; ``centre``
  (pixels of the drawing) is the face centre that the rotation and scale keep
  in place. Returns an RGB PIL image (compression happens when it is saved).
  """
  width, height = size
  s = drawing.shape[0]
  margin = int(math.ceil(0.2 * max(width, height)))  # rotation and shift stay inside
  crop_left, crop_top = (width - s) // 2, (height - s) // 2
  left, top = crop_left + margin, crop_top + margin
  canvas = extend_background(drawing, width + 2 * margin, height + 2 * margin, left, top)
  # Output pixel q -> canvas point p: p = c + R(-angle) (q - c - t) / scale, with
  # c the face centre in output coordinates and t the shift.
  cx, cy = crop_left + centre[0], crop_top + centre[1]
  tx, ty = photo.shift[0] * s, photo.shift[1] * s
  a = math.radians(photo.angle)
  cos, sin = math.cos(a) / photo.scale, math.sin(a) / photo.scale
  # Image y points down, so a counter-clockwise turn on screen is R(-a) in these
  # coordinates; its inverse is R(a).
  m00, m01, m10, m11 = cos, -sin, sin, cos
  ox, oy = cx + tx, cy + ty
  coeffs = (m00, m01, cx + margin - m00 * ox - m01 * oy,
            m10, m11, cy + margin - m10 * ox - m11 * oy)
  img = Image.fromarray(canvas).transform((width, height), Image.Transform.AFFINE, coeffs,
                                          resample=Image.Resampling.BICUBIC)
  if photo.blur > 0:
    img = img.filter(ImageFilter.GaussianBlur(photo.blur))
  x = np.asarray(img, np.float32) / 255.0
  x = x * np.array([1.0 + photo.temperature, 1.0, 1.0 - photo.temperature], np.float32)
  luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
  x = luma[..., None] + photo.saturation * (x - luma[..., None])
  mean = float(luma.mean())
  x = (mean + photo.contrast * (x - mean)) * photo.exposure
  x = np.clip(x, 0.0, 1.0)
  sigma = np.sqrt(photo.read_noise ** 2 + photo.shot_noise ** 2 * x)
  x = x + sigma * rng.standard_normal(x.shape, dtype=np.float32)
  return Image.fromarray(np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8))


def jpeg_bytes(img: Image.Image, quality: int) -> bytes:
  buf = io.BytesIO()
  img.save(buf, format='JPEG', quality=quality, subsampling='4:2:0')
  return buf.getvalue()


# ---------------------------------------------------------------------------
# The images of each layout.


def image_rng(seed: int, layout: str, index: int) -> np.random.Generator:
  return np.random.default_rng([seed, _LAYOUT_ID[layout], index])


def celeba_image(seed: int, index: int) -> tuple[bytes, np.ndarray]:
  """-> (JPEG bytes, the 5 drawn attributes as 0/1 in faces.ATTRIBUTE_NAMES order)."""
  rng = image_rng(seed, 'celeba', index)
  content = faces.sample_content(rng)
  hair = int(rng.integers(3))
  male, young = bool(rng.integers(2)), bool(rng.integers(2))
  s = celeba.CROP_SIZE
  drawing = faces.render(content, s, hair, male, young)
  photo = sample_photo(rng)
  img = photograph(drawing, (content.cx * s, content.cy * s), CELEBA_SIZE, photo, rng)
  attrs = np.zeros(len(faces.ATTRIBUTE_NAMES), np.int64)
  attrs[hair], attrs[3], attrs[4] = 1, int(male), int(young)
  return jpeg_bytes(img, photo.quality), attrs


def rafd_image(seed: int, index: int, label: int) -> bytes:
  rng = image_rng(seed, 'rafd', index)
  content = faces.sample_content(rng)
  hair, short = int(rng.integers(3)), bool(rng.integers(2))
  s = RAFD_SIZE[0]
  drawing = faces.render_expression(content, s, label, hair, short)
  photo = sample_photo(rng)
  img = photograph(drawing, (content.cx * s, content.cy * s), RAFD_SIZE, photo, rng)
  return jpeg_bytes(img, photo.quality)


def celeba_name(index: int) -> str:
  return f'{index + 1:06d}.jpg'


def rafd_plan(count: int) -> list[tuple[str, int, str]]:
  """(split, label, file name) of every image: expressions in turn, each's last ~10% test."""
  per_class = [count // 8 + (c < count % 8) for c in range(8)]
  num_test = [max(1, int(math.floor(TEST_FRACTION * n))) for n in per_class]
  plan = []
  for i in range(count):
    label, j = i % 8, i // 8
    split = 'test' if j >= per_class[label] - num_test[label] else 'train'
    plan.append((split, label, f'{rafd.EXPRESSIONS[label]}_{i + 1:05d}.jpg'))
  return plan


def attribute_line(name: str, attrs5: np.ndarray) -> str:
  """One row of list_attr_celeba.txt: the 5 drawn attributes, -1 for the other 35."""
  values = np.full(len(celeba.CELEBA_ATTRIBUTES), -1)
  for name5, v in zip(faces.ATTRIBUTE_NAMES, attrs5):
    values[celeba.CELEBA_ATTRIBUTES.index(name5)] = 1 if v else -1
  return name + ' ' + ' '.join(f'{v:2d}' for v in values)  # CelebA's spacing


# ---------------------------------------------------------------------------
# Writing.


def _write_atomic(path: str, data: bytes | str) -> None:
  """Writes under a hidden temporary name, then renames: never a truncated file at ``path``."""
  folder, base = os.path.split(path)
  tmp = os.path.join(folder, f'.{base}.partial')
  with open(tmp, 'wb' if isinstance(data, bytes) else 'w') as f:
    f.write(data)
  os.replace(tmp, path)


def _manifest_path(out: str, layout: str) -> str:
  return os.path.join(out, f'synthetic_{layout}.json')


def _written_by_us(manifest: str, layout: str) -> bool:
  try:
    with open(manifest) as f:
      m = json.load(f)
  except (OSError, ValueError):
    return False
  return isinstance(m, dict) and m.get('generator') == _GENERATOR and m.get('layout') == layout


def _prepare_out(out: str, layout: str, overwrite: bool) -> str:
  """Checks (and with ``overwrite`` clears) the output; returns the layout's folder."""
  if os.path.exists(out) and not os.path.isdir(out):
    raise UserError(f'--out={out} exists and is not a directory')
  root = os.path.join(out, _LAYOUT_FOLDER[layout])
  manifest = _manifest_path(out, layout)
  if os.path.isdir(out) and os.listdir(out):
    if not overwrite:
      raise UserError(f'--out={out} is not empty; choose a new directory or pass --overwrite '
                      f'(which deletes {root} and {manifest} first)')
    if os.path.lexists(root):
      if not _written_by_us(manifest, layout):
        raise UserError(f'{root} was not written by data_prep.synthetic_sets (no '
                        f'{os.path.basename(manifest)} next to it); not deleting it with '
                        f'--overwrite: move it away or choose another --out')
      if os.path.isdir(root) and not os.path.islink(root):
        shutil.rmtree(root)
      else:
        os.remove(root)
    if os.path.exists(manifest):
      os.remove(manifest)
  os.makedirs(root, exist_ok=True)
  return root


def _check_count(layout: str, count: int) -> None:
  if layout == 'celeba' and not 1 <= count <= _MAX_CELEBA_COUNT:
    raise UserError(f'--count must be in 1..{_MAX_CELEBA_COUNT} for the celeba layout, '
                    f'got {count}')
  if layout == 'rafd' and count < 16:
    raise UserError(f'--count must be at least 16 for the rafd layout (each of the 8 '
                    f'expressions needs a train and a test image), got {count}')


def generate(layout: str, out: str, count: int, seed: int = 0, workers: int | None = None,
             overwrite: bool = False, log=print) -> dict:
  """Writes a set; returns a summary (the manifest plus the time taken)."""
  if layout not in LAYOUTS:
    raise UserError(f'--layout must be one of {", ".join(LAYOUTS)}, got {layout!r}')
  _check_count(layout, count)
  if workers is None:
    workers = min(os.cpu_count() or 1, 8)
  if workers < 1:
    raise UserError(f'--workers must be at least 1, got {workers}')
  if seed < 0:
    raise UserError(f'--seed must be 0 or more, got {seed}')
  root = _prepare_out(out, layout, overwrite)
  manifest = {'generator': _GENERATOR, 'layout': layout, 'count': count, 'seed': seed,
              'complete': False}
  # Written before any image, so that --overwrite recognises a killed run's folder.
  _write_atomic(_manifest_path(out, layout), json.dumps(manifest, indent=2))
  start = time.perf_counter()
  if layout == 'celeba':
    images = os.path.join(root, 'images')
    os.makedirs(images, exist_ok=True)

    def task(i):
      data, attrs = celeba_image(seed, i)
      _write_atomic(os.path.join(images, celeba_name(i)), data)
      return attrs
  else:
    plan = rafd_plan(count)
    for split in ('train', 'test'):
      for e in rafd.EXPRESSIONS:
        os.makedirs(os.path.join(root, split, e), exist_ok=True)

    def task(i):
      split, label, name = plan[i]
      _write_atomic(os.path.join(root, split, rafd.EXPRESSIONS[label], name),
                    rafd_image(seed, i, label))
      return label

  # Threads: rendering and resampling are numpy and PIL work that releases the GIL.
  pool = concurrent.futures.ThreadPoolExecutor(workers)
  results = []
  try:
    for i, r in enumerate(pool.map(task, range(count))):
      results.append(r)
      if (i + 1) % 1000 == 0 and i + 1 < count:
        log(f'  {i + 1}/{count} images')
  finally:
    # On an error or Ctrl-C, stop at the images in flight instead of drawing the rest.
    pool.shutdown(wait=True, cancel_futures=True)
  if layout == 'celeba':
    attrs = np.array(results)
    lines = [str(count), ' '.join(celeba.CELEBA_ATTRIBUTES) + ' ']
    lines += [attribute_line(celeba_name(i), a) for i, a in enumerate(attrs)]
    _write_atomic(os.path.join(root, 'list_attr_celeba.txt'), '\n'.join(lines) + '\n')
    manifest['drawn_attributes'] = list(faces.ATTRIBUTE_NAMES)
    manifest['positive'] = {n: int(v) for n, v in zip(faces.ATTRIBUTE_NAMES, attrs.sum(0))}
  else:
    splits = {s: {e: 0 for e in rafd.EXPRESSIONS} for s in ('train', 'test')}
    for split, label, _ in rafd_plan(count):
      splits[split][rafd.EXPRESSIONS[label]] += 1
    manifest['splits'] = splits
  manifest['complete'] = True
  _write_atomic(_manifest_path(out, layout), json.dumps(manifest, indent=2))
  seconds = time.perf_counter() - start
  return {**manifest, 'root': root, 'seconds': seconds, 'workers': workers}


def build_command(layout: str, out: str, count: int) -> str:
  if layout == 'celeba':
    extra = f' --test_count={max(1, count // 10)}' if count <= celeba.NUM_TEST else ''
    return (f'python -m data_prep.build --dataset=celeba --image_size=128 --manual_dir={out}'
            + extra)
  return f'python -m data_prep.build --dataset=rafd --image_size=128 --manual_dir={out}'


FLAGS = cli.flag_values()
flags.DEFINE_enum('layout', None, LAYOUTS, 'celeba: DIR/celeba/images + list_attr_celeba.txt; '
                  'rafd: DIR/RaFD/{train,test}/<expression>/.', flag_values=FLAGS)
flags.DEFINE_string('out', None, 'Output folder (refused if not empty).', flag_values=FLAGS)
flags.mark_flags_as_required(['layout', 'out'], flag_values=FLAGS)
flags.DEFINE_integer('count', None, 'Number of images (default: 12000 celeba, 1104 rafd).',
                     flag_values=FLAGS)
flags.DEFINE_integer('seed', 0, 'Seed; image i depends on (seed, i) only.', flag_values=FLAGS)
flags.DEFINE_integer('workers', None, 'Threads drawing images (default: the CPU count, at '
                     'most 8).', flag_values=FLAGS)
flags.DEFINE_bool('overwrite', False, "Write into a non-empty --out, deleting the layout's "
                  'folder first.', flag_values=FLAGS)


@cli.command(FLAGS, 'python -m data_prep.synthetic_sets')
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  count = DEFAULT_COUNT[FLAGS.layout] if FLAGS.count is None else FLAGS.count
  out = os.path.expanduser(FLAGS.out)
  try:
    summary = generate(FLAGS.layout, out, count, FLAGS.seed, FLAGS.workers, FLAGS.overwrite)
  except OSError as e:  # the output folder cannot be written (permissions, disk full)
    raise UserError(f'cannot write {out}: {e}') from e
  rate = count / max(summary['seconds'], 1e-9)
  print(f'wrote {count} {FLAGS.layout} images to {summary["root"]} in '
        f'{summary["seconds"]:.1f} s ({rate:.1f} images/s, {summary["workers"]} worker '
        f'thread(s))')
  print(f'build with: {build_command(FLAGS.layout, out, count)}')


if __name__ == '__main__':
  sys.exit(main())
