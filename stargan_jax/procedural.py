"""The built-in procedural dataset: drawing and pixel readers (pure numpy).

A multi-domain translation task shaped like StarGAN's default CelebA setup,
that needs no download and whose labels can be read back from pixels, so the
success of a translation is measured without a learned classifier.

Content (independent of every label): the shape (disc, square, diamond), its
position and size, and the background (a grey linear gradient of random
direction and steepness around a fixed mean level; a random absolute grey
level would be content that a generator with instance norm can hardly see,
since instance norm removes each image's mean).

Attribute variant (like CelebA's 5 default attributes):
  * ``Red``, ``Green``, ``Blue``: the object's hue; exactly one is set
    (mutually exclusive, like Black/Blond/Brown_Hair);
  * ``Frame``: a white frame around the image (independent binary);
  * ``Dark``: the object is drawn in a dark shade (independent binary).
Categorical variant (like RaFD's expressions): four one-hot classes, the fill
pattern of the object: ``solid``, ``hstripes``, ``vstripes``, ``checker``;
hue and frame are random content there, shade is always light.

Readers (``read_attributes``, ``read_class``, ``content_preserved``) use fixed
thresholds on chroma and value and work at every size from 32 to 256 px. They
judge a generated image the way a person would, by its colours, frame,
pattern, silhouette and background, not pixel by pixel: every decision is
made on region means or on a 3x3-smoothed image, so the high-frequency noise
of a partly trained generator does not decide the reading.
"""

from __future__ import annotations

import dataclasses

import numpy as np

ATTRIBUTE_NAMES = ('Red', 'Green', 'Blue', 'Frame', 'Dark')
HUE_NAMES = ('Red', 'Green', 'Blue')
CLASS_NAMES = ('solid', 'hstripes', 'vstripes', 'checker')
SHAPES = ('disc', 'square', 'diamond')

_HUES = np.array([[1.0, 0.15, 0.15], [0.15, 0.85, 0.15], [0.2, 0.3, 1.0]], np.float32)
_LIGHT, _DARK = 0.95, 0.5
_STRIPE_LOW = 0.55  # value of the darker half of a pattern, relative to the hue
_CHROMA_MASK = 0.15  # pixels with more chroma than this belong to the object
_DARK_THRESHOLD = 0.72  # mean value of the object under this: Dark
_FRAME_THRESHOLD = 0.8  # mean brightness of the frame ring over this: Frame
_PATTERN_THRESHOLD = 0.15  # light-band minus dark-band mean value over this: patterned


def frame_width(size: int) -> int:
  return max(2, size // 16)


def stripe_period(size: int) -> int:
  return max(4, size // 8)


@dataclasses.dataclass(frozen=True)
class Content:
  shape: int  # index into SHAPES
  cx: float  # centre, in fractions of the image size
  cy: float
  radius: float  # in fractions of the image size
  background: float  # mean grey level in [0, 1]
  gradient: tuple[float, float]  # background slope along x and y


def sample_content(rng: np.random.Generator) -> Content:
  return Content(
      shape=int(rng.integers(len(SHAPES))),
      cx=float(rng.uniform(0.36, 0.64)),
      cy=float(rng.uniform(0.36, 0.64)),
      radius=float(rng.uniform(0.17, 0.25)),
      background=0.35,
      gradient=(float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.2, 0.2))),
  )


