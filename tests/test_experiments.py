"""Each experiment script at a tiny size: figures and numbers written."""

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

import evaluate_testdata

# experiments/ is a directory of scripts next to the package, not installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import celeba_attribute_grid  # noqa: E402
from experiments import common  # noqa: E402
from experiments import rafd_expression_grid  # noqa: E402
from experiments import reader_speed  # noqa: E402
from experiments import table3  # noqa: E402
from stargan_jax import cli  # noqa: E402
from stargan_jax import config as config_lib  # noqa: E402
from stargan_jax import labels as labels_lib  # noqa: E402
from stargan_jax import procedural  # noqa: E402

NAMES = ('Red', 'Green', 'Blue', 'Frame', 'Dark')


@pytest.fixture(scope='module')
def run(tmp_path_factory, data_dir):
  return evaluate_testdata.attribute_run(tmp_path_factory, data_dir)


@pytest.fixture(scope='module')
def classes_run(tmp_path_factory, data_dir):
  return evaluate_testdata.classes_checkpoint(tmp_path_factory, data_dir)


def test_attribute_grid_columns_on_known_labels():
  spec = labels_lib.DomainSpec('procedural', NAMES, labels_lib.ATTRIBUTES, NAMES[:3])
  cols, _ = celeba_attribute_grid.columns(spec)
  titles = [t for t, _ in cols]
  assert titles == ['Red', 'Green', 'Blue', 'Frame (G)', 'Dark (A)', 'H+G', 'H+A', 'G+A', 'H+G+A']
  c = np.array([[1, 0, 0, 0, 1], [0, 0, 1, 1, 0]], np.float32)  # red+dark, blue+frame
  fn = dict(cols)
  np.testing.assert_array_equal(fn['Green'](c)[0], [[0, 1, 0, 0, 1], [0, 1, 0, 1, 0]])
  # H is the next hue after the image's own (red -> green, blue -> red).
  np.testing.assert_array_equal(fn['H+G+A'](c)[0], [[0, 1, 0, 1, 0], [1, 0, 0, 0, 1]])
  np.testing.assert_array_equal(fn['G+A'](c)[0], [[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]])
  celeba = labels_lib.DomainSpec('celeba', ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male',
                                            'Young'), labels_lib.ATTRIBUTES)
  assert celeba_attribute_grid.attribute_roles(celeba) == (
      ('Black_Hair', 'Blond_Hair', 'Brown_Hair'), 'Male', 'Young')
  with pytest.raises(cli.UserError, match='needs hair colours'):
    celeba_attribute_grid.attribute_roles(labels_lib.DomainSpec('x', ('Smiling',)))


def test_celeba_attribute_grid(run, tmp_path):
  result = celeba_attribute_grid.run([f'--workdir={run}', f'--out={tmp_path}', '--num_images=2',
                                      '--num_eval=4'])
  img = Image.open(tmp_path / 'celeba_attribute_grid.png')
  # 10 columns (input + 9) of 32 px enlarged 3x, a 22 px title row, 2 rows.
  assert img.size == (10 * 96, 22 + 2 * 96)
  saved = json.loads((tmp_path / 'celeba_attribute_grid.json').read_text())
  assert saved['checkpoint_step'] == 4 and saved['reader'] == 'pixel readers'
  assert saved['roles'] == {'hair': list(procedural.HUE_NAMES), 'gender': 'Frame', 'age': 'Dark'}
  assert list(saved['columns'])[-1] == 'H+G+A'
  for v in saved['columns'].values():
    assert 0.0 <= v['target_reached'] <= 1.0 and 0.0 <= v['content_preserved'] <= 1.0
    assert 0.0 < v['mean_abs_change'] <= 2.0 and v['images'] == 4
  assert result['figure'].endswith('celeba_attribute_grid.png')


