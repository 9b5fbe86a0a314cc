"""End-to-end training at a tiny config: outputs, exact resume, checkpoint safety, CLI."""

import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import inference
from stargan_jax import train


def _params(state):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(
      (state.g_params, state.d_params, state.g_opt_state, state.d_opt_state))]


def test_tiny_run_writes_samples_checkpoint_and_tensorboard(make_tiny_config, tmp_path):
  cfg = make_tiny_config(num_iters=4)
  summary = train.train_and_evaluate(cfg, str(tmp_path))
  assert summary['step'] == 4
  assert os.path.isfile(tmp_path / 'samples' / '000004-images.png')
  assert os.listdir(tmp_path / 'tensorboard')
  trainer = train.Trainer(cfg, str(tmp_path))
  assert trainer.checkpointer.latest_step() == 4
  from PIL import Image
  grid = Image.open(tmp_path / 'samples' / '000004-images.png')
  # rows = num_samples test images, columns = input + 5 target domains
  assert grid.size == (32 * 6, 32 * 2)


def test_resume_equals_straight_run(make_tiny_config, tmp_path):
  k = 4
  straight_cfg = make_tiny_config(num_iters=2 * k)
  straight = train.Trainer(straight_cfg, str(tmp_path / 'straight')).train()

  cfg = make_tiny_config(num_iters=2 * k)
  cfg.run.checkpoint_every = k
  first = train.Trainer(cfg, str(tmp_path / 'resumed'))
  first.train(num_iters=k)
  first.checkpointer.close()
  resumed = train.Trainer(cfg, str(tmp_path / 'resumed')).train(resume=True)
  assert int(resumed.step) == int(straight.step) == 2 * k
  for a, b in zip(_params(straight), _params(resumed)):
    np.testing.assert_array_equal(a, b)


def test_existing_checkpoints_need_resume(make_tiny_config, tmp_path):
  cfg = make_tiny_config(num_iters=2)
  train.Trainer(cfg, str(tmp_path)).train()
  with pytest.raises(FileExistsError, match='--resume'):
    train.Trainer(cfg, str(tmp_path)).train()


def test_mismatched_config_is_refused_naming_both_values(make_tiny_config, tmp_path):
  cfg = make_tiny_config(num_iters=2)
  train.Trainer(cfg, str(tmp_path)).train()
  other = make_tiny_config(num_iters=2)
  other.data.attrs = ('Red', 'Green', 'Blue', 'Dark')  # c_dim 4 instead of 5
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r'g_dim: checkpoint has 5, current config has 4'):
    train.Trainer(other, str(tmp_path)).restore()
  bigger = make_tiny_config(num_iters=2)
  bigger.data.image_size = 64
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r'image_size: checkpoint has 32, current config has 64'):
    train.Trainer(bigger, str(tmp_path)).restore()


def test_interrupted_save_never_restores_wrong_values(make_tiny_config, tmp_path):
  cfg = make_tiny_config(num_iters=2)
  state = train.Trainer(cfg, str(tmp_path)).train()
  ckpt_dir = tmp_path / 'checkpoints'
  # What a kill during the save of step 4 leaves: Orbax's temporary directory,
  # with a partial copy of the step inside.
  partial = ckpt_dir / '4.orbax-checkpoint-tmp'
  shutil.copytree(ckpt_dir / '2', partial)
  for root, _, files in os.walk(partial / 'state'):
    for f in files:
      with open(os.path.join(root, f), 'r+b') as fh:
        fh.truncate(max(os.path.getsize(os.path.join(root, f)) // 2, 0))
  trainer = train.Trainer(cfg, str(tmp_path))
  assert trainer.checkpointer.latest_step() == 2
  restored, _, _ = trainer.restore()
  for a, b in zip(_params(state), _params(restored)):
    np.testing.assert_array_equal(a, b)


def test_cli_train_then_test_mode(data_dir, tmp_path):
  # The session's prepared procedural set: the default (faces) would be drawn here first.
  common = [sys.executable, '-m', 'stargan_jax.main', f'--workdir={tmp_path}',
            f'--data_dir={data_dir}', '--datasets=procedural', '--g_conv_dim=8',
            '--d_conv_dim=8', '--g_repeat_num=1', '--batch_size=4', '--num_samples=2']
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  out = subprocess.run(common + ['--num_iters=2', '--log_every=1', '--noeval_at_end',
                                 '--g_ema_decay=0.5'],
                       capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'G parameters:' in out.stdout and 'Iteration [2/2]' in out.stdout
  assert 'it/s' in out.stdout and 'ETA' in out.stdout and 'D/loss_gp' in out.stdout
  assert inference.load_model(str(tmp_path)).generator_weights == 'ema'  # the flag trained one
  out = subprocess.run(common + ['--mode=test', '--use_ema=false'], capture_output=True,
                       text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert '(raw G weights)' in out.stdout
  assert 'ignoring --batch_size, --g_conv_dim, --d_conv_dim, --g_repeat_num' in out.stdout
  results = sorted(os.listdir(tmp_path / 'results'))
  assert len(results) == 250 and results[0] == '0001-images.png'  # 500 test images, 2 per grid
  # --mode=test needs nothing but the run directory (the model comes from the checkpoint).
  shutil.rmtree(tmp_path / 'results')
  out = subprocess.run([sys.executable, '-m', 'stargan_jax.main', f'--workdir={tmp_path}',
                        '--mode=test'], capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert '(EMA G weights)' in out.stdout and len(os.listdir(tmp_path / 'results')) == 250
  assert 'Metadata file does not exist' not in out.stderr  # no Orbax warning on a normal load
  # A wrong --attrs on the default dataset (faces), not drawn yet: the error comes
  # before the minute of drawing, and nothing is drawn.
  empty = tmp_path / 'no_data_yet'
  bad = subprocess.run([sys.executable, '-m', 'stargan_jax.main', f'--workdir={tmp_path}/bad',
                        f'--data_dir={empty}', '--attrs=Black_Hair,Purple'],
                       capture_output=True, text=True, env=env, timeout=120)
  assert bad.returncode == 2 and "unknown attribute(s) ['Purple']" in bad.stderr
  assert 'valid attributes: Black_Hair, Blond_Hair, Brown_Hair, Male, Young' in bad.stderr
  assert 'Traceback' not in bad.stderr and 'error: ' in bad.stderr
  assert not (empty / 'faces').exists() or not any((empty / 'faces').iterdir())


def test_main_conv_impl_flag_lists_every_form():
  from stargan_jax import main
  from stargan_jax.models import conv
  assert tuple(main.FLAGS['conv_impl'].parser.enum_values) == conv.IMPLS
