"""How the networks' convolutions are computed, and the one rule that picks the form.

Every form here computes exactly the convolution XLA's ``lax`` op does (the
same parameters, the same numbers to float rounding; tested in
``tests/test_models.py``); they differ only in speed. XLA's CPU backend is
slow on some convolution derivatives, and the forms replace those:

* ``patches_conv``: a conv as patches @ kernel, so every derivative of any
  order is a matmul, a slice or a pad. For D's strided convs: the gradient
  penalty differentiates D's input gradient, and XLA's CPU backend computes
  that second derivative of a strided conv far slower than the matmuls.
* ``subpixel_conv_transpose``: PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)``
  as four 2x2 stride-1 convs, one per output phase. For G's up-sampling:
  XLA's CPU backend computes the weight gradient of a strided
  ``conv_transpose`` far slower than an ordinary conv's, and the sub-pixel
  form never multiplies the zeros a strided transposed conv inserts.
* ``cpu_conv``: G's other convs by the form that pays for their shape:
  ``winograd_conv3x3`` (Winograd F(4x4, 3x3), forward and backward) for the
  wide residual blocks, ``space_to_depth_conv4x4`` (backward pass by space
  to depth) for the down-sampling convs, ``tap_weight_grad_conv`` (weight
  gradients as matmuls, F(2x2, 3x3) for 3x3 ones) for the others, XLA's own
  for narrow convs on small maps and for the narrowest (under 64 channels)
  on any map. These pay where XLA's convolution
  gradients are slowest relative to its matmuls (x86 CPUs with AVX2 or AVX-512).
* ``constant_channels_conv``: G's first conv, on the image and its labels
  tiled over it, as the conv of the 3 image channels plus the labels'
  contribution, which is the same for every image but for the label values
  (a conv of ones, once per call): with the joint demo's 15 label channels,
  15 of that conv's 18 input channels did per image what one product of the
  labels with a fixed map does. From ``MIN_CONSTANT_CHANNELS`` labels on;
  with fewer it is the conv on all channels.
* ``channels_padded``: any of these on input channels zero-padded to a
  multiple of 8, for a conv whose input has an odd count (G's output heads
  with ``g_highpass``, conv_dim + 3): XLA's CPU conv is far slower on such a
  count than on the next multiple of 8.

``conv_impl`` (``--conv_impl``, ``ModelConfig.conv_impl``, the networks'
attribute) names which forms are used, per role:

  conv_impl   G's convs     G's first conv            G's transposed convs    D's strided convs
  ----------  ------------  ------------------------  ----------------------  -----------------
  xla         XLA           XLA, on all channels      lax.conv_transpose      XLA
  patches     XLA           constant_channels (XLA)   sub-pixel (XLA convs)   patches_conv
  winograd    cpu_conv      constant_channels         sub-pixel (cpu_conv)    patches_conv
  auto        auto_impl's choice of the above, by platform and CPU kind

``auto_impl`` is the rule: not a CPU (GPU, TPU): ``xla``; an x86 CPU with
AVX2 (with or without AVX-512): ``winograd``, the fastest name on both kinds
in ``experiments/cpu_speed.py``'s runs (README, Devices and speed); any other
CPU (ARM, flags unknown): ``patches``, whose D and transposed-conv forms
replace derivatives that are slow on every CPU measured, while the G forms
were tuned on x86 only. Only the G forms' choice depends on the CPU kind;
where they lose (they did on one AVX-512 machine), ``--conv_impl=patches``
is the override. A network
takes its name as an attribute and asks ``select`` for each role's
function; ``resolve`` fixes ``auto`` for a platform once (``train.jit_steps``
does, for its mesh's platform).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stargan_jax import cli

IMPLS = ('auto', 'xla', 'patches', 'winograd')
IMAGE_CHANNELS = 3  # G's input: an RGB image, then its labels tiled over it
# constant_channels_conv splits off the labels from this many on (the joint demo's 15):
# with 5 or 8 (the demo, small on CelebA or RaFD) the conv on all channels was as fast
# (README, Joint training), and it keeps those presets' measured runs' rounding.
MIN_CONSTANT_CHANNELS = 9
ROLES = ('g', 'g_labels', 'g_transpose', 'd_strided')

# What each concrete name uses per role: 'xla' is XLA's own op.
_FORMS = {
    'xla': {'g': 'xla', 'g_labels': 'xla', 'g_transpose': 'xla', 'd_strided': 'xla'},
    'patches': {'g': 'xla', 'g_labels': 'constant', 'g_transpose': 'subpixel',
                'd_strided': 'patches'},
    'winograd': {'g': 'cpu_conv', 'g_labels': 'constant', 'g_transpose': 'subpixel',
                 'd_strided': 'patches'},
}

_NHWC = ('NHWC', 'HWIO', 'NHWC')


# -- the rule -----------------------------------------------------------------

def cpu_flags(cpuinfo: str | None) -> frozenset[str]:
  """The feature flags of the first CPU in ``/proc/cpuinfo``'s text (x86 ``flags``, ARM
  ``Features``); empty when the text is None or has no such line."""
  for line in (cpuinfo or '').splitlines():
    key, sep, value = line.partition(':')
    if sep and key.strip() in ('flags', 'Features'):
      return frozenset(value.split())
  return frozenset()


@functools.lru_cache(maxsize=1)
def read_cpuinfo() -> str | None:
  """``/proc/cpuinfo``'s text, or None where there is none (not Linux) or it cannot be read."""
  try:
    with open('/proc/cpuinfo') as f:
      return f.read()
  except OSError:
    return None


