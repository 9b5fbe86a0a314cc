"""Losses against known values."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from stargan_jax import losses


def test_gradient_penalty_of_linear_critic():
  # D_src(x) = <w, x> per sample: grad of the summed output is w for every sample.
  w = jax.random.normal(jax.random.key(0), (4, 4, 3))
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  x_real = jax.random.normal(jax.random.key(1), (5, 4, 4, 3))
  x_fake = jax.random.normal(jax.random.key(2), (5, 4, 4, 3))
  alpha = jax.random.uniform(jax.random.key(3), (5, 1, 1, 1))
  gp = losses.gradient_penalty(critic, x_real, x_fake, alpha)
  expected = (float(jnp.linalg.norm(w)) - 1.0) ** 2
  np.testing.assert_allclose(float(gp), expected, rtol=1e-5)


def test_gradient_penalty_is_per_sample():
  # Critic 2 * x for sample 0's pixels and 0.5 * x ... : norms differ per sample.
  def critic(x):
    scale = jnp.array([1.0, 3.0])[:, None, None, None]
    return jnp.sum(x * scale, axis=(1, 2, 3))
  x = jnp.zeros((2, 2, 2, 1))
  gp = losses.gradient_penalty(critic, x, x, jnp.full((2, 1, 1, 1), 0.5))
  # sample norms: sqrt(4)*1 = 2 and sqrt(4)*3 = 6 -> mean((1)^2, (5)^2) = 13
  np.testing.assert_allclose(float(gp), 13.0, rtol=1e-6)


def test_critic_losses():
  assert float(losses.critic_real_loss(jnp.array([[1.0], [3.0]]))) == -2.0
  assert float(losses.critic_fake_loss(jnp.array([[1.0], [3.0]]))) == 2.0


def test_nonsat_losses_are_the_log_sigmoid_cross_entropies():
  out = jnp.array([[-2.0], [0.0], [3.0]])
  sig = 1 / (1 + np.exp(-np.array([-2.0, 0.0, 3.0])))
  np.testing.assert_allclose(float(losses.nonsat_real_loss(out)), -np.mean(np.log(sig)),
                             rtol=1e-6)
  np.testing.assert_allclose(float(losses.nonsat_fake_loss(out)), -np.mean(np.log(1 - sig)),
                             rtol=1e-6)
  big = jnp.array([[200.0]])  # softplus, not log(sigmoid): no overflow to inf
  assert float(losses.nonsat_real_loss(big)) == 0.0 and float(losses.nonsat_fake_loss(big)) == 200


def test_r1_penalty_is_half_the_mean_squared_input_gradient_on_reals():
  # Critic a_i * <w, x> for sample i (a PatchGAN map of 2 x 2 summed): grad = a_i * w * 4 / 4.
  w = jax.random.normal(jax.random.key(0), (4, 4, 3))
  scale = jnp.array([1.0, 3.0])
  def critic(x):
    per = jnp.sum(x * w, axis=(1, 2, 3)) * scale
    return jnp.broadcast_to(per[:, None, None, None] / 4, (2, 2, 2, 1))
  x = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
  r1 = losses.r1_penalty(critic, x)
  sq = float(jnp.sum(w ** 2))
  np.testing.assert_allclose(float(r1), 0.5 * np.mean([1.0 * sq, 9.0 * sq]), rtol=1e-5)
  # Its gradient reaches the critic's parameters (here the scale), not the images.
  g = jax.grad(lambda s: losses.r1_penalty(
      lambda x: jnp.sum(x * w, axis=(1, 2, 3)) * s, x))(scale)
  np.testing.assert_allclose(np.asarray(g), np.asarray(scale) * sq / 2, rtol=1e-5)


def test_attribute_cls_loss_sums_attributes_means_batch():
  logits = jnp.array([[0.0, 2.0], [-1.0, 0.5]])
  labels = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  def bce(z, y):
    p = 1 / (1 + math.exp(-z))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))
  expected = (bce(0, 1) + bce(2, 0) + bce(-1, 0) + bce(0.5, 1)) / 2
  np.testing.assert_allclose(float(losses.attribute_cls_loss(logits, labels)), expected, rtol=1e-6)


def test_categorical_cls_loss():
  logits = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
  labels = jnp.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
  lse = math.log(math.exp(1) + math.exp(2) + math.exp(3))
  expected = ((lse - 3.0) + math.log(3.0)) / 2
  np.testing.assert_allclose(float(losses.categorical_cls_loss(logits, labels)), expected,
                             rtol=1e-6)
  assert float(losses.classification_loss(logits, labels, 'categorical')) == \
      float(losses.categorical_cls_loss(logits, labels))


def test_reconstruction_loss():
  a = jnp.zeros((2, 2, 2, 3))
  b = jnp.full((2, 2, 2, 3), -0.5).at[0].set(1.5)
  assert float(losses.reconstruction_loss(a, b)) == 1.0


def test_unknown_label_kind():
  import pytest
  with pytest.raises(ValueError, match='attributes'):
    losses.classification_loss(jnp.zeros((1, 2)), jnp.zeros((1, 2)), 'multi')


def test_cutout_blanks_one_square_per_image():
  x = jax.random.uniform(jax.random.key(0), (64, 16, 16, 3), minval=0.5, maxval=1.0)
  y = np.asarray(losses.cutout(x, jax.random.key(1), 0.25))
  blank = (y == 0).all(-1)  # x has no zeros: every 0 is cut out
  np.testing.assert_array_equal(y[~blank], np.asarray(x)[~blank])
  counts = blank.sum((1, 2))
  assert counts.max() == 16 and counts.min() >= 4  # a 4x4 square, clipped at most to 2x2
  for img in blank:  # each blank region is one axis-aligned rectangle
    rows, cols = np.nonzero(img.any(1))[0], np.nonzero(img.any(0))[0]
    assert img[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    assert img.sum() == len(rows) * len(cols)
  # Drawn per image: the squares are not all in one place.
  assert len({tuple(np.argwhere(img)[0]) for img in blank}) > 10
