"""CelebA builder: the official split, the three layouts, the crop, and bad input."""

import json
import os
import random

import numpy as np
import pytest
from PIL import Image

import datasets_testdata as D
from stargan_jax.datasets import celeba, common, registry
from stargan_jax import input_pipeline


def _prepare(tmp_path, layout='reference', n=24, test_count=4, **options):
  names, values = D.write_celeba(str(tmp_path / 'manual'), n, layout)
  data_dir = str(tmp_path / 'tfds')
  b = registry.prepare('celeba', data_dir, 32, manual_dir=str(tmp_path / 'manual'),
                       test_count=test_count, num_workers=2, **options)
  return b, data_dir, names, values


def _reference_loader_split(attr_path, num_test=1999):
  """The reference's data_loader.py preprocess(), line by line (global random, restored)."""
  saved = random.getstate()
  try:
    lines = [line.rstrip() for line in open(attr_path, 'r')]
    lines = lines[2:]
    random.seed(1234)
    random.shuffle(lines)
    test, train = [], []
    for i, line in enumerate(lines):
      (test if (i + 1) < num_test + 1 else train).append(line.split()[0])
    return train, test
  finally:
    random.setstate(saved)


def test_official_split_of_the_full_attribute_file(tmp_path):
  assert len(celeba.CELEBA_ATTRIBUTES) == 40 and celeba.CELEBA_ATTRIBUTES[27] == 'Pointy_Nose'
  path = tmp_path / 'list_attr_celeba.txt'
  row = ' ' + ' '.join(['-1'] * 40) + '\n'
  with open(path, 'w') as f:
    f.write('202599\n' + ' '.join(celeba.CELEBA_ATTRIBUTES) + ' \n')
    f.writelines(f'{i:06d}.jpg{row}' for i in range(1, 202600))
  state = random.getstate()
  train, test = celeba.official_split(str(path))
  assert random.getstate() == state  # pure: the global generator is untouched
  assert test[0] == '028136.jpg'
  assert (len(test), len(train)) == (1999, 200600)
  assert set(train) | set(test) == {f'{i:06d}.jpg' for i in range(1, 202600)}
  assert not set(train) & set(test)
  assert (train, test) == _reference_loader_split(str(path))


@pytest.mark.parametrize('layout', ['reference', 'release', 'zip'])
def test_builds_from_each_layout_with_all_attributes_and_the_split(tmp_path, layout):
  b, _, names, values = _prepare(tmp_path, layout)
  assert b.is_prepared()
  test = b.as_data_source('test')
  train = b.as_data_source('train')
  assert (len(train), len(test)) == (20, 4)
  attr_path = str(tmp_path / 'manual' / ('celeba' if layout == 'reference' else '')
                  / 'list_attr_celeba.txt')
  ref_train, ref_test = _reference_loader_split(attr_path, num_test=4)
  # The test split keeps the reference's order; train holds the rest.
  assert [r['file_name'].decode() for r in test] == ref_test
  assert sorted(r['file_name'].decode() for r in train) == sorted(ref_train)
  by_name = dict(zip(names, values))
  for r in list(test) + [train[0], train[19]]:
    attrs = r['attributes']
    assert set(attrs) == set(celeba.CELEBA_ATTRIBUTES)
    got = [int(attrs[a]) for a in celeba.CELEBA_ATTRIBUTES]
    assert got == list(by_name[r['file_name'].decode()])


def test_centre_crop_178_then_bilinear_resize_like_the_reference(tmp_path):
  b, _, _, _ = _prepare(tmp_path, 'reference')
  record = b.as_data_source('test')[0]
  name = record['file_name'].decode()
  with Image.open(tmp_path / 'manual' / 'celeba' / 'images' / name) as im:
    assert im.size == (178, 218)
    # torchvision CenterCrop(178) on 178x218: top = round(40 / 2) = 20.
    expected = np.asarray(im.convert('RGB').crop((0, 20, 178, 198)).resize((32, 32),
                                                                           Image.BILINEAR))
  np.testing.assert_array_equal(record['image'], expected)
  x = record['image'].astype(int)
  # The 20 rows above and below the crop are red and blue; none of it is kept.
  assert x[0, :, 0].mean() < 60 and x[0, :, 1].mean() > 120
  assert x[-1, :, 2].mean() < 60 and x[-1, :, 1].mean() > 120


