"""Image-folder builder: class folders, attribute files, labelled names, bad input, the CLI."""

import os
import random
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import datasets_testdata as D
from stargan_jax import cli, images, input_pipeline
from stargan_jax.datasets import common, folders, registry

CLASSES = ('cats', 'dogs', 'owls')


def _expected_test(names, n):
  names = sorted(names)
  random.Random(1234).shuffle(names)
  return sorted(names[:n])


def test_class_folders_split_per_class_and_load_by_name_alone(tmp_path):
  manual = D.write_class_folders(str(tmp_path / 'pets'), CLASSES, per_class=8)
  data_dir = str(tmp_path / 'tfds')
  b = registry.prepare('folder:pets', data_dir, 32, manual_dir=manual, num_workers=2)
  assert b.info.features['label'].names == list(CLASSES)
  train, test = b.as_data_source('train'), b.as_data_source('test')
  # 10% of 8 rounds to 1 test image per class.
  assert (len(train), len(test)) == (21, 3)
  files = [f'img_{i:03d}.jpg' for i in range(8)]
  want = sorted(f'{c}/{n}' for c in CLASSES for n in _expected_test(files, 1))
  assert sorted(r['file_name'].decode() for r in test) == want
  for r in list(train) + list(test):
    assert r['file_name'].decode().split('/')[0] == CLASSES[r['label']]
  # The training job needs only the name: classes come from the stored data.
  ds = input_pipeline.open_dataset('folder:pets', data_dir, 32)
  assert ds.spec.kind == 'categorical' and ds.spec.names == CLASSES
  assert ds.name == 'folder:pets'
  # --test_count is per class; another label is another dataset in the same data_dir.
  b2 = registry.prepare('folder:pets2', data_dir, 32, manual_dir=manual, test_count=3)
  assert (len(b2.as_data_source('train')), len(b2.as_data_source('test'))) == (15, 9)
  assert os.path.isdir(os.path.join(data_dir, 'stargan_image_folder', 'pets_32px'))
  assert os.path.isdir(os.path.join(data_dir, 'stargan_image_folder', 'pets2_32px'))
  assert len(input_pipeline.open_dataset('folder:pets', data_dir, 32)) == 21


def test_class_folders_with_their_own_split(tmp_path):
  root = tmp_path / 'own'
  D.write_class_folders(str(root / 'train'), ('a', 'b'), per_class=3)
  D.write_class_folders(str(root / 'test'), ('a', 'b'), per_class=1)
  b = registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=str(root))
  assert sorted(r['file_name'].decode() for r in b.as_data_source('test')) == [
      'test/a/img_000.jpg', 'test/b/img_000.jpg']
  assert len(b.as_data_source('train')) == 6
  assert b.recorded_metadata()['build_options']['layout'] == 'class_folders_split'


def test_attribute_file_layout_and_attribute_selection(tmp_path):
  manual = tmp_path / 'faces'
  names = [f'p{i:02d}.png' if i % 2 else f'sub/p{i:02d}.jpg' for i in range(20)]
  values = np.random.default_rng(1).integers(0, 2, (20, 3))
  for i, n in enumerate(names):
    path = str(manual / 'images' / n)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(D.image(40, 40, None, i)).save(path)
  D.write_attr_file(str(manual / 'list_attr.txt'), names, ('Smiling', 'Glasses', 'Hat'), values)
  data_dir = str(tmp_path / 'tfds')
  b = registry.prepare('folder:faces', data_dir, 32, manual_dir=str(manual), test_count=5)
  train, test = b.as_data_source('train'), b.as_data_source('test')
  assert (len(train), len(test)) == (15, 5)
  assert sorted(r['file_name'].decode() for r in test) == _expected_test(names, 5)
  ds = input_pipeline.open_dataset('folder:faces', data_dir, 32)
  assert ds.spec.kind == 'attributes'
  assert ds.spec.names == ('Smiling', 'Glasses', 'Hat')  # all, in the file's order
  ds = input_pipeline.open_dataset('folder:faces', data_dir, 32, attrs=['Hat', 'Smiling'])
  by_name = dict(zip(names, values))
  for r in test:
    want = by_name[r['file_name'].decode()][[2, 0]].astype(np.float32)
    np.testing.assert_array_equal(ds.example(r)['label'], want)
  with pytest.raises(ValueError, match=r"unknown attribute\(s\) \['Beard'\] for dataset "
                                       r"'folder:faces'; valid attributes: "):
    input_pipeline.open_dataset('folder:faces', data_dir, 32, attrs=['Beard'])
  # --attr_file with another name, relative to the manual dir.
  os.rename(manual / 'list_attr.txt', manual / 'labels.txt')
  b = registry.prepare('folder:faces2', data_dir, 32, manual_dir=str(manual),
                       attr_file='labels.txt')
  assert len(b.as_data_source('train')) + len(b.as_data_source('test')) == 20