def cpu_kind(cpuinfo: str | None) -> str:
  """'avx512f', 'avx2' (AVX2 without AVX-512) or 'other' (no x86 flags read)."""
  flags = cpu_flags(cpuinfo)
  if 'avx512f' in flags:
    return 'avx512f'
  return 'avx2' if 'avx2' in flags else 'other'


def auto_impl(platform: str, cpuinfo: str | None) -> str:
  """What ``auto`` means on ``platform`` ('cpu', 'gpu', 'tpu', ...) with this CPU info.

  Pure: ``cpuinfo`` is ``/proc/cpuinfo``'s text, or None when unknown.
  """
  if platform != 'cpu':
    return 'xla'
  return 'winograd' if cpu_kind(cpuinfo) in ('avx2', 'avx512f') else 'patches'


def check(impl: str) -> str:
  """``impl`` if it is a known name; otherwise a ``cli.UserError`` naming ``--conv_impl``."""
  if impl not in IMPLS:
    raise cli.UserError(f'--conv_impl={impl!r} is not a convolution form; valid names: '
                        f'{", ".join(IMPLS)}')
  return impl


def resolve(impl: str, platform: str | None = None, cpuinfo: str | None = None) -> str:
  """The concrete name (``xla``, ``patches`` or ``winograd``) ``impl`` means on ``platform``.

  ``platform`` defaults to JAX's default backend, ``cpuinfo`` to this
  machine's ``/proc/cpuinfo``.
  """
  if check(impl) != 'auto':
    return impl
  platform = platform or jax.default_backend()
  if platform == 'cpu' and cpuinfo is None:
    cpuinfo = read_cpuinfo()
  return auto_impl(platform, cpuinfo)


def select(impl: str, role: str, platform: str | None = None) -> Callable | None:
  """The function computing ``role``'s convolutions under ``impl``; None: XLA's own op.

  Roles: ``g`` (G's convs), ``g_labels`` (G's first conv, on the image and
  its tiled labels) and ``d_strided`` (D's strided convs) return a
  ``lax.conv_general_dilated``-compatible callable; ``g_transpose`` (G's
  4x4 stride-2 transposed convs) a ``lax.conv_transpose``-compatible one.
  """
  if role not in ROLES:
    raise ValueError(f'role must be one of {ROLES}, got {role!r}')
  forms = _FORMS[resolve(impl, platform)]
  form = forms[role]
  if form == 'xla':
    return None
  inner = cpu_conv if forms['g'] == 'cpu_conv' else jax.lax.conv_general_dilated
  if form == 'subpixel':
    return functools.partial(subpixel_conv_transpose, conv=inner)
  if form == 'constant':
    return constant_channels_conv(inner, IMAGE_CHANNELS)
  return {'cpu_conv': cpu_conv, 'patches': patches_conv}[form]


def describe(impl: str, platform: str | None = None) -> dict:
  """What ``impl`` means here: the concrete name and each role's form (for logs, benchmarks)."""
  name = resolve(impl, platform)
  return {'conv_impl': impl, 'resolved': name, 'forms': dict(_FORMS[name]),
          'cpu_kind': cpu_kind(read_cpuinfo()) if (platform or jax.default_backend()) == 'cpu'
          else None}


