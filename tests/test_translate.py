"""Translating user images: folders with broken files, targets by name, clear errors."""

import json
import os

import numpy as np
import pytest
from PIL import Image

import evaluate_testdata
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax import procedural
from stargan_jax import translate

NAMES = ('Red', 'Green', 'Blue', 'Frame', 'Dark')
ATTR_LAYOUT = labels_lib.LabelLayout(
    (labels_lib.DomainSpec('procedural', NAMES, labels_lib.ATTRIBUTES, NAMES[:3]),))
CLASS_LAYOUT = labels_lib.LabelLayout(
    (labels_lib.DomainSpec('procedural_classes', procedural.CLASS_NAMES, labels_lib.CATEGORICAL),))


@pytest.fixture(scope='module')
def run(tmp_path_factory, data_dir):
  return evaluate_testdata.attribute_run(tmp_path_factory, data_dir)


@pytest.fixture(scope='module')
def classes_run(tmp_path_factory, data_dir):
  return evaluate_testdata.classes_checkpoint(tmp_path_factory, data_dir)


def _photo_folder(path):
  os.makedirs(path)
  rng = np.random.default_rng(0)
  image, _ = procedural.sample_attribute_example(rng, 64)
  Image.fromarray(image).save(os.path.join(path, 'square.png'))
  # 48 wide, 64 high: the centre square is rows 8..55.
  tall = np.zeros((64, 48, 3), np.uint8)
  tall[8:56] = 200
  Image.fromarray(tall).save(os.path.join(path, 'tall.jpg'), quality=95)
  with open(os.path.join(path, 'broken.jpg'), 'wb') as f:
    f.write(b'\xff\xd8 this is not a JPEG')
  with open(os.path.join(path, 'notes.txt'), 'w') as f:
    f.write('not an image')


def test_folder_with_a_broken_file(run, tmp_path, capsys):
  folder = str(tmp_path / 'photos')
  _photo_folder(folder)
  out = tmp_path / 'out'
  rc = translate.main([f'--workdir={run}', f'--input={folder}', f'--out={out}', '--all_domains',
                       '--grid'])
  assert rc == 0
  captured = capsys.readouterr()
  assert 'cannot read image' in captured.err and 'broken.jpg' in captured.err
  assert 'Translated 2 of 3 image(s)' in captured.out and '1 could not be read' in captured.out
  assert 'notes.txt' in captured.out  # ignored, and said so
  columns = ['Red', 'Green', 'Blue', 'Frame-flipped', 'Dark-flipped']
  for stem in ('square', 'tall'):
    for col in columns:
      img = Image.open(out / f'{stem}-{col}.png')
      assert img.size == (32, 32)  # the checkpoint's image size
    assert Image.open(out / f'{stem}-grid.png').size == (32 * 6, 32)
  assert Image.open(out / 'grid.png').size == (32 * 6, 32 * 2)
  assert not any('broken' in n for n in os.listdir(out))
  labels = json.loads((out / 'labels.json').read_text())
  assert labels['columns'] == ['input'] + columns
  assert [os.path.basename(r['input']) for r in labels['images']] == ['square.png', 'tall.jpg']
  record = labels['images'][0]
  read = record['labels_read_by_D']['procedural']
  # 'Blue' column: the hue set to Blue, the rest as D read them.
  assert record['targets']['Blue']['procedural'] == dict(read, Red=0.0, Green=0.0, Blue=1.0)
  assert record['targets']['Frame-flipped']['procedural']['Frame'] == 1.0 - read['Frame']


def test_only_broken_images_exit_nonzero(run, tmp_path, capsys):
  folder = tmp_path / 'bad'
  folder.mkdir()
  (folder / 'a.png').write_bytes(b'garbage')
  assert translate.main([f'--workdir={run}', f'--input={folder}', f'--out={tmp_path / "o"}',
                         '--attrs=Frame=1']) == 1
  err = capsys.readouterr().err
  assert 'a.png' in err and 'none of the 1 input image(s) could be read' in err


def test_domain_on_a_categorical_checkpoint(classes_run, run, tmp_path, capsys):
  src = tmp_path / 'in.png'
  Image.fromarray(procedural.sample_class_example(np.random.default_rng(1), 32)[0]).save(src)
  assert translate.main([f'--workdir={classes_run}', f'--input={src}', f'--out={tmp_path}',
                         '--domain=hstripes']) == 0
  assert Image.open(tmp_path / 'in-hstripes.png').size == (32, 32)
  assert translate.main([f'--workdir={classes_run}', f'--input={src}', f'--out={tmp_path}',
                         '--domain=happy']) == 2
  err = capsys.readouterr().err
  assert "unknown domain 'happy'" in err and 'solid, hstripes, vstripes, checker' in err
  # --attrs on a categorical checkpoint, --domain on an attribute one.
  assert translate.main([f'--workdir={classes_run}', f'--input={src}', f'--out={tmp_path}',
                         '--attrs=Male=0']) == 2
  assert 'categorical classes' in capsys.readouterr().err
  assert translate.main([f'--workdir={run}', f'--input={src}', f'--out={tmp_path}',
                         '--domain=happy']) == 2
  assert 'use --attrs' in capsys.readouterr().err


