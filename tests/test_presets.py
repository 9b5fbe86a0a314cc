"""The attention-mask output of G, the presets and how one is chosen when none is given."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import cli
from stargan_jax import config as config_lib
from stargan_jax import labels as labels_lib
from stargan_jax import models


# The procedural set's one-dataset label layout, for the tests that build steps.
_PROCEDURAL = labels_lib.LabelLayout((labels_lib.DomainSpec(
    'procedural', ('Red', 'Green', 'Blue', 'Frame', 'Dark'), labels_lib.ATTRIBUTES),))


def _g(output):
  return models.Generator(conv_dim=8, c_dim=5, repeat_num=1, output=output)


def test_mask_output_adds_one_head_and_blends_colour_with_the_input():
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  c = jnp.eye(5)[jnp.array([0, 3])]
  plain = _g('image').init(jax.random.key(0), x, c)['params']
  masked = _g('mask').init(jax.random.key(0), x, c)['params']
  # The paper's parameters keep their names; the mask head is one 7x7 conv to 1 channel.
  assert set(masked) - set(plain) == {'conv_mask'}
  assert masked['conv_mask']['kernel'].shape == (7, 7, 8, 1)
  assert models.count_params(masked) - models.count_params(plain) == 7 * 7 * 8

  y = _g('mask').apply({'params': masked}, x, c)
  assert y.shape == x.shape and float(jnp.max(jnp.abs(y))) <= 1.0
  with pytest.raises(ValueError, match="'image' or 'mask'"):
    _g('other').init(jax.random.key(0), x, c)


def test_mask_output_is_the_blend_of_the_colour_head_and_the_input():
  x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (1, 32, 32, 3)), jnp.float32)
  c = jnp.eye(5)[jnp.array([2])]
  params = _g('mask').init(jax.random.key(1), x, c)['params']
  _, inter = _g('mask').apply({'params': params}, x, c, capture_intermediates=True)
  convs = {k: v['__call__'][0] for k, v in inter['intermediates'].items()
           if k.startswith('Conv') or k == 'conv_mask'}
  last = max((k for k in convs if k.startswith('Conv_')), key=lambda k: int(k.split('_')[1]))
  a = jax.nn.sigmoid(convs['conv_mask'])
  expect = a * jnp.tanh(convs[last]) + (1 - a) * x
  np.testing.assert_allclose(_g('mask').apply({'params': params}, x, c), expect, atol=1e-6)


def test_g_output_is_checked_stored_and_must_match_on_resume():
  cfg = config_lib.tiny_config()
  cfg.model.g_output = 'masked'
  with pytest.raises(cli.UserError, match='--g_output'):
    cfg.check()
  layout = _PROCEDURAL
  cfg.model.g_output = 'mask'
  saved = ckpt_lib.build_meta(cfg.check(), layout)
  assert saved['g_output'] == 'mask'
  assert config_lib.Config.from_dict(saved['config']).model.g_output == 'mask'
  plain = ckpt_lib.build_meta(config_lib.tiny_config(), layout)
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match='g_output'):
    ckpt_lib.check_compatible(saved, plain, 'ckpt/6')
  # A checkpoint from before the option (no key) is the paper's G.
  old = {k: v for k, v in plain.items() if k != 'g_output'}
  old['config'] = {g: dict(v) for g, v in plain['config'].items()}
  del old['config']['model']['g_output']
  assert config_lib.Config.from_dict(old['config']).model.g_output == 'image'
  ckpt_lib.check_compatible(old, plain, 'ckpt/6')


def test_resize_upsampling_replaces_the_transposed_convs_and_keeps_the_other_names():
  x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  c = jnp.eye(5)[jnp.array([1, 4])]
  g = lambda up: models.Generator(conv_dim=8, c_dim=5, repeat_num=1, output='mask', upsample=up)
  plain = g('transpose').init(jax.random.key(0), x, c)['params']
  resized = g('resize').init(jax.random.key(0), x, c)['params']
  assert set(plain) - set(resized) == {'ConvTranspose4x4_0', 'ConvTranspose4x4_1'}
  assert set(resized) - set(plain) == {'up_conv_0', 'up_conv_1'}
  assert resized['up_conv_0']['kernel'].shape == (3, 3, 32, 16)
  assert resized['up_conv_1']['kernel'].shape == (3, 3, 16, 8)
  for name in set(plain) & set(resized):  # every other layer, the same shapes
    assert jax.tree.map(jnp.shape, plain[name]) == jax.tree.map(jnp.shape, resized[name])
  y = g('resize').apply({'params': resized}, x, c)
  assert y.shape == x.shape and float(jnp.max(jnp.abs(y))) <= 1.0

  # The resize is nearest-neighbour: a 3x3 conv of the doubled map, not of a smoothed one.
  _, inter = g('resize').apply({'params': resized}, x, c, capture_intermediates=True,
                               mutable=['intermediates'])
  up_in = inter['intermediates']['ResidualBlock_0']['__call__'][0]  # the bottleneck's output
  k = resized['up_conv_0']['kernel']
  doubled = jnp.repeat(jnp.repeat(up_in, 2, axis=1), 2, axis=2)
  expect = jax.lax.conv_general_dilated(doubled, k, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  np.testing.assert_allclose(inter['intermediates']['up_conv_0']['__call__'][0], expect,
                             atol=1e-4)
  with pytest.raises(ValueError, match='upsample'):
    g('bilinear').init(jax.random.key(0), x, c)


@pytest.mark.parametrize('impl', ['patches', 'winograd'])
def test_resize_conv_computed_sub_pixel_equals_resize_then_conv(impl):
  """The sub-pixel form (four 2x2 convs at the input's size) against nearest x2 + 3x3 conv."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 5, 7, 6)), jnp.float32)
  plain = models.stargan.ResizeConv3x3(4, conv_impl='xla')
  fast = models.stargan.ResizeConv3x3(4, conv_impl=impl)
  params = plain.init(jax.random.key(1), x)
  assert params['params']['kernel'].shape == (3, 3, 6, 4)
  k = params['params']['kernel']
  by_hand = jax.lax.conv_general_dilated(
      jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2), k, (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  np.testing.assert_allclose(plain.apply(params, x), by_hand, atol=1e-5)
  np.testing.assert_allclose(fast.apply(params, x), by_hand, atol=1e-5)
  # The same gradients for the 3x3 kernel and the input.
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
  g_plain = jax.grad(loss(plain), argnums=(0, 1))(params, x)
  g_fast = jax.grad(loss(fast), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_fast)):
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_g_upsample_is_checked_stored_and_older_checkpoints_mean_transpose():
  cfg = config_lib.tiny_config()
  cfg.model.g_upsample = 'bilinear'
  with pytest.raises(cli.UserError, match='--g_upsample'):
    cfg.check()
  layout = _PROCEDURAL
  cfg.model.g_upsample = 'resize'
  saved = ckpt_lib.build_meta(cfg.check(), layout)
  assert saved['g_upsample'] == 'resize'
  assert config_lib.Config.from_dict(saved['config']).model.g_upsample == 'resize'
  plain = ckpt_lib.build_meta(config_lib.tiny_config(), layout)
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match='g_upsample'):
    ckpt_lib.check_compatible(saved, plain, 'ckpt/6')
  # A checkpoint from before the option (no key) has the paper's transposed convs:
  # it loads as such, and a resize config refuses it by name.
  old = {k: v for k, v in plain.items() if k != 'g_upsample'}
  old['config'] = {g: dict(v) for g, v in plain['config'].items()}
  del old['config']['model']['g_upsample']
  assert config_lib.Config.from_dict(old['config']).model.g_upsample == 'transpose'
  ckpt_lib.check_compatible(old, plain, 'ckpt/6')
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match='g_upsample: checkpoint has transpose'):
    ckpt_lib.check_compatible(old, saved, 'ckpt/6')


