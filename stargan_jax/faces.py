"""The built-in face datasets: drawing and pixel readers (pure numpy).

Two multi-domain translation tasks shaped like the paper's, drawn as simple
cartoon faces that need no download and whose labels can be read back from
pixels, so the success of a translation is measured without a learned
classifier (like ``procedural``, with faces instead of shapes).

Content (independent of every label): the face's position and size, the
head shape (jaw from round to narrow, the hair's volume), the skin tone (a
light-to-tan range), and the background (a cool-tinted grey of random hue
around a fixed mean level, with a linear gradient of random direction; a
random absolute level would be content that a generator with instance norm
can hardly see, see ``procedural``).

``faces`` (like CelebA's 5 default attributes, named as CelebA names them):
  * ``Black_Hair``, ``Blond_Hair``, ``Brown_Hair``: the colour of the hair
    (and of the beard); exactly one is set;
  * ``Male``: short hair and a full beard over the jaw and chin; not male:
    long hair falling beside the face to the jaw, a bare chin;
  * ``Young``: a smooth forehead; not young: two dark wrinkles across the
    forehead and folds from the nose to the corners of the mouth.
``faces_expr`` (like RaFD's 8 expressions, named as RaFD's): one-hot classes
drawn by the mouth and the eyebrows only (see ``EXPRESSIONS``); hair colour
and hair length are random content there, no beard, no wrinkles.

Readers (``read_attributes``, ``read_expression``, ``content_preserved``)
first locate the face (``locate``): its skin by chromaticity through a
majority filter gives its centre across and its width; its height comes from
the whites of the eyes from 48 px, from the lips below (where the
fringe-to-lips distance also enters the size). Every label is then read
from a region placed relative to the face: the hair colour by a vote of the
hair pixels above the fringe, ``Male`` from the chin's mean colour and the
hair beside the jaw, ``Young`` from the mean darkness of the middle of the
forehead, the expression from where the mouth's red pixels lie and from the
brows' slope. Every decision is made on region means, votes, a majority
filter or a smoothed image, so the high-frequency noise of a partly trained
generator does not decide it. Measured accuracy: see tests/test_faces.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib

import numpy as np

from stargan_jax.procedural import to_unit

HAIR_NAMES = ('Black_Hair', 'Blond_Hair', 'Brown_Hair')
ATTRIBUTE_NAMES = HAIR_NAMES + ('Male', 'Young')
EXPRESSION_NAMES = ('angry', 'contemptuous', 'disgusted', 'fearful', 'happy', 'neutral', 'sad',
                    'surprised')
BROWS = ('flat', 'raised', 'frown', 'worried')  # frown: inner ends down; worried: inner ends up
MOUTHS = ('line', 'smile', 'down', 'smirk', 'round', 'wide')
# expression -> (brows, mouth); every pair differs from every other in brows or mouth.
EXPRESSIONS = {
    'angry': ('frown', 'line'),
    'contemptuous': ('flat', 'smirk'),
    'disgusted': ('frown', 'down'),
    'fearful': ('worried', 'wide'),
    'happy': ('flat', 'smile'),
    'neutral': ('flat', 'line'),
    'sad': ('worried', 'down'),
    'surprised': ('raised', 'round'),
}

# Black hair is blue-black and the brows a cool dark grey: skin mixed with either
# never takes a skin-like chromaticity (the wrinkle reader counts dark skin).
_HAIR = np.array([[0.10, 0.10, 0.15], [0.95, 0.82, 0.36], [0.45, 0.26, 0.12]], np.float32)
_BEARD_SHADE = 0.88  # the beard is drawn a little darker than the hair
_SKIN_LIGHT = np.array([0.98, 0.82, 0.70], np.float32)
_SKIN_TAN = np.array([0.74, 0.52, 0.38], np.float32)
_BROW = np.array([0.18, 0.15, 0.18], np.float32)
_LIPS = np.array([0.62, 0.22, 0.24], np.float32)
_MOUTH_OPEN = np.array([0.28, 0.06, 0.08], np.float32)
_EYE_WHITE = np.array([0.97, 0.97, 0.97], np.float32)
_IRIS = np.array([0.12, 0.09, 0.08], np.float32)
_WRINKLE = 0.55  # wrinkles and folds: the skin at this fraction of its brightness
_NOSE = 0.82
_BACKGROUND_LEVEL = 0.62  # fixed mean grey level of the background
_ASPECT = 1.22  # face height / width (ry / rx); head shape varies by the jaw instead

# Face layout, in face units: u = (x - cx) / rx, v = (y - cy) / ry.
_HAIRLINE = -0.88  # the fringe's lower edge at the centre; it drops towards the temples
_EYE_V, _EYE_U = -0.08, 0.38
_MOUTH_V, _MOUTH_A = 0.47, 0.40  # mouth centre and half-width
_BEARD_TOP = 0.30
_WRINKLES_V = (-0.69, -0.55)
_WRINKLE_BEND, _WRINKLE_HALF_WIDTH = 0.05, 0.45  # each wrinkle's ends lie this much lower; |u| reach
_WRINKLE_THICKNESS = 0.10


@dataclasses.dataclass(frozen=True)
class Content:
  cx: float  # face centre, in fractions of the image size
  cy: float
  ry: float  # half the face height, in fractions of the image size
  jaw: float  # 1: round; smaller: the lower face narrows towards the chin
  volume: float  # the hair's extent beyond the skull, relative to the face
  skin: float  # 0: light .. 1: tan
  tint: tuple[float, float, float]  # background colour minus its mean level (low chroma)
  gradient: tuple[float, float]  # background slope along x and y


def sample_content(rng: np.random.Generator) -> Content:
  hue = rng.uniform(120.0, 300.0)  # cool hues only: never near skin, blond or brown
  angle = np.deg2rad(hue + np.array([0.0, -120.0, 120.0]))
  tint = 0.07 * np.cos(angle)
  return Content(
      cx=float(rng.uniform(0.43, 0.57)),
      cy=float(rng.uniform(0.49, 0.54)),
      ry=float(rng.uniform(0.26, 0.31)),
      jaw=float(rng.uniform(0.72, 1.0)),
      volume=float(rng.uniform(1.06, 1.16)),
      skin=float(rng.uniform(0.0, 1.0)),
      tint=tuple(float(t) for t in tint),
      gradient=(float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.15, 0.15))),
  )


def skin_colour(t: float) -> np.ndarray:
  return (1.0 - t) * _SKIN_LIGHT + t * _SKIN_TAN


# ---------------------------------------------------------------------------
# Drawing.


class _Canvas:
  """A supersampled canvas in face units; ``paint`` composites hard masks."""

  def __init__(self, content: Content, size: int):
    self.size = size
    self.ss = 4 if size <= 64 else 2
    n = size * self.ss
    coords = (np.arange(n, dtype=np.float32) + 0.5) / n
    x, y = np.meshgrid(coords, coords)
    self.rx = content.ry / _ASPECT
    self.ry = content.ry
    self.u = (x - content.cx) / self.rx
    self.v = (y - content.cy) / self.ry
    bg = (_BACKGROUND_LEVEL + content.gradient[0] * (x - 0.5) + content.gradient[1] * (y - 0.5))
    self.img = bg[..., None] + np.asarray(content.tint, np.float32)

  def paint(self, mask: np.ndarray, colour) -> None:
    colour = np.asarray(colour, np.float32)
    if colour.ndim == 1:
      self.img[mask] = colour
    else:  # a per-pixel colour (shading the layer below)
      self.img[mask] = colour[mask]

  def stroke(self, points, thickness: float) -> np.ndarray:
    """Pixels within thickness/2 (in ry units) of a polyline given in (u, v)."""
    pts = np.asarray(points, np.float32)
    # Distances in a common unit (ry), so strokes are round whatever the aspect.
    px, py = self.u / _ASPECT, self.v
    best = np.full(px.shape, np.inf, np.float32)
    for (u0, v0), (u1, v1) in zip(pts[:-1], pts[1:]):
      ax, ay, bx, by = u0 / _ASPECT, v0, u1 / _ASPECT, v1
      dx, dy = bx - ax, by - ay
      t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
      best = np.minimum(best, (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2)
    return best <= (thickness / 2) ** 2

  def result(self) -> np.ndarray:
    s, ss = self.size, self.ss
    img = self.img.reshape(s, ss, s, ss, 3).mean(axis=(1, 3))
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def _face_mask(c: _Canvas, jaw: float) -> np.ndarray:
  u, v = c.u, c.v
  t = np.clip(v, 0.0, 1.0)
  half = np.sqrt(np.clip(1.0 - v * v, 0.0, None)) * np.where(v > 0, 1.0 - (1.0 - jaw) * t, 1.0)
  return (np.abs(v) <= 1.0) & (np.abs(u) <= half)


def _hairline(u):
  return _HAIRLINE + 0.45 * np.abs(u) ** 4


def _curve(fn, a: float, n: int = 17):
  us = np.linspace(-a, a, n)
  return np.stack([us, fn(us)], axis=1)


def _mouth(c: _Canvas, kind: str) -> None:
  a, v0 = _MOUTH_A, _MOUTH_V
  line = 0.12
  if kind == 'line':
    c.paint(c.stroke(_curve(lambda u: v0 + 0 * u, a), line), _LIPS)
  elif kind == 'smile':
    c.paint(c.stroke(_curve(lambda u: v0 + 0.12 - 0.34 * (u / a) ** 2, a), line), _LIPS)
  elif kind == 'down':
    c.paint(c.stroke(_curve(lambda u: v0 - 0.10 + 0.30 * (u / a) ** 2, a), line), _LIPS)
  elif kind == 'smirk':  # one corner up (the right one; flips make both sides)
    c.paint(c.stroke(_curve(lambda u: v0 + 0.04 - 0.38 * np.maximum(u / a, 0) ** 2, a), line),
            _LIPS)
  elif kind == 'round':
    m = (c.u / 0.21) ** 2 + ((c.v - v0 - 0.03) / 0.19) ** 2
    c.paint(m <= 1.0, _LIPS)
    c.paint(m <= 0.55, _MOUTH_OPEN)
  elif kind == 'wide':
    m = (c.u / (a * 0.95)) ** 2 + ((c.v - v0) / 0.12) ** 2
    c.paint(m <= 1.0, _LIPS)
    c.paint(m <= 0.6, _MOUTH_OPEN)
  else:
    raise ValueError(f'unknown mouth {kind!r}; expected one of {MOUTHS}')


_BROW_LEVEL = {  # (inner v, outer v)
    'flat': (-0.30, -0.32),
    'raised': (-0.50, -0.50),
    'frown': (-0.20, -0.46),
    'worried': (-0.50, -0.26),
}
_BROW_U = (0.17, 0.68)


def _brows(c: _Canvas, kind: str) -> None:
  if kind not in _BROW_LEVEL:
    raise ValueError(f'unknown brows {kind!r}; expected one of {BROWS}')
  inner, outer = _BROW_LEVEL[kind]
  for side in (-1.0, 1.0):
    pts = [(side * _BROW_U[0], inner), (side * _BROW_U[1], outer)]
    c.paint(c.stroke(pts, 0.12), _BROW)


def render(content: Content, size: int, hair: int, male: bool, young: bool,
           brows: str = 'flat', mouth: str = 'line', beard: bool | None = None) -> np.ndarray:
  """Draws one face, uint8 size x size x 3.

  ``male`` selects short hair and (unless ``beard`` says otherwise) a beard;
  ``faces_expr`` draws short-haired faces without one.
  """
  if beard is None:
    beard = male
  c = _Canvas(content, size)
  u, v = c.u, c.v
  colour = _HAIR[hair]
  vol = content.volume
  cap = ((u / vol) ** 2 + (v / (vol * 1.12)) ** 2 <= 1.0) & (v < -0.1)
  if not male:  # long hair, behind the face, down to the jaw on both sides
    curtain = (np.abs(u) / (vol + 0.2)) ** 4 + ((v - 0.25) / 0.65) ** 4 <= 1.0
    c.paint(curtain | cap, colour)
  else:
    c.paint(cap, colour)
  face = _face_mask(c, content.jaw)
  skin = skin_colour(content.skin)
  c.paint(face, skin)
  c.paint(face & cap & (v < _hairline(u)), colour)  # the fringe
  if not young:
    for wv in _WRINKLES_V:
      bend = lambda uu, wv=wv: wv + _WRINKLE_BEND * (uu / _WRINKLE_HALF_WIDTH) ** 2
      c.paint(c.stroke(_curve(bend, _WRINKLE_HALF_WIDTH), _WRINKLE_THICKNESS),
              skin * _WRINKLE)
    for side in (-1.0, 1.0):
      c.paint(c.stroke([(side * 0.24, 0.16), (side * 0.47, 0.44)], 0.07), skin * _WRINKLE)
  if beard:
    c.paint(face & (v > _BEARD_TOP - 0.16 * u * u), colour * _BEARD_SHADE)
  # Nose: a shaded wedge and the nostril line.
  c.paint(c.stroke([(0.0, 0.0), (0.07, 0.17), (-0.06, 0.20)], 0.06), skin * _NOSE)
  # Eyes: whites and irises.
  for side in (-1.0, 1.0):
    eye = ((u - side * _EYE_U) / 0.23) ** 2 + ((v - _EYE_V) / 0.095) ** 2 <= 1.0
    c.paint(eye, _EYE_WHITE)
    iris = ((u - side * _EYE_U) / 0.09) ** 2 + ((v - _EYE_V) / 0.09) ** 2 <= 1.0
    c.paint(eye & iris, _IRIS)
  _brows(c, brows)
  _mouth(c, mouth)
  return c.result()


@dataclasses.dataclass(frozen=True)
class AttributeFace:
  """Everything ``faces`` draws of one example: its content and its labels."""
  content: Content
  hair: int
  male: bool
  young: bool

  def attributes(self) -> np.ndarray:
    """The 0/1 vector over ATTRIBUTE_NAMES."""
    attrs = np.zeros(len(ATTRIBUTE_NAMES), np.int64)
    attrs[self.hair] = 1
    attrs[3], attrs[4] = int(self.male), int(self.young)
    return attrs

  def render(self, size: int, expression: int | None = None) -> np.ndarray:
    """The face as ``faces`` draws it, or with an expression of EXPRESSION_NAMES.

    With an expression this is what a perfect translation of the face into
    that ``faces_expr`` domain draws: the same face, hair, beard and wrinkles,
    with the expression's brows and mouth.
    """
    if expression is None:
      return render(self.content, size, self.hair, self.male, self.young)
    brows, mouth = EXPRESSIONS[EXPRESSION_NAMES[expression]]
    return render(self.content, size, self.hair, self.male, self.young, brows, mouth)


def sample_attribute_face(rng: np.random.Generator) -> AttributeFace:
  content = sample_content(rng)
  hair = int(rng.integers(3))
  male, young = bool(rng.integers(2)), bool(rng.integers(2))
  return AttributeFace(content, hair, male, young)


def sample_attribute_example(rng: np.random.Generator, size: int):
  """Returns (image, attributes) with attributes a 0/1 vector over ATTRIBUTE_NAMES."""
  face = sample_attribute_face(rng)
  return face.render(size), face.attributes()


def sample_expression_example(rng: np.random.Generator, size: int):
  """Returns (image, class index into EXPRESSION_NAMES)."""
  content = sample_content(rng)
  label = int(rng.integers(len(EXPRESSION_NAMES)))
  hair, short = int(rng.integers(3)), bool(rng.integers(2))
  return render_expression(content, size, label, hair, short), label


def render_expression(content: Content, size: int, label: int, hair: int = 0,
                      short_hair: bool = False) -> np.ndarray:
  brows, mouth = EXPRESSIONS[EXPRESSION_NAMES[label]]
  return render(content, size, hair, short_hair, True, brows, mouth, beard=False)


# ---------------------------------------------------------------------------
# Pixel readers. Inputs: uint8 H x W x 3 or float in [-1, 1].

_SKIN_CHROMA_LIGHT = _SKIN_LIGHT / _SKIN_LIGHT.max()
_SKIN_CHROMA_TAN = _SKIN_TAN / _SKIN_TAN.max()
_SKIN_CHROMA_MAX = 0.10  # chromaticity distance from the skin range: skin (shaded or not)
_SKIN_VALUE_MIN = 0.40  # ... and brighter than this (black hair has skin-like chromaticity)
_OWN_CHROMA_MAX = 0.12  # chromaticity distance from the face's own skin
_BACKGROUND_TOLERANCE = 0.09  # max channel difference from the fitted background plane


@functools.lru_cache(maxsize=16)
def _pixel_centres(size: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
  """x and y of every pixel's centre, in fractions of the image size, minus ``offset``.

  Cached (read-only): the readers ask for them a dozen times per image.
  """
  coords = (np.arange(size, dtype=np.float32) + 0.5) / size - offset
  x, y = np.meshgrid(coords, coords)
  x.flags.writeable = y.flags.writeable = False
  return x, y


def _face_coords(face: Face, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Every pixel's centre in the face's units, ``u`` across and ``v`` down."""
  x, y = _pixel_centres(size)
  return (x - face.cx) / face.rx, (y - face.cy) / face.ry


