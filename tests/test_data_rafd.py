"""RaFD builder: the reference layout, the raw release and its person-wise split."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

import datasets_testdata as D
from stargan_jax.datasets import common, rafd, registry
from stargan_jax import input_pipeline


def test_reference_layout_keeps_its_split_and_sorted_classes(tmp_path):
  D.write_rafd_reference(str(tmp_path / 'manual'), train_per_class=2, test_per_class=1)
  data_dir = str(tmp_path / 'tfds')
  b = registry.prepare('rafd', data_dir, 32, manual_dir=str(tmp_path / 'manual'), num_workers=2)
  assert b.info.features['label'].names == list(rafd.EXPRESSIONS)
  train, test = b.as_data_source('train'), b.as_data_source('test')
  assert (len(train), len(test)) == (16, 8)
  for r in list(train) + list(test):
    assert r['file_name'].decode().split('/')[1] == rafd.EXPRESSIONS[r['label']]
  assert sorted(r['file_name'].decode() for r in test) == sorted(
      f'test/{e}/{e}_000.jpg' for e in rafd.EXPRESSIONS)
  assert b.recorded_metadata()['build_options'] == {'image_format': 'png', 'layout': 'reference',
                                                    'crop_size': 256}
  ds = input_pipeline.open_dataset('rafd', data_dir, 32)
  assert ds.spec.kind == 'categorical' and ds.spec.names == rafd.EXPRESSIONS
  record = test[3]
  np.testing.assert_array_equal(ds.example(record)['label'], np.eye(8)[record['label']])
  with pytest.raises(ValueError, match=r"dataset 'rafd' is categorical .*--attrs does not apply"):
    input_pipeline.open_dataset('rafd', data_dir, 32, attrs=['happy'])


def test_reference_layout_centre_crop_256_and_configurable(tmp_path):
  D.write_rafd_reference(str(tmp_path / 'manual'), 1, 1, size=(280, 300))
  b = registry.prepare('rafd', str(tmp_path / 'tfds'), 32, manual_dir=str(tmp_path / 'manual'))
  record = b.as_data_source('test')[0]
  path = tmp_path / 'manual' / 'RaFD' / record['file_name'].decode()
  with Image.open(path) as im:
    # CenterCrop(256) of 280x300: left = round(24 / 2) = 12, top = round(44 / 2) = 22.
    expected = np.asarray(im.convert('RGB').crop((12, 22, 268, 278)).resize((32, 32),
                                                                           Image.BILINEAR))
  np.testing.assert_array_equal(record['image'], expected)
  x = record['image'].astype(int)  # the marked border outside the 256 crop is gone
  assert x[0, :, 0].mean() < 60 and x[-1, :, 2].mean() < 60 and x[:, 0, 0].mean() < 60
  # --crop_size: a 280 crop keeps some of the red rows at the top.
  b = registry.prepare('rafd', str(tmp_path / 'tfds2'), 32, manual_dir=str(tmp_path / 'manual'),
                       crop_size=280)
  assert b.as_data_source('test')[0]['image'][0, :, 0].astype(int).mean() > 150
  with pytest.raises(common.ImageTooSmallError, match=r'is 280x300 pixels, smaller than the '
                                                       r'320x320 centre crop; use a smaller '
                                                       r'--crop_size'):
    registry.prepare('rafd', str(tmp_path / 'tfds3'), 32, manual_dir=str(tmp_path / 'manual'),
                     crop_size=320)


def test_raw_release_names_and_the_person_split(tmp_path):
  assert rafd.parse_raw_name('Rafd090_01_Caucasian_female_angry_frontal.jpg') == {
      'angle': 90, 'person': 1, 'ethnicity': 'Caucasian', 'gender': 'female',
      'expression': 'angry', 'gaze': 'frontal'}
  assert rafd.parse_raw_name('IMG_0001.jpg') is None
  # 67 people as in the paper: 7 test people, evenly spaced through the sorted ids.
  people = list(range(1, 74))[:67]
  assert rafd.pick_test_people(people) == [5, 15, 24, 34, 44, 53, 63]
  assert rafd.pick_test_people([1, 2, 3, 5]) == [3]  # round(0.4) = 0 -> at least one person
  assert rafd.pick_test_people(range(10), test_fraction=0.2) == [2, 7]


def test_raw_release_builds_with_no_person_in_both_splits(tmp_path):
  # 4 people x 8 expressions x 2 angles kept (+ the 0-degree profile, dropped) x 1 gaze.
  D.write_rafd_raw(str(tmp_path / 'manual'), people=(1, 2, 3, 5), angles=(0, 45, 90))
  data_dir = str(tmp_path / 'tfds')
  b = registry.prepare('rafd', data_dir, 32, manual_dir=str(tmp_path / 'manual'), num_workers=2)
  train, test = b.as_data_source('train'), b.as_data_source('test')
  assert (len(train), len(test)) == (48, 16)
  meta = [(rafd.parse_raw_name(r['file_name'].decode()), r['label'])
          for r in list(train) + list(test)]
  assert {m['angle'] for m, _ in meta} == {45, 90}
  for m, label in meta:
    assert rafd.EXPRESSIONS[label] == m['expression']
  test_people = {rafd.parse_raw_name(r['file_name'].decode())['person'] for r in test}
  train_people = {rafd.parse_raw_name(r['file_name'].decode())['person'] for r in train}
  assert test_people == {3} and train_people == {1, 2, 5}
  # The raw photos' default crop is the largest centred square: 136x136 of 136x204.
  record = test[0]
  with Image.open(tmp_path / 'manual' / 'RaFD' / record['file_name'].decode()) as im:
    expected = np.asarray(im.convert('RGB').crop((0, 34, 136, 170)).resize((32, 32),
                                                                          Image.BILINEAR))
  np.testing.assert_array_equal(record['image'], expected)
  x = record['image'].astype(int)
  assert x[0, :, 0].mean() < 60 and x[-1, :, 2].mean() < 60
  assert b.recorded_metadata()['build_options'] == {
      'image_format': 'png', 'layout': 'raw', 'crop_size': None, 'angles': [45, 90, 135],
      'test_fraction': 0.1}
  # --rafd_angles keeps other angles.
  b = registry.prepare('rafd', str(tmp_path / 'tfds2'), 32, manual_dir=str(tmp_path / 'manual'),
                       rafd_angles=['0', '45', '90'])
  assert len(b.as_data_source('train')) + len(b.as_data_source('test')) == 96


def test_rafd_bad_input(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(common.LayoutError) as e:
    registry.prepare('rafd', str(tmp_path / 'tfds'), 32, manual_dir=str(empty))
  assert 'MANUAL_DIR/RaFD/train/<expression>/*.jpg' in str(e.value)
  assert 'Rafd090_01_Caucasian_female_angry_frontal.jpg' in str(e.value)
  assert f'python -m data_prep.build --dataset=rafd --image_size=32 --manual_dir={empty}' in \
      str(e.value)
  # An empty class folder.
  base = D.write_rafd_reference(str(tmp_path / 'ref'), 1, 1)
  shutil.rmtree(os.path.join(base, 'test', 'sad'))
  os.makedirs(os.path.join(base, 'test', 'sad'))
  with pytest.raises(ValueError, match=r'class folder .*RaFD/test/sad holds no images'):
    registry.prepare('rafd', str(tmp_path / 'tfds'), 32, manual_dir=str(tmp_path / 'ref'))
  # A missing expression folder.
  shutil.rmtree(os.path.join(base, 'train', 'happy'))
  with pytest.raises(ValueError, match=r'train must hold one folder per expression.*missing: '
                                       r'happy, unexpected: none'):
    registry.prepare('rafd', str(tmp_path / 'tfds'), 32, manual_dir=str(tmp_path / 'ref'))
  # Raw release: a file not named like it, and an expression with no images.
  D.write_rafd_raw(str(tmp_path / 'raw'), people=(1, 2))
  D.write_jpeg(str(tmp_path / 'raw' / 'RaFD' / 'holiday.jpg'), D.image(68, 102, None, 0))
  with pytest.raises(ValueError, match=r"1 image\(s\) in .* are not named like RaFD's raw release "
                                       r'.*: holiday.jpg'):
    registry.prepare('rafd', str(tmp_path / 'tfds'), 32, manual_dir=str(tmp_path / 'raw'))
  os.remove(tmp_path / 'raw' / 'RaFD' / 'holiday.jpg')
  for p in (1, 2):
    os.remove(tmp_path / 'raw' / 'RaFD' / D.raw_name(90, p, 'fearful'))
  with pytest.raises(ValueError, match=r'no images of expression\(s\) fearful'):
    registry.prepare('rafd', str(tmp_path / 'tfds'), 32, manual_dir=str(tmp_path / 'raw'))
  with pytest.raises(ValueError, match='rafd does not take --attr_file'):
    registry.prepare('rafd', str(tmp_path / 'tfds'), 32, manual_dir=str(tmp_path / 'raw'),
                     attr_file='x.txt')