def test_attribute_targets_by_name():
  (t,) = translate.build_targets(ATTR_LAYOUT, attrs='Blue=1,Frame=0')
  c = np.array([[1, 0, 0, 1, 1], [0, 1, 0, 0, 0]], np.float32)
  # Setting a hue clears the other hues; the rest keep their values.
  np.testing.assert_array_equal(t.make(c), [[0, 0, 1, 0, 1], [0, 0, 1, 0, 0]])
  assert t.name == 'Blue1_Frame0'
  (t,) = translate.build_targets(ATTR_LAYOUT, attrs='Red=0')
  np.testing.assert_array_equal(t.make(c), [[0, 0, 0, 1, 1], [0, 1, 0, 0, 0]])
  (t,) = translate.build_targets(CLASS_LAYOUT, domain='checker')
  np.testing.assert_array_equal(t.make(np.eye(4, dtype=np.float32)[[0]]), [[0, 0, 0, 1]])
  assert len(translate.build_targets(CLASS_LAYOUT, all_domains=True)) == 4

  with pytest.raises(translate.TargetError,
                     match="unknown attribute 'Blond_Hair'; .*Red, Green, Blue, Frame, Dark"):
    translate.build_targets(ATTR_LAYOUT, attrs='Blond_Hair=1')
  with pytest.raises(translate.TargetError, match='mutually exclusive'):
    translate.build_targets(ATTR_LAYOUT, attrs='Red=1,Blue=1')
  with pytest.raises(translate.TargetError, match="must be 1 or 0, got '2'"):
    translate.build_targets(ATTR_LAYOUT, attrs='Red=2')
  with pytest.raises(translate.TargetError, match='NAME=1 or NAME=0'):
    translate.build_targets(ATTR_LAYOUT, attrs='Red')
  with pytest.raises(translate.TargetError, match='exactly one of'):
    translate.build_targets(ATTR_LAYOUT, attrs='Red=1', all_domains=True)
  with pytest.raises(translate.TargetError, match='exactly one of'):
    translate.build_targets(ATTR_LAYOUT)


def test_images_are_prepared_as_in_training(data_dir, tmp_path):
  # A dataset image written to disk and read back equals the pipeline's.
  ds = input_pipeline.open_dataset('procedural', data_dir, 32)
  batch = next(input_pipeline.eval_batches(ds, 1, limit=1))
  Image.fromarray(np.asarray(ds.sources['test'][0]['image'])).save(tmp_path / 'x.png')
  np.testing.assert_array_equal(translate.load_image(str(tmp_path / 'x.png'), 32),
                                batch['image'][0])
  # Non-square: the largest centred square (rows 10..49 of 60), then the resize.
  img = np.zeros((60, 40, 3), np.uint8)
  img[:10, :, 0] = 255
  img[10:50, :, 1] = 255
  img[50:, :, 2] = 255
  Image.fromarray(img).save(tmp_path / 'tall.png')
  x = translate.load_image(str(tmp_path / 'tall.png'), 32)
  np.testing.assert_array_equal(x, np.broadcast_to(np.array([-1.0, 1.0, -1.0], np.float32),
                                                   (32, 32, 3)))
  # A fixed crop (--crop_size=20): the centre 20x20 of the same image, all green.
  x = translate.load_image(str(tmp_path / 'tall.png'), 16, crop_size=20)
  assert x.shape == (16, 16, 3) and np.all(x[..., 1] == 1.0)
  with pytest.raises(translate.UnreadableImageError, match='nothing.png'):
    translate.load_image(str(tmp_path / 'nothing.png'), 32)


def test_batch_shapes_one_image_alone_and_padded_chunks(run, tmp_path, monkeypatch):
  # One image runs G on a batch of one, as the web demo does (so the two agree
  # bit for bit on any CPU); a larger set is cut into --batch_size chunks, the
  # last padded up, so that one program is compiled.
  from stargan_jax import inference
  seen = []
  real = inference.LoadedModel.translate_np

  def recording(self, g_params, x, c):
    seen.append(np.shape(x)[0])
    return real(self, g_params, x, c)

  monkeypatch.setattr(inference.LoadedModel, 'translate_np', recording)
  folder = tmp_path / 'photos'
  os.makedirs(folder)
  rng = np.random.default_rng(1)
  for i in range(3):
    Image.fromarray(procedural.sample_attribute_example(rng, 32)[0]).save(folder / f'{i}.png')
  summary = translate.translate(run, str(folder / '0.png'), str(tmp_path / 'one'),
                                attrs='Blue=1', log=lambda m: None)
  assert summary['translated'] == 1 and seen == [1]
  seen.clear()
  summary = translate.translate(run, str(folder), str(tmp_path / 'three'), attrs='Blue=1',
                                batch_size=2, log=lambda m: None)
  assert summary['translated'] == 3 and seen == [2, 2]
