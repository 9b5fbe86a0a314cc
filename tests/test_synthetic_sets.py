"""The synthetic CelebA- and RaFD-layout face sets: layouts, builds, labels, determinism."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from data_prep import synthetic_sets as S
from stargan_jax import faces, input_pipeline
from stargan_jax.datasets import celeba, rafd, registry

QUIET = dict(log=lambda *a: None)


@pytest.fixture(scope='module')
def celeba_set(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('own') / 'celeba')
  summary = S.generate('celeba', out, 40, seed=0, workers=2, **QUIET)
  return out, summary


@pytest.fixture(scope='module')
def rafd_set(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('own') / 'rafd')
  summary = S.generate('rafd', out, 24, seed=0, workers=2, **QUIET)
  return out, summary


def _plane_residual(pixels: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
  design = np.stack([np.ones_like(x), x, y], 1).astype(np.float64)
  coef, *_ = np.linalg.lstsq(design, pixels.astype(np.float64), rcond=None)
  return np.abs(pixels - design @ coef).max(1)


def test_celeba_layout_images_and_attribute_file(celeba_set):
  out, summary = celeba_set
  root = os.path.join(out, 'celeba')
  names = sorted(os.listdir(os.path.join(root, 'images')))
  assert names == [f'{i:06d}.jpg' for i in range(1, 41)]  # no temporary files left
  with open(os.path.join(root, 'list_attr_celeba.txt')) as f:
    lines = f.read().splitlines()
  assert lines[0] == '40' and lines[1].split() == list(celeba.CELEBA_ATTRIBUTES)
  assert lines[2].startswith('000001.jpg ') and len(lines[2].split()) == 41
  header, rows = celeba.read_attr_file(os.path.join(root, 'list_attr_celeba.txt'))
  assert header == celeba.CELEBA_ATTRIBUTES and [n for n, _ in rows] == names
  values = np.array([v for _, v in rows])
  drawn = [celeba.CELEBA_ATTRIBUTES.index(n) for n in faces.ATTRIBUTE_NAMES]
  undrawn = [k for k in range(40) if k not in drawn]
  assert values[:, undrawn].sum() == 0  # the 35 attributes that are not drawn: all -1
  assert (values[:, drawn[:3]].sum(1) == 1).all()  # exactly one hair colour
  assert 0 < values[:, drawn[3]].sum() < 40 and 0 < values[:, drawn[4]].sum() < 40
  # The file holds what was drawn (image i regenerated from its seed).
  for i in (0, 17, 39):
    data, attrs = S.celeba_image(0, i)
    np.testing.assert_array_equal(values[i, drawn], attrs)
    with open(os.path.join(root, 'images', S.celeba_name(i)), 'rb') as f:
      assert f.read() == data
  assert summary['positive'] == dict(zip(faces.ATTRIBUTE_NAMES, values[:, drawn].sum(0).tolist()))


def test_celeba_face_inside_the_centre_crop_and_background_bands(celeba_set):
  out, _ = celeba_set
  for i in range(0, 40, 5):
    with Image.open(os.path.join(out, 'celeba', 'images', S.celeba_name(i))) as im:
      assert im.size == (178, 218) and im.format == 'JPEG'
      x = np.asarray(im.convert('RGB'), np.float64)
    # Everything outside the builder's crop (rows 20..197) and on the crop's
    # border is background: one colour plane, up to noise and JPEG error (hair
    # or skin there would be 40+ levels off it).
    outside = np.ones((218, 178), bool)
    outside[24:194, 4:174] = False
    yy, xx = np.nonzero(outside)
    assert np.percentile(_plane_residual(x[outside], yy, xx), 99) < 25
    # ... and the bands continue it: no step at the crop's edges.
    assert np.abs(x[19] - x[20]).mean() < 6 and np.abs(x[197] - x[198]).mean() < 6


def test_celeba_builds_with_the_project_builder_and_labels_read_back(celeba_set, tmp_path):
  out, _ = celeba_set
  data_dir = str(tmp_path / 'tfds')
  # 40 images: the official split's 1,999 test images need a subset's --test_count.
  b = registry.prepare('celeba', data_dir, 64, manual_dir=out, test_count=4, num_workers=2)
  assert (len(b.as_data_source('train')), len(b.as_data_source('test'))) == (36, 4)
  ds = input_pipeline.open_dataset('celeba', data_dir, 64)
  assert ds.spec.names == faces.ATTRIBUTE_NAMES
  records = list(ds.sources['train']) + list(ds.sources['test'])
  for r in records[:3]:
    index = int(r['file_name'].decode()[:6]) - 1
    _, drawn = S.celeba_image(0, index)
    np.testing.assert_array_equal(ds.example(r)['label'], drawn.astype(np.float32))
  # The faces' pixel readers see the drawn labels through the camera jitter
  # (measured: all 5 right on 38 of these 40 images, on 298 of the first 300).
  agree = [(faces.read_attributes(r['image']) == ds.example(r)['label']).all() for r in records]
  assert np.mean(agree) >= 0.85


def test_rafd_layout_split_and_build(rafd_set, tmp_path):
  out, summary = rafd_set
  root = os.path.join(out, 'RaFD')
  plan = S.rafd_plan(24)
  for split in ('train', 'test'):
    assert sorted(os.listdir(os.path.join(root, split))) == list(rafd.EXPRESSIONS)
    for label, e in enumerate(rafd.EXPRESSIONS):
      got = sorted(os.listdir(os.path.join(root, split, e)))
      assert got == sorted(n for s, lab, n in plan if s == split and lab == label)
  assert summary['splits']['train'] == dict.fromkeys(rafd.EXPRESSIONS, 2)
  assert summary['splits']['test'] == dict.fromkeys(rafd.EXPRESSIONS, 1)
  happy_test = next(n for s, lab, n in plan if s == 'test' and rafd.EXPRESSIONS[lab] == 'happy')
  with Image.open(os.path.join(root, 'test', 'happy', happy_test)) as im:
    assert im.size == (256, 256) and im.format == 'JPEG'
  data_dir = str(tmp_path / 'tfds')
  b = registry.prepare('rafd', data_dir, 64, manual_dir=out, num_workers=2)
  assert (len(b.as_data_source('train')), len(b.as_data_source('test'))) == (16, 8)
  ds = input_pipeline.open_dataset('rafd', data_dir, 64)
  assert ds.spec.names == faces.EXPRESSION_NAMES
  records = list(ds.sources['train']) + list(ds.sources['test'])
  by_name = {n: lab for _, lab, n in plan}
  for r in records:
    name = r['file_name'].decode()
    assert int(r['label']) == by_name[name.split('/')[-1]]
    np.testing.assert_array_equal(ds.example(r)['label'], np.eye(8)[by_name[name.split('/')[-1]]])
  # The expression reader (measured: all 24 of these, 237 of the first 240).
  agree = [faces.read_expression(r['image']) == int(r['label']) for r in records]
  assert np.mean(agree) >= 0.85


def test_rafd_plan_balances_expressions_and_holds_out_a_tenth():
  plan = S.rafd_plan(1104)
  for label in range(8):
    splits = [s for s, lab, _ in plan if lab == label]
    assert (splits.count('train'), splits.count('test')) == (125, 13)
  assert len({n for _, _, n in plan}) == 1104
  uneven = S.rafd_plan(21)  # 3,3,3,3,3,2,2,2: every class still has a test image
  for label in range(8):
    assert 'test' in [s for s, lab, _ in uneven if lab == label]
    assert 'train' in [s for s, lab, _ in uneven if lab == label]


def test_deterministic_given_the_seed_whatever_the_workers(tmp_path):
  a = S.generate('celeba', str(tmp_path / 'a'), 6, seed=3, workers=1, **QUIET)
  b = S.generate('celeba', str(tmp_path / 'b'), 6, seed=3, workers=3, **QUIET)
  c = S.generate('celeba', str(tmp_path / 'c'), 6, seed=4, workers=1, **QUIET)

  def files(summary):
    folder = os.path.join(summary['root'], 'images')
    out = {n: open(os.path.join(folder, n), 'rb').read() for n in sorted(os.listdir(folder))}
    out['attr'] = open(os.path.join(summary['root'], 'list_attr_celeba.txt'), 'rb').read()
    return out

  fa, fb, fc = files(a), files(b), files(c)
  assert fa == fb
  assert all(fa[n] != fc[n] for n in fa if n != 'attr')
  assert S.rafd_image(3, 5, 2) == S.rafd_image(3, 5, 2) != S.rafd_image(4, 5, 2)
  # The camera varies the pixels: not the renderer's own drawing.
  _, attrs = S.celeba_image(3, 0)
  x = np.asarray(Image.open(io.BytesIO(fa['000001.jpg'])).convert('RGB'), np.float64)
  rng = S.image_rng(3, 'celeba', 0)
  content = faces.sample_content(rng)
  hair, male, young = int(rng.integers(3)), bool(rng.integers(2)), bool(rng.integers(2))
  assert (hair, male, young) == (int(np.argmax(attrs[:3])), bool(attrs[3]), bool(attrs[4]))
  drawing = faces.render(content, 178, hair, male, young).astype(np.float64)
  assert np.abs(x[20:198] - drawing).mean() > 3


def test_refuses_a_non_empty_out_dir_unless_overwrite(tmp_path, capsys):
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'notes.txt').write_text('mine')
  assert S.main(['--layout=celeba', f'--out={out}', '--count=3']) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: ') and 'not empty' in err[0]
  assert sorted(os.listdir(out)) == ['notes.txt']
  assert S.main(['--layout=celeba', f'--out={out}', '--count=3', '--overwrite']) == 0
  assert 'images/s' in capsys.readouterr().out
  assert S.main(['--layout=celeba', f'--out={out}', '--count=2', '--overwrite']) == 0
  # The layout's folder was replaced (no stale third image), the rest kept.
  assert sorted(os.listdir(out / 'celeba' / 'images')) == ['000001.jpg', '000002.jpg']
  assert (out / 'notes.txt').read_text() == 'mine'
  assert S.main(['--layout=rafd', f'--out={tmp_path / "r"}', '--count=8']) == 2
  assert capsys.readouterr().err.startswith('error: --count must be at least 16')
  # A celeba/ folder this tool did not write (a real CelebA, say) is never deleted.
  real = tmp_path / 'real'
  (real / 'celeba' / 'images').mkdir(parents=True)
  (real / 'celeba' / 'list_attr_celeba.txt').write_text('0\n')
  assert S.main(['--layout=celeba', f'--out={real}', '--count=2', '--overwrite']) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'was not written by data_prep.synthetic_sets' in err[0]
  assert (real / 'celeba' / 'list_attr_celeba.txt').read_text() == '0\n'


def test_an_interrupted_run_leaves_no_partial_image_and_no_attribute_file(tmp_path, monkeypatch):
  real = S.celeba_image

  def failing(seed, index):
    if index == 4:
      raise KeyboardInterrupt  # like a kill: the run stops mid-way
    return real(seed, index)

  monkeypatch.setattr(S, 'celeba_image', failing)
  with pytest.raises(KeyboardInterrupt):
    S.generate('celeba', str(tmp_path / 'out'), 8, workers=1, **QUIET)
  root = tmp_path / 'out' / 'celeba'
  assert not (root / 'list_attr_celeba.txt').exists()  # the builder will not take it
  names = os.listdir(root / 'images')
  assert names and len(names) < 8  # it stopped mid-way, without drawing the rest
  for name in names:
    assert not name.startswith('.')
    with Image.open(root / 'images' / name) as im:
      im.load()  # complete JPEGs only
  manifest = json.loads((tmp_path / 'out' / 'synthetic_celeba.json').read_text())
  assert manifest['complete'] is False
  # The killed run's folder is recognised as this tool's and replaced.
  monkeypatch.setattr(S, 'celeba_image', real)
  S.generate('celeba', str(tmp_path / 'out'), 2, workers=1, overwrite=True, **QUIET)
  assert sorted(os.listdir(root / 'images')) == ['000001.jpg', '000002.jpg']
  assert json.loads((tmp_path / 'out' / 'synthetic_celeba.json').read_text())['complete']
