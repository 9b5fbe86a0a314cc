"""The joint-training experiment scripts (SNG vs JNT, wrong mask) at a tiny size."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from experiments import joint_cross_by_source
from experiments import joint_sng_vs_jnt
from experiments import joint_wrong_mask
from stargan_jax import train

from conftest import tiny_config


@pytest.fixture(scope='module')
def runs(data_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp('joint_runs')
  sng = train.Trainer(tiny_config(data_dir, num_iters=2), str(root / 'sng'))
  sng.train()
  sng.checkpointer.close()
  jnt = train.Trainer(tiny_config(data_dir, ('procedural', 'procedural_classes'), num_iters=2),
                      str(root / 'jnt'))
  jnt.train()
  jnt.checkpointer.close()
  return str(root / 'sng'), str(root / 'jnt')


def test_sng_vs_jnt_writes_figure_and_numbers(runs, tmp_path):
  sng, jnt = runs
  assert joint_sng_vs_jnt.main([f'--sng_workdir={sng}', f'--jnt_workdir={jnt}', '--limit=8',
                                '--num_images=2', f'--out={tmp_path}']) == 0
  result = json.load(open(tmp_path / 'joint_sng_vs_jnt.json'))
  assert result['dataset'] == 'procedural'
  for model in ('sng', 'jnt'):
    assert 0.0 <= result[model]['target_reached'] <= 1.0
    assert result[model]['images'] == 8
    assert set(result[model]['per_domain']) == {'Red', 'Green', 'Blue', 'Frame', 'Dark'}
  assert set(result['jnt_cross']) == {'procedural_classes'}
  assert set(result['jnt_cross']['procedural_classes']['per_domain']) == {
      'solid', 'hstripes', 'vstripes', 'checker'}
  # input + SNG's 5 + JNT's 5 + 4 cross-dataset columns, 2 rows (+ a title strip)
  fig = Image.open(tmp_path / 'joint_sng_vs_jnt.png')
  assert fig.width == 15 * 96 and fig.height == 2 * 96 + 22


def test_sng_vs_jnt_refuses_swapped_runs(runs, tmp_path, capsys):
  sng, jnt = runs
  assert joint_sng_vs_jnt.main([f'--sng_workdir={jnt}', f'--jnt_workdir={sng}',
                                f'--out={tmp_path}']) == 2
  assert 'holds a joint model' in capsys.readouterr().err


def test_wrong_mask_writes_figure_and_numbers(runs, tmp_path, capsys):
  sng, jnt = runs
  assert joint_wrong_mask.main([f'--workdir={jnt}', '--limit=8', '--num_images=2',
                                f'--out={tmp_path}']) == 0
  result = json.load(open(tmp_path / 'joint_wrong_mask.json'))
  assert result['dataset'] == 'procedural' and result['wrong_mask_of'] == 'procedural_classes'
  for mode in ('right_mask', 'wrong_mask'):
    assert 0.0 <= result[mode]['target_reached'] <= 1.0
    assert result[mode]['mean_abs_change'] > 0.0
  assert os.path.isfile(tmp_path / 'joint_wrong_mask.png')
  assert joint_wrong_mask.main([f'--workdir={sng}', f'--out={tmp_path}']) == 2
  assert 'the mask needs a joint model' in capsys.readouterr().err


def test_cross_by_source_splits_reach_by_the_sources_labels(runs, tmp_path, capsys):
  sng, jnt = runs
  assert joint_cross_by_source.main([f'--workdir={jnt}', '--limit=8', f'--out={tmp_path}']) == 0
  result = json.load(open(tmp_path / 'joint_cross_by_source.json'))
  assert (result['source'], result['target'], result['reader']) == (
      'procedural', 'procedural_classes', 'pixels')
  assert result['all']['images'] == 8
  by = result['by_source']
  assert set(by) == {f'{a}={v}' for a in ('Red', 'Green', 'Blue', 'Frame', 'Dark')
                     for v in (1, 0)}
  for a in ('Red', 'Green', 'Blue', 'Frame', 'Dark'):
    one, zero = by[f'{a}=1'], by[f'{a}=0']
    assert one['images'] + zero['images'] == 8
    # the two groups of an attribute partition the images: their hits add up
    for t in ('solid', 'hstripes', 'vstripes', 'checker'):
      assert np.isclose(one['per_domain'][t] * one['images'] + zero['per_domain'][t] * zero['images'],
                        result['all']['per_domain'][t] * 8)
  out = capsys.readouterr().out
  assert 'procedural images into procedural_classes domains (pixels' in out
  # the other way round: categorical sources are split by class
  assert joint_cross_by_source.main([f'--workdir={jnt}', '--source_dataset=procedural_classes',
                                     '--limit=8', f'--out={tmp_path}']) == 0
  result = json.load(open(tmp_path / 'joint_cross_by_source.json'))
  assert set(result['by_source']) == {'solid', 'hstripes', 'vstripes', 'checker'}
  assert sum(g['images'] for g in result['by_source'].values()) == 8
  assert 'truth' not in result  # only the built-in faces pair can be drawn
  assert joint_cross_by_source.main([f'--workdir={jnt}', '--truth', '--limit=8',
                                     f'--out={tmp_path}']) == 2
  assert ('--truth: only the built-in pair faces -> faces_expr can be drawn, not procedural'
          ' -> procedural_classes') in capsys.readouterr().err
  assert joint_cross_by_source.main([f'--workdir={sng}', f'--out={tmp_path}']) == 2
  assert 'cross-dataset needs a joint model' in capsys.readouterr().err
  assert joint_cross_by_source.main([f'--workdir={jnt}', '--reader=classifier',
                                     f'--classifier_dir={tmp_path}', f'--out={tmp_path}']) == 2
  assert 'no domain classifier' in capsys.readouterr().err


def test_cross_by_source_reads_with_the_runs_own_discriminator(runs, tmp_path):
  from experiments import joint_common
  from stargan_jax import inference
  _, jnt = runs
  assert joint_cross_by_source.main([f'--workdir={jnt}', '--reader=discriminator', '--limit=8',
                                     f'--out={tmp_path}']) == 0
  result = json.load(open(tmp_path / 'joint_cross_by_source.json'))
  assert result['reader'] == 'discriminator' and result['all']['images'] == 8
  # The reader is D's classification head on each dataset's slice of its outputs.
  loaded = inference.load_model(jnt)
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)
  logits = loaded.classify_np(x)
  attrs, classes = loaded.layout.cls_slice(0), loaded.layout.cls_slice(1)
  read = joint_common.discriminator_reader(loaded, 1)
  for k in range(classes[1] - classes[0]):
    np.testing.assert_array_equal(read(x, None, k),
                                  logits[:, classes[0]:classes[1]].argmax(-1) == k)
  read = joint_common.discriminator_reader(loaded, 0)
  c = rng.integers(0, 2, (6, attrs[1] - attrs[0])).astype(np.float32)
  for k in range(attrs[1] - attrs[0]):
    np.testing.assert_array_equal(read(x, c, k),
                                  (logits[:, attrs[0] + k] > 0) == (c[:, k] == 1))


def test_cross_by_source_groups():
  from stargan_jax import labels
  spec = labels.DomainSpec('a', ('x', 'y'))
  groups = joint_cross_by_source.source_groups(spec, np.array([[1, 0], [1, 1], [0, 0]]))
  assert [(g, m.tolist()) for g, m in groups] == [
      ('x=1', [True, True, False]), ('x=0', [False, False, True]),
      ('y=1', [False, True, False]), ('y=0', [True, False, True])]
  spec = labels.DomainSpec('b', ('p', 'q'), labels.CATEGORICAL)
  groups = joint_cross_by_source.source_groups(spec, np.array([[0, 1], [1, 0]]))
  assert [(g, m.tolist()) for g, m in groups] == [('p', [False, True]), ('q', [True, False])]


def test_wrong_mask_moves_only_the_mask():
  from stargan_jax import labels
  layout = labels.LabelLayout((labels.DomainSpec('a', ('x', 'y')),
                               labels.DomainSpec('b', ('p', 'q', 'r'), labels.CATEGORICAL)))
  full = layout.embed(0, np.array([[1.0, 0.0]], np.float32))
  np.testing.assert_array_equal(joint_wrong_mask.with_mask(layout, full, 1),
                                [[1, 0, 0, 0, 0, 0, 1]])


class _PixelFeatures:
  """A stand-in for Inception: each image's 2 x 2 x 3 mean colours (12 features)."""
  weights_sha1 = 'pixel-means-stand-in'

  def __call__(self, images):
    x = np.asarray(images, np.float64)
    n, h, w, _ = x.shape
    return x.reshape(n, 2, h // 2, 2, w // 2, 3).mean(axis=(2, 4)).reshape(n, 12)


def test_realism_check_scores_each_source_of_a_joint_run(runs, monkeypatch, tmp_path):
  from experiments import realism_check
  from stargan_jax import inference
  monkeypatch.setenv('STARGAN_JAX_CACHE', str(tmp_path))
  _, jnt = runs
  layout = inference.load_model(jnt).layout
  c_org = np.array([[1, 0, 0, 1, 0]], np.float32)
  columns = realism_check.target_columns(layout, 0, c_org)
  # the own dataset's 5 columns, then the 4 classes of the other, with its mask bit
  assert len(columns) == 9
  assert [int(c[0, -1]) for c in columns] == [0] * 5 + [1] * 4
  rows = realism_check.score(jnt, 8, 4, _PixelFeatures(), identity=True)
  assert [(r['weights'], r['source']) for r in rows] == [
      ('raw', 'procedural'), ('raw', 'procedural_classes')]
  for r in rows:
    assert r['joint'] and r['n'] == 8 and r['fid'] > 0 and r['floor'] >= 0
    assert r['identity_fid'] >= 0
    assert set(r['per_target']) == {'procedural', 'procedural_classes'}
    assert 0.0 <= r['target'] <= 1.0
  # the pixel readers: 8 images x 5 own columns, and x 4 cross-dataset ones
  assert rows[0]['per_target']['procedural']['translations'] == 40
  assert rows[0]['per_target']['procedural_classes']['translations'] == 32