def test_crop_default_square_and_explicit(tmp_path):
  manual = D.write_class_folders(str(tmp_path / 'm'), ('a', 'b'), per_class=2, size=(48, 40))
  b = registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=manual)
  record = b.as_data_source('test')[0]
  with Image.open(os.path.join(manual, record['file_name'].decode())) as im:
    # The largest centred square of 48x40: left = round(8 / 2) = 4.
    expected = np.asarray(im.convert('RGB').crop((4, 0, 44, 40)).resize((32, 32),
                                                                        Image.BILINEAR))
  np.testing.assert_array_equal(record['image'], expected)
  # --image_format=jpeg stores JPEGs (quality 95) of nearly the same pixels.
  j = registry.prepare('folder', str(tmp_path / 'tfds_jpeg'), 32, manual_dir=manual,
                       image_format='jpeg')
  assert j.info.features['image'].encoding_format == 'jpeg'
  assert j.recorded_metadata()['build_options']['image_format'] == 'jpeg'
  shard = [f for f in os.listdir(j.data_dir) if 'test.array_record' in f][0]
  with open(os.path.join(j.data_dir, shard), 'rb') as f:
    assert b'\xff\xd8\xff' in f.read()  # JPEG start-of-image marker
  jrecord = j.as_data_source('test')[0]
  assert jrecord['file_name'] == record['file_name']
  assert np.abs(jrecord['image'].astype(int) - record['image']).mean() < 3
  with pytest.raises(common.ImageTooSmallError, match=r'image a/img_00[01].jpg is 48x40 pixels, '
                                                       r'smaller than the 44x44 centre crop'):
    registry.prepare('folder', str(tmp_path / 'tfds2'), 32, manual_dir=manual, crop_size=44)


def test_exif_orientation_is_applied(tmp_path):
  manual = D.write_class_folders(str(tmp_path / 'm'), ('a', 'b'), per_class=2, size=(40, 40))
  x = np.zeros((40, 40, 3), np.uint8)
  x[:, :20] = (255, 255, 255)  # white left half
  im = Image.fromarray(x)
  exif = im.getexif()
  exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
  for i in range(2):
    im.save(os.path.join(manual, 'a', f'img_{i:03d}.jpg'), exif=exif, quality=95,
            subsampling=0)
  b = registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=manual)
  a_records = [r for s in ('train', 'test') for r in b.as_data_source(s) if r['label'] == 0]
  y = a_records[0]['image'].astype(int)
  assert y[:12].mean() > 200 and y[-12:].mean() < 50  # the white half is now on top


