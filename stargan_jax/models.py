"""StarGAN generator and discriminator (Flax Linen, NHWC).

Layer for layer the networks of the reference implementation (yunjey/stargan,
``model.py``); see ``shared/REFERENCE.md`` for the tables and parameter counts.

Deliberate details, each matching the PyTorch reference rather than Flax's
defaults:

* Initialisation is PyTorch's default (uniform in +-1/sqrt(fan_in) for weights
  and D's biases), not Flax's lecun_normal / zero bias.
* Instance norm always uses per-image statistics (the reference never switches
  to eval mode), biased variance, eps 1e-5, learnable scale 1 / shift 0.
* PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)`` is ``lax.conv_transpose`` with
  padding ``k - 1 - p = 2`` on each side and a transposed kernel; we keep that
  parameter but compute it sub-pixel (``ConvTranspose4x4``), same numbers.
* ``dtype`` is the compute dtype (e.g. bfloat16); parameters stay float32 and
  the normalisation statistics are computed in float32.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

Dtype = Any


def torch_uniform_init(fan_in_axes=(0, 1, 2)):
  """PyTorch's default conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  Flax conv kernels are HWIO; for ``ConvTranspose(transpose_kernel=True)`` the
  kernel is HW(out)(in), and PyTorch's fan_in of a transposed conv is
  out_ch*k*k, so in both cases fan_in is the product of the first three axes.
  """

  def init(key, shape, dtype=jnp.float32):
    fan_in = math.prod(shape[a] for a in fan_in_axes)
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_bias_init(fan_in: int):
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class InstanceNorm(nn.Module):
  """Instance norm over H, W per image and channel, with affine scale/shift."""

  epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (features,))
    bias = self.param('bias', nn.initializers.zeros, (features,))
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
    return (y * scale + bias).astype(self.dtype)


def _conv(features, kernel, stride, padding, *, use_bias=False, dtype=jnp.float32, name=None,
          conv_general_dilated=None):
  return nn.Conv(
      features,
      (kernel, kernel),
      strides=(stride, stride),
      padding=((padding, padding), (padding, padding)),
      use_bias=use_bias,
      kernel_init=torch_uniform_init(),
      dtype=dtype,
      param_dtype=jnp.float32,
      name=name,
      conv_general_dilated=conv_general_dilated,
  )


_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _check_plain(fn_name, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
                 preferred_element_type=None):
  plain = (feature_group_count == 1 and lhs_dilation in (None, (1, 1)) and
           rhs_dilation in (None, (1, 1)) and preferred_element_type is None and
           (dimension_numbers is None or tuple(dimension_numbers) in (
               _NHWC, ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2)))))
  if not plain:
    raise ValueError(f'{fn_name} handles plain NHWC x HWIO convs only, got lhs_dilation='
                     f'{lhs_dilation}, rhs_dilation={rhs_dilation}, groups={feature_group_count}, '
                     f'dimension_numbers={dimension_numbers}')


def _explicit_padding(fn_name, padding):
  if isinstance(padding, str):
    if padding != 'VALID':
      raise ValueError(f'{fn_name} needs explicit or VALID padding, got {padding!r}')
    return ((0, 0), (0, 0))
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _shifted_taps(x, kh, kw, strides, padding):
  """The kh*kw shifted, strided views of padded ``x`` (NHWC) that a conv's taps see.

  Tap (i, j) is output pixel (h, w)'s input pixel (s*h + i, s*w + j); listed in
  (i, j) order, HWIO's order.
  """
  (pt, pb), (pl, pr) = padding
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  sh, sw = strides
  oh, ow = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
  return [xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
          for i in range(kh) for j in range(kw)]


def _xla_conv(x, w, strides, padding):
  return jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_tap_dw(x, w, strides, padding):
  return _xla_conv(x, w, strides, padding)


def _conv_tap_dw_fwd(x, w, strides, padding):
  return _xla_conv(x, w, strides, padding), (x, w)


def _winograd_conv3x3(x, w):
  """A 3x3, stride-1, pad-1 conv (NHWC x HWIO; even H, W) by Winograd's F(2x2, 3x3).

  Each 2x2 output tile is computed from its 4x4 input tile with 16 instead of
  36 multiplications per channel pair: input tiles and kernel are transformed
  (B^T d B, G g G^T), multiplied as 16 batched matmuls, and transformed back
  (A^T m A) [Lavin & Gray 2016]. Every step is linear, so its VJP is the
  same kind of computation: used for the backward pass only (below).
  """
  n, h, wd, c = x.shape
  th, tw = h // 2, wd // 2
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  r = [xp[:, u:u + 2 * th:2] for u in range(4)]  # rows 2a + u
  t = [r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3]]  # B^T d
  v = []
  for ti in t:
    q = [ti[:, :, u:u + 2 * tw:2] for u in range(4)]  # columns 2b + u
    v += [q[0] - q[2], q[1] + q[2], q[2] - q[1], q[1] - q[3]]  # (B^T d) B
  v = jnp.stack(v).reshape(16, n * th * tw, c)
  g = jnp.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], w.dtype)
  u_ = jnp.einsum('ai,ijck,bj->abck', g, w, g).reshape(16, c, w.shape[-1])
  m = jax.lax.dot_general(v, u_, (((2,), (1,)), ((0,), (0,))),
                          preferred_element_type=jnp.float32).astype(x.dtype)
  m = m.reshape(4, 4, n, th, tw, -1)
  rows = [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]  # A^T m
  out = [jnp.stack([rr[0] + rr[1] + rr[2], rr[1] - rr[2] - rr[3]], axis=3) for rr in rows]
  return jnp.stack(out, axis=2).reshape(n, h, wd, -1)  # N, th, 2, tw, 2, K -> N, H, W, K


def _conv_tap_dw_bwd(strides, padding, res, g):
  x, w = res
  kh, kw, cin, cout = w.shape
  if ((kh, kw) == (3, 3) and strides == (1, 1) and padding == ((1, 1), (1, 1)) and
      x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0):
    # G's residual-block convs, most of its work: both gradients by Winograd.
    return jax.vjp(_winograd_conv3x3, x, w)[1](g)
  dx = jax.vjp(lambda x_: _xla_conv(x_, w, strides, padding), x)[1](g)[0]
  g2 = g.reshape(-1, cout)
  # One matmul per kernel tap: the tap's shifted (strided) input rows against
  # the output gradient, contracting over batch and space.
  taps = [jax.lax.dot_general(t.reshape(-1, cin), g2, (((0,), (0,)), ((), ())),
                              preferred_element_type=jnp.float32)
          for t in _shifted_taps(x, kh, kw, strides, padding)]
  dw = jnp.stack(taps).reshape(kh, kw, cin, cout).astype(w.dtype)
  return dx, dw


_conv_tap_dw.defvjp(_conv_tap_dw_fwd, _conv_tap_dw_bwd)


def tap_weight_grad_conv(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, preferred_element_type=None):
  """``lax.conv_general_dilated`` (NHWC x HWIO) with a faster backward pass on CPU.

  The forward pass is XLA's own convolution. The backward pass: for 3x3,
  stride-1 convs (G's residual blocks) both gradients by Winograd's F(2x2,
  3x3) (``_winograd_conv3x3``); for the others the input gradient is XLA's and
  the weight gradient is computed tap by tap, each kernel tap's shifted input
  against the output gradient as one matmul over batch and space. Same
  numbers to float rounding (tested). Why: XLA's CPU backend computes a conv's
  weight gradient at a fifth of its forward speed (measured 43 vs 216 GFLOP/s
  for G's 3x3 256-channel convs at 128 px, batch 16), and the weight
  gradients were most of G's step; measured on those convs, forward plus
  both gradients ran at 132 GFLOP/s with XLA's convs and 284 with this.
  Used for G's convs on CPU only (``_g_conv_impl``). Reverse-mode only (a
  ``custom_vjp``): nothing differentiates G twice.
  """
  _check_plain('tap_weight_grad_conv', lhs_dilation, rhs_dilation, dimension_numbers,
               feature_group_count, preferred_element_type)
  del precision
  return _conv_tap_dw(lhs, rhs, tuple(window_strides),
                      _explicit_padding('tap_weight_grad_conv', padding))


def _g_conv_impl():
  """G's convs: ``tap_weight_grad_conv`` on CPU; elsewhere XLA's own convolution."""
  return tap_weight_grad_conv if jax.default_backend() == 'cpu' else None


def patches_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None,
                 preferred_element_type=None):
  """``lax.conv_general_dilated`` (NHWC x HWIO) computed as patches @ kernel.

  Same numbers to float rounding (tested). The k*k shifted, strided slices of
  the padded input are concatenated on the channel axis and multiplied by the
  kernel reshaped to (k*k*in) x out, so every derivative, of any order, is a
  matmul, a slice or a pad. Why: D's step differentiates D's input gradient
  (the gradient penalty), and XLA's CPU backend computes that second
  derivative of a strided conv 10-20x slower than this form; it made the D
  step ~10x slower than the reference's on a CPU. Used for D's strided convs
  on CPU only (``_strided_conv_impl``).
  """
  _check_plain('patches_conv', lhs_dilation, rhs_dilation, dimension_numbers,
               feature_group_count, preferred_element_type)
  kh, kw, cin, cout = rhs.shape
  taps = _shifted_taps(lhs, kh, kw, window_strides, _explicit_padding('patches_conv', padding))
  patches = jnp.concatenate(taps, axis=-1)
  return jnp.einsum('nhwk,ko->nhwo', patches, rhs.reshape(kh * kw * cin, cout),
                    precision=precision)


def _strided_conv_impl():
  """D's strided convs: ``patches_conv`` on CPU; elsewhere XLA's own convolution."""
  return patches_conv if jax.default_backend() == 'cpu' else None


class ConvTranspose4x4(nn.Module):
  """PyTorch's ``ConvTranspose2d(k=4, s=2, p=1, bias=False)``, computed sub-pixel.

  The parameter is exactly ``nn.ConvTranspose(features, (4, 4), strides=2,
  padding=2, transpose_kernel=True)``'s kernel (k x k x out x in; PyTorch's
  IOHW weight is ``kernel.transpose(3, 2, 0, 1)``), and the output is the
  same to float rounding (tested), but it is computed as four 2x2 convs, one
  per output phase, interleaved: output row 2m takes input rows m-1, m with
  kernel rows 3, 1; row 2m+1 takes rows m, m+1 with kernel rows 2, 0 (and
  likewise for columns). Why: XLA's CPU backend computes the weight gradient
  of a strided ``conv_transpose`` some 17x slower than this form, which made
  it most of G's step on CPU; the sub-pixel form has no multiplications by
  the zeros a strided transposed conv inserts.
  """

  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', torch_uniform_init(), (4, 4, self.features, x.shape[-1]),
                        jnp.float32).astype(self.dtype)
    x = x.astype(self.dtype)
    conv = _g_conv_impl() or jax.lax.conv_general_dilated
    taps, pads = ((3, 1), (2, 0)), ((1, 0), (0, 1))
    rows = []
    for ry in (0, 1):
      cols = []
      for rx in (0, 1):
        k = kernel[np.array(taps[ry])][:, np.array(taps[rx])]  # 2 x 2 x out x in
        cols.append(conv(x, jnp.swapaxes(k, 2, 3), (1, 1), (pads[ry], pads[rx]),
                         dimension_numbers=_NHWC))
      rows.append(jnp.stack(cols, axis=3))  # N, H, W, rx, C
    y = jnp.stack(rows, axis=2)  # N, H, ry, W, rx, C
    n, h, _, w, _, c = y.shape
    return y.reshape(n, 2 * h, 2 * w, c)


class ResidualBlock(nn.Module):
  """x + IN(conv3x3(ReLU(IN(conv3x3(x))))); no ReLU after the add."""

  dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = _conv(self.dim, 3, 1, 1, dtype=self.dtype, conv_general_dilated=_g_conv_impl())(x)
    h = nn.relu(InstanceNorm(dtype=self.dtype)(h))
    h = _conv(self.dim, 3, 1, 1, dtype=self.dtype, conv_general_dilated=_g_conv_impl())(h)
    h = InstanceNorm(dtype=self.dtype)(h)
    return x + h


class Generator(nn.Module):
  """G(x, c): image N x H x W x 3 in [-1, 1] and labels N x c_dim -> image."""

  conv_dim: int = 64
  c_dim: int = 5
  repeat_num: int = 6
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, c):
    if c.shape[-1] != self.c_dim:
      raise ValueError(f'Generator built for c_dim={self.c_dim} got labels of shape {c.shape}')
    n, h, w, _ = x.shape
    # The label is tiled spatially and concatenated after the image channels,
    # as torch.cat([x, c], dim=1) in the reference.
    c_map = jnp.broadcast_to(c[:, None, None, :].astype(x.dtype), (n, h, w, c.shape[-1]))
    y = jnp.concatenate([x, c_map], axis=-1).astype(self.dtype)

    dim = self.conv_dim
    y = _conv(dim, 7, 1, 3, dtype=self.dtype, conv_general_dilated=_g_conv_impl())(y)
    y = nn.relu(InstanceNorm(dtype=self.dtype)(y))
    for _ in range(2):  # down-sampling
      dim *= 2
      y = _conv(dim, 4, 2, 1, dtype=self.dtype, conv_general_dilated=_g_conv_impl())(y)
      y = nn.relu(InstanceNorm(dtype=self.dtype)(y))
    for _ in range(self.repeat_num):  # bottleneck
      y = ResidualBlock(dim, dtype=self.dtype)(y)
    for _ in range(2):  # up-sampling
      dim //= 2
      y = ConvTranspose4x4(dim, dtype=self.dtype)(y)
      y = nn.relu(InstanceNorm(dtype=self.dtype)(y))
    y = _conv(3, 7, 1, 3, dtype=self.dtype)(y)
    return jnp.tanh(y.astype(jnp.float32))


class Discriminator(nn.Module):
  """PatchGAN critic with an auxiliary domain classifier.

  Returns ``(out_src, out_cls)``: N x H/2^r x W/2^r x 1 critic values and
  N x c_dim classification logits (r = repeat_num).
  """

  image_size: int = 128
  conv_dim: int = 64
  c_dim: int = 5
  repeat_num: int = 6
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    if x.shape[1] != self.image_size or x.shape[2] != self.image_size:
      raise ValueError(
          f'Discriminator built for image_size={self.image_size} got images of shape {x.shape}')
    kernel_size = self.image_size // 2**self.repeat_num
    if kernel_size < 1 or kernel_size * 2**self.repeat_num != self.image_size:
      raise ValueError(
          f'image_size={self.image_size} must be a multiple of 2**repeat_num={2**self.repeat_num}')
    h = x.astype(self.dtype)
    in_ch = x.shape[-1]
    for i in range(self.repeat_num):
      out_ch = self.conv_dim * 2**i
      h = nn.Conv(
          out_ch,
          (4, 4),
          strides=(2, 2),
          padding=((1, 1), (1, 1)),
          use_bias=True,
          kernel_init=torch_uniform_init(),
          bias_init=torch_bias_init(in_ch * 16),
          dtype=self.dtype,
          param_dtype=jnp.float32,
          conv_general_dilated=_strided_conv_impl(),
      )(h)
      h = nn.leaky_relu(h, 0.01)
      in_ch = out_ch
    out_src = _conv(1, 3, 1, 1, dtype=self.dtype, name='conv_src')(h)
    out_cls = nn.Conv(
        self.c_dim,
        (kernel_size, kernel_size),
        padding='VALID',
        use_bias=False,
        kernel_init=torch_uniform_init(),
        dtype=self.dtype,
        param_dtype=jnp.float32,
        name='conv_cls',
    )(h)
    return out_src.astype(jnp.float32), out_cls.reshape(x.shape[0], self.c_dim).astype(jnp.float32)


def count_params(params) -> int:
  return sum(int(math.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


def init_params(model: nn.Module, key, image_size: int, c_dim: int | None = None):
  """Initialises ``model`` for NHWC inputs of ``image_size`` (batch 1)."""
  x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  if isinstance(model, Generator):
    return model.init(key, x, jnp.zeros((1, model.c_dim), jnp.float32))
  return model.init(key, x)