def test_presets_are_valid_and_the_paper_keeps_the_papers_g():
  for name, make in config_lib.PRESETS.items():
    make().check()
  assert config_lib.paper_config().model.g_output == 'image'
  assert config_lib.paper_config().model.g_upsample == 'transpose'
  assert config_lib.paper_config().optim.g_ema_decay == 0
  demo = config_lib.default_config()
  assert demo.data.datasets == ('faces',) and demo.data.image_size == 32
  assert (demo.model.g_output, demo.model.g_upsample) == ('mask', 'resize')
  assert config_lib.joint_demo_config().data.datasets == ('faces', 'faces_expr')
  small = config_lib.small_config()
  assert small.data.image_size == 64 and small.data.datasets == ('celeba',)
  assert small.model.g_upsample == config_lib.joint_demo_config().model.g_upsample == 'resize'
  assert small.data.image_size % 2**small.model.d_repeat_num == 0
  assert small.data.image_size // 2**small.model.d_repeat_num == 2  # a 2 x 2 PatchGAN output
  assert (small.optim.g_lr, small.optim.d_lr) == (5e-4, 1e-3)  # G's lr halved, D's the demo's


@pytest.mark.parametrize('datasets, preset', [
    ((), 'demo'), (('faces',), 'demo'), (('procedural',), 'demo'),
    (('faces', 'faces_expr'), 'joint'), (('celeba',), 'small'), (('rafd',), 'small'),
    (('folder',), 'small'), (('celeba', 'rafd'), 'small'), (('faces', 'celeba'), 'small')])
