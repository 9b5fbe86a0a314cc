"""StarGAN generator and discriminator (Flax Linen, NHWC).

Layer for layer the networks of the reference implementation (yunjey/stargan,
``model.py``), with the same parameter counts: at 128 px with CelebA's 5
attributes G has 8,430,528 and D 44,762,048 parameters; with RaFD's 8
classes 8,439,936 and 44,786,624 (tested).

Deliberate details, each matching the PyTorch reference rather than Flax's
defaults:

* Initialisation is PyTorch's default (uniform in +-1/sqrt(fan_in) for weights
  and D's biases), not Flax's lecun_normal / zero bias.
* Instance norm always uses per-image statistics (the reference never switches
  to eval mode), biased variance, eps 1e-5, learnable scale 1 / shift 0.
* PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)`` is ``lax.conv_transpose`` with
  padding ``k - 1 - p = 2`` on each side and a transposed kernel
  (``ConvTranspose4x4`` holds exactly that parameter).
* ``dtype`` is the compute dtype (e.g. bfloat16); parameters stay float32 and
  the normalisation statistics are computed in float32.

``conv_impl`` (G's and D's attribute) names how the convolutions are
computed (``conv.py``: XLA's own, or other forms of the same convolutions
that are faster where XLA's CPU backend is slow); the parameters and the
numbers are the same to float rounding whatever the name.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from stargan_jax.models import conv

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


class ConvTranspose4x4(nn.Module):
  """PyTorch's ``ConvTranspose2d(k=4, s=2, p=1, bias=False)``.

  The parameter is exactly ``nn.ConvTranspose(features, (4, 4), strides=2,
  padding=2, transpose_kernel=True)``'s kernel (k x k x out x in; PyTorch's
  IOHW weight is ``kernel.transpose(3, 2, 0, 1)``); ``conv_impl`` decides
  whether it is computed by ``lax.conv_transpose`` or sub-pixel
  (``conv.subpixel_conv_transpose``), the same output to float rounding.
  """

  features: int
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', torch_uniform_init(), (4, 4, self.features, x.shape[-1]),
                        jnp.float32).astype(self.dtype)
    transpose = conv.select(self.conv_impl, 'g_transpose') or jax.lax.conv_transpose
    return transpose(x.astype(self.dtype), kernel, (2, 2), ((2, 2), (2, 2)),
                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'), transpose_kernel=True)


class ResidualBlock(nn.Module):
  """x + IN(conv3x3(ReLU(IN(conv3x3(x))))); no ReLU after the add."""

  dim: int
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    impl = conv.select(self.conv_impl, 'g')
    h = _conv(self.dim, 3, 1, 1, dtype=self.dtype, conv_general_dilated=impl)(x)
    h = nn.relu(InstanceNorm(dtype=self.dtype)(h))
    h = _conv(self.dim, 3, 1, 1, dtype=self.dtype, conv_general_dilated=impl)(h)
    h = InstanceNorm(dtype=self.dtype)(h)
    return x + h


UPSAMPLE = ('transpose', 'resize')

# Nearest-neighbour x2 followed by a 3x3 conv (padding 1) is a stride-2
# transposed conv whose 4x4 kernel is fixed by the 3x3 one: per axis, output
# row 2m is W[0] x[m-1] + (W[1] + W[2]) x[m] and row 2m+1 is (W[0] + W[1]) x[m]
# + W[2] x[m+1], i.e. the transposed conv's kernel rows (0, 1, 2, 3) are
# (W[2], W[1] + W[2], W[0] + W[1], W[0]) (its row 3 meets x[m-1], row 1 x[m]
# for output 2m; row 2 x[m], row 0 x[m+1] for 2m+1).
_RESIZE_TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], np.float32)


def resize_conv_as_transpose_kernel(w):
  """The 4x4 (out, in) transposed-conv kernel equal to nearest x2 then the 3x3 HWIO conv ``w``."""
  a = jnp.asarray(_RESIZE_TAPS, w.dtype)
  return jnp.einsum('ky,lx,yxio->kloi', a, a, w)


class ResizeConv3x3(nn.Module):
  """Nearest-neighbour x2 up-sampling, then a 3x3 conv (padding 1, no bias).

  The parameter is a plain 3x3 conv's (``kernel``, HWIO). Where ``conv_impl``
  computes G's transposed convs sub-pixel, the same numbers (to float
  rounding) come from that sub-pixel transposed conv with the 4x4 kernel
  ``resize_conv_as_transpose_kernel`` gives: four 2x2 convs at the input's
  size instead of one 3x3 conv at twice its size, 16 taps per input pixel
  against 36. Under ``xla`` it is computed as written.
  """

  features: int
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', torch_uniform_init(), (3, 3, x.shape[-1], self.features),
                        jnp.float32).astype(self.dtype)
    x = x.astype(self.dtype)
    transpose = conv.select(self.conv_impl, 'g_transpose')
    if transpose is None:
      up = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
      impl = conv.select(self.conv_impl, 'g') or jax.lax.conv_general_dilated
      return impl(up, kernel, (1, 1), ((1, 1), (1, 1)),
                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return transpose(x, resize_conv_as_transpose_kernel(kernel), (2, 2), ((2, 2), (2, 2)),
                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'), transpose_kernel=True)


def highpass(x):
  """x minus its 3x3 binomial blur ([1, 2, 1] / 4 per axis, edges repeated)."""
  x = x.astype(jnp.float32)
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='edge')
  rows = (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4
  blur = (rows[:, :, :-2] + 2 * rows[:, :, 1:-1] + rows[:, :, 2:]) / 4
  return x - blur


class Generator(nn.Module):
  """G(x, c): image N x H x W x 3 in [-1, 1] and labels N x c_dim -> image.

  ``conv_impl``: how the convolutions are computed (``conv.IMPLS``; roles
  ``g`` and ``g_transpose`` of ``conv.select``).

  ``output``: ``'image'`` is the paper's G, tanh of the last 7x7 conv.
  ``'mask'`` (not in StarGAN; GANimation's, Pumarola et al. 2018, which
  extends StarGAN) adds a second 7x7 head ``conv_mask`` giving a per-pixel
  mask ``a = sigmoid(.)``, and returns ``a * colour + (1 - a) * x``: where G
  changes nothing it copies the input's pixels. The paper's G must redraw
  every pixel from instance-normalised features, which lose each channel's
  spatial mean, i.e. the image's global colour; short runs then paint every
  background one grey and speckle it (README, Departures).

  ``upsample``: ``'transpose'`` is the paper's 4x4 stride-2 transposed conv.
  ``'resize'`` (not in StarGAN v1; StarGAN v2's up-sampling, Odena et al.
  2016's fix for checkerboard artefacts) doubles the size by nearest
  neighbour and then applies a 3x3 conv (``up_conv_0``, ``up_conv_1``), so
  every output pixel gets the same number of taps: at 64 px the transposed
  convs left a dotted grid on the faces G redrew (README, Departures).
  """

  conv_dim: int = 64
  c_dim: int = 5
  repeat_num: int = 6
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'
  output: str = 'image'
  upsample: str = 'transpose'
  highpass: bool = False
  head_input: bool = False

  @nn.compact
  def __call__(self, x, c):
    if self.upsample not in UPSAMPLE:
      raise ValueError(f'Generator upsample must be one of {UPSAMPLE}, got {self.upsample!r}')
    if c.shape[-1] != self.c_dim:
      raise ValueError(f'Generator built for c_dim={self.c_dim} got labels of shape {c.shape}')
    n, h, w, _ = x.shape
    # The label is tiled spatially and concatenated after the image channels,
    # as torch.cat([x, c], dim=1) in the reference.
    c_map = jnp.broadcast_to(c[:, None, None, :].astype(x.dtype), (n, h, w, c.shape[-1]))
    y = jnp.concatenate([x, c_map], axis=-1).astype(self.dtype)

    impl = conv.select(self.conv_impl, 'g')
    dim = self.conv_dim
    y = _conv(dim, 7, 1, 3, dtype=self.dtype,
              conv_general_dilated=conv.select(self.conv_impl, 'g_labels'))(y)
    y = nn.relu(InstanceNorm(dtype=self.dtype)(y))
    for _ in range(2):  # down-sampling
      dim *= 2
      y = _conv(dim, 4, 2, 1, dtype=self.dtype, conv_general_dilated=impl)(y)
      y = nn.relu(InstanceNorm(dtype=self.dtype)(y))
    for _ in range(self.repeat_num):  # bottleneck
      y = ResidualBlock(dim, dtype=self.dtype, conv_impl=self.conv_impl)(y)
    for i in range(2):  # up-sampling
      dim //= 2
      if self.upsample == 'transpose':
        y = ConvTranspose4x4(dim, dtype=self.dtype, conv_impl=self.conv_impl)(y)
      else:
        # Named, so that the paper's layers keep their automatic names (Conv_3 is
        # the colour head either way).
        y = ResizeConv3x3(dim, dtype=self.dtype, conv_impl=self.conv_impl,
                          name=f'up_conv_{i}')(y)
      y = nn.relu(InstanceNorm(dtype=self.dtype)(y))
    extra = []
    if self.highpass:
      # Not in StarGAN: the output heads (colour, and mask) also see the
      # input's high frequencies, which the down-sampling path loses, so what
      # G paints can carry the photo's grain instead of being smooth.
      extra.append(highpass(x))
    if self.head_input:
      # Not in StarGAN: the heads also see the input itself. The features
      # reaching them are instance-normalised, so they have lost the image's
      # local colours; with them the colour head can paint over a stroke it
      # removes (an old mouth's corners) in the colour of the skin around it,
      # where otherwise G left the stroke half-blended under its mask.
      extra.append(x)
    if extra:
      y = jnp.concatenate([y] + [e.astype(y.dtype) for e in extra], axis=-1)
      # conv_dim + 3 or + 6 input channels: XLA's CPU conv is far slower on
      # such a count than on the next multiple of 8, so the heads compute on
      # zero channels added to input and kernel (the same numbers; the
      # parameters keep the unpadded count).
      impl = conv.channels_padded(impl or jax.lax.conv_general_dilated)
    colour = jnp.tanh(
        _conv(3, 7, 1, 3, dtype=self.dtype, conv_general_dilated=impl)(y).astype(jnp.float32))
    if self.output == 'image':
      return colour
    if self.output != 'mask':
      raise ValueError(f"Generator output must be 'image' or 'mask', got {self.output!r}")
    a = jax.nn.sigmoid(_conv(1, 7, 1, 3, dtype=self.dtype, conv_general_dilated=impl,
                             name='conv_mask')(y).astype(jnp.float32))
    self.sow('intermediates', 'mask', a)  # read by the mask loss (--lambda_mask) only
    return a * colour + (1.0 - a) * x.astype(jnp.float32)


class Discriminator(nn.Module):
  """PatchGAN critic with an auxiliary domain classifier.

  Returns ``(out_src, out_cls)``: N x H/2^r x W/2^r x 1 critic values and
  N x c_dim classification logits (r = repeat_num). ``conv_impl``: how the
  strided convolutions are computed (``conv.IMPLS``; role ``d_strided`` of
  ``conv.select``); the two heads are XLA's convolutions.
  """

  image_size: int = 128
  conv_dim: int = 64
  c_dim: int = 5
  repeat_num: int = 6
  dtype: Dtype = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    if x.shape[1] != self.image_size or x.shape[2] != self.image_size:
      raise ValueError(
          f'Discriminator built for image_size={self.image_size} got images of shape {x.shape}')
    kernel_size = self.image_size // 2**self.repeat_num
    if kernel_size < 1 or kernel_size * 2**self.repeat_num != self.image_size:
      raise ValueError(
          f'image_size={self.image_size} must be a multiple of 2**repeat_num={2**self.repeat_num}')
    strided_conv = conv.select(self.conv_impl, 'd_strided')
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
          conv_general_dilated=strided_conv,
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


def init_params(model: nn.Module, key, image_size: int):
  """Initialises ``model`` for NHWC inputs of ``image_size`` (batch 1)."""
  x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  if isinstance(model, Generator):
    return model.init(key, x, jnp.zeros((1, model.c_dim), jnp.float32))
  return model.init(key, x)
