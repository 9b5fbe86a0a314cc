"""Joint training over several datasets with the mask vector (paper section 3.2)."""

import jax
import jax.numpy as jnp
import numpy as np

from stargan_jax import config as config_lib
from stargan_jax import labels
from stargan_jax import sampling
from stargan_jax import steps
from stargan_jax import train
from stargan_jax.evaluation import pixels

ATTR = labels.DomainSpec('procedural', ('Red', 'Green', 'Blue', 'Frame', 'Dark'),
                         exclusive=('Red', 'Green', 'Blue'))
CLS = labels.DomainSpec('procedural_classes', ('solid', 'hstripes', 'vstripes', 'checker'),
                        labels.CATEGORICAL)
LAYOUT = labels.LabelLayout((ATTR, CLS))


def _model():
  cfg = config_lib.default_config()
  cfg.data.image_size = 32
  cfg.model = config_lib.ModelConfig(8, 8, 1, 5)
  cfg.optim.g_ema_decay = 0.0
  return steps.StarGAN.from_config(cfg, LAYOUT)


def test_classification_uses_only_the_datasets_slice():
  model = _model()
  logits = jnp.array([[2.0, -1.0, 0.5, 1.0, -2.0, 3.0, 0.0, -1.0, 1.0]])
  attr = jnp.array([[1.0, 0.0, 0.0, 1.0, 0.0]])
  cls = jnp.array([[0.0, 1.0, 0.0, 0.0]])
  base0, base1 = model._cls_loss(logits, attr, 0), model._cls_loss(logits, cls, 1)
  # Changing the other dataset's logits changes nothing.
  other = logits.at[:, 5:].set(100.0)
  assert float(model._cls_loss(other, attr, 0)) == float(base0)
  other = logits.at[:, :5].set(-100.0)
  assert float(model._cls_loss(other, cls, 1)) == float(base1)
  # Sigmoid CE for the attribute slice, softmax CE for the categorical one.
  from stargan_jax import losses
  assert float(base0) == float(losses.attribute_cls_loss(logits[:, :5], attr))
  assert float(base1) == float(losses.categorical_cls_loss(logits[:, 5:], cls))


def test_joint_parameter_shapes():
  model = _model()
  state = jax.eval_shape(model.init, jax.random.key(0))
  first = state.g_params['params']['Conv_0']['kernel']
  assert first.shape[2] == 3 + 5 + 4 + 2  # image + c_1 + c_2 + mask
  assert state.d_params['params']['conv_cls']['kernel'].shape[-1] == 9


def test_joint_steps_update_d_and_g_for_each_dataset():
  model = _model()
  state = jax.jit(model.init)(jax.random.key(0))
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(-1, 1, (4, 32, 32, 3)), jnp.float32)
  batches = [{'image': x, 'label': jnp.asarray(np.eye(5, dtype=np.float32)[[0, 1, 2, 0]])},
             {'image': x, 'label': jnp.asarray(np.eye(4, dtype=np.float32)[[0, 1, 2, 3]])}]
  key = jax.random.key(1)
  d_step = jax.jit(model.d_step, static_argnums=3)
  g_step = jax.jit(model.g_step, static_argnums=3)
  for i, batch in enumerate(batches):
    before = state
    state, d_metrics = d_step(state, batch, key, i)
    state, g_metrics = g_step(state, batch, key, i)
    for new, old in ((state.d_params, before.d_params), (state.g_params, before.g_params)):
      assert any(not bool(jnp.array_equal(a, b)) for a, b in
                 zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(old)))
    assert all(np.isfinite(float(v)) for v in {**d_metrics, **g_metrics}.values())
  assert int(state.step) == 1  # one iteration: a D step on each dataset


def test_cross_dataset_translation_columns():
  model = _model()
  state = model.init(jax.random.key(0))
  x = np.zeros((2, 32, 32, 3), np.float32)
  c = np.eye(5, dtype=np.float32)[[0, 3]]
  seen = []

  def translate(p, x, c):
    seen.append(np.asarray(c))
    return model.translate(p, x, c)

  cols = sampling.translation_columns(translate, state.g_params, LAYOUT, 0, x, c)
  assert len(cols) == 1 + 5 + 4  # input, then every domain of every dataset
  # attribute targets carry the attribute mask, class targets the class mask
  assert all(s[0, -2:].tolist() == [1, 0] for s in seen[:5])
  assert all(s[0, -2:].tolist() == [0, 1] for s in seen[5:])
  assert [int(np.argmax(s[0, 5:9])) for s in seen[5:]] == [0, 1, 2, 3]
  assert all(s[:, :5].sum() == 0 for s in seen[5:])  # the other dataset's labels are zeros


def test_joint_run_resumes_exactly_and_writes_grids(make_tiny_config, tmp_path):
  ds = ('procedural', 'procedural_classes')
  straight = train.Trainer(make_tiny_config(datasets=ds, num_iters=4),
                           str(tmp_path / 'a')).train()
  cfg = make_tiny_config(datasets=ds, num_iters=4)
  cfg.run.checkpoint_every = 2
  first = train.Trainer(cfg, str(tmp_path / 'b'))
  first.train(num_iters=2)
  first.checkpointer.close()
  resumed_trainer = train.Trainer(cfg, str(tmp_path / 'b'))
  resumed = resumed_trainer.train(resume=True)
  for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  grids = sorted(p.name for p in (tmp_path / 'b' / 'samples').iterdir() if '000004' in p.name)
  assert grids == ['000004-images-procedural.png', '000004-images-procedural_classes.png']
  from PIL import Image
  assert Image.open(tmp_path / 'b' / 'samples' / grids[0]).size == (32 * 10, 32 * 2)
  acc = pixels.translation_accuracy(resumed_trainer._translate_np,
                                    resumed_trainer.generator_params(resumed),
                                    resumed_trainer.layout, resumed_trainer.datasets, limit=8)
  assert set(acc) == {'procedural', 'procedural_classes'}
  for src in acc.values():
    assert set(src) == {'procedural', 'procedural_classes'}  # own and cross-dataset targets
    for r in src.values():
      assert 0.0 <= r['target_accuracy'] <= 1.0 and r['translations'] > 0


def test_joint_lr_schedule_counts_iterations_not_updates():
  cfg = config_lib.OptimConfig(num_iters=100, num_iters_decay=50, n_critic=5)
  g_tx, d_tx = steps.make_optimizers(cfg, num_datasets=2)
  params, grads = {'w': jnp.ones(())}, {'w': jnp.ones(())}
  # Adam's step for constant unit gradients is the lr itself.
  # D's 161st update (2 per iteration) is in iteration 80: lr = 1e-4 * 20 / 50.
  state = d_tx.init(params)
  for _ in range(160):
    _, state = d_tx.update(grads, state, params)
  upd, _ = d_tx.update(grads, state, params)
  np.testing.assert_allclose(float(-upd['w']), 1e-4 * 20 / 50, rtol=1e-3)
  # G's 31st update (2 per G iteration) is in iteration 15 * 5 + 4 = 79.
  state = g_tx.init(params)
  for _ in range(30):
    _, state = g_tx.update(grads, state, params)
  upd, _ = g_tx.update(grads, state, params)
  np.testing.assert_allclose(float(-upd['w']), 1e-4 * 21 / 50, rtol=1e-3)

