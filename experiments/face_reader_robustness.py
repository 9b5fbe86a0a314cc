"""How well the face readers' expression reading survives what a generator draws.

The pixel readers (``stargan_jax.faces``) are measured on the drawings
themselves; a generator's output is softer and noisier, and the joint demo puts
expressions on the attribute faces (beards, wrinkles), which ``faces_expr``
never draws. This script reads the expression of freshly drawn faces after a
Gaussian blur and after Gaussian pixel noise, on ``faces_expr``'s faces and on
the attribute faces, and prints one markdown row per size:

    python -m experiments.face_reader_robustness [--sizes=32,64] [--n=240] [--seed=5]

No model and no data on disk: everything is drawn from the seed.
"""

from __future__ import annotations

import sys

import numpy as np
from absl import app
from absl import flags

from stargan_jax import faces

_SIZES = flags.DEFINE_list('sizes', ['32', '64'], 'Image sizes to measure.')
_N = flags.DEFINE_integer('n', 240, 'Faces per case.')
_SEED = flags.DEFINE_integer('seed', 5, 'Seed of the drawings (the size is added).')
BLURS = (0.5, 0.6, 0.7)  # Gaussian sigma in pixels
NOISE = 0.05  # Gaussian pixel noise, [0, 1] units (13/255)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
  """Separable Gaussian blur of N x H x W x 3 uint8 images (edges replicated)."""
  r = int(np.ceil(3 * sigma))
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  k /= k.sum()
  h, w = images.shape[1:3]
  p = np.pad(images.astype(np.float32), ((0, 0), (r, r), (r, r), (0, 0)), mode='edge')
  y = sum(k[i] * p[:, i:i + h] for i in range(2 * r + 1))
  y = sum(k[i] * y[:, :, i:i + w] for i in range(2 * r + 1))
  return np.clip(np.round(y), 0, 255).astype(np.uint8)


def with_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """uint8 images plus Gaussian noise, as the pipeline's floats in [-1, 1]."""
  x = np.clip(images / 255.0 + rng.normal(0.0, NOISE, images.shape), 0.0, 1.0)
  return (x * 2.0 - 1.0).astype(np.float32)


def expression_on_attribute_face(rng: np.random.Generator, size: int,
                                 male: bool | None = None) -> tuple[np.ndarray, int]:
  """(an attribute face drawn with a random expression, the expression's index).

  ``male`` (short hair and a beard) is drawn at random unless given; hair colour
  and ``Young`` (forehead wrinkles when not young) always are.
  """
  content = faces.sample_content(rng)
  label = int(rng.integers(len(faces.EXPRESSION_NAMES)))
  brows, mouth = faces.EXPRESSIONS[faces.EXPRESSION_NAMES[label]]
  if male is None:
    male = bool(rng.integers(2))
  young = bool(rng.integers(2))
  return faces.render(content, size, int(rng.integers(3)), male, young, brows, mouth), label


def draw(size: int, n: int, seed: int):
  """(expression faces, their labels, attribute faces with expressions, their labels)."""
  rng = np.random.default_rng(seed)
  expr = [faces.sample_expression_example(rng, size) for _ in range(n)]
  attr = [expression_on_attribute_face(rng, size) for _ in range(n)]
  return (np.stack([e[0] for e in expr]), np.array([e[1] for e in expr]),
          np.stack([a[0] for a in attr]), np.array([a[1] for a in attr]))


def accuracy(images, labels) -> float:
  return float(np.mean([faces.read_expression(x) == y for x, y in zip(images, labels)]))


def measure(size: int, n: int, seed: int) -> dict:
  expr, expr_labels, attr, attr_labels = draw(size, n, seed + size)
  noise = np.random.default_rng(seed + size + 1)
  return {
      'size': size,
      'sharp': accuracy(expr, expr_labels),
      'blur': {s: accuracy(gaussian_blur(expr, s), expr_labels) for s in BLURS},
      'noise': accuracy(with_noise(expr, noise), expr_labels),
      'attribute_faces': accuracy(attr, attr_labels),
      'attribute_faces_noise': accuracy(with_noise(attr, noise), attr_labels),
  }


def main(argv):
  del argv
  blurs = ' / '.join(f'{s}' for s in BLURS)
  print(f'| size | sharp | blur {blurs} px | noise {NOISE} | on the attribute faces '
        f'(half with beards, half with wrinkles): sharp / noise {NOISE} |')
  print('|---|---|---|---|---|')
  for size in (int(s) for s in _SIZES.value):
    if not 32 <= size <= 256:
      sys.exit(f'--sizes: {size} is outside the drawings\' 32 to 256 px')
    r = measure(size, _N.value, _SEED.value)
    blur = ' / '.join(f'{r["blur"][s]:.0%}' for s in BLURS)
    print(f'| {size} px | {r["sharp"]:.0%} | {blur} | {r["noise"]:.0%} | '
          f'{r["attribute_faces"]:.0%} / {r["attribute_faces_noise"]:.0%} |', flush=True)


if __name__ == '__main__':
  app.run(main)