def _edge_padded(a: np.ndarray, r: int) -> np.ndarray:
  """``np.pad(a, r, mode='edge')`` over the first two axes, by indexing (several times faster
  on these small images, where np.pad's own overhead dominates)."""
  rows = np.clip(np.arange(-r, a.shape[0] + r), 0, a.shape[0] - 1)
  cols = np.clip(np.arange(-r, a.shape[1] + r), 0, a.shape[1] - 1)
  return a[rows[:, None], cols]


def smooth(img: np.ndarray) -> np.ndarray:
  """3x3 binomial filter ([1, 2, 1] x [1, 2, 1] / 16, edges replicated), per channel.

  Lighter than a box filter: at 32 px a face is about 14 px wide and its
  features one or two pixels, so a box would blend every pixel with its
  neighbours' features; this still averages away pixel noise.
  """
  h, w = img.shape[:2]
  p = _edge_padded(img, 1)
  k = (1.0, 2.0, 1.0)
  return sum(k[dy] * k[dx] * p[dy:dy + h, dx:dx + w]
             for dy in range(3) for dx in range(3)) / 16.0


def _luma(img: np.ndarray) -> np.ndarray:
  return img @ np.array([0.299, 0.587, 0.114], np.float32)


def skin_mask(sm: np.ndarray) -> np.ndarray:
  """Skin pixels of a smoothed [0, 1] image: skin chromaticity at any shading.

  Chromaticity (the colour divided by its largest channel) ignores shading,
  so the nose, wrinkles and folds count as skin and the located face does not
  move with ``Young``.
  """
  value = sm.max(-1)
  chroma = sm / np.maximum(value, 1e-3)[..., None]
  d = _SKIN_CHROMA_TAN - _SKIN_CHROMA_LIGHT
  t = np.clip(((chroma - _SKIN_CHROMA_LIGHT) @ d) / (d @ d), 0.0, 1.0)
  nearest = _SKIN_CHROMA_LIGHT + t[..., None] * d
  return (np.linalg.norm(chroma - nearest, axis=-1) < _SKIN_CHROMA_MAX) & (value > _SKIN_VALUE_MIN)