def test_rafd_expression_grid(classes_run, tmp_path):
  rafd_expression_grid.run([f'--workdir={classes_run}', f'--out={tmp_path}', '--num_images=2',
                            '--num_eval=4'])
  assert Image.open(tmp_path / 'rafd_expression_grid.png').size == (5 * 96, 22 + 2 * 96)
  saved = json.loads((tmp_path / 'rafd_expression_grid.json').read_text())
  assert list(saved['classes']) == list(procedural.CLASS_NAMES)
  assert 0.0 <= saved['target_reached_overall'] <= 1.0
  assert all(v['images'] == 4 for v in saved['classes'].values())


def test_table3(run, tmp_path):
  # The same tiny classifier settings as test_evaluate: its compiled steps are reused.
  numbers = table3.run([f'--workdir={run}', f'--out={tmp_path}', '--limit=8',
                        f'--classifier_dir={tmp_path / "clf"}', '--classifier_width=4',
                        '--classifier_epochs=2', '--classifier_min_steps=6',
                        '--classifier_batch_size=16',
                        '--classifier_train_images=32'])
  for name in ('table3.json', 'table3.md', 'table3.png', 'evaluation/evaluation.json'):
    assert (tmp_path / name).is_file()
  saved = json.loads((tmp_path / 'table3.json').read_text())
  assert saved == json.loads(json.dumps(numbers))
  row = saved['rows'][0]
  assert row['dataset'] == 'procedural' and row['translations'] == 8 * 5
  assert 0.0 <= row['stargan_error'] <= 1.0 and 0.0 <= row['real_images_error'] <= 1.0
  assert list(row['per_domain']) == list(NAMES)
  p = saved['parameters']
  assert p['total'] == p['G'] + p['D'] > 0
  md = (tmp_path / 'table3.md').read_text()
  assert '| StarGAN (paper, RaFD) | 2.12% | 53.2M x 1 |' in md
  assert f'| {100 * row["stargan_error"]:.2f}% | {p["total"] / 1e6:.2f}M x 1 |' in md


def test_reader_speed_times_the_readers_and_digests_their_results(run):
  import hashlib
  from stargan_jax import inference
  from stargan_jax.evaluation import pixels
  out = reader_speed.measure(run, repeats=2, limit=4)
  assert len(out['seconds']) == 2 and all(s > 0 for s in out['seconds'])
  loaded = inference.load_model(run)
  acc = pixels.translation_accuracy(loaded.translate_np, loaded.generator_params, loaded.layout,
                                    inference.open_datasets(loaded), limit=4)
  assert out['translations'] == 4 * len(procedural.ATTRIBUTE_NAMES)  # 4 images x 5 columns
  assert out['results_sha256'] == hashlib.sha256(
      json.dumps(acc, sort_keys=True).encode()).hexdigest()


def test_scripts_need_a_run_or_train(tmp_path, capsys):
  assert rafd_expression_grid.main([f'--workdir={tmp_path}']) == 2
  assert 'pass --train' in capsys.readouterr().err
  assert not common.has_checkpoint(str(tmp_path))


def test_short_run_config_is_the_demo_config_with_the_flags():
  cli.parse(table3.FLAGS, ['--workdir=unused', '--train', '--num_iters=10', '--image_size=64',
                           '--g_conv_dim=8', '--n_critic=2', '--data_dir=/data',
                           '--datasets=procedural,procedural_classes'])
  cfg = common.short_run_config(table3.FLAGS)
  demo = config_lib.default_config()
  assert cfg.data.datasets == ('procedural', 'procedural_classes')
  assert (cfg.data.image_size, cfg.data.data_dir, cfg.model.g_conv_dim, cfg.optim.n_critic) == (
      64, '/data', 8, 2)
  assert (cfg.optim.num_iters, cfg.optim.num_iters_decay) == (10, 5)
  assert (cfg.run.sample_every, cfg.run.checkpoint_every, cfg.run.eval_at_end) == (10, 10, False)
  # What no flag names stays the demo's.
  assert (cfg.model.d_conv_dim, cfg.data.batch_size, cfg.optim.g_lr) == (
      demo.model.d_conv_dim, demo.data.batch_size, demo.optim.g_lr)
  cli.parse(table3.FLAGS, ['--workdir=unused'])  # the defaults: Table 3's stand-in dataset
  cfg = common.short_run_config(table3.FLAGS)
  assert cfg.data.datasets == ('faces_expr',) and cfg.data.data_dir == demo.data.data_dir
  assert cfg.data.image_size == demo.data.image_size and cfg.optim.num_iters == 2000