def test_preset_is_chosen_from_the_data(datasets, preset):
  chosen, why = config_lib.preset_for(datasets)
  assert chosen == preset
  assert f"'{preset}'" in why


def test_main_names_the_chosen_preset_and_never_trains_the_demo_on_celeba():
  from stargan_jax import main
  lines = []
  cli.parse(main.FLAGS, ['--workdir=w', '--datasets=celeba'])
  cfg = main.config_from_flags(log=lambda *a, **k: lines.append(a[0]))
  assert cfg.data.image_size == 64 and cfg.data.datasets == ('celeba',)
  assert len(lines) == 1 and "preset 'small'" in lines[0] and '--preset=paper' in lines[0]
  lines.clear()
  cli.parse(main.FLAGS, ['--workdir=w', '--datasets=celeba', '--preset=paper'])
  cfg = main.config_from_flags(log=lambda *a, **k: lines.append(a[0]))
  assert cfg.data.image_size == 128 and not lines  # an explicit preset is not announced
  cli.parse(main.FLAGS, ['--workdir=w'])
  cfg = main.config_from_flags(log=lambda *a, **k: lines.append(a[0]))
  assert cfg.data.datasets == ('faces',) and "'demo'" in lines[0]


def test_small_adds_its_rafd_settings_only_for_rafd_alone_and_flags_override_them():
  from stargan_jax import main
  base = config_lib.small_config('celeba')
  rafd = config_lib.small_config('rafd')
  assert (base.model.g_highpass, base.model.g_head_input, base.loss.lambda_rec) == (
      False, False, 20.0)
  assert (rafd.model.g_highpass, rafd.model.g_head_input, rafd.loss.lambda_rec) == (
      True, True, 10.0)
  # nothing else differs
  assert dataclasses.replace(rafd.model, g_highpass=False, g_head_input=False) == base.model
  assert dataclasses.replace(rafd.loss, lambda_rec=20.0) == base.loss
  joint = config_lib.small_config(('celeba', 'rafd'))  # attribute data in it: the base recipe
  assert (joint.model.g_highpass, joint.model.g_head_input, joint.loss.lambda_rec) == (
      False, False, 20.0)
  assert ('--g_highpass, --g_head_input and --lambda_rec=10' in
          config_lib.preset_for(('rafd',))[1])
  assert '--g_h' not in config_lib.preset_for(('celeba',))[1]
  assert config_lib.settings_as_flags({'loss': {'lambda_rec': 10.0, 'lambda_id': 0.0}}) == (
      '--lambda_rec=10 and --lambda_id=0')
  # One rule: the config main starts from, small_config and the start line agree on it.
  assert config_lib.preset_config('small', ('rafd',)) == rafd
  assert config_lib.preset_config('small', ('celeba', 'rafd')) == joint
  assert config_lib.dataset_settings('small', ('celeba',)) == {}
  for name in ('demo', 'joint', 'paper', 'tiny'):  # only small has data-dependent settings
    assert config_lib.preset_config(name, ('rafd',)) == dataclasses.replace(
        config_lib.PRESETS[name](), data=dataclasses.replace(
            config_lib.PRESETS[name]().data, datasets=('rafd',)))
  lines = []
  for argv in (['--datasets=rafd'], ['--datasets=rafd', '--preset=small']):
    cli.parse(main.FLAGS, ['--workdir=w'] + argv)
    cfg = main.config_from_flags(log=lambda *a, **k: lines.append(a[0]))
    assert cfg.data.datasets == ('rafd',) and cfg.model.g_highpass and cfg.model.g_head_input
    assert cfg.loss.lambda_rec == 10
  assert len(lines) == 1 and '--lambda_rec=10' in lines[0]  # only the chosen preset is announced
  cli.parse(main.FLAGS, ['--workdir=w', '--datasets=rafd', '--lambda_rec=20', '--nog_highpass',
                         '--nog_head_input'])
  cfg = main.config_from_flags(log=lambda *a, **k: None)
  assert (cfg.model.g_highpass, cfg.model.g_head_input, cfg.loss.lambda_rec) == (
      False, False, 20.0)