def _background_plane(img: np.ndarray) -> np.ndarray:
  """Least-squares colour plane (3 coefficients x 3 channels) of the border ring."""
  size = img.shape[0]
  w = max(1, size // 32)
  ring = np.zeros((size, size), bool)
  ring[:w], ring[-w:], ring[:, :w], ring[:, -w:] = True, True, True, True
  x, y = _pixel_centres(size, 0.5)
  a = np.stack([np.ones_like(x), x, y], -1)
  coef, *_ = np.linalg.lstsq(a[ring], img[ring], rcond=None)
  return coef.astype(np.float32)


def _plane_image(coef: np.ndarray, size: int) -> np.ndarray:
  x, y = _pixel_centres(size, 0.5)
  return np.stack([np.ones_like(x), x, y], -1) @ coef


@dataclasses.dataclass(frozen=True)
class Face:
  """Where a reader found the face, in fractions of the image size."""
  cx: float
  cy: float
  rx: float
  ry: float
  skin: np.ndarray  # median colour of the skin pixels, [0, 1]
  background: np.ndarray  # _background_plane coefficients


# The smoothed skin mask loses the mixed pixels at the face's two edges: the
# located width is this many pixels short (measured on clean renderings).
_WIDTH_BIAS_PX = 0.25


def majority(mask: np.ndarray) -> np.ndarray:
  """A k x k majority filter (k about a tenth of the image, odd, at least 3).

  Noise punches holes in a per-pixel mask and strews stray pixels around
  it; the majority of a neighbourhood ignores both, keeps straight edges
  where they are, and fills the small holes of the eyes and brows.
  """
  size = mask.shape[0]
  k = max(3, (size // 10) | 1)
  r = k // 2
  c = _edge_padded(mask.astype(np.float32), r).cumsum(0).cumsum(1)
  c = np.pad(c, ((1, 0), (1, 0)))
  box = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
  return box > 0.5 * k * k


def _own_skin_mask(sm: np.ndarray, skin: np.ndarray) -> np.ndarray:
  """Pixels of this face's own skin colour, at any shading.

  Mixed pixels at the edge between skin and brown or blond hair have the
  chromaticity of some other skin tone, so the face's mask compares against
  its own skin's chromaticity instead of the whole skin range.
  """
  value = sm.max(-1)
  chroma = sm / np.maximum(value, 1e-3)[..., None]
  own = skin / max(float(skin.max()), 1e-3)
  v_own = float(skin.max())
  return ((np.linalg.norm(chroma - own, axis=-1) < _OWN_CHROMA_MAX)
          & (value > 0.5 * v_own) & (value < 1.1 * v_own))


def _skin_estimate(img: np.ndarray, sm: np.ndarray, rough: np.ndarray) -> np.ndarray:
  """The skin's colour: the median of the flattest skin pixels.

  Mixed pixels at the skin's edges (with hair, beard, lips, eyes) can have a
  skin-like colour of another tone; they sit where the image changes, so the
  pixels whose 3x3 neighbourhood varies least are the skin itself.
  """
  spread = (smooth(img * img) - sm * sm).sum(-1)[rough]
  pixels = sm[rough]
  flat = spread <= np.quantile(spread, 0.3)
  if flat.sum() >= 6:
    pixels = pixels[flat]
  # Wrinkles and folds are flat too, but darker than the skin.
  value = pixels.max(-1)
  return np.median(pixels[value >= np.median(value)], axis=0)


def locate(image, fixed_mouth: bool = True) -> Face | None:
  """Finds the face from its skin; None when there is too little skin to be a face.

  ``fixed_mouth``: the mouth is always the same line (``faces``), so below
  48 px the fringe-to-lips distance enters the face's size; with expressions
  (``faces_expr``) the lips' centroid moves with the mouth's shape by a tenth
  of the face's height, and the size is the skin's width alone.
  """
  return _locate(to_unit(image), fixed_mouth)


# Within ``same_images_located_once``: the image's key -> its skin stage (or None),
# and (key, fixed_mouth) -> its Face (or None).
_LOCATED: dict | None = None


@contextlib.contextmanager
def same_images_located_once():
  """Within it, an image (by content) is located once per ``fixed_mouth``.

  Scoring translations locates each source once per target domain and each
  translation twice (to read it and to compare it with its source); finding
  the face is most of the readers' time. Locating is a pure function of the
  pixels, so the results are the same, only sooner; the skin-based first
  stage, which ``fixed_mouth`` does not change, is shared by both.
  """
  global _LOCATED
  outer, _LOCATED = _LOCATED, ({} if _LOCATED is None else _LOCATED)
  try:
    yield
  finally:
    _LOCATED = outer


def _locate(img: np.ndarray, fixed_mouth: bool = True) -> Face | None:
  """``locate`` of an image already in [0, 1] (never converted twice)."""
  if _LOCATED is None:
    found = _rough_face(img)
    return None if found is None else _refine(img, *found, fixed_mouth)
  img = np.ascontiguousarray(img)
  key = (hashlib.blake2b(img.tobytes(), digest_size=16).digest(), img.shape, img.dtype.str)
  face_key = (key, bool(fixed_mouth))
  if face_key not in _LOCATED:
    if key not in _LOCATED:
      _LOCATED[key] = _rough_face(img)
    found = _LOCATED[key]
    _LOCATED[face_key] = None if found is None else _refine(img, *found, fixed_mouth)
  return _LOCATED[face_key]


def _refine(img: np.ndarray, rough: Face, r_f: float, v_cross: float,
            fixed_mouth: bool) -> Face:
  """The face's height and centre from the eyes (48 px and up) or the lips."""
  if img.shape[0] >= EYE_MIN_SIZE:
    return _refine_by_eyes(img, rough)
  hairline = (r_f + 0.5) / img.shape[0]
  return _refine_by_lips(img, rough, hairline if fixed_mouth else None, v_cross)


def _rough_face(img: np.ndarray) -> tuple[Face, float, float] | None:
  """The face from its skin alone (what ``fixed_mouth`` does not change): the Face, the
  row where half its width first shows, and that row's height in face units."""
  size = img.shape[0]
  sm = smooth(img)
  rough = skin_mask(sm)
  if rough.sum() < 0.03 * size * size:
    return None
  skin_colour_ = _skin_estimate(img, sm, rough)
  skin = majority(_own_skin_mask(sm, skin_colour_))
  if skin.sum() < 0.03 * size * size:
    return None
  rows, cols = np.nonzero(skin)
  cx = (cols.mean() + 0.5) / size
  counts = skin.sum(1).astype(np.float32)
  width = np.sort(counts)[-3:].mean() + _WIDTH_BIAS_PX
  half = 0.5 * width
  above = np.nonzero(counts >= half)[0]
  r = int(above[0])
  if r > 0 and counts[r] > counts[r - 1]:
    r_f = r - 1 + (half - counts[r - 1]) / (counts[r] - counts[r - 1])
  else:
    r_f = float(r)
  rx = width / (2 * size)
  ry = rx * _ASPECT
  # The half-width crossing lies where the fringe lets half the face width show.
  v_cross = _HAIRLINE + 0.45 * 0.5 ** 4
  cy = (r_f + 0.5) / size - v_cross * ry
  rough = Face(float(cx), float(cy), float(rx), float(ry), skin_colour_, _background_plane(img))
  return rough, r_f, v_cross


def _lip_weight(img: np.ndarray, skin: np.ndarray) -> np.ndarray:
  """How much of each pixel is lips: its red excess (r - g) between the skin's and the lips'."""
  excess = img[..., 0] - img[..., 1]
  skin_excess = float(skin[0] - skin[1])
  lips_excess = float(_LIPS[0] - _LIPS[1])
  return np.clip((excess - skin_excess) / (lips_excess - skin_excess), 0.0, 1.0)


def _lips_y(img: np.ndarray, face: Face) -> float | None:
  """The lips' centroid row (fraction of the image), None when no lips are seen."""
  size = img.shape[0]
  # The mouth's weight by its green-to-red ratio: an open mouth's inside is
  # as red as its lips, a beard of any hair colour is not, and a skin pixel
  # needs noise of half the skin-to-lips difference to weigh at all.
  w = _mouth_weight(img, face) * _region(face, size, -0.5, 0.5, 0.0, 1.0)
  if w.sum() < 0.5:
    return None
  _, y = _pixel_centres(size)
  return float((w * y).sum() / w.sum())


def _refine_by_lips(img: np.ndarray, face: Face, hairline_y: float | None,
                    hairline_v: float) -> Face:
  """Height from the lips, for faces too small for their eyes.

  The lips' red sets them apart from skin, hair and beard, and their
  centroid lies within 0.03 face heights of the mouth's centre line for
  every mouth drawn (a line, a smile, a turned-down or one-sided mouth, a
  round or a wide open one), while the fringe's edge moves with the hair
  colour by a pixel or so. The size comes from the distance between the
  fringe and the lips (some 11 px at 32 px, so that pixel is a few
  percent), not from the skin's width, which a beard or long hair changes by
  two pixels or more.
  """
  lips_y = _lips_y(img, face)
  if lips_y is None:
    return face
  if hairline_y is None:
    return dataclasses.replace(face, cy=float(lips_y - _MOUTH_V * face.ry))
  ry = (lips_y - hairline_y) / (_MOUTH_V - hairline_v)
  # Averaged with the skin's width: at this size each is off by a pixel now
  # and then (wrinkles under a brown fringe, a beard at the jaw), rarely both.
  ry = 0.5 * (ry + face.ry) if 0.7 * face.ry < ry < 1.4 * face.ry else face.ry
  cy = lips_y - _MOUTH_V * ry
  return dataclasses.replace(face, cy=float(cy), ry=float(ry), rx=float(ry / _ASPECT))


EYE_MIN_SIZE = 48


def _refine_by_eyes(img: np.ndarray, face: Face) -> Face:
  """The face's height from the whites of the eyes, which no label moves.

  The fringe's edge shifts with the hair colour by a pixel or so; the eyes'
  centroids do not.
  """
  size = img.shape[0]
  low = smooth(img).min(-1)
  skin_low = float(face.skin.min())
  # A third of the way from the skin's lowest channel to the whites' (the
  # smoothed whites of small eyes mix with skin; the regions lie inside the
  # face, so no background comes into it).
  threshold = skin_low + 0.3 * (float(_EYE_WHITE.min()) - skin_low)
  white = np.clip((low - threshold) / (float(_EYE_WHITE.min()) - threshold), 0.0, 1.0)
  _, y = _pixel_centres(size)
  heights = []
  for lo, hi in ((-0.75, -0.05), (0.05, 0.75)):
    w = white * _region(face, size, lo, hi, -0.4, 0.25)
    if w.sum() < 0.2:
      return face
    heights.append((w * y).sum() / w.sum())
  # The size stays the skin's width (of the majority-filtered mask) and the
  # centre across the skin's centroid: under pixel noise they vary less than
  # the eyes' spacing and centre (a few mixed pixels at each eye's corners)
  # or the eyes-to-lips distance.
  cy = 0.5 * (heights[0] + heights[1]) - _EYE_V * face.ry
  return dataclasses.replace(face, cy=float(cy))


def _region(face: Face, size: int, u0, u1, v0, v1, mirror: bool = False) -> np.ndarray:
  """Pixels whose centres lie in a box of face units (and its mirror image)."""
  u, v = _face_coords(face, size)
  inside = (v >= v0) & (v <= v1)
  box = (u >= u0) & (u <= u1)
  if mirror:
    box |= (-u >= u0) & (-u <= u1)
  return inside & box


def _hair_like(sm: np.ndarray, face: Face) -> np.ndarray:
  """Pixels that are neither this face's skin nor the background."""
  bg = _plane_image(face.background, sm.shape[0])
  background = np.abs(sm - bg).max(-1) < _BACKGROUND_TOLERANCE
  return ~background & ~_own_skin_mask(sm, face.skin)


def _nearest_hair(colours: np.ndarray) -> np.ndarray:
  d = np.linalg.norm(colours[..., None, :] - _HAIR, axis=-1)
  return np.argmin(d, axis=-1)


# Thresholds of the attribute readers (scores in [0, 1]).
_MALE_THRESHOLD = 0.5
_WRINKLE_THRESHOLD = 0.08  # mean darkness of the forehead's skin over this: not Young


def _located(image) -> tuple[np.ndarray, Face, np.ndarray] | None:
  """(the image in [0, 1], its face, the smoothed image), or None when no face is found."""
  img = to_unit(image)
  face = _locate(img)
  return None if face is None else (img, face, smooth(img))


def attribute_scores(image) -> dict | None:
  """The readers' evidence, before the thresholds (None: no face found)."""
  found = _located(image)
  if found is None:
    return None
  img, face, sm = found
  size = img.shape[0]
  hairy = _hair_like(sm, face)
  # Hair colour: a vote of the hair-like pixels above the fringe, each for its
  # nearest hair colour (mixed pixels at the edges are outvoted).
  top = _region(face, size, -0.8, 0.8, -1.4, -0.96) & hairy & _hair_like(img, face)
  votes = np.bincount(_nearest_hair(img[top]), minlength=3) if top.any() else np.zeros(3)
  # Male: a beard over the chin (its mean colour, between the skin's and the
  # beard's of that hair colour), and no hair beside the jaw.
  hair = int(np.argmax(votes))
  chin = _region(face, size, -0.28, 0.28, 0.6, 0.8)
  if chin.any():
    d = _HAIR[hair] * _BEARD_SHADE - face.skin
    beard = float(np.clip((sm[chin].mean(0) - face.skin) @ d / (d @ d), 0.0, 1.0))
  else:
    beard = 0.0
  sides = _region(face, size, 1.08, 1.25, 0.2, 0.65, mirror=True)
  bare = 1.0 - hairy[sides].mean() if sides.any() else 0.0
  # Age: wrinkles cross the middle of the forehead, where a young face has
  # nothing but skin between the fringe and the brows' inner ends.
  forehead = _region(face, size, -0.3, 0.3, -0.75, -0.45)
  luma = _luma(img)
  darkness = (1.0 - luma[forehead].mean() / float(_luma(face.skin))) if forehead.any() else 0.0
  return {'face': face, 'hair_votes': votes, 'beard': beard, 'bare_sides': float(bare),
          'forehead_darkness': float(darkness)}


def read_attributes(image) -> np.ndarray:
  """Reads the 5 attributes (0/1, ATTRIBUTE_NAMES order) from pixels.

  An image with no face (too little skin) reads as all hair colours 0, never
  a valid label.
  """
  attrs = np.zeros(len(ATTRIBUTE_NAMES), np.int64)
  s = attribute_scores(image)
  if s is None:
    return attrs
  if s['hair_votes'].sum() > 0:
    attrs[int(np.argmax(s['hair_votes']))] = 1
  attrs[3] = int(0.5 * (s['beard'] + s['bare_sides']) > _MALE_THRESHOLD)
  attrs[4] = int(s['forehead_darkness'] <= _WRINKLE_THRESHOLD)
  return attrs


# ---------------------------------------------------------------------------
# Expressions: where the dark pixels of the brows and of the mouth lie.


def _darkness(img: np.ndarray, face: Face) -> np.ndarray:
  """How much darker than the skin each pixel is (0 at the skin, ~1 at black)."""
  return np.clip(1.0 - _luma(img) / float(_luma(face.skin)), 0.0, 1.0)


def _centroid(weights: np.ndarray, coord: np.ndarray) -> float:
  total = weights.sum()
  return float((weights * coord).sum() / total) if total > 0 else 0.0


def _lip_fraction(img: np.ndarray, face: Face) -> np.ndarray:
  """Where each pixel's green-to-red ratio lies from this face's skin (0) to the lips (1).

  Above 1: redder than the lips (an open mouth's inside, 0.21 against the
  lips' 0.35).
  """
  ratio = img[..., 1] / np.maximum(img[..., 0], 1e-3)
  skin = float(face.skin[1] / max(face.skin[0], 1e-3))
  lips = float(_LIPS[1] / _LIPS[0])
  return (skin - ratio) / (skin - lips)


def _mouth_weight(img: np.ndarray, face: Face) -> np.ndarray:
  """How much of each pixel is mouth, from its green-to-red ratio.

  Skin's ratio is 0.70 to 0.84, brown hair's 0.58, the lips' 0.35 and the
  open mouth's 0.21: the weight goes from 0 at half the way from the skin
  to the lips up to 1 at the lips.
  """
  return np.clip((_lip_fraction(img, face) - 0.5) / 0.5, 0.0, 1.0)


def _open_darkness(face: Face) -> float:
  """The darkness of an open mouth's interior against this face's skin."""
  return max(1.0 - float(_luma(_MOUTH_OPEN)) / float(_luma(face.skin)), 1e-3)


def _expression_mouth_weight(img: np.ndarray, sm: np.ndarray, face: Face) -> np.ndarray:
  """How much of each pixel is mouth, for reading its shape.

  A generator draws a 1-pixel lip line softly: under a Gaussian blur of 0.6
  pixels a 32 px line's pixels lie only a third to half of the way from the
  skin to the lips, so the weight starts at a quarter of the way (where
  ``_mouth_weight``, which places the face, starts at half). Two gates keep
  hair out at that lower start: the lips and the open mouth are bluish red
  (blue over green 1.09 and 1.33) where brown and blond hair are yellowish
  (0.46, 0.44), and they are far redder than green (r - g 0.40 and 0.22,
  smoothed) where a black beard is not (0), whose ratio pixel noise makes
  anything.
  """
  w = np.clip((_lip_fraction(img, face) - 0.25) / 0.5, 0.0, 1.0)
  bluish = img[..., 2] / np.maximum(img[..., 1], 1e-3) > _MOUTH_BLUE_OVER_GREEN
  red_excess = np.clip((sm[..., 0] - sm[..., 1] - 0.06) / 0.06, 0.0, 1.0)
  return w * bluish * red_excess


def _open_mouth_darkness(img: np.ndarray, sm: np.ndarray, face: Face, box: np.ndarray) -> float:
  """The darkest mouth colour, over the open mouth's darkness (~1: open; lips ~0.6).

  Averaged over the mouth's own pixels only (those at least nearly as red as
  the lips): averaging all neighbours, as ``smooth`` does, darkens lips beside
  a black or brown beard to an open mouth's level. From 48 px a pixel counts
  only when most of its neighbourhood is mouth, so that a noisy pixel where
  lips meet a beard does not; at 32 px an open mouth's inside is one or two
  pixels and this would drop it.
  """
  red = box & (_lip_fraction(img, face) >= 0.9) & (sm[..., 0] - sm[..., 1] > 0.12)
  weight = red.astype(np.float32)[..., None]
  share = smooth(weight)[..., 0]
  mean = smooth(img * weight) / np.maximum(share, 1e-6)[..., None]
  if img.shape[0] >= _OPEN_SMALL_SIZE:
    red &= share >= 0.6
  if not red.any():
    return 0.0
  return float(_darkness(mean, face)[red].max()) / _open_darkness(face)


# Reading brows under forehead wrinkles at 32 px (face units, darkness 0..1).
_WRINKLE_ROWS_V = -0.40  # rows above this may hold the lower wrinkle; the brows' inner ends lie below
_BETWEEN_BROWS_U = 0.12  # columns within this of the centre: between the brows' inner ends
_WRINKLE_GATE = (0.10, 0.18)  # the upper wrinkle's mean darkness: from none to wrinkles
_UPPER_WRINKLE_BOX = (0.2, 0.07)  # where it is looked for: |u| and |v - its height| under these


def _without_wrinkles(dark: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """``dark`` less the lower forehead wrinkle, where the face has wrinkles.

  That wrinkle crosses the face (|u| up to 0.45) just above the brows, so it
  darkens the brows' inner halves and not their outer ones and pulls the
  measured slope of every brow towards "worried": a frown under wrinkles read
  as level (angry as neutral, disgusted as sad). The brows never reach the
  columns between their inner ends, which the wrinkle darkens as much as
  any: each upper row's darkness there, followed along the wrinkle's bend, is
  taken away from the row. Only as far as the upper wrinkle, far above any
  brow, is there: a blurred brow reaches the columns between the brows too.
  """
  centre = np.abs(u) < _BETWEEN_BROWS_U
  counts = centre.sum(1)
  rows = np.where(counts > 0, (dark * centre).sum(1) / np.maximum(counts, 1), 0.0)
  rows = np.where(v[:, 0] < _WRINKLE_ROWS_V, rows, 0.0)
  # The wrinkle bends down towards its ends (the drawing's curve): follow it.
  bend = _WRINKLE_BEND * (np.minimum(np.abs(u), _WRINKLE_HALF_WIDTH) / _WRINKLE_HALF_WIDTH) ** 2
  wrinkle = np.interp(v - bend, v[:, 0], rows, left=0.0, right=0.0)
  wrinkle = np.where(np.abs(u) <= _WRINKLE_HALF_WIDTH + _WRINKLE_THICKNESS / 2, wrinkle, 0.0)
  upper = ((np.abs(u) < _UPPER_WRINKLE_BOX[0])
           & (np.abs(v - _WRINKLES_V[0]) < _UPPER_WRINKLE_BOX[1]))
  evidence = dark[upper].mean() if upper.any() else 0.0
  weight = np.clip((evidence - _WRINKLE_GATE[0]) / (_WRINKLE_GATE[1] - _WRINKLE_GATE[0]), 0.0, 1.0)
  return np.clip(dark - weight * wrinkle, 0.0, None)


def expression_features(image) -> dict | None:
  """Brow and mouth measurements in face units (None: no face found)."""
  # The lips' centroid moves a little with the mouth's shape, but the
  # features below are relative (heights against each other), and it
  # places the regions better than the skin's width does at 32 px.
  found = _located(image)
  if found is None:
    return None
  img, face, sm = found
  size = img.shape[0]
  u, v = _face_coords(face, size)
  dark = _darkness(sm, face)
  if size >= _OPEN_SMALL_SIZE:
    # Forehead wrinkles (on the attribute faces) are dark skin and would pull
    # the brows' heights; the brows are a cool grey that skin mixed with them
    # never matches. At 32 px a brow is one pixel, mixed with skin, and this
    # would drop it with the wrinkles: there the frown is read with them
    # taken away by where they lie (``frown_slope``).
    dark = dark * ~_own_skin_mask(sm, face.skin)

  inner_box = _region(face, size, 0.1, 0.42, -0.62, -0.2, mirror=True)
  outer_box = _region(face, size, 0.42, 0.75, -0.62, -0.2, mirror=True)

  def slope_and_height(d):
    # Per side, the dark pixels' mean height over the brows' inner and outer halves.
    d = np.clip(d - 0.15, 0.0, None)
    inner, outer = _centroid(d * inner_box, v), _centroid(d * outer_box, v)
    return outer - inner, 0.5 * (inner + outer)

  brow_slope, brow_height = slope_and_height(dark)
  frown_slope = (brow_slope if size >= _OPEN_SMALL_SIZE
                 else slope_and_height(_without_wrinkles(dark, u, v))[0])
  # Mouth: heights of its red pixels (lips and the open mouth are far redder
  # than skin, hair or beard) in the left, middle and right thirds.
  # Generous: only the lips and the open mouth are red.
  box = _region(face, size, -0.62, 0.62, 0.12, 0.88)
  wm = _expression_mouth_weight(img, sm, face) * box
  thirds = [(u < -0.2), (np.abs(u) <= 0.2), (u > 0.2)]
  middle = _centroid(wm * thirds[1], v)
  heights = [_centroid(wm * t, v) if (wm * t).sum() > 0.3 else middle for t in thirds]
  total = wm.sum()
  spread_u = float(np.sqrt(max(_centroid(wm, u ** 2), 0.0)))
  return {
      'face': face,
      'brow_height': brow_height,
      'brow_slope': brow_slope,  # > 0: inner ends raised
      # The slope with the lower forehead wrinkle taken away (32 px): it tells
      # a frown under wrinkles. Only for that: raised brows lie where that
      # wrinkle does, and on a generator's soft drawing taking it away takes
      # them too (surprised then read as fearful).
      'frown_slope': frown_slope,
      'mouth_lift': heights[1] - 0.5 * (heights[0] + heights[2]),  # > 0: corners up
      'mouth_asymmetry': abs(heights[0] - heights[2]),
      'mouth_mass': float(total / (size * size * face.rx * face.ry)),
      'mouth_dark': _open_mouth_darkness(img, sm, face, box),
      'mouth_spread_u': spread_u,
  }


# Thresholds of the expression reader (face units).
_OPEN_SMALL, _OPEN = 0.84, 0.87  # mouth darkness (of an open mouth's) over this: open
_OPEN_SMALL_SIZE = 48  # below it the open core mixes with the lips around it
_MOUTH_BLUE_OVER_GREEN = 0.7  # lips and the open mouth above, brown and blond hair below
_WIDE_SPREAD = 0.135  # horizontal spread of an open mouth over this: wide, else round
_SMIRK_ASYMMETRY = 0.085
_LIFT = 0.055  # corners above the middle by more: a smile; below: down
_BROW_SLOPE = 0.055  # outer minus inner brow height over this: worried; under minus: frown
_RAISED_HEIGHT = -0.45  # brows' mean height under this (higher up the face): raised


def classify_mouth(f: dict, size: int) -> str:
  open_threshold = _OPEN_SMALL if size < _OPEN_SMALL_SIZE else _OPEN
  if f['mouth_dark'] > open_threshold:
    # Wide (fearful) or round (surprised): the mouth's width, helped by the
    # brows (fearful: inner ends up; surprised: level and high), by majority.
    votes = ((f['mouth_spread_u'] > _WIDE_SPREAD) + (f['brow_slope'] > _BROW_SLOPE)
             + (f['brow_height'] > _RAISED_HEIGHT))
    return 'wide' if votes >= 2 else 'round'
  # A smirk lifts one corner: more asymmetry than lift (a smile or a
  # turned-down mouth drawn slightly unevenly has the opposite).
  if f['mouth_asymmetry'] > max(_SMIRK_ASYMMETRY, abs(f['mouth_lift'])):
    return 'smirk'
  if f['mouth_lift'] > _LIFT:
    return 'smile'
  if f['mouth_lift'] < -_LIFT:
    return 'down'
  return 'line'


def read_expression(image) -> int:
  """Reads the expression (index into EXPRESSION_NAMES); -1 if no face.

  The mouth's shape names the expression where one has it alone (smile:
  happy, smirk: contemptuous, round: surprised, wide: fearful); a line or a
  turned-down mouth is told apart by the brows' slope (line: angry with
  frowning brows, else neutral; down: disgusted with frowning brows, else
  sad).
  """
  f = expression_features(image)
  if f is None:
    return -1
  mouth = classify_mouth(f, np.asarray(image).shape[0])
  frown = f['frown_slope'] < -_BROW_SLOPE
  name = {'smile': 'happy', 'smirk': 'contemptuous', 'round': 'surprised', 'wide': 'fearful',
          'line': 'angry' if frown else 'neutral',
          'down': 'disgusted' if frown else 'sad'}[mouth]
  return EXPRESSION_NAMES.index(name)


# ---------------------------------------------------------------------------
# Content.

_MAX_SHIFT = 0.04  # face centre moved by more (fraction of the image): content changed
_MAX_SCALE = 0.12  # face width changed by more (relative)
_MAX_SKIN = 0.08  # skin colour changed by more (Euclidean, [0, 1] RGB)
_MAX_BACKGROUND = 0.06  # background planes differ by more (mean absolute, [0, 1])


def content_differences(source, translated, fixed_mouth: bool = True) -> dict | None:
  """How far the located faces and backgrounds lie apart (None: a face is missing)."""
  a, b = locate(source, fixed_mouth), locate(translated, fixed_mouth)
  if a is None or b is None:
    return None
  size = np.asarray(source).shape[0]
  return {
      'shift': float(max(abs(a.cx - b.cx), abs(a.cy - b.cy))),
      'scale': float(abs(a.rx / b.rx - 1.0)),
      'skin': float(np.linalg.norm(a.skin - b.skin)),
      'background': float(np.abs(_plane_image(a.background, size)
                                 - _plane_image(b.background, size)).mean()),
  }


def content_preserved(source, translated, fixed_mouth: bool = True) -> bool:
  """Same face position and size, same skin tone and same background.

  The face is located in both images as the readers locate it (from the skin,
  the eyes or the lips); the background is the colour plane fitted to each
  image's border. A re-rendering of the same content with other labels
  passes (tested for every target at 32, 64 and 128 px). ``fixed_mouth``:
  as for ``locate`` (False for ``faces_expr``).
  """
  d = content_differences(source, translated, fixed_mouth)
  if d is None:
    return False
  return (d['shift'] <= _MAX_SHIFT and d['scale'] <= _MAX_SCALE and d['skin'] <= _MAX_SKIN
          and d['background'] <= _MAX_BACKGROUND)
