"""Step functions: what each step changes, determinism, tracing, schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stargan_jax import config as config_lib
from stargan_jax import labels
from stargan_jax import steps

SPEC = labels.DomainSpec('procedural', ('Red', 'Green', 'Blue', 'Frame', 'Dark'),
                         exclusive=('Red', 'Green', 'Blue'))


def _tiny(layout=None, lambda_id=0.0):
  cfg = config_lib.default_config()
  cfg.data.image_size = 32
  cfg.model = config_lib.ModelConfig(8, 8, 1, 5)
  cfg.loss.lambda_id = lambda_id  # no identity loss unless asked
  cfg.optim.g_ema_decay = 0.0  # no EMA (tests/test_ema.py has it)
  return steps.StarGAN.from_config(cfg, layout or labels.LabelLayout((SPEC,)))


def _batch(n=4, c=5, seed=0):
  rng = np.random.default_rng(seed)
  return {'image': jnp.asarray(rng.uniform(-1, 1, (n, 32, 32, 3)), jnp.float32),
          'label': jnp.asarray(np.eye(c, dtype=np.float32)[rng.integers(0, c, n)])}


def _same(a, b):
  return all(bool(jnp.array_equal(x, y)) for x, y in
             zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_d_step_changes_only_d_and_g_step_only_g():
  model = _tiny()
  state = model.init(jax.random.key(0))
  key = jax.random.key(1)
  after_d, metrics = jax.jit(model.d_step, static_argnums=3)(state, _batch(), key, 0)
  assert _same(after_d.g_params, state.g_params) and _same(after_d.g_opt_state, state.g_opt_state)
  assert not _same(after_d.d_params, state.d_params)
  assert int(after_d.step) == 1
  assert set(metrics) == {'D/loss_real', 'D/loss_fake', 'D/loss_cls', 'D/loss_gp'}
  after_g, metrics = jax.jit(model.g_step, static_argnums=3)(after_d, _batch(), key, 0)
  assert _same(after_g.d_params, after_d.d_params) and _same(after_g.d_opt_state,
                                                             after_d.d_opt_state)
  assert not _same(after_g.g_params, after_d.g_params)
  assert int(after_g.step) == 1
  assert set(metrics) == {'G/loss_fake', 'G/loss_rec', 'G/loss_cls'}
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_ns_r1_adversarial_loss_is_off_by_default_and_changes_only_the_gan_terms():
  # Not StarGAN's (StarGAN v2's): non-saturating loss, R1 on reals; every preset keeps wgan-gp.
  for make in (config_lib.default_config, config_lib.small_config, config_lib.paper_config,
               config_lib.joint_demo_config):
    assert make().loss.adv_loss == 'wgan-gp'
  cfg = config_lib.default_config()
  cfg.data.image_size = 32
  cfg.model = config_lib.ModelConfig(8, 8, 1, 5)
  cfg.optim.g_ema_decay = 0.0
  layout = labels.LabelLayout((SPEC,))
  wgan = steps.StarGAN.from_config(cfg, layout)
  cfg.loss.adv_loss, cfg.loss.lambda_r1 = 'ns-r1', 2.0
  ns = steps.StarGAN.from_config(cfg, layout)
  state, key, batch = ns.init(jax.random.key(0)), jax.random.key(1), _batch()
  d = {m: jax.jit(m.d_step, static_argnums=3)(state, batch, key, 0) for m in (wgan, ns)}
  (ns_state, ns_m), (_, w_m) = d[ns], d[wgan]
  assert set(ns_m) == {'D/loss_real', 'D/loss_fake', 'D/loss_cls', 'D/loss_r1'}
  out_real, _ = ns.D.apply(state.d_params, batch['image'])
  np.testing.assert_allclose(float(ns_m['D/loss_real']),
                             float(jnp.mean(jax.nn.softplus(-out_real))), rtol=1e-5)
  np.testing.assert_allclose(float(ns_m['D/loss_cls']), float(w_m['D/loss_cls']), rtol=1e-6)
  assert float(ns_m['D/loss_r1']) > 0
  _, g_m = jax.jit(ns.g_step, static_argnums=3)(ns_state, batch, key, 0)
  _, gw_m = jax.jit(wgan.g_step, static_argnums=3)(ns_state, batch, key, 0)
  for k in ('G/loss_rec', 'G/loss_cls'):  # the same fakes, reconstructions and targets
    np.testing.assert_allclose(float(g_m[k]), float(gw_m[k]), rtol=1e-6)
  assert float(g_m['G/loss_fake']) > 0 and float(g_m['G/loss_fake']) != float(gw_m['G/loss_fake'])
  cfg.loss.adv_loss = 'hinge'
  with pytest.raises(Exception, match='--adv_loss must be one of wgan-gp, ns-r1'):
    cfg.check()


def test_identity_loss_is_off_by_default_and_is_l1_of_g_on_own_labels():
  # Not StarGAN's (CycleGAN's identity loss); only the demo turns it on.
  assert config_lib.LossConfig().lambda_id == 0
  assert config_lib.paper_config().loss.lambda_id == 0
  key, batch = jax.random.key(1), _batch()
  with_id, without = _tiny(lambda_id=3.0), _tiny()
  state = with_id.init(jax.random.key(0))
  state, _ = jax.jit(with_id.d_step, static_argnums=3)(state, batch, key, 0)
  after, metrics = jax.jit(with_id.g_step, static_argnums=3)(state, batch, key, 0)
  x_id = with_id.G.apply(state.g_params, batch['image'], with_id.layout.embed(0, batch['label']))
  expected = float(jnp.mean(jnp.abs(x_id - batch['image'])))
  assert float(metrics['G/loss_id']) == pytest.approx(expected, rel=1e-5)
  plain, plain_metrics = jax.jit(without.g_step, static_argnums=3)(state, batch, key, 0)
  assert 'G/loss_id' not in plain_metrics
  for k in plain_metrics:  # the same StarGAN terms; the update differs by the identity term
    assert float(metrics[k]) == pytest.approx(float(plain_metrics[k]), rel=1e-5)
  assert not _same(after.g_params, plain.g_params)


def test_same_key_same_result_other_key_differs():
  model = _tiny()
  d_step = jax.jit(model.d_step, static_argnums=3)
  state = model.init(jax.random.key(0))
  a, _ = d_step(state, _batch(), jax.random.key(1), 0)
  b, _ = d_step(state, _batch(), jax.random.key(1), 0)
  c, _ = d_step(state, _batch(), jax.random.key(2), 0)
  assert _same(a, b) and not _same(a.d_params, c.d_params)


def test_steps_trace_once():
  model = _tiny()
  traces = {'d': 0, 'g': 0}

  def d_fn(*args):
    traces['d'] += 1
    return model.d_step(*args)

  def g_fn(*args):
    traces['g'] += 1
    return model.g_step(*args)

  d_step = jax.jit(d_fn, static_argnums=3, donate_argnums=0)
  g_step = jax.jit(g_fn, static_argnums=3, donate_argnums=0)
  state, key = model.init(jax.random.key(0)), jax.random.key(1)
  for i in range(4):
    state, _ = d_step(state, _batch(seed=i), key, 0)
    state, _ = g_step(state, _batch(seed=i), key, 0)
  assert traces == {'d': 1, 'g': 1}
  assert int(state.step) == 4


def test_g_step_uses_the_same_targets_as_its_d_step():
  model = _tiny()
  state, key = jax.jit(model.init)(jax.random.key(0)), jax.random.key(3)
  c_org = _batch()['label']
  c_d, _ = model._targets(key, state.step, 0, c_org)  # what d_step draws at step 0
  after_d, _ = jax.jit(model.d_step, static_argnums=3)(state, _batch(), key, 0)
  c_g, _ = model._targets(key, after_d.step - 1, 0, c_org)  # what g_step recovers
  np.testing.assert_array_equal(c_d, c_g)
  # targets are the batch's own labels permuted
  assert sorted(map(tuple, np.asarray(c_d))) == sorted(map(tuple, np.asarray(c_org)))


def test_lr_schedules():
  cfg = config_lib.OptimConfig(num_iters=200_000, num_iters_decay=100_000)
  linear = steps.lr_schedule(cfg, 1e-4)
  np.testing.assert_allclose([float(linear(i)) for i in (0, 100_000, 150_000, 200_000)],
                             [1e-4, 1e-4, 5e-5, 0.0], rtol=1e-5, atol=1e-12)
  cfg.lr_schedule = 'reference'
  ref = steps.lr_schedule(cfg, 1e-4)
  # decremented by lr/100000 after iterations 101000, 102000, ... (1-based): ends at 99.9%
  assert float(ref(100_999)) == pytest.approx(1e-4)
  assert float(ref(101_000)) == pytest.approx(1e-4 - 1e-9)
  assert float(ref(199_999)) == pytest.approx(1e-4 * (1 - 99 / 100_000))
  cfg.lr_schedule = 'nope'
  with pytest.raises(ValueError, match='lr_schedule'):
    steps.lr_schedule(cfg, 1e-4)


def test_g_optimizer_schedule_counts_iterations():
  cfg = config_lib.OptimConfig(num_iters=100, num_iters_decay=50, n_critic=5)
  g_tx, d_tx = steps.make_optimizers(cfg)
  params = {'w': jnp.ones(())}
  grads = {'w': jnp.ones(())}
  # Adam's first update has magnitude lr; G's 15th update happens in iteration 74.
  state = g_tx.init(params)
  for _ in range(14):
    _, state = g_tx.update(grads, state, params)
  upd, _ = g_tx.update(grads, state, params)
  np.testing.assert_allclose(float(-upd['w']), 1e-4 * (100 - 74) / 50, rtol=1e-3)
