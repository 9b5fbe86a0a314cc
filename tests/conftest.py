"""Shared fixtures: a prepared built-in dataset and a tiny training config."""

import os

# Tests run on the CPU, whatever the machine has.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# Most tests build a Trainer for the same tiny config, and each Trainer jits
# its own step functions: a persistent compilation cache, shared by the
# subprocesses some tests start, compiles each distinct program once.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  import tempfile
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='stargan-jax-test-cache-')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
# The tiny test models run in milliseconds either way; XLA's CPU backend
# compiles unoptimised code about twice as fast. (The benchmark and the
# training runs that users start are optimised as usual.)
if 'xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_backend_optimization_level=0').strip()

import pytest  # noqa: E402

from stargan_jax import config as config_lib  # noqa: E402


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  """A TFDS data dir with the procedural datasets at 32 px, built once per session."""
  from data_prep import registry
  d = str(tmp_path_factory.mktemp('tfds'))
  registry.prepare('procedural', d, 32)
  registry.prepare('procedural_classes', d, 32)
  return d


def tiny_config(data_dir: str, datasets=('procedural',), num_iters: int = 6) -> config_lib.Config:
  cfg = config_lib.default_config()
  cfg.data.datasets = tuple(datasets)
  cfg.data.data_dir = data_dir
  cfg.data.image_size = 32
  cfg.data.batch_size = 4
  cfg.data.num_threads = 2
  cfg.model = config_lib.ModelConfig(g_conv_dim=8, d_conv_dim=8, g_repeat_num=1, d_repeat_num=5)
  cfg.optim.num_iters = num_iters
  cfg.optim.num_iters_decay = num_iters // 2
  cfg.optim.n_critic = 2
  cfg.run.log_every = 2
  cfg.run.sample_every = num_iters
  cfg.run.checkpoint_every = num_iters
  cfg.run.num_samples = 2
  cfg.run.eval_at_end = False
  return cfg


@pytest.fixture
def make_tiny_config(data_dir):
  def make(**kwargs):
    return tiny_config(data_dir, **kwargs)
  return make