def channels_padded(conv_general_dilated, multiple: int = 8):
  """``conv_general_dilated`` (NHWC x HWIO) on input channels zero-padded to ``multiple``.

  Zero channels in the input meet zero rows of the kernel, so the output is
  the unpadded conv's; the kernel's gradient comes back through the pad as
  the unpadded kernel's.
  """
  def padded(lhs, rhs, *args, **kwargs):
    extra = -lhs.shape[-1] % multiple
    if extra:
      lhs = jnp.pad(lhs, ((0, 0), (0, 0), (0, 0), (0, extra)))
      rhs = jnp.pad(rhs, ((0, 0), (0, 0), (0, extra), (0, 0)))
    return conv_general_dilated(lhs, rhs, *args, **kwargs)
  return padded


def constant_channels_conv(conv_general_dilated, varying: int):
  """``conv_general_dilated`` (NHWC x HWIO) for an input whose channels from ``varying``
  on are constant over H and W (G's labels, tiled over the image).

  A constant channel's contribution to the output does not depend on the
  image: it is the label times the sum of the kernel taps that fall inside
  the image, which varies only near the border. So the conv runs on the
  first ``varying`` channels alone and adds ``sum_k c_k M_k``, where
  ``M_k`` (H' x W' x out) is label channel k's kernel applied once to an
  image of ones (one conv at batch 1 per call). The same numbers as the conv
  on all channels (float rounding aside), with its gradients: the labels'
  kernel rows are trained through ``M``. The caller guarantees the constant
  channels (position (0, 0) stands for the whole map). Under
  ``MIN_CONSTANT_CHANNELS`` constant channels it is the conv on all channels.
  """
  def fn(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
         dimension_numbers=None, feature_group_count=1, precision=None,
         preferred_element_type=None):
    _check_plain('constant_channels_conv', lhs_dilation, rhs_dilation, dimension_numbers,
                 feature_group_count, preferred_element_type)
    if lhs.shape[-1] - varying < MIN_CONSTANT_CHANNELS:
      return conv_general_dilated(lhs, rhs, window_strides, padding, precision=precision,
                                  dimension_numbers=_NHWC)
    consts, w_consts = lhs[:, 0, 0, varying:], rhs[:, :, varying:, :]
    kh, kw, k, out = w_consts.shape
    y = conv_general_dilated(lhs[..., :varying], rhs[:, :, :varying, :], window_strides, padding,
                             precision=precision, dimension_numbers=_NHWC)
    ones = jnp.ones((1,) + lhs.shape[1:3] + (1,), lhs.dtype)
    m = jax.lax.conv_general_dilated(ones, w_consts.reshape(kh, kw, 1, k * out),
                                     window_strides, padding, dimension_numbers=_NHWC,
                                     precision=precision)
    m = m.reshape(m.shape[1], m.shape[2], k, out)
    return y + jnp.einsum('nk,hwko->nhwo', consts, m, precision=precision).astype(y.dtype)
  return fn


# -- helpers ------------------------------------------------------------------

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


# -- D's strided convs ----------------------------------------------------------

def patches_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None,
                 preferred_element_type=None):
  """``lax.conv_general_dilated`` (NHWC x HWIO) computed as patches @ kernel.

  The k*k shifted, strided slices of the padded input are concatenated on
  the channel axis and multiplied by the kernel reshaped to (k*k*in) x out,
  so every derivative, of any order, is a matmul, a slice or a pad: the
  gradient penalty's second derivative of D's strided convs is then as fast
  as their forward pass, where XLA's CPU backend computes it far slower.
  """
  _check_plain('patches_conv', lhs_dilation, rhs_dilation, dimension_numbers,
               feature_group_count, preferred_element_type)
  kh, kw, cin, cout = rhs.shape
  taps = _shifted_taps(lhs, kh, kw, window_strides, _explicit_padding('patches_conv', padding))
  patches = jnp.concatenate(taps, axis=-1)
  return jnp.einsum('nhwk,ko->nhwo', patches, rhs.reshape(kh * kw * cin, cout),
                    precision=precision)


# -- G's transposed convs ---------------------------------------------------------