def test_fid_sensitivity_degrades_real_images_and_scores_them(data_dir):
  from experiments import fid_sensitivity
  from stargan_jax import input_pipeline
  d = input_pipeline.open_dataset('procedural', data_dir, 32)
  test = common.real_images(d, 'test', 24, 12)
  train = common.real_images(d, 'train', 24, 12)
  assert test.dtype == np.uint8 and test.shape == (24, 32, 32, 3)
  rng = np.random.default_rng(0)
  for name, degrade in fid_sensitivity.DEGRADATIONS.items():
    out = degrade(test, rng)
    assert out.dtype == np.uint8 and out.shape == test.shape
    assert np.any(out != test), name

  def features(x):  # a stand-in for Inception: mean colour and the pixel-to-pixel steps
    x = np.asarray(x, np.float32) / 255.0
    steps = [np.abs(np.diff(x, axis=a)).mean(axis=(1, 2)) * 10.0 for a in (1, 2)]
    return np.concatenate([x.mean(axis=(1, 2))] + steps, axis=1)

  result = fid_sensitivity.sensitivity(test, features(test), features(train), features)
  assert set(result) == {'n', 'floor', *fid_sensitivity.DEGRADATIONS} and result['n'] == 24
  # Against the test images themselves the floor is 0, and only the degraded copies move:
  # the wider blur flattens the steps between pixels more, noise adds to them.
  same = fid_sensitivity.sensitivity(test, features(test), features(test), features)
  assert same['floor'] == pytest.approx(0.0, abs=1e-6)
  assert same['blur_0.8'] > same['blur_0.5'] > 1e-4 and same['noise_4'] > 1e-4
  lines = fid_sensitivity.rows(result)
  assert len(lines) == 3 + len(fid_sensitivity.DEGRADATIONS) and '(the floor)' in lines[2]


def test_fid_sensitivity_repairs_translations_only_where_g_painted():
  from experiments import fid_sensitivity
  rng = np.random.default_rng(0)
  source = rng.integers(60, 200, (6, 16, 16, 3)).astype(np.uint8)
  fake = source.copy()
  fake[:, 4:8, 4:8] = 250  # G painted a 4 x 4 square on every image
  fake[:, 12, 12] = np.clip(source[:, 12, 12].astype(int) + 3, 0, 255)  # a change under 8
  m = fid_sensitivity.painted(source, fake)
  assert m.shape == (6, 16, 16, 1)
  # The square grown by one pixel to its four neighbours: its corners stay out.
  assert m[0, 3:9, 4:8].all() and m[0, 4:8, 3:9].all() and not m[0, 3, 3]
  assert m.sum() == 6 * (36 - 4)
  fixed = fid_sensitivity.repairs(source, fake, np.random.default_rng(1))
  assert list(fixed) == list(fid_sensitivity.REPAIRS)
  outside = m[..., 0] == 0
  for name in ('noise_1', 'noise_2', 'source_highpass'):
    np.testing.assert_array_equal(fixed[name][outside], fake[outside])  # only the paint moves
    assert np.any(fixed[name][~outside] != fake[~outside]), name
  unpainted = fixed['source_unpainted']
  np.testing.assert_array_equal(unpainted[outside], source[outside])
  np.testing.assert_array_equal(unpainted[~outside], fake[~outside])

  def features(x):
    x = np.asarray(x, np.float32) / 255.0
    return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)

  run = fid_sensitivity.translations(source, fake, features(source), features(source),
                                     features)
  assert run['floor'] == pytest.approx(0.0, abs=1e-6) and run['translations'] > 1e-3
  assert run['painted'] == pytest.approx(32 / 256)
  assert set(fid_sensitivity.REPAIRS) <= set(run)
  lines = fid_sensitivity.rows(run, 'translations', ('translations', *fid_sensitivity.REPAIRS))
  assert len(lines) == 3 + 1 + len(fid_sensitivity.REPAIRS)
