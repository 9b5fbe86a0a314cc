"""bfloat16 compute (``--dtype=bfloat16``): the gradient penalty against float32.

The critic's input gradient is what the gradient penalty is made of, and in
bf16 it passes through D's forward and backward in 8-bit mantissas. Measured
on the same parameters and batch (D's source head scaled so that the
gradient norms are near 1, where training keeps them):

* 32 px, conv_dim 8, batch 8 (this test): per-sample gradient norms within
  1.7% of float32's; the penalty 0.0613 vs 0.0598.
* 128 px, the paper's D (conv_dim 64, 6 strided convs), batch 4 (by hand):
  norms within 0.26%; the penalty 3.5e-5 vs 4.2e-5: so close to its optimum
  the penalty's own gradient is largely bf16 noise (cosine 0.95 to float32's;
  0.998 at initialisation, where the norms are far from 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from stargan_jax import losses
from stargan_jax import models


def _setup(dtype, size=32, conv_dim=8, repeat=5, n=8):
  d = models.Discriminator(size, conv_dim, 5, repeat, dtype)
  shapes = jax.eval_shape(lambda: models.init_params(d, jax.random.key(0), size))
  rng = np.random.default_rng(0)

  def init(path, s):  # PyTorch's init scale, drawn with numpy (nothing to compile)
    bound = 1 / np.sqrt(np.prod(s.shape[:3])) if len(s.shape) == 4 else 0.05
    if 'conv_src' in jax.tree_util.keystr(path):
      # ||grad_x D(x)|| near 1 (as in training) instead of ~1e-3 at
      # initialisation, where the penalty is ~1 whatever the precision and
      # the comparison would say nothing.
      bound *= 1500.0
    return jnp.asarray(rng.uniform(-bound, bound, s.shape), jnp.float32)

  params = jax.tree_util.tree_map_with_path(init, shapes)
  x_real = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
  x_fake = np.tanh(rng.normal(size=(n, size, size, 3))).astype(np.float32)
  alpha = rng.uniform(size=(n, 1, 1, 1)).astype(np.float32)
  return d, params, x_real, x_fake, alpha


def _norms_and_penalty(dtype):
  d, params, x_real, x_fake, alpha = _setup(dtype)

  def f(p):
    critic = lambda x: d.apply(p, x)[0]
    x_hat = alpha * x_real + (1 - alpha) * x_fake
    g = jax.grad(lambda x: jnp.sum(critic(x).astype(jnp.float32)))(x_hat)
    norms = jnp.sqrt(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1))
    return norms, losses.gradient_penalty(critic, x_real, x_fake, alpha)

  jaxpr = jax.make_jaxpr(f)(params)
  n, gp = jax.jit(f)(params)
  return np.asarray(n), float(gp), jaxpr


def test_gradient_penalty_bf16_close_to_float32():
  n32, gp32, jaxpr32 = _norms_and_penalty(jnp.float32)
  n16, gp16, jaxpr16 = _norms_and_penalty(jnp.bfloat16)
  # bf16 really is the compute dtype: D's convolutions run in bf16 (forward
  # and both backward passes), the float32 model has none.
  text16, text32 = str(jaxpr16), str(jaxpr32)
  # (On CPU D's strided convs are matmuls, models.patches_conv.)
  ops16 = [l for l in text16.splitlines() if 'conv_general_dilated[' in l or 'dot_general[' in l]
  assert len(ops16) >= 15 and all('bf16[' in l.split('=')[0] for l in ops16), ops16[:2]
  assert 'bf16[' not in text32
  # The regime the penalty works in: norms near 1.
  assert np.all((n32 > 0.8) & (n32 < 1.6)), n32
  rel = np.abs(n16 - n32) / n32
  assert rel.max() < 0.03, rel  # measured 1.3%
  assert rel.max() > 0  # and bf16 did change something
  # The penalty follows: |gp16 - gp32| <= 2 * max|n16 - n32| * max|n - 1| (+ square).
  assert gp32 > 0.01
  assert abs(gp16 - gp32) < 0.01, (gp16, gp32)  # measured 0.0404 vs 0.0377


def test_bf16_keeps_parameters_and_reductions_float32():
  d, params, x_real, _, _ = _setup(jnp.bfloat16)
  out_src, out_cls = jax.eval_shape(d.apply, params, x_real)
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
  assert out_src.dtype == jnp.float32 and out_cls.dtype == jnp.float32
  loss = jax.eval_shape(losses.critic_real_loss, jax.ShapeDtypeStruct((8, 1), jnp.bfloat16))
  assert loss.dtype == jnp.float32