def test_highpass_is_zero_on_flat_and_linear_images_and_feeds_the_output_heads():
  ramp = jnp.broadcast_to(jnp.linspace(-1, 1, 16)[None, None, :, None], (1, 16, 16, 3))
  np.testing.assert_allclose(models.stargan.highpass(jnp.full((1, 8, 8, 3), 0.3)), 0, atol=1e-7)
  np.testing.assert_allclose(models.stargan.highpass(ramp)[:, :, 1:-1], 0, atol=1e-6)
  dot = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(16.0)
  assert float(models.stargan.highpass(dot)[0, 2, 2, 0]) == 16.0 - 4.0  # centre tap 4/16
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  c = jnp.eye(5)[jnp.array([0, 3])]
  plain = _g('mask').init(jax.random.key(0), x, c)['params']
  g_hp = models.Generator(conv_dim=8, c_dim=5, repeat_num=1, output='mask', highpass=True)
  hp = g_hp.init(jax.random.key(0), x, c)['params']
  # The colour and mask heads: three more inputs each.
  last, zeroed, without = _head_slices(hp, 8)
  assert hp[last]['kernel'].shape == (7, 7, 8 + 3, 3)
  assert hp['conv_mask']['kernel'].shape == (7, 7, 8 + 3, 1)
  assert models.count_params(hp) - models.count_params(plain) == 7 * 7 * 3 * 4
  # With the new input slices at zero it is G without the skip, exactly; with
  # them, the output follows the input's high frequencies.
  np.testing.assert_allclose(g_hp.apply({'params': zeroed}, x, c),
                             _g('mask').apply({'params': without}, x, c), atol=1e-6)
  assert float(jnp.max(jnp.abs(g_hp.apply({'params': hp}, x, c) -
                               g_hp.apply({'params': zeroed}, x, c)))) > 1e-3


def _head_slices(params, kept: int):
  """G's two output heads, and params with their input channels from ``kept`` on
  zeroed (``zeroed``) or cut away (``without``)."""
  last = max((k for k in params if k.startswith('Conv_')), key=lambda k: int(k.split('_')[1]))
  heads = (last, 'conv_mask')  # the colour and mask heads
  zeroed = dict(params, **{k: dict(params[k], kernel=params[k]['kernel'].at[:, :, kept:].set(0.0))
                           for k in heads})
  without = dict(params, **{k: dict(params[k], kernel=params[k]['kernel'][:, :, :kept])
                            for k in heads})
  return last, zeroed, without


def test_head_input_feeds_the_input_image_to_the_output_heads():
  x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  c = jnp.eye(5)[jnp.array([1, 4])]
  g_hp = models.Generator(conv_dim=8, c_dim=5, repeat_num=1, output='mask', highpass=True)
  g_both = models.Generator(conv_dim=8, c_dim=5, repeat_num=1, output='mask', highpass=True,
                            head_input=True)
  hp = g_hp.init(jax.random.key(0), x, c)['params']
  both = g_both.init(jax.random.key(0), x, c)['params']
  last, zeroed, without = _head_slices(both, 11)
  # After G's features and the high frequencies come the image's 3 channels.
  assert both[last]['kernel'].shape == (7, 7, 8 + 6, 3)
  assert both['conv_mask']['kernel'].shape == (7, 7, 8 + 6, 1)
  assert models.count_params(both) - models.count_params(hp) == 7 * 7 * 3 * 4
  # Its slices at zero: G with the high frequencies only, exactly. A colour
  # kernel that copies the centre pixel of the image slices makes the colour
  # the input's (tanh of it), which the features alone could not give; a zero
  # mask kernel (the heads have no bias) blends it half and half with x.
  np.testing.assert_allclose(g_both.apply({'params': zeroed}, x, c),
                             g_hp.apply({'params': without}, x, c), atol=1e-6)
  copy = jnp.zeros_like(both[last]['kernel']).at[3, 3, 11:, :].set(jnp.eye(3))
  params = dict(both, **{last: {'kernel': copy},
                         'conv_mask': {'kernel': jnp.zeros_like(both['conv_mask']['kernel'])}})
  np.testing.assert_allclose(g_both.apply({'params': params}, x, c),
                             0.5 * jnp.tanh(x) + 0.5 * x, atol=1e-5)
  # Without the high frequencies it comes right after G's features.
  g_in = models.Generator(conv_dim=8, c_dim=5, repeat_num=1, output='mask', head_input=True)
  assert g_in.init(jax.random.key(0), x, c)['params'][last]['kernel'].shape == (7, 7, 8 + 3, 3)