def subpixel_conv_transpose(lhs, rhs, strides, padding, rhs_dilation=None,
                            dimension_numbers=None, transpose_kernel=False, precision=None,
                            preferred_element_type=None, *, conv=jax.lax.conv_general_dilated):
  """``lax.conv_transpose`` for PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)``, sub-pixel.

  Handles only that case: a 4x4 kernel (HW(out)(in), ``transpose_kernel=True``),
  strides 2, padding 2 on every side, NHWC. Computed as four 2x2 stride-1
  convs by ``conv``, one per output phase, interleaved: output row 2m takes
  input rows m-1, m with kernel rows 3, 1; row 2m+1 takes rows m, m+1 with
  kernel rows 2, 0 (and likewise for columns). No multiplication by the
  zeros a strided transposed conv inserts, and each phase's weight gradient
  is an ordinary conv's.
  """
  pads = _explicit_padding('subpixel_conv_transpose', padding)
  if (rhs.shape[:2] != (4, 4) or tuple(strides) != (2, 2) or pads != ((2, 2), (2, 2)) or
      not transpose_kernel or rhs_dilation not in (None, (1, 1)) or
      preferred_element_type is not None or
      (dimension_numbers is not None and tuple(dimension_numbers) != _NHWC)):
    raise ValueError('subpixel_conv_transpose handles only a 4x4, stride-2, padding-2 NHWC '
                     f'transposed conv with transpose_kernel=True, got kernel {rhs.shape}, '
                     f'strides {strides}, padding {padding}, transpose_kernel={transpose_kernel}')
  taps, phase_pads = ((3, 1), (2, 0)), ((1, 0), (0, 1))
  phases = []
  for ry in (0, 1):
    for rx in (0, 1):
      k = rhs[np.array(taps[ry])][:, np.array(taps[rx])]  # 2 x 2 x out x in
      phases.append(conv(lhs, jnp.swapaxes(k, 2, 3), (1, 1), (phase_pads[ry], phase_pads[rx]),
                         dimension_numbers=_NHWC, precision=precision))
  n, h, w, c = phases[0].shape
  # One interleaving transpose: ry, rx, N, H, W, C -> N, H, ry, W, rx, C.
  y = jnp.stack(phases).reshape(2, 2, n, h, w, c).transpose(2, 3, 0, 4, 1, 5)
  return y.reshape(n, 2 * h, 2 * w, c)


# -- G's convs: tap weight gradients, Winograd, space to depth --------------------

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
  """``lax.conv_general_dilated`` (NHWC x HWIO) with the weight gradient as matmuls.

  The forward pass and the input gradient are XLA's own, except for 3x3,
  stride-1 convs, whose two gradients are both Winograd's F(2x2, 3x3)
  (``_winograd_conv3x3``). Otherwise the weight gradient is each kernel
  tap's shifted input against the output gradient, one matmul over batch
  and space (or all taps in one matmul on large maps). Why: XLA's CPU
  backend computes a conv's weight gradient at a fraction of its forward
  speed, and G's weight gradients are most of its step. Reverse mode only
  (a ``custom_vjp``): nothing differentiates G twice.
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
  # transforms below, XLA would recompute them for each.
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
  relative in float32 (tested). Reverse mode only: nothing differentiates
  G twice.
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
  C_in, where XLA's CPU backend is slow on the strided conv's gradients
  and fast on its forward pass.
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

# Convs with fewer channels than this in and out (the 7x7 convs of a G of
# conv_dim 16 or 32, e.g. the `small` preset's at 64 px) keep XLA's own conv
# at any map size: their weight gradient by matmuls must first build the
# shifted copies of a large, thin map, which costs more than XLA's direct
# gradient saves (README, Devices and speed). The paper's G (conv_dim 64)
# has no such conv, so its forms are unchanged.
_NARROW_CHANNELS = 64


def cpu_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
             dimension_numbers=None, feature_group_count=1, precision=None,
             preferred_element_type=None):
  """G's convs under ``winograd``: ``lax.conv_general_dilated`` (NHWC x HWIO) by shape.

  * 3x3, stride 1, pad 1, H and W multiples of 4, at least 128 channels in and
    out (the paper's residual blocks): ``winograd_conv3x3`` (Winograd F(4x4, 3x3)).
  * 4x4, stride 2, even padded size, at least 64 x 64 input (the paper's
    down-sampling convs): ``space_to_depth_conv4x4``.
  * under 128 channels in and out on a feature map under 64 x 64 (every conv
    of the 32 px demo's G), or under 64 channels in and out on any map (the
    7x7 convs of the 64 px `small` preset's G): XLA's own conv, there the
    faster, and the faster to compile.
  * anything else: ``tap_weight_grad_conv`` (XLA's forward, matmul weight gradient).
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
  widest = max(rhs.shape[2:])
  if widest < _NARROW_CHANNELS or (h * w < _LARGE_PIXELS and widest < _WINOGRAD_MIN_CHANNELS):
    return _xla_conv(lhs, rhs, strides, pads)
  return tap_weight_grad_conv(lhs, rhs, strides, pads)
