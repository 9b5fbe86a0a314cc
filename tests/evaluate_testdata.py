"""Tiny checkpoints shared by the evaluate, translate and experiments tests.

Compiling the GAN's training steps dominates a tiny run on a CPU, so each
checkpoint is made once per test session (a module-level cache keyed by the
session's data directory), whichever of the three test modules asks first.
"""

import os

from conftest import tiny_config
from stargan_jax import train

_CACHE = {}


def attribute_run(tmp_path_factory, data_dir: str) -> str:
  """A run trained for 4 iterations (2 G steps) on 'procedural' (5 attributes), 32 px."""
  key = ('attributes', data_dir)
  if key not in _CACHE:
    workdir = str(tmp_path_factory.mktemp('attribute_run'))
    cfg = tiny_config(data_dir, num_iters=4)
    trainer = train.Trainer(cfg, workdir)
    trainer.train()
    trainer.checkpointer.close()
    _CACHE[key] = workdir
  return _CACHE[key]


def classes_checkpoint(tmp_path_factory, data_dir: str) -> str:
  """An *untrained* checkpoint on 'procedural_classes' (4 classes), written as the trainer does.

  Saved by the trainer's own Checkpointer with the trainer's meta, so its
  format is exactly a run's; only the step compilation is skipped.
  """
  key = ('classes', data_dir)
  if key not in _CACHE:
    workdir = str(tmp_path_factory.mktemp('classes_run'))
    cfg = tiny_config(data_dir, datasets=('procedural_classes',))
    trainer = train.Trainer(cfg, workdir)
    trainer.checkpointer.save(1, trainer.init_state(), trainer.meta, wait=True)
    trainer.checkpointer.close()
    assert os.path.isdir(os.path.join(workdir, 'checkpoints', '1'))
    _CACHE[key] = workdir
  return _CACHE[key]