def test_attribute_selection_by_name_and_unknown_names(tmp_path):
  _, data_dir, names, values = _prepare(tmp_path)
  by_name = dict(zip(names, values))
  ds = input_pipeline.open_dataset('celeba', data_dir, 32)
  assert ds.spec.names == ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male', 'Young')
  assert ds.spec.exclusive == ('Black_Hair', 'Blond_Hair', 'Brown_Hair')
  ds = input_pipeline.open_dataset('celeba', data_dir, 32, attrs=['Smiling', 'Male', 'Bald'])
  assert ds.spec.names == ('Smiling', 'Male', 'Bald')
  record = ds.sources['train'][3]
  cols = [celeba.CELEBA_ATTRIBUTES.index(a) for a in ('Smiling', 'Male', 'Bald')]
  want = by_name[record['file_name'].decode()][cols]
  np.testing.assert_array_equal(ds.example(record)['label'], want.astype(np.float32))
  batch = next(input_pipeline.eval_batches(ds, 4))
  assert batch['image'].shape == (4, 32, 32, 3) and batch['label'].shape == (4, 3)
  with pytest.raises(ValueError, match=r"unknown attribute\(s\) \['Hairy'\].*valid attributes: "
                                       r"5_o_Clock_Shadow, Arched_Eyebrows"):
    input_pipeline.open_dataset('celeba', data_dir, 32, attrs=['Male', 'Hairy'])


def test_missing_manual_files_show_the_layout_and_the_command(tmp_path):
  (tmp_path / 'manual').mkdir()
  with pytest.raises(common.LayoutError) as e:
    registry.prepare('celeba', str(tmp_path / 'tfds'), 32, manual_dir=str(tmp_path / 'manual'))
  msg = str(e.value)
  assert 'list_attr_celeba.txt and the images not found' in msg
  assert 'MANUAL_DIR/celeba/images/000001.jpg' in msg and 'img_align_celeba.zip' in msg
  assert f'python -m data_prep.build --dataset=celeba --image_size=32 --manual_dir=' \
         f'{tmp_path / "manual"}' in msg
  # Images without the attribute file.
  D.write_jpeg(str(tmp_path / 'manual' / 'img_align_celeba' / '000001.jpg'),
               D.image(178, 218, 178, 0))
  with pytest.raises(common.LayoutError, match='list_attr_celeba.txt not found'):
    registry.prepare('celeba', str(tmp_path / 'tfds'), 32, manual_dir=str(tmp_path / 'manual'))
  with pytest.raises(common.LayoutError, match='no --manual_dir was given'):
    registry.prepare('celeba', str(tmp_path / 'tfds'), 32)


def test_rows_without_images_and_images_without_rows_are_named(tmp_path):
  manual = tmp_path / 'manual'
  D.write_celeba(str(manual), 24)
  os.remove(manual / 'celeba' / 'images' / '000003.jpg')
  os.remove(manual / 'celeba' / 'images' / '000011.jpg')
  with pytest.raises(FileNotFoundError, match=r'2 row\(s\) of .*list_attr_celeba.txt name images '
                                              r'that are not in .*: 000003.jpg, 000011.jpg'):
    registry.prepare('celeba', str(tmp_path / 'tfds'), 32, manual_dir=str(manual), test_count=4)
  D.write_celeba(str(manual), 24)
  D.write_jpeg(str(manual / 'celeba' / 'images' / 'stray.jpg'), D.image(178, 218, 178, 0))
  with pytest.raises(ValueError, match=r'1 image\(s\) in .* have no row in .*: stray.jpg'):
    registry.prepare('celeba', str(tmp_path / 'tfds'), 32, manual_dir=str(manual), test_count=4)


def test_bad_attribute_files(tmp_path):
  path = str(tmp_path / 'list_attr_celeba.txt')
  D.write_attr_file(path, ['000001.jpg', '000002.jpg'], celeba.CELEBA_ATTRIBUTES,
                    np.ones((2, 40)), count=3)
  with pytest.raises(ValueError, match='line 1 says 3 images but the file has 2 image lines'):
    celeba.read_attr_file(path)
  with open(path, 'w') as f:
    f.write('1\n' + ' '.join(celeba.CELEBA_ATTRIBUTES) + '\n000001.jpg 1 -1\n')
  with pytest.raises(ValueError, match=r'line 3: expected a file name and 40 values, got 3'):
    celeba.read_attr_file(path)
  with open(path, 'w') as f:
    f.write('1\nA B\n000001.jpg 1 2\n')
  with pytest.raises(ValueError, match=r'line 3: attribute values must be 1, -1 or 0'):
    celeba.read_attr_file(path)
  # A 2-column file is not CelebA's.
  manual = tmp_path / 'manual'
  D.write_celeba(str(manual), 8)
  D.write_attr_file(str(manual / 'celeba' / 'list_attr_celeba.txt'),
                    [f'{i:06d}.jpg' for i in range(1, 9)], ('Male', 'Hat'), np.ones((8, 2)))
  with pytest.raises(ValueError, match=r"header is not CelebA's 40 attributes \(unexpected: "
                                       r"Hat; missing: 5_o_Clock_Shadow"):
    registry.prepare('celeba', str(tmp_path / 'tfds'), 32, manual_dir=str(manual), test_count=4)


