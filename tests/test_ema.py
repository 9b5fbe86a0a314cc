"""G's EMA (--g_ema_decay): the update, its defaults, checkpoints old and new, its consumers."""

import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import config as config_lib
from stargan_jax import evaluate
from stargan_jax import labels
from stargan_jax import procedural
from stargan_jax import sampling
from stargan_jax import steps
from stargan_jax import train
from stargan_jax import translate

SPEC = labels.DomainSpec('procedural', ('Red', 'Green', 'Blue', 'Frame', 'Dark'),
                         exclusive=('Red', 'Green', 'Blue'))
# Far from StarGAN v2's 0.999 so that, after the few G steps of a test, the
# EMA is clearly neither the initial G nor the current one.
DECAY = 0.5


@flax.struct.dataclass
class OldTrainState:
  """The TrainState as saved before the EMA field existed."""
  step: Any
  g_params: Any
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _same(a, b):
  la, lb = _leaves(a), _leaves(b)
  return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def _tiny_model(decay):
  cfg = config_lib.default_config()
  cfg.data.image_size = 32
  cfg.model = config_lib.ModelConfig(8, 8, 1, 5)
  cfg.loss.lambda_id = 0.0
  cfg.optim.g_ema_decay = decay
  return steps.StarGAN.from_config(cfg, labels.LabelLayout((SPEC,)))


def _batch(n=4, seed=0):
  rng = np.random.default_rng(seed)
  return {'image': jnp.asarray(rng.uniform(-1, 1, (n, 32, 32, 3)), jnp.float32),
          'label': jnp.asarray(np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)])}


def _ema_config(make_tiny_config, decay=DECAY, **kwargs):
  cfg = make_tiny_config(**kwargs)
  cfg.optim.g_ema_decay = decay
  return cfg


# -- the update ------------------------------------------------------------------

def test_ema_is_decay_mix_after_g_step_and_untouched_by_d_step():
  model = _tiny_model(DECAY)
  d_step = jax.jit(model.d_step, static_argnums=3, donate_argnums=0)
  g_step = jax.jit(model.g_step, static_argnums=3, donate_argnums=0)
  state = jax.jit(model.init)(jax.random.key(0))
  assert _same(state.g_ema_params, state.g_params)  # starts as a copy of G
  key = jax.random.key(1)
  for i in range(2):
    ema_before = _leaves(state.g_ema_params)
    state, _ = d_step(state, _batch(seed=i), key, 0)
    assert _same(_leaves(state.g_ema_params), ema_before)
    ema_before = _leaves(state.g_ema_params)
    state, _ = g_step(state, _batch(seed=i), key, 0)
    g_after = _leaves(state.g_params)
    for e, before, g in zip(_leaves(state.g_ema_params), ema_before, g_after):
      np.testing.assert_allclose(e, DECAY * before + (1 - DECAY) * g, rtol=1e-6, atol=1e-7)
  assert not _same(state.g_ema_params, state.g_params)


def test_ema_is_off_by_default_and_in_the_paper_preset():
  assert config_lib.Config().optim.g_ema_decay == 0
  assert config_lib.OptimConfig().g_ema_decay == 0
  assert config_lib.PRESETS['paper']().optim.g_ema_decay == 0
  assert config_lib.paper_config('rafd').optim.g_ema_decay == 0
  model = _tiny_model(0.0)
  state = model.init(jax.random.key(0))
  assert state.g_ema_params is None
  with_ema = _tiny_model(DECAY).init(jax.random.key(0))
  # Off: no EMA leaves in the state, so the compiled steps carry nothing extra.
  assert len(jax.tree_util.tree_leaves(with_ema)) == (
      len(jax.tree_util.tree_leaves(state)) + len(jax.tree_util.tree_leaves(state.g_params)))
  after, _ = jax.jit(model.g_step, static_argnums=3)(state, _batch(), jax.random.key(1), 0)
  assert after.g_ema_params is None
  for bad in (-0.1, 1.0):
    with pytest.raises(ValueError, match='g_ema_decay'):
      _tiny_model(bad)


def test_main_flags_set_the_decay_and_the_weights():
  import copy

  from absl import flags as absl_flags
  from stargan_jax import main
  fv = absl_flags.FlagValues()
  for name in ('g_ema_decay', 'use_ema', 'preset'):
    fv[name] = copy.deepcopy(main.FLAGS[name])  # the module's own flags stay unparsed
  fv(['prog', '--g_ema_decay=0.999', '--nouse_ema', '--preset=paper'])
  assert fv.g_ema_decay == 0.999 and fv.use_ema is False
  assert 'g_ema_decay' in main._FIELDS['optim']


# -- training, checkpoints, resume ----------------------------------------------

