"""Training from every builder, host sharding and resumption on them, the input benchmark."""

import os

import numpy as np

import datasets_testdata as D
from stargan_jax import input_benchmark, input_pipeline
from stargan_jax.datasets import registry


def _prepare_all(tmp_path):
  data_dir = str(tmp_path / 'tfds')
  D.write_celeba(str(tmp_path / 'celeba_files'), 16)
  registry.prepare('celeba', data_dir, 32, manual_dir=str(tmp_path / 'celeba_files'),
                   test_count=4)
  D.write_rafd_reference(str(tmp_path / 'rafd_files'), 1, 1)
  registry.prepare('rafd', data_dir, 32, manual_dir=str(tmp_path / 'rafd_files'))
  D.write_class_folders(str(tmp_path / 'pets'), ('cats', 'dogs', 'owls'), per_class=4)
  registry.prepare('folder:pets', data_dir, 32, manual_dir=str(tmp_path / 'pets'))
  return data_dir


def test_short_training_run_from_each_builder(tmp_path):
  data_dir = _prepare_all(tmp_path)
  # One joint run reads every builder's data through D and G steps (with the
  # mask vector), writes a checkpoint and a sample grid per dataset.
  datasets = ('celeba', 'rafd', 'folder:pets')
  trainer, state = D.train_briefly(data_dir, str(tmp_path / 'run'), datasets,
                                   attrs=('Male', 'Blond_Hair'))
  assert int(state.step) == 2
  assert [s.names for s in trainer.layout.specs] == [
      ('Male', 'Blond_Hair'), ('angry', 'contemptuous', 'disgusted', 'fearful', 'happy',
                               'neutral', 'sad', 'surprised'), ('cats', 'dogs', 'owls')]
  assert trainer.layout.g_dim == 2 + 8 + 3 + 3
  assert trainer.checkpointer.latest_step() == 2
  for name in datasets:
    assert os.path.exists(tmp_path / 'run' / 'samples' / f'000002-images-{name}.png')
  leaves = [np.asarray(x) for x in __import__('jax').tree_util.tree_leaves(state.g_params)]
  assert all(np.isfinite(x).all() for x in leaves)


def test_host_shares_and_resumption_on_a_built_dataset(tmp_path):
  data_dir = str(tmp_path / 'tfds')
  D.write_class_folders(str(tmp_path / 'pets'), ('cats', 'dogs'), per_class=10)
  registry.prepare('folder', data_dir, 32, manual_dir=str(tmp_path / 'pets'))
  ds = input_pipeline.open_dataset('folder', data_dir, 32)
  full = input_pipeline.train_iterator(ds, 8, seed=3, num_threads=1)
  hosts = [input_pipeline.train_iterator(ds, 8, seed=3, process_index=p, process_count=2,
                                         num_threads=1) for p in range(2)]
  for _ in range(3):  # crosses an epoch boundary (18 training images)
    batch = next(full)
    halves = [next(h) for h in hosts]
    np.testing.assert_array_equal(np.concatenate([h['image'] for h in halves]), batch['image'])
    np.testing.assert_array_equal(np.concatenate([h['label'] for h in halves]), batch['label'])
  state = full.get_state()  # what the trainer saves in its checkpoint
  expected = next(full)
  resumed = input_pipeline.train_iterator(ds, 8, seed=3, num_threads=1)
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)['image'], expected['image'])
  assert expected['image'].min() >= -1.0 and expected['image'].max() <= 1.0


def test_input_benchmark_measures_images_per_second(tmp_path):
  data_dir = str(tmp_path / 'tfds')
  D.write_class_folders(str(tmp_path / 'pets'), ('cats', 'dogs'), per_class=6)
  registry.prepare('folder', data_dir, 32, manual_dir=str(tmp_path / 'pets'))
  ds = input_pipeline.open_dataset('folder', data_dir, 32)
  result = input_benchmark.measure(ds, batch_size=4, steps=5, warmup=1, num_threads=1)
  assert result['batch_shape'] == [4, 32, 32, 3]
  assert result['images_per_s'] > 0
  assert abs(result['images_per_s'] - 20 / result['seconds']) < 0.1 * result['images_per_s'] + 1
