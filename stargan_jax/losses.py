"""StarGAN losses as pure functions (paper eq. 1-7, reference ``solver.py``).

All reductions are done in float32 whatever the compute dtype.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax


def critic_real_loss(out_src_real):
  """-E[D_src(x)]: ``D/loss_real``."""
  return -jnp.mean(out_src_real.astype(jnp.float32))


def critic_fake_loss(out_src_fake):
  """E[D_src(G(x, c))]: ``D/loss_fake``; G minimises its negative."""
  return jnp.mean(out_src_fake.astype(jnp.float32))


def gradient_penalty(critic_fn: Callable, x_real, x_fake, alpha):
  """WGAN-GP term, E[(||grad_x_hat sum D_src(x_hat)||_2 - 1)^2].

  ``critic_fn(x) -> out_src``. As in the reference, the gradient is taken of
  the *sum* of the critic outputs over batch and patch, x_real and x_fake are
  constants, and the norm runs over all pixels and channels of each sample.
  ``alpha`` is N x 1 x 1 x 1, uniform in [0, 1).
  """
  x_real = jax.lax.stop_gradient(x_real)
  x_fake = jax.lax.stop_gradient(x_fake)
  x_hat = alpha * x_real + (1.0 - alpha) * x_fake
  grad = jax.grad(lambda x: jnp.sum(critic_fn(x).astype(jnp.float32)))(x_hat)
  grad = grad.astype(jnp.float32).reshape(grad.shape[0], -1)
  norm = jnp.sqrt(jnp.sum(jnp.square(grad), axis=1))
  return jnp.mean(jnp.square(norm - 1.0))


def nonsat_real_loss(out_src_real):
  """E[softplus(-D_src(x))], i.e. -E[log sigmoid D_src(x)]: D's loss on reals under ``ns-r1``.

  Not StarGAN's (WGAN-GP); StarGAN v2's non-saturating GAN loss. G
  minimises the same expression on its fakes (``G/loss_fake``).
  """
  return jnp.mean(jax.nn.softplus(-out_src_real.astype(jnp.float32)))


def nonsat_fake_loss(out_src_fake):
  """E[softplus(D_src(G(x, c)))], i.e. -E[log(1 - sigmoid D_src)]: D's loss on fakes."""
  return jnp.mean(jax.nn.softplus(out_src_fake.astype(jnp.float32)))


def r1_penalty(critic_fn: Callable, x_real):
  """R1 (Mescheder et al. 2018; StarGAN v2's ``r1_reg``): 0.5 E[||grad_x sum D_src(x)||^2] on reals.

  As StarGAN v2: the gradient of the sum of the critic's outputs over the
  batch (and here over the PatchGAN map), the squared norm over each
  sample's pixels and channels, halved, averaged over the batch.
  """
  x_real = jax.lax.stop_gradient(x_real)
  grad = jax.grad(lambda x: jnp.sum(critic_fn(x).astype(jnp.float32)))(x_real)
  grad = grad.astype(jnp.float32).reshape(grad.shape[0], -1)
  return 0.5 * jnp.mean(jnp.sum(jnp.square(grad), axis=1))


def attribute_cls_loss(logits, labels):
  """Binary attributes: sigmoid CE summed over attributes, mean over batch."""
  logits = logits.astype(jnp.float32)
  per_attr = optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32))
  return jnp.sum(per_attr) / logits.shape[0]


def categorical_cls_loss(logits, labels):
  """One-hot classes: softmax CE, mean over batch (labels are one-hot)."""
  logits = logits.astype(jnp.float32)
  return jnp.mean(optax.softmax_cross_entropy(logits, labels.astype(jnp.float32)))


def classification_loss(logits, labels, kind: str):
  if kind == 'attributes':
    return attribute_cls_loss(logits, labels)
  if kind == 'categorical':
    return categorical_cls_loss(logits, labels)
  raise ValueError(f"label kind must be 'attributes' or 'categorical', got {kind!r}")


def reconstruction_loss(x_real, x_rec):
  """L1 cycle loss, mean |x - G(G(x, c_trg), c_org)|: ``G/loss_rec``."""
  return jnp.mean(jnp.abs(x_real.astype(jnp.float32) - x_rec.astype(jnp.float32)))


def cutout(x, key, fraction: float):
  """Each image of N x H x W x C with one square of side round(fraction * H) set to 0.

  0 is mid-grey for images in [-1, 1]. The square's centre is uniform over
  the image, so it may be clipped by the border (DiffAugment's cutout, Zhao
  et al. 2020); drawn per image.
  """
  n, h, w, _ = x.shape
  side = max(1, round(fraction * h))
  ky, kx = jax.random.split(key)
  cy = jax.random.randint(ky, (n, 1, 1, 1), 0, h)
  cx = jax.random.randint(kx, (n, 1, 1, 1), 0, w)
  rows = jnp.arange(h).reshape(1, h, 1, 1)
  cols = jnp.arange(w).reshape(1, 1, w, 1)
  lo = side // 2
  inside = ((rows >= cy - lo) & (rows < cy - lo + side) & (cols >= cx - lo)
            & (cols < cx - lo + side))
  return jnp.where(inside, jnp.zeros((), x.dtype), x)
