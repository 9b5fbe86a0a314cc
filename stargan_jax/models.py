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
* On CPU only, G's convolutions go through ``cpu_conv`` and D's strided ones
  through ``patches_conv``: other forms of the same convolutions (Winograd
  F(4x4, 3x3) for the residual blocks, a space-to-depth backward pass for
  the down-sampling convs, matmul weight gradients), because XLA's CPU
  backend is slow on the derivatives they replace. Same parameters, same
  numbers to float rounding (tested); GPUs and TPUs use XLA's convolutions.
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


# The whole-tensor forms below (space to depth, all taps in one matmul) pay
# off on the paper's 64 x 64 and 128 x 128 feature maps; on smaller ones (the
# 32 px demo) the tap-by-tap form is faster.
_LARGE_PIXELS = 64 * 64


def _conv_tap_dw_bwd(strides, padding, res, g):
  x, w = res
  kh, kw, cin, cout = w.shape
  if ((kh, kw) == (3, 3) and strides == (1, 1) and padding == ((1, 1), (1, 1)) and
      x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0):
    # G's residual-block convs, most of its work: both gradients by Winograd.
    return jax.vjp(_winograd_conv3x3, x, w)[1](g)
  dx = jax.vjp(lambda x_: _xla_conv(x_, w, strides, padding), x)[1](g)[0]
  large = x.shape[1] * x.shape[2] >= _LARGE_PIXELS
  if large and strides == (1, 1) and cout < cin:
    # Few output channels (G's last conv, 64 -> 3): shift the small output
    # gradient instead of the input, all taps in one matmul:
    # dw[i, j] = sum_q xp[q] g[q - (i, j)], q over the padded input.
    (pt, pb), (pl, pr) = padding
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    shifted = jnp.concatenate(
        [jnp.pad(g, ((0, 0), (i, kh - 1 - i), (j, kw - 1 - j), (0, 0)))
         for i in range(kh) for j in range(kw)], axis=-1)
    dw = jax.lax.dot_general(xp.reshape(-1, cin), shifted.reshape(-1, kh * kw * cout),
                             (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
    dw = dw.reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3).astype(w.dtype)
    return dx, dw
  g2 = g.reshape(-1, cout)
  if large and kh * kw * cin <= 512:
    # Few input channels (G's first conv, 3 + c -> 64): all taps' shifted
    # inputs side by side, one matmul that reads the output gradient once.
    patches = jnp.concatenate(_shifted_taps(x, kh, kw, strides, padding), axis=-1)
    dw = jax.lax.dot_general(patches.reshape(-1, kh * kw * cin), g2, (((0,), (0,)), ((), ())),
                             preferred_element_type=jnp.float32)
    return dx, dw.reshape(kh, kw, cin, cout).astype(w.dtype)
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


# Winograd F(4x4, 3x3) [Lavin & Gray 2016]: a 4x4 output tile from its 6x6
# input tile with 36 multiplications per channel pair instead of 144.
_F4_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                   [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float32)
_F4_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float32)
_F4_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                   [0, 1, -1, 8, -8, 1]], np.float32)


def _combine(matrix, parts):
  """``[sum_j matrix[i, j] * parts[j] for i]``, skipping zeros and multiplications by +-1."""
  out = []
  for row in matrix:
    acc = None
    for coef, part in zip(row, parts):
      if coef == 0:
        continue
      term = part if coef == 1 else -part if coef == -1 else part * float(coef)
      acc = term if acc is None else acc + term
    out.append(acc)
  return out


def _f4_input_transform(x):
  """B^T d B of every 6x6 input tile of padded ``x``: a 6 x 6 list of (N*th*tw) x C arrays."""
  n, h, wd, c = x.shape
  th, tw = h // 4, wd // 4
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  # Rows of every tile (B^T d), materialised once: fused into the 36 column
  # transforms below, XLA recomputed them for each.
  t = jax.lax.optimization_barrier(
      _combine(_F4_BT, [xp[:, u:u + 4 * th:4] for u in range(6)]))
  return [[v.reshape(-1, c) for v in _combine(_F4_BT, [ta[:, :, u:u + 4 * tw:4] for u in range(6)])]
          for ta in t]


def _f4_kernel_transform(w):
  """G g G^T: a 6 x 6 list of C x K arrays (sums of scaled taps, cheap to differentiate)."""
  rows = _combine(_F4_G, [w[i] for i in range(3)])  # 6 x (3, C, K)
  return [_combine(_F4_G, [r[j] for j in range(3)]) for r in rows]