@pytest.mark.parametrize('field', ['g_highpass', 'g_head_input'])
def test_g_head_options_are_stored_and_older_checkpoints_mean_without(field):
  cfg = config_lib.tiny_config()
  setattr(cfg.model, field, True)
  saved = ckpt_lib.build_meta(cfg.check(), _PROCEDURAL)
  assert saved[field] is True
  assert getattr(config_lib.Config.from_dict(saved['config']).model, field) is True
  plain = ckpt_lib.build_meta(config_lib.tiny_config(), _PROCEDURAL)
  old = {k: v for k, v in plain.items() if k != field}
  old['config'] = {g: dict(v) for g, v in plain['config'].items()}
  del old['config']['model'][field]
  assert getattr(config_lib.Config.from_dict(old['config']).model, field) is False
  ckpt_lib.check_compatible(old, plain, 'ckpt/6')
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match=field):
    ckpt_lib.check_compatible(old, saved, 'ckpt/6')
  assert getattr(config_lib.paper_config().model, field) is False


def test_lambda_mask_needs_the_mask_output_and_is_logged():
  cfg = config_lib.tiny_config()
  cfg.loss.lambda_mask = 1.0
  with pytest.raises(cli.UserError, match='--lambda_mask=1.0 needs --g_output=mask'):
    cfg.check()
  cfg.loss.lambda_mask = -1.0
  cfg.model.g_output = 'mask'
  with pytest.raises(cli.UserError, match='--lambda_mask must be 0 or more'):
    cfg.check()
  assert config_lib.paper_config().loss.lambda_mask == 0
  # On, the G step computes and logs it (a scalar); off, it is neither computed nor logged.
  from stargan_jax import steps
  layout = _PROCEDURAL
  batch = {'image': jnp.zeros((2, 32, 32, 3)), 'label': jnp.eye(5)[jnp.array([0, 3])]}
  for weight in (1.0, 0.0):
    cfg.loss.lambda_mask = weight
    model = steps.StarGAN.from_config(cfg.check(), layout)
    state = jax.eval_shape(model.init, jax.random.key(0))
    _, metrics = jax.eval_shape(lambda s, b, k: model.g_step(s, b, k, 0), state, batch,
                                jax.random.key(1))
    assert ('G/loss_mask' in metrics) == bool(weight)
    if weight:
      assert metrics['G/loss_mask'].shape == ()


def test_d_cls_cutout_checked_and_logged_and_off_leaves_the_d_step_alone():
  cfg = config_lib.tiny_config()
  cfg.loss.d_cls_cutout = 1.0
  with pytest.raises(cli.UserError, match=r'--d_cls_cutout must be in \[0, 1\)'):
    cfg.check()
  assert config_lib.paper_config().loss.d_cls_cutout == 0
  from stargan_jax import steps
  layout = _PROCEDURAL
  x = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3), minval=-1, maxval=1)
  batch = {'image': x, 'label': jnp.eye(5)[jnp.array([0, 3, 1, 4])]}
  out = {}
  for frac in (0.0, 0.5):
    cfg.loss.d_cls_cutout = frac
    model = steps.StarGAN.from_config(cfg.check(), layout)
    state = model.init(jax.random.key(0))
    new, metrics = jax.jit(lambda s, b, k: model.d_step(s, b, k, 0))(state, batch,
                                                                      jax.random.key(1))
    out[frac] = (new, metrics)
    assert ('D/loss_cls_cutout' in metrics) == bool(frac)
  (off, m_off), (on, m_on) = out[0.0], out[0.5]
  # The same draws otherwise: the critic and GP terms are equal, the update is not.
  for k in ('D/loss_real', 'D/loss_fake', 'D/loss_gp', 'D/loss_cls'):
    np.testing.assert_allclose(float(m_on[k]), float(m_off[k]), rtol=1e-6)
  assert float(m_on['D/loss_cls_cutout']) != float(m_on['D/loss_cls'])
  diff = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), on.d_params,
                                off.d_params)
  assert max(jax.tree_util.tree_leaves(diff)) > 0
