"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020); not in StarGAN.

With few training images (a RaFD-sized set: about a thousand) D's classifier
fits the real images exactly and G learns to satisfy it with marks a
classifier trained apart does not read as the target. DiffAugment applies the
same random, differentiable transforms to every image D sees, real and fake,
in the D and the G step, so D cannot key on exact pixel positions and G's
gradients pass through the transform. Only transforms that keep the labels
are offered: a translation keeps a face's hair colour or expression, while
DiffAugment's cutout could erase the mouth an expression is read from.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MODES = ('none', 'translation')


def check(mode: str) -> str:
  if mode not in MODES:
    raise ValueError(f"d_augment must be one of {', '.join(MODES)}, got {mode!r}")
  return mode


def translate(x, key, ratio: float = 0.125):
  """Each image shifted by its own random whole-pixel offset, up to ``ratio`` of its size.

  N x H x W x C; the uncovered border is zero (DiffAugment's padding: mid-grey
  for images in [-1, 1]). Offsets are drawn per image and axis, uniformly in
  [-s, s] with s = round(ratio * size).
  """
  n, h, w, _ = x.shape
  sh, sw = max(1, round(ratio * h)), max(1, round(ratio * w))
  ky, kx = jax.random.split(key)
  dy = jax.random.randint(ky, (n,), -sh, sh + 1)
  dx = jax.random.randint(kx, (n,), -sw, sw + 1)
  padded = jnp.pad(x, ((0, 0), (sh, sh), (sw, sw), (0, 0)))

  def one(img, oy, ox):
    return jax.lax.dynamic_slice(img, (sh - oy, sw - ox, 0), (h, w, x.shape[3]))

  return jax.vmap(one)(padded, dy, dx)


def apply(mode: str, x, key):
  """``x`` as D sees it under ``mode`` ('none': unchanged)."""
  if mode == 'none':
    return x
  if mode == 'translation':
    return translate(x, key)
  raise ValueError(f'unknown d_augment {mode!r}')