def test_folder_bad_input(tmp_path):
  assert folders.make_config('pets', 64).name == 'pets_64px'
  with pytest.raises(common.LayoutError) as e:
    registry.prepare('folder:mine', str(tmp_path / 'tfds'), 32, manual_dir=str(tmp_path / 'no'))
  assert 'MANUAL_DIR/<class>/*.jpg' in str(e.value) and 'list_attr.txt' in str(e.value)
  assert 'python -m data_prep.build --dataset=folder:mine --image_size=32' in str(e.value)
  # An empty class folder.
  manual = D.write_class_folders(str(tmp_path / 'm'), ('a', 'b', 'c'), per_class=3)
  for f in os.listdir(os.path.join(manual, 'b')):
    os.remove(os.path.join(manual, 'b', f))
  with pytest.raises(ValueError, match=r'class folder .*m/b holds no images'):
    registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=manual)
  # Images outside any class folder; a single class.
  D.write_jpeg(os.path.join(manual, 'loose.jpg'), D.image(40, 40, None, 0))
  with pytest.raises(common.LayoutError, match=r'1 image\(s\) lie directly in it, in no class '
                                                r'folder: loose.jpg'):
    registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=manual)
  one = D.write_class_folders(str(tmp_path / 'one'), ('a',), per_class=3)
  with pytest.raises(common.LayoutError, match=r'1 class folder\(s\); StarGAN needs 2 or more'):
    registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=one)
  # Attribute rows naming missing files, and images with no row.
  faces = tmp_path / 'faces'
  names = [f'{i}.jpg' for i in range(6)]
  for i, n in enumerate(names[:4] + ['extra.jpg']):
    D.write_jpeg(str(faces / n), D.image(40, 40, None, i))
  D.write_attr_file(str(faces / 'attributes.txt'), names, ('A', 'B'), np.ones((6, 2)))
  with pytest.raises(FileNotFoundError, match=r'2 row\(s\) of .*attributes.txt name images that '
                                              r'are not in .*faces: 4.jpg, 5.jpg'):
    registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=str(faces))
  D.write_attr_file(str(faces / 'attributes.txt'), names[:4], ('A', 'B'), np.ones((4, 2)))
  with pytest.raises(ValueError, match=r'1 image\(s\) in .*faces have no row in .*attributes.txt:'
                                       r' extra.jpg'):
    registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=str(faces))
  with pytest.raises(FileNotFoundError, match=r'--attr_file=nope.txt: no such file'):
    registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=str(faces),
                     attr_file='nope.txt')
  # Names.
  with pytest.raises(ValueError, match=r'may use only letters, digits and "_", got \'a-b\''):
    registry.get_builder('folder:a-b', str(tmp_path / 'tfds'), 32)
  with pytest.raises(ValueError, match=r"unknown dataset 'folders'; known datasets: celeba, "
                                       r'(.*, )?folder, .*, folder:NAME'):
    registry.get_builder('folders', str(tmp_path / 'tfds'), 32)
  with pytest.raises(FileNotFoundError, match=r"dataset 'folder:nothere' at 32 px is not prepared"
                                              r'.*--dataset=folder:nothere'):
    input_pipeline.open_dataset('folder:nothere', str(tmp_path / 'tfds'), 32)
  with pytest.raises(ValueError, match='give --test_fraction or --test_count, not both'):
    registry.prepare('folder', str(tmp_path / 'tfds'), 32, manual_dir=manual, test_count=1,
                     test_fraction=0.5)


def test_rebuilding_with_other_options_is_refused(tmp_path):
  manual = D.write_class_folders(str(tmp_path / 'm'), ('a', 'b'), per_class=4)
  data_dir = str(tmp_path / 'tfds')
  registry.prepare('folder', data_dir, 32, manual_dir=manual)
  registry.prepare('folder', data_dir, 32, manual_dir=manual)  # same options: reused
  with pytest.raises(ValueError, match=r'already prepared with other options \(crop_size: built '
                                       r'None, requested 30\)\. Delete that directory'):
    registry.prepare('folder', data_dir, 32, manual_dir=manual, crop_size=30)


