"""D's input augmentation (DiffAugment's translation; not in StarGAN)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stargan_jax import augment
from stargan_jax import cli
from stargan_jax import config as config_lib
from stargan_jax import labels
from stargan_jax import steps


def _shifted(img, dy, dx):
  """img moved down by dy and right by dx, zeros where nothing moved in."""
  h, w, _ = img.shape
  out = np.zeros_like(img)
  ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
  yt, xt = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
  out[ys, xs] = img[yt, xt]
  return out


def test_translation_shifts_each_image_by_a_bounded_whole_pixel_offset():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (12, 32, 32, 3)).astype(np.float32)
  y = np.asarray(augment.translate(jnp.asarray(x), jax.random.key(1)))
  offsets = []
  for img, out in zip(x, y):
    found = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
             if np.array_equal(out, _shifted(img, dy, dx))]
    assert len(found) == 1  # each output is the input moved by one offset within 1/8
    offsets.append(found[0])
  assert len(set(offsets)) > 3  # drawn per image


def test_translation_passes_gradients_and_none_is_the_identity():
  x = jnp.ones((2, 16, 16, 3))
  grad = jax.grad(lambda v: jnp.sum(augment.translate(v, jax.random.key(0))))(x)
  assert set(np.unique(np.asarray(grad))) <= {0.0, 1.0} and float(grad.sum()) > 0
  assert augment.apply('none', x, jax.random.key(0)) is x


def _model(mode):
  cfg = config_lib.tiny_config()
  cfg.loss.d_augment = mode
  spec = labels.DomainSpec('procedural', ('Red', 'Green', 'Blue', 'Frame', 'Dark'),
                           exclusive=('Red', 'Green', 'Blue'))
  return steps.StarGAN.from_config(cfg, labels.LabelLayout((spec,)))


def test_steps_with_translation_train_and_differ_from_none():
  rng = np.random.default_rng(0)
  batch = {'image': jnp.asarray(rng.uniform(-1, 1, (4, 32, 32, 3)), jnp.float32),
           'label': jnp.asarray(np.eye(5, dtype=np.float32)[[0, 1, 2, 0]])}
  out = {}
  for mode in ('none', 'translation'):
    model = _model(mode)
    state = jax.jit(model.init)(jax.random.key(0))
    state, d_metrics = jax.jit(model.d_step, static_argnums=3)(state, batch, jax.random.key(1), 0)
    state, g_metrics = jax.jit(model.g_step, static_argnums=3)(state, batch, jax.random.key(1), 0)
    assert all(np.isfinite(float(v)) for v in {**d_metrics, **g_metrics}.values())
    out[mode] = float(d_metrics['D/loss_real'])
  assert out['none'] != out['translation']


def test_unknown_mode_is_refused_naming_the_flag():
  cfg = config_lib.small_config('rafd')
  cfg.loss.d_augment = 'cutout'
  with pytest.raises(cli.UserError, match='--d_augment must be'):
    cfg.check()
  with pytest.raises(ValueError, match='d_augment'):
    _model('cutout')
