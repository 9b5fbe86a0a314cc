"""The built-in dataset: determinism, label/content independence, pixel readers."""

import os

import numpy as np
import pytest

from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax.evaluation import pixels
from stargan_jax import procedural


@pytest.mark.parametrize('size', [32, 64, 128, 256])
def test_readers_recover_every_label_at_every_size(size):
  rng = np.random.default_rng(size)
  for _ in range(20 if size <= 64 else 6):
    image, attrs = procedural.sample_attribute_example(rng, size)
    np.testing.assert_array_equal(procedural.read_attributes(image), attrs)
    image, label = procedural.sample_class_example(rng, size)
    assert procedural.read_class(image) == label
    assert procedural.content_preserved(image, image)


def test_each_attribute_changes_only_its_reading_and_keeps_content():
  content = procedural.sample_content(np.random.default_rng(0))
  base = procedural.render(content, 32, hue=0, frame=False, dark=False)
  np.testing.assert_array_equal(procedural.read_attributes(base), [1, 0, 0, 0, 0])
  for kwargs, expected in [(dict(hue=2, frame=False, dark=False), [0, 0, 1, 0, 0]),
                           (dict(hue=0, frame=True, dark=False), [1, 0, 0, 1, 0]),
                           (dict(hue=0, frame=False, dark=True), [1, 0, 0, 0, 1])]:
    other = procedural.render(content, 32, **kwargs)
    np.testing.assert_array_equal(procedural.read_attributes(other), expected)
    assert procedural.content_preserved(base, other)
  for k, name in enumerate(procedural.CLASS_NAMES):
    assert procedural.read_class(procedural.render(content, 64, 1, False, False, name)) == k


@pytest.mark.parametrize('size', [32, 64, 128])
def test_perfect_translations_keep_content_for_every_target(size):
  # The same content re-rendered with any other labels (a perfect translation)
  # reads as content preserved, into every attribute and every class; Dark
  # (the least chroma, green the least of all) is the hardest to keep.
  rng = np.random.default_rng(size)
  for _ in range(60 if size == 32 else 15):
    content = procedural.sample_content(rng)
    hue, frame, dark = int(rng.integers(3)), bool(rng.integers(2)), bool(rng.integers(2))
    source = procedural.render(content, size, hue, frame, dark)
    targets = [(h, frame, dark) for h in range(3)] + [(hue, not frame, dark),
                                                      (hue, frame, not dark)]
    for target in targets:
      assert procedural.content_preserved(source, procedural.render(content, size, *target)), \
          (content, (hue, frame, dark), target)
    source = procedural.render(content, size, hue, frame, False, 'solid')
    for name in procedural.CLASS_NAMES:
      assert procedural.content_preserved(
          source, procedural.render(content, size, hue, frame, False, name)), (content, name)


def test_content_change_is_detected():
  import dataclasses
  content = procedural.sample_content(np.random.default_rng(1))
  a = procedural.render(content, 32, 0, False, False)
  for change in (dict(cx=content.cx + 0.2), dict(radius=content.radius * 0.6),
                 dict(gradient=(-content.gradient[0] * 2 + 0.3, content.gradient[1]))):
    b = procedural.render(dataclasses.replace(content, **change), 32, 0, False, False)
    assert not procedural.content_preserved(a, b), change
  blank = np.full((32, 32, 3), 128, np.uint8)
  assert procedural.read_class(blank) == -1
  assert procedural.read_attributes(blank)[:3].sum() == 0  # no hue: never a valid label


def test_prepared_dataset_is_deterministic_and_balanced(data_dir):
  ds = input_pipeline.open_dataset('procedural', data_dir, 32)
  assert ds.spec.names == procedural.ATTRIBUTE_NAMES
  assert ds.spec.exclusive == ('Red', 'Green', 'Blue')
  assert len(ds.sources['train']) == 8000 and len(ds.sources['test']) == 500
  batch = next(input_pipeline.eval_batches(ds, 500))
  labels = batch['label']
  assert np.all(labels[:, :3].sum(1) == 1)  # exactly one hue
  assert 0.4 < labels[:, 3].mean() < 0.6 and 0.4 < labels[:, 4].mean() < 0.6
  assert pixels.real_image_accuracy([batch], ds.spec) == 1.0
  assert float(batch['image'].min()) >= -1.0 and float(batch['image'].max()) <= 1.0
  classes = input_pipeline.open_dataset('procedural_classes', data_dir, 32)
  assert classes.spec.kind == labels_lib.CATEGORICAL and classes.spec.c_dim == 4
  cbatch = next(input_pipeline.eval_batches(classes, 200))
  assert pixels.real_image_accuracy([cbatch], classes.spec) == 1.0


def test_train_iterator_resumes_exactly_and_flips(data_dir):
  ds = input_pipeline.open_dataset('procedural', data_dir, 32)
  it = input_pipeline.train_iterator(ds, 8, seed=3, num_threads=1)
  next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(3)]
  again = input_pipeline.train_iterator(ds, 8, seed=3, num_threads=1)
  again.set_state(state)
  for e in expected:
    got = next(again)
    np.testing.assert_array_equal(got['image'], e['image'])
    np.testing.assert_array_equal(got['label'], e['label'])
  other_seed = next(input_pipeline.train_iterator(ds, 8, seed=4, num_threads=1))
  assert not np.array_equal(other_seed['image'], expected[0]['image'])


