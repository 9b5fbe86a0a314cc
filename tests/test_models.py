"""Networks: parameter counts (the reference's), shapes, layer semantics, initialisation;
the convolution forms (``models.conv``): each gives XLA's numbers; the rule that picks them."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from stargan_jax import cli
from stargan_jax import config as config_lib
from stargan_jax import labels as labels_lib
from stargan_jax import losses
from stargan_jax import models
from stargan_jax import steps
from stargan_jax.models import conv

# (G label dim, D cls dim, image size) -> (G params, D params): the
# reference's networks (yunjey/stargan model.py) counted in PyTorch.
PARAM_COUNTS = [
    ('celeba', 5, 5, 128, 8_430_528, 44_762_048),
    ('rafd', 8, 8, 128, 8_439_936, 44_786_624),
    ('joint', 15, 13, 128, 8_461_888, 44_827_584),
    ('joint256', 15, 13, 256, 8_461_888, 45_147_072),
    ('celeba256', 5, 5, 256, 8_430_528, 44_884_928),
]


@pytest.mark.parametrize('name,g_c,d_c,size,g_count,d_count', PARAM_COUNTS)
def test_parameter_counts_match_reference(name, g_c, d_c, size, g_count, d_count):
  del name
  g = jax.eval_shape(lambda k: models.init_params(models.Generator(c_dim=g_c), k, size),
                     jax.random.key(0))
  d = jax.eval_shape(
      lambda k: models.init_params(models.Discriminator(image_size=size, c_dim=d_c), k, size),
      jax.random.key(0))
  assert models.count_params(g) == g_count
  assert models.count_params(d) == d_count


def test_full_size_output_shapes():
  g, d = models.Generator(c_dim=5), models.Discriminator(image_size=128, c_dim=5)
  x = jax.ShapeDtypeStruct((2, 128, 128, 3), jnp.float32)
  c = jax.ShapeDtypeStruct((2, 5), jnp.float32)
  gp = jax.eval_shape(lambda k: models.init_params(g, k, 128), jax.random.key(0))
  dp = jax.eval_shape(lambda k: models.init_params(d, k, 128), jax.random.key(0))
  assert jax.eval_shape(g.apply, gp, x, c).shape == (2, 128, 128, 3)
  src, cls = jax.eval_shape(d.apply, dp, x)
  assert src.shape == (2, 2, 2, 1) and cls.shape == (2, 5)


def test_no_bias_in_g_bias_in_d_trunk_only():
  gp = jax.eval_shape(lambda k: models.init_params(models.Generator(8, 5, 1), k, 32),
                      jax.random.key(0))
  g_names = ['/'.join(str(getattr(p, 'key', p)) for p in path)
             for path, _ in jax.tree_util.tree_leaves_with_path(gp)]
  assert not any(n.endswith('bias') and 'InstanceNorm' not in n for n in g_names)
  dp = jax.eval_shape(lambda k: models.init_params(models.Discriminator(32, 8, 5, 5), k, 32),
                      jax.random.key(0))
  d = dp['params']
  assert all('bias' in d[f'Conv_{i}'] for i in range(5))
  assert set(d['conv_src']) == {'kernel'} and set(d['conv_cls']) == {'kernel'}


def test_tiny_forward_shapes_and_range():
  g, d = models.Generator(8, 5, 1), models.Discriminator(32, 8, 5, 5)
  x = jax.random.uniform(jax.random.key(1), (3, 32, 32, 3), minval=-1, maxval=1)
  c = jnp.eye(5)[:3]
  y = g.apply(models.init_params(g, jax.random.key(0), 32), x, c)
  assert y.shape == x.shape and float(jnp.max(jnp.abs(y))) <= 1.0
  src, cls = d.apply(models.init_params(d, jax.random.key(0), 32), x)
  assert src.shape == (3, 1, 1, 1) and cls.shape == (3, 5)


def test_label_is_tiled_and_changes_output():
  g = models.Generator(8, 5, 1)
  p = models.init_params(g, jax.random.key(0), 32)
  x = jnp.zeros((1, 32, 32, 3))
  a = g.apply(p, x, jnp.array([[1., 0, 0, 0, 0]]))
  b = g.apply(p, x, jnp.array([[0., 1, 0, 0, 0]]))
  assert float(jnp.max(jnp.abs(a - b))) > 1e-4
  with pytest.raises(ValueError, match='c_dim=5'):
    g.apply(p, x, jnp.zeros((1, 4)))


@pytest.mark.parametrize('impl', conv.IMPLS)
def test_sub_pixel_transposed_conv_equals_conv_transpose(impl):
  # Whatever computes it (sub-pixel or lax.conv_transpose), ConvTranspose4x4
  # is nn.ConvTranspose's transposed conv with the same parameter.
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))
  ref = nn.ConvTranspose(12, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                         transpose_kernel=True, use_bias=False)
  params = ref.init(jax.random.key(1), x)
  ours = models.ConvTranspose4x4(12, conv_impl=impl)
  assert jax.tree_util.tree_map(jnp.shape, ours.init(jax.random.key(1), x)) == \
      jax.tree_util.tree_map(jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), atol=1e-5)


def test_subpixel_conv_transpose_gradients_and_its_one_case():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 6))
  k = jax.random.normal(jax.random.key(1), (4, 4, 5, 6)) * 0.1
  args = ((2, 2), ((2, 2), (2, 2)))
  ref = lambda x, k: jax.lax.conv_transpose(x, k, *args, transpose_kernel=True)
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))
  for inner in (jax.lax.conv_general_dilated, models.cpu_conv):
    ours = lambda x, k: models.subpixel_conv_transpose(x, k, *args, transpose_kernel=True,
                                                       conv=inner)
    np.testing.assert_allclose(ours(x, k), ref(x, k), atol=1e-5)
    for a, b in zip(jax.grad(loss(ours), (0, 1))(x, k), jax.grad(loss(ref), (0, 1))(x, k)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='4x4, stride-2, padding-2'):
    models.subpixel_conv_transpose(x, k, (1, 1), ((2, 2), (2, 2)), transpose_kernel=True)
  with pytest.raises(ValueError, match='transpose_kernel=True'):
    models.subpixel_conv_transpose(x, k, *args)


def test_instance_norm_is_per_image():
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3)) * jnp.array([1.0, 5.0])[:, None, None, None]
  norm = models.InstanceNorm()
  y = norm.apply(norm.init(jax.random.key(0), x), x)
  np.testing.assert_allclose(jnp.mean(y, axis=(1, 2)), 0.0, atol=1e-5)
  # biased variance, eps 1e-5
  np.testing.assert_allclose(jnp.var(y, axis=(1, 2)), 1.0, atol=1e-3)
  # one image's statistics do not depend on the other image
  y0 = norm.apply(norm.init(jax.random.key(0), x), x[:1])
  np.testing.assert_allclose(y0, y[:1], atol=1e-6)


def test_pytorch_default_initialisation_bounds():
  d = models.Discriminator(32, 8, 5, 5)
  p = models.init_params(d, jax.random.key(0), 32)['params']
  k = p['Conv_1']['kernel']  # 4 x 4 x 8 x 16
  bound = 1 / math.sqrt(4 * 4 * 8)
  assert float(jnp.max(jnp.abs(k))) <= bound
  assert float(jnp.max(jnp.abs(k))) > 0.9 * bound  # uniform, not a narrow normal
  assert float(jnp.max(jnp.abs(p['Conv_1']['bias']))) <= bound
  assert float(jnp.max(jnp.abs(p['Conv_1']['bias']))) > 0.5 * bound
  g = models.Generator(8, 5, 1)
  gp = models.init_params(g, jax.random.key(0), 32)['params']
  up = gp['ConvTranspose4x4_0']['kernel']  # 4 x 4 x out(16) x in(32): fan_in = out*k*k
  assert float(jnp.max(jnp.abs(up))) <= 1 / math.sqrt(16 * 16)
  assert float(jnp.max(jnp.abs(up))) > 0.9 / math.sqrt(16 * 16)
  norm = gp['InstanceNorm_0']
  assert float(jnp.min(norm['scale'])) == 1.0 and float(jnp.max(jnp.abs(norm['bias']))) == 0.0


def test_patches_conv_equals_xla_conv_with_second_derivatives():
  # D's strided convs on CPU (models.patches_conv): same values and the same
  # gradient-penalty derivative as lax.conv_general_dilated.
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  k = jax.random.normal(jax.random.key(1), (4, 4, 3, 5))
  dn = ('NHWC', 'HWIO', 'NHWC')
  ref = lambda x, k: jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                                   dimension_numbers=dn)
  ours = lambda x, k: models.patches_conv(x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=dn)
  np.testing.assert_allclose(ours(x, k), ref(x, k), atol=1e-5)

  def gp(conv, k):
    g = jax.grad(lambda x: jnp.sum(conv(x, k) ** 2))(x)
    return jnp.sum(g ** 2)
  np.testing.assert_allclose(jax.grad(lambda k: gp(ours, k))(k),
                             jax.grad(lambda k: gp(ref, k))(k), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('kernel,stride,padding', [
    (3, 1, ((1, 1), (1, 1))),  # residual blocks
    (4, 2, ((1, 1), (1, 1))),  # down-sampling
    (7, 1, ((3, 3), (3, 3))),  # first conv
    (2, 1, ((1, 0), (0, 1))),  # a sub-pixel phase of ConvTranspose4x4
])
def test_tap_weight_grad_conv_equals_xla_conv(kernel, stride, padding):
  # G's convs on CPU (models.tap_weight_grad_conv): XLA's forward and input
  # gradient, the weight gradient as one matmul per tap; same numbers.
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  k = jax.random.normal(jax.random.key(1), (kernel, kernel, 3, 5))
  dn = ('NHWC', 'HWIO', 'NHWC')
  ref = lambda x, k: jax.lax.conv_general_dilated(x, k, (stride, stride), padding,
                                                   dimension_numbers=dn)
  ours = lambda x, k: models.tap_weight_grad_conv(x, k, (stride, stride), padding,
                                                  dimension_numbers=dn)
  np.testing.assert_array_equal(ours(x, k), ref(x, k))
  w = jax.random.normal(jax.random.key(2), ref(x, k).shape)
  loss = lambda conv: lambda x, k: jnp.sum(jnp.tanh(conv(x, k)) * w)
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, k), jax.grad(loss(ref), (0, 1))(x, k)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='plain NHWC x HWIO convs only'):
    models.tap_weight_grad_conv(x, k, (1, 1), padding, rhs_dilation=(2, 2), dimension_numbers=dn)


@pytest.mark.parametrize('shape,kernel,stride,padding,cout', [
    ((2, 8, 12, 128), 3, 1, ((1, 1), (1, 1)), 128),  # residual blocks: Winograd F(4x4, 3x3)
    ((2, 4, 4, 128), 3, 1, ((1, 1), (1, 1)), 128),  # one Winograd tile
    ((2, 6, 6, 128), 3, 1, ((1, 1), (1, 1)), 128),  # not a multiple of 4: tap_weight_grad_conv
    ((2, 8, 8, 16), 3, 1, ((1, 1), (1, 1)), 16),  # narrow, small map: XLA's own
    ((1, 64, 68, 6), 4, 2, ((1, 1), (1, 1)), 10),  # down-sampling: space to depth backward
    ((1, 64, 64, 40), 4, 2, ((1, 1), (1, 1)), 8),  # the same, weight gradient tap by tap
    ((2, 8, 12, 6), 4, 2, ((1, 1), (1, 1)), 10),  # narrow, small map: XLA's own
    ((1, 64, 64, 64), 2, 1, ((1, 0), (0, 1)), 64),  # a sub-pixel phase: tap_weight_grad_conv
    ((1, 64, 64, 64), 7, 1, ((3, 3), (3, 3)), 3),  # last conv: shifted output gradient
    ((2, 8, 8, 16), 7, 1, ((3, 3), (3, 3)), 3),  # narrow, small map: XLA's own
    ((1, 64, 64, 16), 7, 1, ((3, 3), (3, 3)), 3),  # narrow, large map: XLA's own
    ((1, 64, 64, 3), 7, 1, ((3, 3), (3, 3)), 64),  # first conv: all taps in one matmul
    ((1, 64, 64, 40), 7, 1, ((3, 3), (3, 3)), 80),  # weight gradient tap by tap
])
def test_cpu_conv_equals_xla_conv(shape, kernel, stride, padding, cout):
  # G's convs on CPU (models.cpu_conv): every form gives XLA's values and
  # gradients to float rounding.
  x = jax.random.normal(jax.random.key(0), shape)
  bound = 1 / math.sqrt(kernel * kernel * shape[-1])  # the PyTorch init's scale
  k = jax.random.uniform(jax.random.key(1), (kernel, kernel, shape[-1], cout), minval=-bound,
                         maxval=bound)
  ref = lambda x, k: jax.lax.conv_general_dilated(x, k, (stride, stride), padding,
                                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  ours = lambda x, k: models.cpu_conv(x, k, (stride, stride), padding)
  y = ref(x, k)
  np.testing.assert_allclose(ours(x, k), y, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(y))))
  w = jax.random.normal(jax.random.key(2), y.shape)
  loss = lambda conv: lambda x, k: jnp.sum(jnp.tanh(conv(x, k)) * w)
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, k), jax.grad(loss(ref), (0, 1))(x, k)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize('shape,kernel,cout,form', [
    ((1, 64, 64, 8), 7, 16, 'xla'),  # the small preset's first conv (conv_dim 16)
    ((1, 64, 64, 16), 7, 3, 'xla'),  # its colour head
    ((1, 64, 64, 32), 7, 3, 'xla'),  # conv_dim 32's
    ((1, 64, 64, 8), 7, 64, 'tap'),  # the paper's first conv (conv_dim 64), at 64 px
    ((1, 64, 64, 64), 7, 3, 'tap'),  # the paper's colour head, at 64 px
    ((1, 32, 32, 64), 3, 64, 'xla'),  # a narrow residual block on a small map
])
def test_cpu_conv_form_by_shape(shape, kernel, cout, form):
  # Which form cpu_conv compiles: a narrow conv is XLA's own at any map size
  # (no custom_vjp in its program), the paper's widths keep the matmul
  # weight gradients.
  x = jnp.zeros(shape)
  k = jnp.zeros((kernel, kernel, shape[-1], cout))
  pad = ((kernel // 2, kernel // 2),) * 2
  jaxpr = str(jax.make_jaxpr(lambda x, k: models.cpu_conv(x, k, (1, 1), pad))(x, k))
  assert ('custom_vjp' in jaxpr) == (form == 'tap'), jaxpr


def test_heads_on_zero_padded_channels_give_the_unpadded_conv_and_its_gradients():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, 19)), jnp.float32)  # conv_dim 16 + 3 high-pass
  w = jnp.asarray(rng.normal(size=(7, 7, 19, 3)), jnp.float32)
  plain = jax.lax.conv_general_dilated
  padded = conv.channels_padded(plain)
  def loss(conv_fn):
    return lambda a, b: jnp.sum(conv_fn(a, b, (1, 1), ((3, 3), (3, 3)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC')) ** 2)
  np.testing.assert_allclose(loss(padded)(x, w), loss(plain)(x, w), rtol=1e-5)
  for got, want in zip(jax.grad(loss(padded), (0, 1))(x, w), jax.grad(loss(plain), (0, 1))(x, w)):
    assert got.shape == want.shape  # the kernel's gradient keeps 19 input channels
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('size,labels', [(32, 15), (64, 9), (64, 5)])  # joint demo; 9; CelebA
def test_first_conv_by_its_constant_label_channels_is_the_conv_on_all_channels(size, labels):
  # G's first conv (7x7, padding 3) on [image | tiled labels]: the image channels
  # by the conv, the labels' part from one conv of ones. Same output and
  # gradients (kernel and image: the reconstruction pass differentiates G's input).
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(-1, 1, (2, size, size, 3)), jnp.float32)
  c = jnp.asarray(rng.integers(0, 2, (2, labels)), jnp.float32)
  w = jnp.asarray(rng.uniform(-0.05, 0.05, (7, 7, 3 + labels, 16)), jnp.float32)
  plain = jax.lax.conv_general_dilated
  split = conv.constant_channels_conv(plain, conv.IMAGE_CHANNELS)

  def out(conv_fn, x, w):
    y = jnp.concatenate([x, jnp.broadcast_to(c[:, None, None], (2, size, size, labels))], -1)
    return conv_fn(y, w, (1, 1), ((3, 3), (3, 3)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  y0 = out(plain, x, w)
  np.testing.assert_allclose(out(split, x, w), y0, atol=1e-5 * float(jnp.max(jnp.abs(y0))))
  # A loss that weighs every output pixel differently, so the borders' taps count.
  weight = jnp.asarray(rng.normal(size=y0.shape), jnp.float32)
  loss = lambda conv_fn: lambda x, w: jnp.sum(weight * out(conv_fn, x, w))
  for got, want in zip(jax.grad(loss(split), (0, 1))(x, w), jax.grad(loss(plain), (0, 1))(x, w)):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5 * float(jnp.max(jnp.abs(want))))
  # Split only from MIN_CONSTANT_CHANNELS labels on; under that the conv on all channels.
  jaxpr = str(jax.make_jaxpr(lambda x, w: out(split, x, w))(x, w))
  assert (jaxpr.count('conv_general_dilated') == 2) == (labels >= conv.MIN_CONSTANT_CHANNELS)
  # Used where G's convs are the CPU forms; under 'xla' the first conv is computed as written.
  assert conv.select('winograd', 'g_labels', 'cpu') is not None
  assert conv.select('xla', 'g_labels', 'cpu') is None


def test_winograd_conv3x3_at_residual_block_size():
  # G's residual conv at the paper's width (256 channels, 8x8 tiles of 4x4):
  # Winograd F(4x4, 3x3) in float32 stays within 1e-4 of XLA's conv, relative
  # to the output's scale, forward and backward (measured: ~1.5e-5).
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 256))
  k = jax.random.uniform(jax.random.key(1), (3, 3, 256, 256), minval=-1 / 48, maxval=1 / 48)
  ref = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)),
                                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  y, y0 = models.winograd_conv3x3(x, k), ref(x, k)
  assert float(jnp.max(jnp.abs(y - y0))) < 1e-4 * float(jnp.max(jnp.abs(y0)))
  loss = lambda conv: lambda x, k: jnp.sum(conv(x, k) ** 2)
  for a, b in zip(jax.grad(loss(models.winograd_conv3x3), (0, 1))(x, k),
                  jax.grad(loss(ref), (0, 1))(x, k)):
    assert float(jnp.max(jnp.abs(a - b))) < 1e-4 * float(jnp.max(jnp.abs(b)))


def test_generator_uses_cpu_conv_under_winograd_and_matches_xla():
  # 64 px: the first and last convs and the first down-sampling conv take
  # the large-map forms; the rest (small maps) XLA's own.
  G = models.Generator(conv_dim=4, c_dim=5, repeat_num=1, conv_impl='winograd')
  x = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3), minval=-1, maxval=1)
  c = jnp.eye(5)[jnp.array([0, 3])]
  params = G.init(jax.random.key(1), x, c)
  loss = lambda g: lambda p: jnp.mean(jnp.abs(g.apply(p, x, c) - x))
  assert conv.select('winograd', 'g', 'cpu') is models.cpu_conv
  ours = jax.jit(jax.grad(loss(G)))(params)
  ref = jax.jit(jax.grad(loss(G.clone(conv_impl='xla'))))(params)  # XLA's own convs
  for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# -- conv_impl: every name gives XLA's numbers ----------------------------------

def _tree_close(a, b, rtol, atol_scale):
  for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(u, v, rtol=rtol, atol=atol_scale * float(jnp.max(jnp.abs(v))))


def _g_case():
  g = models.Generator(8, 5, 1, conv_impl='xla')
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1, maxval=1)
  c = jnp.eye(5)[jnp.array([1, 4])]
  return g, g.init(jax.random.key(1), x, c), x, c


def _g_outputs_and_gradients(impl):
  g, params, x, c = _g_case()
  g = g.clone(conv_impl=impl)

  def loss(p):
    # The G step's shape of derivative: through G twice (translation and
    # reconstruction).
    y = g.apply(p, x, c)
    return jnp.mean(jnp.abs(g.apply(p, y, c[::-1]) - x)) + jnp.mean(y ** 2)
  return jax.jit(lambda p: (g.apply(p, x, c), jax.grad(loss)(p)))(params)


def _d_outputs_gradients_and_penalty(impl):
  d = models.Discriminator(32, 8, 5, 3, conv_impl=impl)
  rng = np.random.default_rng(0)
  x_real = jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  x_fake = jnp.asarray(rng.uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  alpha = jnp.asarray(rng.uniform(size=(2, 1, 1, 1)), jnp.float32)
  params = d.init(jax.random.key(1), x_real)

  def f():
    def loss(p):  # the D step's: critic terms, classification and the gradient penalty
      src_real, cls_real = d.apply(p, x_real)
      src_fake, _ = d.apply(p, x_fake)
      gp = losses.gradient_penalty(lambda x: d.apply(p, x)[0], x_real, x_fake, alpha)
      return -jnp.mean(src_real) + jnp.mean(src_fake) + jnp.mean(cls_real ** 2) + 10 * gp, gp
    (_, gp), grads = jax.value_and_grad(loss, has_aux=True)(params)
    # The G step's: D's input gradient.
    dx = jax.grad(lambda x: jnp.sum(d.apply(params, x)[0]))(x_fake)
    return d.apply(params, x_real), gp, grads, dx
  return jax.jit(f)()


@pytest.fixture(scope='module')
def xla_reference():
  """XLA's own convolutions' results, computed once for every name compared with them."""
  return {'g': _g_outputs_and_gradients('xla'), 'd': _d_outputs_gradients_and_penalty('xla')}


@pytest.mark.parametrize('impl', [i for i in conv.IMPLS if i != 'xla'])
def test_generator_same_outputs_and_gradients_under_every_conv_impl(impl, xla_reference):
  y, grads = _g_outputs_and_gradients(impl)
  y0, grads0 = xla_reference['g']
  np.testing.assert_allclose(y, y0, atol=1e-5)
  _tree_close(grads, grads0, 1e-4, 1e-5)


@pytest.mark.parametrize('impl', [i for i in conv.IMPLS if i != 'xla'])
def test_discriminator_same_outputs_gradients_and_penalty_under_every_conv_impl(
    impl, xla_reference):
  out, gp, grads, dx = _d_outputs_gradients_and_penalty(impl)
  out0, gp0, grads0, dx0 = xla_reference['d']
  _tree_close(out, out0, 1e-5, 1e-6)
  np.testing.assert_allclose(gp, gp0, rtol=1e-5)
  _tree_close(grads, grads0, 1e-4, 1e-5)
  _tree_close(dx, dx0, 1e-5, 1e-6)


def test_unknown_conv_impl_is_a_user_error():
  for call in (lambda: conv.check('fast'), lambda: conv.resolve('fast', 'cpu'),
               lambda: conv.select('fast', 'g', 'cpu'),
               lambda: models.init_params(models.Discriminator(32, 8, 5, 5, conv_impl='fast'),
                                          jax.random.key(0), 32)):
    with pytest.raises(cli.UserError) as e:
      call()
    assert "--conv_impl='fast'" in str(e.value)
    assert 'auto, xla, patches, winograd' in str(e.value)
  cfg = config_lib.tiny_config()
  cfg.model.conv_impl = 'fast'
  with pytest.raises(cli.UserError, match='--conv_impl'):
    steps.StarGAN.from_config(cfg, LAYOUT)
  with pytest.raises(ValueError, match='role'):
    conv.select('xla', 'd_heads', 'cpu')


LAYOUT = labels_lib.LabelLayout((labels_lib.DomainSpec('x', ('a', 'b')),))


def test_from_config_passes_conv_impl_and_on_platform_resolves_it():
  cfg = config_lib.tiny_config()
  for impl in conv.IMPLS:
    cfg.model.conv_impl = impl
    model = steps.StarGAN.from_config(cfg, LAYOUT)
    assert model.G.conv_impl == model.D.conv_impl == impl
  cfg.model.conv_impl = 'auto'
  model = steps.StarGAN.from_config(cfg, LAYOUT)
  on_gpu = model.on_platform('gpu')
  assert on_gpu.G.conv_impl == on_gpu.D.conv_impl == 'xla'
  on_cpu = model.on_platform('cpu')
  assert on_cpu.G.conv_impl == on_cpu.D.conv_impl == conv.auto_impl('cpu', conv.read_cpuinfo())
  assert on_cpu.G.conv_impl in ('patches', 'winograd')
  cfg.model.conv_impl = 'winograd'  # a name is kept on every platform
  assert steps.StarGAN.from_config(cfg, LAYOUT).on_platform('gpu').G.conv_impl == 'winograd'


# Abbreviated /proc/cpuinfo texts of the two x86 kinds measured, and an ARM one.
CPUINFO_AVX512 = (
    'processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n'
    'flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 bmi2 avx512f avx512dq\n'
    'processor\t: 1\n'
    'flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 bmi2 avx512f avx512dq\n')
CPUINFO_AVX2 = (
    'processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B12\n'
    'flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2 sha_ni\n')
CPUINFO_ARM = 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 sve\n'


def test_auto_rule_by_platform_and_cpu_flags():
  assert conv.cpu_flags(CPUINFO_AVX512) >= {'avx2', 'avx512f'}
  assert 'avx512f' not in conv.cpu_flags(CPUINFO_AVX2)
  assert 'asimd' in conv.cpu_flags(CPUINFO_ARM)
  assert conv.cpu_flags(None) == conv.cpu_flags('') == frozenset()
  assert [conv.cpu_kind(t) for t in (CPUINFO_AVX512, CPUINFO_AVX2, CPUINFO_ARM, None)] == \
      ['avx512f', 'avx2', 'other', 'other']
  # The rule: G's CPU forms on the x86 kinds where they were measured to pay
  # (AVX2, AVX-512); on any other CPU only the D and transposed-conv forms.
  assert conv.auto_impl('cpu', CPUINFO_AVX2) == 'winograd'
  assert conv.auto_impl('cpu', CPUINFO_AVX512) == 'winograd'
  assert conv.auto_impl('cpu', CPUINFO_ARM) == 'patches'
  assert conv.auto_impl('cpu', None) == 'patches'  # /proc/cpuinfo unreadable
  for info in (CPUINFO_AVX2, CPUINFO_AVX512, None):
    assert conv.auto_impl('gpu', info) == conv.auto_impl('tpu', info) == 'xla'
  assert conv.resolve('auto', 'cpu', CPUINFO_AVX2) == 'winograd'
  assert conv.resolve('auto', 'gpu', CPUINFO_AVX2) == 'xla'
  assert conv.resolve('xla', 'cpu', CPUINFO_AVX2) == 'xla'  # a name is never overridden
  assert conv.resolve('auto', 'cpu') == conv.auto_impl('cpu', conv.read_cpuinfo())


def test_select_returns_each_roles_form():
  for role in conv.ROLES:
    assert conv.select('xla', role, 'cpu') is None  # XLA's own op
    assert conv.select('auto', role, 'gpu') is None
  assert conv.select('patches', 'g', 'cpu') is None
  assert conv.select('patches', 'd_strided', 'cpu') is models.patches_conv
  assert conv.select('winograd', 'd_strided', 'gpu') is models.patches_conv
  assert conv.select('winograd', 'g', 'cpu') is models.cpu_conv
  up = conv.select('patches', 'g_transpose', 'cpu')
  assert up.func is models.subpixel_conv_transpose
  assert up.keywords['conv'] is jax.lax.conv_general_dilated
  assert conv.select('winograd', 'g_transpose', 'cpu').keywords['conv'] is models.cpu_conv
  assert conv.describe('winograd', 'cpu')['forms'] == {
      'g': 'cpu_conv', 'g_labels': 'constant', 'g_transpose': 'subpixel', 'd_strided': 'patches'}