def test_resume_with_ema_equals_straight_run(make_tiny_config, tmp_path):
  k = 4
  straight_trainer = train.Trainer(_ema_config(make_tiny_config, num_iters=2 * k),
                                   str(tmp_path / 'straight'))
  straight = straight_trainer.train()
  cfg = _ema_config(make_tiny_config, num_iters=2 * k)
  cfg.run.checkpoint_every = k
  first = train.Trainer(cfg, str(tmp_path / 'resumed'))
  first.train(num_iters=k)
  first.checkpointer.close()
  trainer = train.Trainer(cfg, str(tmp_path / 'resumed'))
  saved, _, _ = trainer.restore(k)
  assert saved.g_ema_params is not None and not _same(saved.g_ema_params, saved.g_params)
  resumed = trainer.train(resume=True)
  assert int(resumed.step) == int(straight.step) == 2 * k
  assert _same(resumed, straight)  # every leaf, the EMA included, bit for bit
  assert not _same(resumed.g_ema_params, resumed.g_params)
  for x in jax.tree_util.tree_leaves(resumed.g_ema_params):
    assert x.sharding.is_equivalent_to(trainer.replicated, x.ndim)  # replicated like G


def _old_checkpoint(make_tiny_config, workdir):
  """A run's checkpoint as the code before the EMA saved it (no such field), in workdir."""
  trainer = train.Trainer(make_tiny_config(num_iters=2), str(workdir / 'new'))
  state = trainer.train()
  _, _, data_state = trainer.restore()
  trainer.checkpointer.close()
  ck = ckpt_lib.Checkpointer(os.path.join(workdir, 'checkpoints'))
  old = OldTrainState(state.step, state.g_params, state.d_params, state.g_opt_state,
                      state.d_opt_state)
  ck.save(2, old, trainer.meta, data_state, wait=True)
  assert not any(k[0] == 'g_ema_params' for k in ck.saved_shapes(2))
  assert not ck.saved_has('g_ema_params', 2)
  ck.close()
  return state


def test_old_checkpoint_without_ema_loads_and_resumes(make_tiny_config, tmp_path):
  state = _old_checkpoint(make_tiny_config, tmp_path)
  loaded = evaluate.load_model(str(tmp_path))
  assert loaded.g_ema_params is None and loaded.generator_weights == 'raw'
  assert loaded.generator_params is loaded.g_params and _same(loaded.g_params, state.g_params)
  # Resumed without an EMA: the state as saved.
  plain = train.Trainer(make_tiny_config(num_iters=2), str(tmp_path))
  restored, _, _ = plain.restore()
  assert restored.g_ema_params is None and _same(restored, state)
  plain.checkpointer.close()
  # Resumed with the EMA on: it starts from the checkpoint's G and is trained on.
  cfg = _ema_config(make_tiny_config, num_iters=4)
  trainer = train.Trainer(cfg, str(tmp_path))
  restored, _, _ = trainer.restore()
  assert restored.g_ema_params is None
  assert _same(trainer._match_ema(restored).g_ema_params, state.g_params)
  after = trainer.train(resume=True)
  trainer.checkpointer.close()
  assert int(after.step) == 4 and after.g_ema_params is not None
  assert not _same(after.g_ema_params, after.g_params)
  assert evaluate.load_model(str(tmp_path)).generator_weights == 'ema'


def test_ema_checkpoint_resumed_with_ema_off_drops_it(make_tiny_config, tmp_path):
  first = train.Trainer(_ema_config(make_tiny_config, num_iters=2), str(tmp_path))
  first.train()
  first.checkpointer.close()
  trainer = train.Trainer(make_tiny_config(num_iters=4), str(tmp_path))
  assert trainer.restore()[0].g_ema_params is not None  # test mode still sees it
  after = trainer.train(resume=True)
  trainer.checkpointer.close()
  assert int(after.step) == 4 and after.g_ema_params is None
  assert evaluate.load_model(str(tmp_path)).g_ema_params is None


# -- consumers ----------------------------------------------------------------------

@pytest.fixture(scope='module')
def ema_run(tmp_path_factory, data_dir):
  """4 iterations (2 G steps) with the EMA on."""
  from conftest import tiny_config
  workdir = str(tmp_path_factory.mktemp('ema_run'))
  cfg = tiny_config(data_dir, num_iters=4)
  cfg.optim.g_ema_decay = DECAY
  trainer = train.Trainer(cfg, workdir)
  state = trainer.train()
  trainer.checkpointer.close()
  return workdir, state