def test_one_build_command_for_your_own_images(tmp_path):
  manual = D.write_class_folders(str(tmp_path / 'm'), ('a', 'b'), per_class=5)
  with open(os.path.join(manual, 'b', 'img_002.jpg'), 'wb') as f:
    f.write(b'broken')
  cmd = [sys.executable, '-m', 'data_prep.build', '--dataset=folder:cli', f'--manual_dir={manual}',
         f'--data_dir={tmp_path / "tfds"}', '--image_size=32', '--skip_corrupt']
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get('PYTHONPATH', ''))
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=repo)
  assert out.returncode == 0, out.stderr[-2000:]
  assert 'prepared stargan_image_folder/cli_32px/1.0.0' in out.stdout
  assert '(test: 2, train: 7)' in out.stdout
  assert 'skipped 1 corrupt image(s): b/img_002.jpg' in out.stdout


def test_user_mistakes_are_one_error_line(tmp_path, capsys):
  """Bad flags, files and names: a cli.UserError, printed as one error: line with status 2."""
  from data_prep import build
  manual = D.write_class_folders(str(tmp_path / 'm'), ('a', 'b'), per_class=3)
  data_dir = str(tmp_path / 'tfds')
  cases = [
      (['--dataset=folders'], "unknown dataset 'folders'; known datasets: celeba"),
      (['--datasets=celeba,rafd'], 'one dataset per command'),
      (['--dataset=procedural', '--crop_size=10'], 'procedural does not take --crop_size'),
      (['--dataset=folder', f'--manual_dir={manual}', '--test_count=9'],
       '--test_count=9 must be between 1 and 2'),
      (['--dataset=folder:x', f'--manual_dir={tmp_path / "none"}'],
       'image folder: --manual_dir must be a folder of your images'),
  ]
  for argv, message in cases:
    assert build.main([*argv, f'--data_dir={data_dir}', '--image_size=32']) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith('error: ') and message in err, (argv, err)
  # --datasets is the trainer's name for the same flag.
  assert build.main(['--datasets=folder:ab', f'--manual_dir={manual}', f'--data_dir={data_dir}',
                     '--image_size=32', '--num_workers=1']) == 0
  assert 'prepared stargan_image_folder/ab_32px/1.0.0' in capsys.readouterr().out
  # Opening it at a size it was not built at names the sizes it has.
  with pytest.raises(input_pipeline.ImageSizeError, match=r"'folder:ab' is prepared in .* at "
                                                          r'32 px, not at 64 px'):
    input_pipeline.open_dataset('folder:ab', data_dir, 64)
  for error in (input_pipeline.NotPreparedError, input_pipeline.DataError,
                registry.UnknownDatasetError, common.BuildError, common.LayoutError,
                common.CorruptImageError, images.UnreadableImageError):
    assert issubclass(error, cli.UserError), error
  with pytest.raises(cli.UserError, match=r"unknown attribute\(s\) \['x'\]|categorical"):
    input_pipeline.open_dataset('folder:ab', data_dir, 32, attrs=['x'])


def test_one_definition_of_an_image_file_and_the_crop():
  # The builder and translate take the same files (stargan_jax.images).
  assert images.is_image_file('a/B.JPG') and images.is_image_file('x.gif')
  assert not images.is_image_file('.hidden.png') and not images.is_image_file('notes.txt')
  # torchvision CenterCrop's rounding: CelebA's 178x218 -> top 20; 137x99 square 50 -> (44, 24).
  assert images.center_crop_box(178, 218, 178) == (0, 20, 178, 198)
  assert images.center_crop_box(137, 99, 50) == images.center_crop_box(137, 99, 50, 50) == (
      44, 24, 94, 74)
  x = np.random.default_rng(0).integers(0, 256, (218, 178, 3), dtype=np.uint8)
  out = images.crop_and_resize(Image.fromarray(x), 32, 178)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(
      Image.fromarray(x).crop((0, 20, 178, 198)).resize((32, 32), Image.BILINEAR)))
  assert images.crop_and_resize(Image.fromarray(x), 178).size == (178, 178)  # largest square
  with pytest.raises(images.UnreadableImageError, match=r'cannot read image x.jpg: '):
    images.open_rgb(b'not an image', 'x.jpg')
