"""Shared fixtures: a prepared built-in dataset and a tiny training config."""

import os

# Tests run on the CPU, whatever the machine has.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# Most tests build a Trainer for the same tiny config, and each Trainer jits
# its own step functions: a persistent compilation cache, shared by the
# subprocesses some tests start and by pytest-xdist's workers (started by the
# controller after it has run this), compiles each distinct program once.
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
  from stargan_jax.datasets import registry
  d = str(tmp_path_factory.mktemp('tfds'))
  registry.prepare('procedural', d, 32)
  registry.prepare('procedural_classes', d, 32)
  return d


def tiny_config(data_dir: str, datasets=('procedural',), num_iters: int = 6) -> config_lib.Config:
  return config_lib.tiny_config(data_dir, datasets, num_iters)


@pytest.fixture
def make_tiny_config(data_dir):
  def make(**kwargs):
    return tiny_config(data_dir, **kwargs)
  return make