def _object_mask(content: Content, size: int, supersample: int) -> np.ndarray:
  n = size * supersample
  coords = (np.arange(n, dtype=np.float32) + 0.5) / n
  x, y = np.meshgrid(coords, coords)
  dx, dy = x - content.cx, y - content.cy
  r = content.radius
  if SHAPES[content.shape] == 'disc':
    inside = dx * dx + dy * dy <= r * r
  elif SHAPES[content.shape] == 'square':
    inside = np.maximum(np.abs(dx), np.abs(dy)) <= r * 0.85
  else:
    inside = np.abs(dx) + np.abs(dy) <= r * 1.2
  return inside.astype(np.float32).reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def _pattern(kind: str, size: int) -> np.ndarray:
  """Per-pixel value multiplier of the object's fill pattern."""
  period = stripe_period(size)
  idx = np.arange(size)
  band = ((idx // (period // 2)) % 2).astype(bool)
  rows = np.broadcast_to(band[:, None], (size, size))
  cols = np.broadcast_to(band[None, :], (size, size))
  if kind == 'solid':
    low = np.zeros((size, size), bool)
  elif kind == 'hstripes':
    low = rows
  elif kind == 'vstripes':
    low = cols
  elif kind == 'checker':
    low = rows ^ cols
  else:
    raise ValueError(f'unknown pattern {kind!r}; expected one of {CLASS_NAMES}')
  return np.where(low, _STRIPE_LOW, 1.0).astype(np.float32)


def render(content: Content, size: int, hue: int, frame: bool, dark: bool,
           pattern: str = 'solid') -> np.ndarray:
  """Draws one image, uint8 size x size x 3."""
  coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
  x, y = np.meshgrid(coords, coords)
  bg = content.background + content.gradient[0] * x + content.gradient[1] * y
  img = np.repeat(bg[..., None], 3, axis=-1)
  supersample = 4 if size <= 64 else 2
  alpha = _object_mask(content, size, supersample)[..., None]
  shade = _DARK if dark else _LIGHT
  colour = _HUES[hue] * shade * _pattern(pattern, size)[..., None]
  img = alpha * colour + (1.0 - alpha) * img
  if frame:
    w = frame_width(size)
    img[:w], img[-w:], img[:, :w], img[:, -w:] = 1.0, 1.0, 1.0, 1.0
  return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def sample_attribute_example(rng: np.random.Generator, size: int):
  """Returns (image, attributes) with attributes a 0/1 vector over ATTRIBUTE_NAMES."""
  content = sample_content(rng)
  hue = int(rng.integers(3))
  frame, dark = bool(rng.integers(2)), bool(rng.integers(2))
  attrs = np.zeros(len(ATTRIBUTE_NAMES), np.int64)
  attrs[hue] = 1
  attrs[3], attrs[4] = int(frame), int(dark)
  return render(content, size, hue, frame, dark), attrs


def sample_class_example(rng: np.random.Generator, size: int):
  """Returns (image, class index into CLASS_NAMES)."""
  content = sample_content(rng)
  label = int(rng.integers(len(CLASS_NAMES)))
  hue, frame = int(rng.integers(3)), bool(rng.integers(2))
  return render(content, size, hue, frame, False, CLASS_NAMES[label]), label


# ---------------------------------------------------------------------------
# Pixel readers. Inputs: uint8 H x W x 3 or float in [-1, 1].


def to_unit(image) -> np.ndarray:
  """A uint8 image, or a float one in [-1, 1] (what the model sees) -> float32 in [0, 1]."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image.astype(np.float32) / 255.0
  return (image.astype(np.float32) + 1.0) / 2.0


def _interior(size: int) -> np.ndarray:
  w = frame_width(size)
  m = np.zeros((size, size), bool)
  m[w + 1:size - w - 1, w + 1:size - w - 1] = True
  return m


def smooth(img: np.ndarray) -> np.ndarray:
  """3x3 box filter (edges replicated), per channel."""
  p = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode='edge')
  h, w = img.shape[:2]
  return sum(p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0


def object_mask(image) -> np.ndarray:
  """Pixels of the object: chroma of the 3x3-smoothed image over a threshold."""
  img = smooth(to_unit(image))
  chroma = img.max(-1) - img.min(-1)
  return (chroma > _CHROMA_MASK) & _interior(img.shape[0])


def read_attributes(image) -> np.ndarray:
  """Reads the 5 attributes (0/1, ATTRIBUTE_NAMES order) from pixels.

  An image with no visible object reads as all hues 0 (never a valid label).
  """
  img = to_unit(image)
  size = img.shape[0]
  attrs = np.zeros(len(ATTRIBUTE_NAMES), np.int64)
  mask = object_mask(img)
  if mask.sum() >= max(4, 0.01 * size * size):
    pixels = img[mask]
    # Hue: the hue template closest (by correlation) to the mean object colour.
    mean = pixels.mean(0)
    unit = _HUES / np.linalg.norm(_HUES, axis=1, keepdims=True)
    scores = unit @ (mean / (np.linalg.norm(mean) + 1e-6))
    attrs[int(np.argmax(scores))] = 1
    attrs[4] = int(mean.max() < _DARK_THRESHOLD)  # shade of the mean colour
  w = frame_width(size)
  ring = np.concatenate([img[:w].reshape(-1, 3), img[-w:].reshape(-1, 3),
                         img[w:-w, :w].reshape(-1, 3), img[w:-w, -w:].reshape(-1, 3)])
  attrs[3] = int(ring.mean() > _FRAME_THRESHOLD)
  return attrs


def read_class(image) -> int:
  """Reads the fill-pattern class (index into CLASS_NAMES); -1 if no object.

  The pattern's bands sit at fixed image positions, so the object's pixels
  are split three ways (by row band, column band, and their exclusive or);
  the split whose two halves differ most in mean value, if by more than a
  threshold, names the pattern.
  """
  img = to_unit(image)
  size = img.shape[0]
  mask = object_mask(img)
  if mask.sum() < max(4, 0.01 * size * size):
    return -1
  value = img.max(-1)
  band = (np.arange(size) // (stripe_period(size) // 2)) % 2 == 1
  rows = np.broadcast_to(band[:, None], (size, size))
  cols = np.broadcast_to(band[None, :], (size, size))

  def split(low):
    a, b = value[mask & ~low], value[mask & low]
    return float(a.mean() - b.mean()) if a.size and b.size else 0.0

  contrasts = [split(rows), split(cols), split(rows ^ cols)]
  best = int(np.argmax(contrasts))
  if contrasts[best] <= _PATTERN_THRESHOLD:
    return CLASS_NAMES.index('solid')
  return CLASS_NAMES.index(('hstripes', 'vstripes', 'checker')[best])


def content_preserved(source, translated, min_iou: float = 0.6,
                      max_background_diff: float = 0.08) -> bool:
  """Same object silhouette (mask IoU) and same background.

  The background must match after 3x3 smoothing: mean absolute difference
  over the pixels outside both objects and the frame ring. The silhouettes
  are ``object_mask`` of the images themselves (smoothed once, inside it);
  a re-rendering of the same content with other labels always passes
  (tested for every target domain).
  """
  # The masks of the inputs themselves: object_mask converts and smooths once;
  # given the smoothed [0, 1] images below it would read them as [-1, 1], at
  # half their chroma, and lose the object of a perfect Dark translation.
  ma, mb = object_mask(source), object_mask(translated)
  a, b = smooth(to_unit(source)), smooth(to_unit(translated))
  union = (ma | mb).sum()
  if union == 0:
    return False
  iou = (ma & mb).sum() / union
  background = ~(ma | mb) & _interior(a.shape[0])
  if background.sum() == 0:
    return False
  diff = np.abs(a - b)[background].mean()
  return bool(iou >= min_iou and diff <= max_background_diff)