def test_loader_uses_ema_by_default_and_raw_on_request(ema_run):
  workdir, state = ema_run
  loaded = evaluate.load_model(workdir)
  assert _same(loaded.g_ema_params, state.g_ema_params) and _same(loaded.g_params,
                                                                   state.g_params)
  assert loaded.generator_weights == 'ema' and loaded.generator_params is loaded.g_ema_params
  raw = evaluate.load_model(workdir, use_ema=False)
  assert raw.generator_weights == 'raw' and raw.generator_params is raw.g_params
  assert raw.g_ema_params is not None  # still exposed, just not used
  _, g, _, meta = evaluate.load_generator(workdir)
  assert _same(g, state.g_ema_params) and meta['generator_weights'] == 'ema'
  _, g, _, meta = evaluate.load_generator(workdir, use_ema=False)
  assert _same(g, state.g_params) and meta['generator_weights'] == 'raw'


def test_weights_flags_parse_the_same_everywhere():
  base = ['--workdir=w']
  p = evaluate.build_parser()
  assert evaluate.settings_from_args(p.parse_args(base)).use_ema is True
  assert evaluate.settings_from_args(p.parse_args(base + ['--use_ema=false'])).use_ema is False
  assert p.parse_args(base + ['--nouse_ema']).use_ema is False
  assert p.parse_args(base + ['--use_ema=true']).use_ema is True
  with pytest.raises(SystemExit):
    p.parse_args(base + ['--use_ema=maybe'])
  t = translate.build_parser()
  assert t.parse_args(base + ['--input=i', '--out=o']).use_ema is True
  assert t.parse_args(base + ['--input=i', '--out=o', '--use_ema=false']).use_ema is False


def test_evaluate_uses_ema_by_default_and_raw_on_request(ema_run, tmp_path):
  workdir, _ = ema_run
  common = [f'--workdir={workdir}', '--limit=4', '--batch_size=4',
            f'--classifier_dir={tmp_path / "clf"}', '--classifier_width=4',
            '--classifier_epochs=1', '--classifier_batch_size=16',
            '--classifier_train_images=16']
  results = {}
  for flag, name in (([], 'ema'), (['--use_ema=false'], 'raw')):
    settings = evaluate.settings_from_args(evaluate.build_parser().parse_args(
        common + [f'--out={tmp_path / name}'] + flag))
    results[name] = evaluate.evaluate(workdir, settings=settings, log=lambda m: None)
    assert results[name]['generator_weights'] == name
  with open(results['ema']['files']['markdown']) as f:
    assert 'translated with the EMA of G' in f.read()
  # The cycle error is computed with the chosen weights: EMA and raw differ.
  l1 = {n: r['reconstruction']['procedural']['l1'] for n, r in results.items()}
  assert l1['ema'] != l1['raw']


def test_translate_uses_ema_by_default_and_raw_on_request(ema_run, tmp_path):
  workdir, state = ema_run
  os.makedirs(tmp_path / 'in')
  image, _ = procedural.sample_attribute_example(np.random.default_rng(0), 32)
  Image.fromarray(image).save(tmp_path / 'in' / 'a.png')
  loaded = evaluate.load_model(workdir)
  x = translate.load_image(str(tmp_path / 'in' / 'a.png'), 32)[None]
  target, = translate.build_targets(loaded.layout, attrs='Frame=1')
  c = loaded.layout.embed(0, target.make(translate.estimate_labels(loaded, x)[0]))
  outputs = {}
  for use_ema, g in ((True, state.g_ema_params), (False, state.g_params)):
    out = tmp_path / str(use_ema)
    summary = translate.translate(workdir, str(tmp_path / 'in'), str(out), attrs='Frame=1',
                                  use_ema=use_ema, log=lambda m: None)
    assert summary['generator_weights'] == ('ema' if use_ema else 'raw')
    outputs[use_ema] = np.asarray(Image.open(out / 'a-Frame1.png'))
    expected = evaluate.padded_apply(
        lambda xx: loaded.translate_np(g, xx, evaluate.pad_rows(c, xx)), x, 16)
    np.testing.assert_array_equal(outputs[use_ema], sampling.to_uint8(expected[0]))
  assert not np.array_equal(outputs[True], outputs[False])


def test_test_mode_grids_use_ema_unless_asked(ema_run, make_tiny_config, tmp_path, capsys):
  workdir, _ = ema_run
  trainer = train.Trainer(make_tiny_config(num_iters=4), workdir)  # flags without the decay
  ema_grid, = trainer.test(out_dir=str(tmp_path / 'ema'), limit=2)
  raw_grid, = trainer.test(out_dir=str(tmp_path / 'raw'), limit=2, use_ema=False)
  trainer.checkpointer.close()
  out = capsys.readouterr().out
  assert '(EMA G weights)' in out and '(raw G weights)' in out
  assert not np.array_equal(np.asarray(Image.open(ema_grid)), np.asarray(Image.open(raw_grid)))
