"""G's EMA (--g_ema_decay): the update, its defaults, checkpoints old and new, its consumers."""

import os
import shutil
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from stargan_jax import batching
from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import cli
from stargan_jax import config as config_lib
from stargan_jax import evaluate
from stargan_jax import inference
from stargan_jax import labels
from stargan_jax import procedural
from stargan_jax import sampling
from stargan_jax import steps
from stargan_jax import train
from stargan_jax import translate
from stargan_jax.evaluation import protocol

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
  # Copies: a donated state's buffers are reused by the next step.
  return [np.array(x) for x in jax.tree_util.tree_leaves(tree)]


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


# Every test that trains shares one config (the tiny one with the EMA on, 8
# iterations), so the steps compile once per session and every later Trainer
# finds them in the compilation cache.
ITERS = 8


def _ema_config(make_tiny_config, decay=DECAY):
  cfg = make_tiny_config(num_iters=ITERS)
  cfg.optim.g_ema_decay = decay
  cfg.run.checkpoint_every = ITERS // 2
  return cfg


@pytest.fixture(scope='module')
def ema_run(tmp_path_factory, data_dir):
  """The first half (4 iterations, 2 G steps) of an EMA run; checkpoint at step 4."""
  from conftest import tiny_config

  def make(**kwargs):
    return tiny_config(data_dir, **kwargs)
  workdir = tmp_path_factory.mktemp('ema_run')
  trainer = train.Trainer(_ema_config(make), str(workdir))
  state = trainer.train(num_iters=ITERS // 2)
  trainer.checkpointer.close()
  return str(workdir), state


def _copy_run(workdir, to):
  shutil.copytree(workdir, to)
  return str(to)


# -- the update ------------------------------------------------------------------

def test_ema_is_decay_mix_after_g_step_and_untouched_by_d_step(ema_run, make_tiny_config,
                                                               tmp_path):
  trainer = train.Trainer(_ema_config(make_tiny_config), _copy_run(ema_run[0], tmp_path / 'r'))
  state, _, _ = trainer.restore()
  assert not _same(state.g_ema_params, state.g_params)
  batch = trainer.to_global(next(trainer.train_iterators()[0]))
  ema_before = _leaves(state.g_ema_params)
  state, _ = trainer.d_step(state, batch, trainer.step_key, 0)
  assert _same(_leaves(state.g_ema_params), ema_before)
  state, _ = trainer.g_step(state, batch, trainer.step_key, 0)
  for e, before, g in zip(_leaves(state.g_ema_params), ema_before, _leaves(state.g_params)):
    np.testing.assert_allclose(e, DECAY * before + (1 - DECAY) * g, rtol=1e-6, atol=1e-7)
  assert not _same(state.g_ema_params, state.g_params)
  trainer.checkpointer.close()


def test_ema_starts_as_a_copy_of_g(ema_run, make_tiny_config, tmp_path):
  trainer = train.Trainer(_ema_config(make_tiny_config), str(tmp_path))
  state = trainer.init_state()
  trainer.checkpointer.close()
  assert _same(state.g_ema_params, state.g_params)
  # Separate buffers: the donated state never hands one buffer over twice.
  ema, g = (jax.tree_util.tree_leaves(t) for t in (state.g_ema_params, state.g_params))
  assert all(a.unsafe_buffer_pointer() != b.unsafe_buffer_pointer() for a, b in zip(ema, g))


def test_ema_is_off_by_default_and_in_the_paper_preset():
  assert config_lib.Config().optim.g_ema_decay == 0
  assert config_lib.OptimConfig().g_ema_decay == 0
  assert config_lib.PRESETS['paper']().optim.g_ema_decay == 0
  assert config_lib.paper_config('rafd').optim.g_ema_decay == 0
  model = _tiny_model(0.0)
  state = jax.eval_shape(model.init, jax.random.key(0))
  assert state.g_ema_params is None
  with_ema = jax.eval_shape(_tiny_model(DECAY).init, jax.random.key(0))
  # Off: no EMA leaves in the state, so the compiled steps carry nothing extra.
  assert len(jax.tree_util.tree_leaves(with_ema)) == (
      len(jax.tree_util.tree_leaves(state)) + len(jax.tree_util.tree_leaves(state.g_params)))
  after, _ = jax.eval_shape(lambda s, b, k: model.g_step(s, b, k, 0), state, _batch(),
                            jax.random.key(1))
  assert after.g_ema_params is None
  assert jax.tree_util.tree_structure(after) == jax.tree_util.tree_structure(state)
  for bad in (-0.1, 1.0):
    with pytest.raises(ValueError, match='g_ema_decay'):
      _tiny_model(bad)


def test_main_flags_set_the_decay_and_the_weights():
  # In-process: every tool's flags live in its own FlagValues (stargan_jax.cli).
  from stargan_jax import main
  cli.parse(main.FLAGS, ['--workdir=w', '--g_ema_decay=0.999', '--nouse_ema', '--preset=paper'])
  assert main.FLAGS.g_ema_decay == 0.999 and main.FLAGS.use_ema is False
  assert main.config_from_flags().optim.g_ema_decay == 0.999
  cli.parse(main.FLAGS, ['--workdir=w', '--use_ema=true'])
  assert main.FLAGS.use_ema is True
  assert 'g_ema_decay' in main._FIELDS['optim']


# -- training, checkpoints, resume ----------------------------------------------

def test_resume_with_ema_equals_straight_run(ema_run, make_tiny_config, tmp_path):
  straight = train.Trainer(_ema_config(make_tiny_config), str(tmp_path / 'straight')).train()
  trainer = train.Trainer(_ema_config(make_tiny_config), _copy_run(ema_run[0], tmp_path / 'r'))
  saved, _, _ = trainer.restore(ITERS // 2)
  assert saved.g_ema_params is not None and not _same(saved.g_ema_params, saved.g_params)
  resumed = trainer.train(resume=True)
  trainer.checkpointer.close()
  assert int(resumed.step) == int(straight.step) == ITERS
  assert _same(resumed, straight)  # every leaf, the EMA included, bit for bit
  assert not _same(resumed.g_ema_params, resumed.g_params)
  for x in jax.tree_util.tree_leaves(resumed.g_ema_params):
    assert x.sharding.is_equivalent_to(trainer.replicated, x.ndim)  # replicated like G


def test_old_checkpoint_without_ema_loads_and_resumes(ema_run, make_tiny_config, tmp_path):
  workdir, s = ema_run
  run = train.Trainer(_ema_config(make_tiny_config), workdir)
  _, _, data_state = run.restore()
  run.checkpointer.close()
  # The run's step-4 state as the code before the EMA saved it: no such field.
  old_dir = tmp_path / 'old'
  ck = ckpt_lib.Checkpointer(str(old_dir / 'checkpoints'))
  ck.save(ITERS // 2, OldTrainState(s.step, s.g_params, s.d_params, s.g_opt_state,
                                    s.d_opt_state), run.meta, data_state, wait=True)
  assert not ck.saved_has('g_ema_params')
  assert not any(k[0] == 'g_ema_params' for k in ck.saved_shapes())
  ck.close()

  loaded = inference.load_model(str(old_dir))
  assert loaded.g_ema_params is None and loaded.generator_weights == 'raw'
  assert loaded.generator_params is loaded.g_params and _same(loaded.g_params, s.g_params)
  # Restored by a config without the EMA: the state as saved.
  plain = train.Trainer(make_tiny_config(num_iters=ITERS), str(old_dir))
  restored, _, _ = plain.restore()
  plain.checkpointer.close()
  assert restored.g_ema_params is None
  assert _same(restored, s.replace(g_ema_params=None))
  # Resumed with the EMA on: it starts from the checkpoint's G and is trained on.
  trainer = train.Trainer(_ema_config(make_tiny_config), str(old_dir))
  restored, _, _ = trainer.restore()
  assert restored.g_ema_params is None
  assert _same(trainer._match_ema(restored).g_ema_params, s.g_params)
  after = trainer.train(resume=True)
  trainer.checkpointer.close()
  assert int(after.step) == ITERS and after.g_ema_params is not None
  assert not _same(after.g_ema_params, after.g_params)
  assert inference.load_model(str(old_dir)).generator_weights == 'ema'


def test_ema_checkpoint_restored_with_ema_off(ema_run, make_tiny_config):
  workdir, state = ema_run
  trainer = train.Trainer(make_tiny_config(num_iters=ITERS), workdir)  # no --g_ema_decay
  restored, _, _ = trainer.restore()
  trainer.checkpointer.close()
  assert _same(restored.g_ema_params, state.g_ema_params)  # test mode still has it
  dropped = trainer._match_ema(restored)  # what train(resume=True) trains on
  assert dropped.g_ema_params is None and _same(dropped.g_params, state.g_params)


# -- consumers ----------------------------------------------------------------------

def test_loader_uses_ema_by_default_and_raw_on_request(ema_run):
  workdir, state = ema_run
  loaded = inference.load_model(workdir)
  assert _same(loaded.g_ema_params, state.g_ema_params) and _same(loaded.g_params,
                                                                   state.g_params)
  assert loaded.generator_weights == 'ema' and loaded.generator_params is loaded.g_ema_params
  raw = inference.load_model(workdir, use_ema=False)
  assert raw.generator_weights == 'raw' and raw.generator_params is raw.g_params
  assert raw.g_ema_params is not None  # still exposed, just not used
  _, g, _, meta = inference.load_generator(workdir)
  assert _same(g, state.g_ema_params) and meta['generator_weights'] == 'ema'
  _, g, _, meta = inference.load_generator(workdir, use_ema=False)
  assert _same(g, state.g_params) and meta['generator_weights'] == 'raw'


def _parsed(tool, argv):
  cli.parse(tool.FLAGS, argv)
  return tool.FLAGS


def test_weights_flags_parse_the_same_everywhere():
  base = ['--workdir=w']
  _parsed(evaluate, base)
  assert evaluate.settings_from_flags().use_ema is True
  _parsed(evaluate, base + ['--use_ema=false'])
  assert evaluate.settings_from_flags().use_ema is False
  assert _parsed(evaluate, base + ['--nouse_ema']).use_ema is False
  assert _parsed(evaluate, base + ['--use_ema=true']).use_ema is True
  with pytest.raises(cli.UserError):
    _parsed(evaluate, base + ['--use_ema=maybe'])
  assert _parsed(translate, base + ['--input=i', '--out=o']).use_ema is True
  assert _parsed(translate, base + ['--input=i', '--out=o', '--use_ema=false']).use_ema is False


def test_evaluate_uses_ema_by_default_and_raw_on_request(ema_run, tmp_path):
  workdir, _ = ema_run
  common = [f'--workdir={workdir}', '--limit=4', '--batch_size=4', '--fid=off',
            f'--classifier_dir={tmp_path / "clf"}', '--classifier_width=4',
            '--classifier_epochs=1', '--classifier_min_steps=0',
            '--classifier_batch_size=16',
            '--classifier_train_images=16']
  results = {}
  for flag, name in (([], 'ema'), (['--use_ema=false'], 'raw')):
    _parsed(evaluate, common + [f'--out={tmp_path / name}'] + flag)
    results[name] = protocol.evaluate(workdir, settings=evaluate.settings_from_flags(),
                                      log=lambda m: None)
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
  loaded = inference.load_model(workdir)
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
    expected = batching.apply_padded(lambda xx, cc: loaded.translate_np(g, xx, cc), 16, x, c)
    np.testing.assert_array_equal(outputs[use_ema], sampling.to_uint8(expected[0]))
  assert not np.array_equal(outputs[True], outputs[False])


def test_test_mode_grids_use_ema_unless_asked(ema_run, make_tiny_config, tmp_path, capsys):
  workdir, _ = ema_run
  ema_grid, = inference.write_test_grids(inference.load_model(workdir),
                                         out_dir=str(tmp_path / 'ema'), limit=2)
  raw_grid, = inference.write_test_grids(inference.load_model(workdir, use_ema=False),
                                         out_dir=str(tmp_path / 'raw'), limit=2)
  out = capsys.readouterr().out
  assert '(EMA G weights)' in out and '(raw G weights)' in out
  assert not np.array_equal(np.asarray(Image.open(ema_grid)), np.asarray(Image.open(raw_grid)))