def _f4_output_transform(m, shape):
  """A^T m A: the 6 x 6 list of products back to the N x H x W x K output."""
  n, h, wd = shape
  rows = _combine(_F4_AT, [jnp.stack(ma) for ma in m])  # 4 x (6, P, K)
  out = jnp.stack([jnp.stack(_combine(_F4_AT, list(r))) for r in rows])  # 4, 4, P, K
  k = out.shape[-1]
  out = out.reshape(4, 4, n, h // 4, wd // 4, k).transpose(2, 3, 0, 4, 1, 5)
  return out.reshape(n, h, wd, k)  # N, th, 4, tw, 4, K -> N, H, W, K


def _f4_conv(x, w):
  v = _f4_input_transform(x)
  u = _f4_kernel_transform(w)
  m = [[jax.lax.dot_general(v[a][b], u[a][b], (((1,), (0,)), ((), ())),
                            preferred_element_type=jnp.float32).astype(x.dtype)
        for b in range(6)] for a in range(6)]
  return _f4_output_transform(m, x.shape[:3]), v


@jax.custom_vjp
def winograd_conv3x3(x, w):
  """A 3x3, stride-1, pad-1 conv (NHWC x HWIO; H, W multiples of 4) by Winograd F(4x4, 3x3).

  Input tiles (6x6, overlapping by 2) are transformed (B^T d B), multiplied
  by the transformed kernel (G g G^T) as 36 matmuls over channels, one per
  tile position, and transformed back (A^T m A) into 4x4 output tiles: 4x
  fewer multiplications than the direct conv [Lavin & Gray 2016]. The
  backward pass stays in the Winograd domain: the input gradient is the
  same conv of the output gradient with the flipped, transposed kernel, and
  the weight gradient is G^T (V^T dM) G with V the saved input tiles and dM
  the output gradient's tiles through A. Agrees with XLA's conv to ~1e-5
  relative in float32 (tested). Used for G's residual convs on CPU
  (``cpu_conv``): on XLA's CPU backend it is faster than XLA's conv forward
  and backward. Reverse mode only: nothing differentiates G twice.
  """
  return _f4_conv(x, w)[0]


def _winograd_fwd(x, w):
  y, v = _f4_conv(x, w)
  return y, (v, w)


def _winograd_bwd(res, g):
  v, w = res
  n, h, wd, k = g.shape
  # Output-gradient tiles through A (the transpose of A^T m A): dM[a][b].
  gt = g.reshape(n, h // 4, 4, wd // 4, 4, k)
  rows = _combine(_F4_AT.T, [gt[:, :, i] for i in range(4)])  # 6 x (N, th, tw, 4, K)
  dm = [[d.reshape(-1, k) for d in _combine(_F4_AT.T, [r[:, :, :, j] for j in range(4)])]
        for r in rows]
  du = [[jax.lax.dot_general(v[a][b], dm[a][b], (((0,), (0,)), ((), ())),
                             preferred_element_type=jnp.float32)
         for b in range(6)] for a in range(6)]
  # G^T dU G: the transpose of the kernel transform.
  du_rows = _combine(_F4_G.T, [jnp.stack(d) for d in du])  # 3 x (6, C, K)
  dw = jnp.stack([jnp.stack(_combine(_F4_G.T, list(r))) for r in du_rows]).astype(w.dtype)
  dx = _f4_conv(g, jnp.flip(w, (0, 1)).swapaxes(2, 3))[0]
  return dx, dw


winograd_conv3x3.defvjp(_winograd_fwd, _winograd_bwd)


def _space_to_depth(x):
  n, h, w, c = x.shape
  x = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // 2, w // 2, 4 * c)


def _s2d_conv4x4(x, w, padding):
  (pt, pb), (pl, pr) = padding
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  cin, cout = w.shape[2:]
  k = w.reshape(2, 2, 2, 2, cin, cout).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * cin, cout)
  return tap_weight_grad_conv(_space_to_depth(xp), k, (1, 1), 'VALID')


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def space_to_depth_conv4x4(x, w, padding):
  """A 4x4, stride-2 conv (NHWC x HWIO; even padded size), backward by space to depth.

  The forward pass is XLA's strided conv. The backward pass differentiates
  the same conv written as a 2x2, stride-1 conv of the padded input's 2x2
  pixel blocks stacked as channels (space to depth; kernel tap (2a + p,
  2b + q) becomes tap (a, b), channel block (p, q)) through
  ``tap_weight_grad_conv``: 4 taps of 4 x C_in channels instead of 16 of
  C_in. Same numbers to float rounding (tested). Why: on XLA's CPU backend
  this backward pass of G's down-sampling convs takes ~40% of the time of
  XLA's, while XLA's forward is the faster one.
  """
  return _xla_conv(x, w, (2, 2), padding)


def _s2d_fwd(x, w, padding):
  return _xla_conv(x, w, (2, 2), padding), (x, w)


def _s2d_bwd(padding, res, g):
  x, w = res
  return jax.vjp(lambda x_, w_: _s2d_conv4x4(x_, w_, padding), x, w)[1](g)


space_to_depth_conv4x4.defvjp(_s2d_fwd, _s2d_bwd)


# Winograd only where its 36 matmuls are large enough to pay for the tile
# transforms (the paper's 256-channel residual blocks); narrower convs (the
# demo's, the tests') keep XLA's forward pass, whose rounding is closer to
# the direct sum.
_WINOGRAD_MIN_CHANNELS = 128


def cpu_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
             dimension_numbers=None, feature_group_count=1, precision=None,
             preferred_element_type=None):
  """G's convs on CPU: ``lax.conv_general_dilated`` (NHWC x HWIO) by the fastest form.

  * 3x3, stride 1, pad 1, H and W multiples of 4, at least 128 channels in and
    out (the paper's residual blocks): ``winograd_conv3x3`` (Winograd F(4x4, 3x3)).
  * 4x4, stride 2, even padded size, at least 64 x 64 input (the paper's
    down-sampling convs): ``space_to_depth_conv4x4``.
  * under 128 channels in and out on a feature map under 64 x 64 (every conv
    of the 32 px demo's G): XLA's own conv, the faster there.
  * anything else: ``tap_weight_grad_conv`` (XLA's forward, faster weight gradient).
  All give XLA's numbers to float rounding (tested).
  """
  _check_plain('cpu_conv', lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
               preferred_element_type)
  strides = tuple(window_strides)
  pads = _explicit_padding('cpu_conv', padding)
  kh, kw = rhs.shape[:2]
  h, w = lhs.shape[1:3]
  if (kh, kw) == (3, 3) and strides == (1, 1) and pads == ((1, 1), (1, 1)) and \
      h % 4 == 0 and w % 4 == 0 and min(rhs.shape[2:]) >= _WINOGRAD_MIN_CHANNELS:
    return winograd_conv3x3(lhs, rhs)
  if (kh, kw) == (4, 4) and strides == (2, 2) and h * w >= _LARGE_PIXELS and \
      (h + sum(pads[0])) % 2 == 0 and (w + sum(pads[1])) % 2 == 0:
    return space_to_depth_conv4x4(lhs, rhs, pads)
  if h * w < _LARGE_PIXELS and max(rhs.shape[2:]) < _WINOGRAD_MIN_CHANNELS:
    # Narrow convs on small maps (all of the 32 px demo's G): XLA's own conv
    # is the faster there, and compiles faster (README, Devices and speed: the
    # demo's iteration 0.099 s instead of 0.129 s, its G step's compile 16 s
    # instead of 26 s, on a 2-core AMD EPYC).
    return _xla_conv(lhs, rhs, strides, pads)
  return tap_weight_grad_conv(lhs, rhs, strides, pads)


def _g_conv_impl():
  """G's convs: ``cpu_conv`` on CPU; elsewhere XLA's own convolution."""
  return cpu_conv if jax.default_backend() == 'cpu' else None


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
    phases = []
    for ry in (0, 1):
      for rx in (0, 1):
        k = kernel[np.array(taps[ry])][:, np.array(taps[rx])]  # 2 x 2 x out x in
        phases.append(conv(x, jnp.swapaxes(k, 2, 3), (1, 1), (pads[ry], pads[rx]),
                           dimension_numbers=_NHWC))
    n, h, w, c = phases[0].shape
    # One interleaving transpose: ry, rx, N, H, W, C -> N, H, ry, W, rx, C.
    y = jnp.stack(phases).reshape(2, 2, n, h, w, c).transpose(2, 3, 0, 4, 1, 5)
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
    y = _conv(3, 7, 1, 3, dtype=self.dtype, conv_general_dilated=_g_conv_impl())(y)
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