def test_split_decoded_into_memory_gives_the_same_batches(data_dir):
  ds = input_pipeline.open_dataset('procedural', data_dir, 32)
  assert input_pipeline.decoded_nbytes(ds) == 8000 * 32 * 32 * 3
  # 1 MiB is less than the split's 24,000 KiB: read from the files, as cache_mb=0.
  small_budget = input_pipeline.train_iterator(ds, 8, seed=5, num_threads=1, cache_mb=1)
  files = input_pipeline.train_iterator(ds, 8, seed=5, num_threads=1, cache_mb=0)
  memory = input_pipeline.train_iterator(ds, 8, seed=5, num_threads=2)
  # The first batches, and those across the first epoch's end (1,000 batches of 8),
  # where the shuffle draws its second permutation.
  for start in (0, 998):
    for it in (small_budget, files, memory):
      it.set_state({'next_index': start})
    for _ in range(4):
      want, budget, got = next(files), next(small_budget), next(memory)
      for k in ('image', 'label'):
        np.testing.assert_array_equal(got[k], want[k])
        np.testing.assert_array_equal(budget[k], want[k])
  decoded = input_pipeline.decoded_split(ds, num_threads=2)
  for i in (0, 4321, 7999):
    ex = ds.example(ds.sources['train'][i])
    np.testing.assert_array_equal(decoded[i]['image'], ex['image'])
    np.testing.assert_array_equal(decoded[i]['label'], ex['label'])
  from stargan_jax import cli, config as config_lib
  cfg = config_lib.tiny_config()
  cfg.data.cache_mb = -1
  with pytest.raises(cli.UserError, match='--cache_mb must be 0 or more, got -1'):
    cfg.check()


def test_host_shares_make_the_global_batch(data_dir):
  ds = input_pipeline.open_dataset('procedural', data_dir, 32)
  single = input_pipeline.train_iterator(ds, 8, seed=0, num_threads=1)
  hosts = [input_pipeline.train_iterator(ds, 8, seed=0, process_index=p, process_count=2,
                                         num_threads=1) for p in range(2)]
  for _ in range(2):
    full = next(single)
    parts = [next(h) for h in hosts]
    assert parts[0]['image'].shape[0] == 4
    np.testing.assert_array_equal(np.concatenate([p['image'] for p in parts]), full['image'])
  with pytest.raises(ValueError, match='not divisible by the number of hosts'):
    input_pipeline.train_iterator(ds, 7, seed=0, process_count=2)


def test_pixel_eval_of_identity_and_oracle_translators(data_dir):
  ds = input_pipeline.open_dataset('procedural', data_dir, 32)
  layout = labels_lib.LabelLayout((ds.spec,))
  batches = list(input_pipeline.eval_batches(ds, 50, limit=50))
  identity = pixels.evaluate(lambda p, x, c: x, None, layout, batches)['procedural']
  # The identity keeps content but reaches only targets the image already has.
  assert identity['content_preserved'] == 1.0
  assert identity['target_accuracy'] < 0.5

  def oracle(params, x, c):  # redraws with the target labels (content from the reader)
    del params
    out = []
    for img, lab in zip(np.asarray(x), np.asarray(c)):
      u8 = ((img + 1) * 127.5).round().astype(np.uint8)
      recoloured = u8.copy()
      mask = procedural.object_mask(u8)
      hue = int(np.argmax(lab[:3]))
      shade = 0.5 if lab[4] else 0.95
      recoloured[mask] = np.round(np.array(procedural._HUES[hue]) * shade * 255)
      w = procedural.frame_width(32)
      if lab[3]:
        recoloured[:w], recoloured[-w:], recoloured[:, :w], recoloured[:, -w:] = 255, 255, 255, 255
      else:
        for sl in (np.s_[:w], np.s_[-w:], np.s_[:, :w], np.s_[:, -w:]):
          recoloured[sl] = 100
      out.append(recoloured.astype(np.float32) / 127.5 - 1)
    return np.stack(out)

  result = pixels.evaluate(oracle, None, layout, batches)['procedural']
  assert result['target_accuracy'] > 0.95 and result['success'] > 0.9


def test_two_runs_building_one_missing_dataset_at_once_both_get_it(tmp_path, monkeypatch):
  # Two runs started together on one data dir: the first builds, slowly; the
  # second must wait for it and find the dataset built (without the lock it
  # built too and TFDS's final rename failed with FileExistsError).
  import threading
  import time
  from stargan_jax.datasets import drawn, registry

  builds = []

  def factory(data_dir, image_size, manual_dir=None):
    b = drawn.procedural_builder(data_dir, kind='attributes', image_size=image_size,
                                 num_train=16, num_test=4)
    real = b.download_and_prepare

    def slow_build(**kwargs):
      builds.append(threading.get_ident())
      time.sleep(1.0)
      real(**kwargs)
    b.download_and_prepare = slow_build
    return b

  monkeypatch.setitem(registry._FACTORIES, 'procedural', factory)
  data_dir = str(tmp_path / 'tfds')
  results, errors = [], []

  def run():
    try:
      results.append(registry.prepare('procedural', data_dir, 32))
    except Exception as e:  # noqa: BLE001 - the assertion below names it
      errors.append(e)

  threads = [threading.Thread(target=run) for _ in range(2)]
  threads[0].start()
  time.sleep(0.3)
  threads[1].start()
  for t in threads:
    t.join()
  assert not errors, errors
  assert len(builds) == 1
  assert [b.is_prepared() for b in results] == [True, True]
  assert os.path.exists(os.fspath(results[0].data_dir))