def test_corrupt_and_truncated_images_are_named_or_skipped_and_counted(tmp_path):
  manual = tmp_path / 'manual'
  D.write_celeba(str(manual), 24)
  images = manual / 'celeba' / 'images'
  (images / '000007.jpg').write_bytes(b'this is not a jpeg')
  data = (images / '000015.jpg').read_bytes()
  (images / '000015.jpg').write_bytes(data[:len(data) // 2])
  data_dir = str(tmp_path / 'tfds')
  with pytest.raises(common.CorruptImageError,
                     match=r'cannot read image 0000(07|15)\.jpg.*--skip_corrupt'):
    registry.prepare('celeba', data_dir, 32, manual_dir=str(manual), test_count=4,
                     num_workers=1)
  b = registry.get_builder('celeba', data_dir, 32)
  assert not b.is_prepared()
  with pytest.raises(common.CorruptImageError, match=r'000015.jpg: OSError: image file is '
                                                      r'truncated'):
    common.preprocess(str(images / '000015.jpg'), '000015.jpg', 178, 32)
  b = registry.prepare('celeba', data_dir, 32, manual_dir=str(manual), test_count=4,
                       skip_corrupt=True, num_workers=2)
  assert sorted(b.skipped) == ['000007.jpg', '000015.jpg']
  assert len(b.as_data_source('train')) + len(b.as_data_source('test')) == 22
  with open(os.path.join(b.data_dir, 'metadata.json')) as f:
    assert sorted(json.load(f)['skipped_corrupt']) == ['000007.jpg', '000015.jpg']


def test_a_failed_or_interrupted_build_never_loads_as_complete(tmp_path):
  manual = tmp_path / 'manual'
  D.write_celeba(str(manual), 24)
  # The last test image (the last one written) is corrupt: every other
  # example has been written when the build fails.
  _, test = celeba.split_of_names([f'{i:06d}.jpg' for i in range(1, 25)], 4)
  (manual / 'celeba' / 'images' / test[-1]).write_bytes(b'\xff\xd8\xff garbage')
  data_dir = str(tmp_path / 'tfds')
  with pytest.raises(common.CorruptImageError, match=test[-1]):
    registry.prepare('celeba', data_dir, 32, manual_dir=str(manual), test_count=4)
  assert not registry.get_builder('celeba', data_dir, 32).is_prepared()
  assert not os.path.exists(os.path.join(data_dir, 'stargan_celeba', '32px', '1.0.0'))
  # An interrupted build (killed) leaves only an incomplete.* directory.
  partial = os.path.join(data_dir, 'stargan_celeba', '32px', 'incomplete.ABC_1.0.0')
  os.makedirs(partial)
  open(os.path.join(partial, 'stargan_celeba-train.array_record-00000-of-00001'), 'w').close()
  assert not registry.get_builder('celeba', data_dir, 32).is_prepared()
  with pytest.raises(FileNotFoundError, match=r"dataset 'celeba' at 32 px is not prepared .*"
                                              r"python -m data_prep.build --dataset=celeba"):
    input_pipeline.open_dataset('celeba', data_dir, 32)
  # With the file fixed, the next build succeeds.
  D.write_jpeg(str(manual / 'celeba' / 'images' / test[-1]), D.image(178, 218, 178, 0))
  b = registry.prepare('celeba', data_dir, 32, manual_dir=str(manual), test_count=4)
  assert len(b.as_data_source('test')) == 4


def test_image_smaller_than_the_crop(tmp_path):
  manual = tmp_path / 'manual'
  D.write_celeba(str(manual), 24)
  D.write_jpeg(str(manual / 'celeba' / 'images' / '000005.jpg'), D.image(170, 200, 170, 0))
  with pytest.raises(common.ImageTooSmallError, match=r'image 000005.jpg is 170x200 pixels, '
                                                       r'smaller than the 178x178 centre crop'):
    registry.prepare('celeba', str(tmp_path / 'tfds'), 32, manual_dir=str(manual), test_count=4)


def test_rebuilding_with_other_options_or_unsupported_flags(tmp_path):
  b, data_dir, _, _ = _prepare(tmp_path)
  same = registry.prepare('celeba', data_dir, 32, manual_dir=str(tmp_path / 'manual'),
                          test_count=4)
  assert same.is_prepared()
  with pytest.raises(ValueError, match=r'already prepared with other options \(num_test: built '
                                       r'4, requested 1999\)'):
    registry.prepare('celeba', data_dir, 32, manual_dir=str(tmp_path / 'manual'))
  with pytest.raises(ValueError, match='celeba does not take --crop_size'):
    registry.prepare('celeba', data_dir, 32, manual_dir=str(tmp_path / 'manual'), crop_size=150)
  with pytest.raises(ValueError, match=r'lists 24 images; the CelebA split puts 1999 in the test '
                                       r'set'):
    registry.prepare('celeba', str(tmp_path / 'other'), 32, manual_dir=str(tmp_path / 'manual'))
