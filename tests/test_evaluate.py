"""The evaluation protocol (Table 3) at a tiny size, the loader, the classifier."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

import evaluate_testdata
from stargan_jax import checkpoint as ckpt_lib
from stargan_jax.evaluation import classifier as classifier_lib
from stargan_jax.evaluation import report
from stargan_jax import config as config_lib
from stargan_jax import evaluate
from stargan_jax import inference
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax import models

NAMES = ('Red', 'Green', 'Blue', 'Frame', 'Dark')
# FID has its own tests (test_fid.py); here it would only add Inception passes. Two epochs
# of 32 images are 4 steps of 16; the floor of 6 steps decides.
TINY_CLASSIFIER = ['--fid=off', '--classifier_width=4', '--classifier_epochs=2',
                   '--classifier_min_steps=6', '--classifier_batch_size=16',
                   '--classifier_train_images=32']


@pytest.fixture(scope='module')
def run(tmp_path_factory, data_dir):
  return evaluate_testdata.attribute_run(tmp_path_factory, data_dir)


@pytest.fixture(scope='module')
def classes_run(tmp_path_factory, data_dir):
  return evaluate_testdata.classes_checkpoint(tmp_path_factory, data_dir)


def test_protocol_end_to_end_and_classifier_reused(run, tmp_path, capsys):
  clf_dir = str(tmp_path / 'classifiers')
  args = [f'--workdir={run}', f'--out={tmp_path / "eval"}', '--limit=8', '--batch_size=8',
          f'--classifier_dir={clf_dir}'] + TINY_CLASSIFIER
  assert evaluate.main(args) == 0
  with open(tmp_path / 'eval' / 'evaluation.json') as f:
    result = json.load(f)

  assert result['checkpoint_step'] == 4
  assert result['image_size'] == 32
  g = models.Generator(8, 5, 1)
  d = models.Discriminator(32, 8, 5, 5)
  g_count = models.count_params(jax.eval_shape(lambda: models.init_params(g, jax.random.key(0),
                                                                          32)))
  d_count = models.count_params(jax.eval_shape(lambda: models.init_params(d, jax.random.key(0),
                                                                          32)))
  assert result['parameters'] == {'G': g_count, 'D': d_count, 'total': g_count + d_count}

  clf = result['classifier']['procedural']
  assert clf['reused'] is False and clf['width'] == 4 and clf['stem'] == 'cifar'
  assert clf['train_images'] == 32 and clf['real_test_images'] == 8
  assert clf['steps'] == 6 and clf['epochs'] == 3  # --classifier_min_steps over the epochs
  assert 0.0 <= clf['real_test_error'] <= 1.0
  assert set(clf['real_test_error_per_domain']) == set(NAMES)
  # The headline attribute error is the mean over attributes.
  assert clf['real_test_error'] == pytest.approx(
      np.mean(list(clf['real_test_error_per_domain'].values())))

  tr = result['translation']['procedural']['procedural']
  assert tr['translations'] == 8 * 5  # every test image into every grid column
  assert list(tr['per_domain']) == list(NAMES)
  assert all(0.0 <= v <= 1.0 for v in tr['per_domain'].values())
  assert tr['error'] == pytest.approx(np.mean(list(tr['per_domain'].values())))
  # Reading every attribute right is harder than reading the changed one.
  assert tr['error'] <= tr['all_attributes_error'] <= 1.0
  assert 'changed attribute' in tr['rule']

  rec = result['reconstruction']['procedural']
  assert 0.0 < rec['l1'] <= 2.0 and rec['images'] == 8
  pix = result['pixel_readers']['procedural']
  assert pix['real_image_accuracy'] == 1.0  # the readers are exact on real images
  assert 0.0 <= pix['translations']['procedural']['target_accuracy'] <= 1.0

  plot = Image.open(result['files']['plots'][0])
  assert plot.format == 'PNG' and plot.width >= 360
  md = open(result['files']['markdown']).read()
  assert '| **overall** |' in md and 'Pixel readers' in md

  # The per-domain error means what it says: recompute one column by hand.
  translate_fn, g_params, layout, meta = inference.load_generator(run)
  assert meta['step'] == 4
  saved = classifier_lib.load(clf['directory'], layout.specs[0], 32)
  ds = input_pipeline.open_dataset('procedural', meta['config']['data']['data_dir'], 32)
  batch = next(input_pipeline.eval_batches(ds, 8, limit=8))
  k = NAMES.index('Frame')
  c_trg = layout.specs[0].test_targets(batch['label'])[k]
  np.testing.assert_array_equal(c_trg[:, k], 1.0 - batch['label'][:, k])  # a flip
  read = saved.predict(translate_fn(g_params, batch['image'], c_trg))
  assert tr['per_domain']['Frame'] == pytest.approx(np.mean(read[:, k] != c_trg[:, k]))

  # A second evaluation reuses the saved classifier: same classifier, same numbers.
  assert evaluate.main(args + [f'--out={tmp_path / "eval2"}']) == 0
  with open(tmp_path / 'eval2' / 'evaluation.json') as f:
    again = json.load(f)
  assert again['classifier']['procedural']['reused'] is True
  assert again['classifier']['procedural']['real_test_error'] == clf['real_test_error']
  assert again['translation'] == result['translation']
  assert 'Reusing the' in capsys.readouterr().out
  assert ckpt_lib.Checkpointer(clf['directory'], create=False).all_steps() == [1]


def test_load_generator_reads_everything_from_the_checkpoint(run):
  translate_fn, g_params, layout, meta = inference.load_generator(
      os.path.join(run, 'checkpoints'))  # the checkpoints directory itself works too
  assert layout.specs[0].names == NAMES and layout.specs[0].exclusive == NAMES[:3]
  assert meta['image_size'] == 32 and meta['step'] == 4
  x = np.zeros((2, 32, 32, 3), np.float32)
  y = translate_fn(g_params, x, np.eye(5, dtype=np.float32)[:2])
  assert y.shape == (2, 32, 32, 3) and np.all(np.abs(y) <= 1.0)
  cfg = config_lib.Config.from_dict(meta['config'])
  assert cfg.model.g_conv_dim == 8 and cfg.data.datasets == ('procedural',)


def test_c_dim_mismatch_is_named(run, tmp_path):
  bad = tmp_path / 'bad'
  shutil.copytree(run, bad, ignore=shutil.ignore_patterns('classifier', 'evaluation'))
  meta_file = bad / 'checkpoints' / '4' / 'meta' / 'metadata'
  meta = json.loads(meta_file.read_text())
  meta['g_dim'] = 7
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r'g_dim=7 .* g_dim=5 \(c_dim mismatch'):
    inference.load_model(str(bad))
  # Labels that do not fit the saved G (4 names, G saved for 5): refused before use.
  meta['g_dim'] = meta['cls_dim'] = 4
  meta['layout']['datasets'][0]['names'] = list(NAMES[:4])
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r'c_dim mismatch.*g_params/.*: saved \(7, 7, 8, 8\), expected '
                           r'\(7, 7, 7, 8\)'):
    inference.load_model(str(bad))


def test_missing_checkpoint_message(tmp_path, capsys):
  assert evaluate.main([f'--workdir={tmp_path}']) == 2
  err = capsys.readouterr().err
  assert f'no checkpoints in {tmp_path}' in err and 'stargan_jax.main' in err


def test_resnet18_parameter_counts():
  # The published counts: CIFAR-style ResNet-18 with 10 classes, and
  # torchvision's ImageNet ResNet-18 with 1000 classes.
  cifar = classifier_lib.abstract_variables(classifier_lib.ResNet18(10, 64, True), 32)
  imagenet = classifier_lib.abstract_variables(classifier_lib.ResNet18(1000, 64, False), 224)
  assert classifier_lib.count_params(cifar) == 11_173_962
  assert classifier_lib.count_params(imagenet) == 11_689_512


class _FixedReader:
  """A stand-in classifier that returns given predictions, to check the counting rule."""

  def __init__(self, spec, predictions):
    self.spec, self._pred = spec, iter(predictions)

  def predict(self, x):
    return next(self._pred)


def test_real_error_rules_on_known_predictions():
  attrs = labels_lib.DomainSpec('d', ('A', 'B'), labels_lib.ATTRIBUTES)
  label = np.array([[1, 0], [1, 1], [0, 0]], np.float32)
  pred = np.array([[1, 0], [0, 1], [0, 1]], np.float32)  # wrong: (1, A), (2, B)
  r = classifier_lib.real_error(_FixedReader(attrs, [pred]), [{'image': None, 'label': label}])
  assert r['error'] == pytest.approx(2 / 6)
  assert r['per_domain'] == {'A': pytest.approx(1 / 3), 'B': pytest.approx(1 / 3)}
  assert r['exact_match_error'] == pytest.approx(2 / 3)

  classes = labels_lib.DomainSpec('d', ('x', 'y', 'z'), labels_lib.CATEGORICAL)
  label = np.eye(3, dtype=np.float32)[[0, 0, 1, 2]]
  pred = np.eye(3, dtype=np.float32)[[0, 1, 1, 1]]  # wrong: image 1 (x), image 3 (z)
  r = classifier_lib.real_error(_FixedReader(classes, [pred]), [{'image': None, 'label': label}])
  assert r['error'] == pytest.approx(0.5)
  assert r['per_domain'] == {'x': 0.5, 'y': 0.0, 'z': 1.0}
  np.testing.assert_array_equal(
      classifier_lib.labels_from_logits(np.array([[0.1, 2.0, -1.0]]), labels_lib.CATEGORICAL),
      [[0, 1, 0]])
  np.testing.assert_array_equal(
      classifier_lib.labels_from_logits(np.array([[0.1, -2.0]]), labels_lib.ATTRIBUTES), [[1, 0]])


def test_classifier_for_other_labels_is_refused(tmp_path):
  spec = labels_lib.DomainSpec('procedural', NAMES, labels_lib.ATTRIBUTES, NAMES[:3])
  model = classifier_lib.build_model(spec, 32, 4)
  variables = classifier_lib.init_variables(model, 32)
  original = classifier_lib.DomainClassifier(model, variables, spec, 32,
                                             classifier_lib._meta(spec, 32, model))
  classifier_lib.save(str(tmp_path), original)
  loaded = classifier_lib.load(str(tmp_path), spec, 32)
  x = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
  np.testing.assert_array_equal(loaded.logits(x), original.logits(x))
  assert loaded.meta['names'] == list(NAMES) and loaded.model == model
  other = labels_lib.DomainSpec('procedural', NAMES[:4], labels_lib.ATTRIBUTES, NAMES[:3])
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r'(?s)names: saved .*--retrain_classifier'):
    classifier_lib.load(str(tmp_path), other, 32)
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match=r'image_size: saved 32, needed 64'):
    classifier_lib.load(str(tmp_path), spec, 64)
  assert classifier_lib.load(str(tmp_path / 'nothing'), spec, 32) is None


def test_categorical_translation_error_rule(classes_run):
  # A stand-in classifier that reads every image as 'hstripes': translations
  # into hstripes are all right, into the 3 other classes all wrong.
  loaded = inference.load_model(classes_run)
  datasets = inference.open_datasets(loaded)
  spec = loaded.layout.specs[0]
  always = np.eye(4, dtype=np.float32)[[1]]
  reader = _FixedReader(spec, iter(lambda: always, None))
  reader.predict = lambda x: np.repeat(always, x.shape[0], axis=0)
  translation, rec = classifier_lib.translation_metrics(
      loaded.translate_np, loaded.generator_params, loaded.layout, datasets, {0: reader},
      batch_size=4, limit=6)
  e = translation['procedural_classes']['procedural_classes']
  assert e['per_domain'] == {'solid': 1.0, 'hstripes': 0.0, 'vstripes': 1.0, 'checker': 1.0}
  assert e['error'] == 0.75 and e['translations'] == 6 * 4 and 'argmax' in e['rule']
  assert 'all_attributes_error' not in e
  # What each target's translations were read as: all 6 as hstripes.
  assert e['read_as'] == {n: {'hstripes': 6} for n in e['per_domain']}
  assert report._misreads('solid', e['read_as']['solid']) == 'hstripes 6'
  assert report._misreads('hstripes', e['read_as']['hstripes']) == '-'
  clf = {'width': 4, 'stem': 'cifar', 'train_images': 8, 'real_test_error': 0.0,
         'real_test_error_per_domain': {}}
  md = report.markdown({'workdir': 'w', 'checkpoint_step': 1, 'image_size': 32,
                        'parameters': {'G': 1, 'D': 1, 'total': 2}, 'translation': translation,
                        'reconstruction': rec, 'classifier': {'procedural_classes': clf}})
  assert '| missed translations read as |' in md and '| solid | 100.00% | - |' in md
  assert md.count(' hstripes 6 |') == 3
  batch = next(input_pipeline.eval_batches(datasets[0], 6, limit=6))
  x, c_org = batch['image'], batch['label']
  # Which source classes the missed translations came from: every image for
  # the three missed targets, none for hstripes.
  sources = np.bincount(np.argmax(c_org, axis=1), minlength=4)
  by_source = {n: int(v) for n, v in zip(spec.names, sources) if v}
  assert e['missed_from'] == {'solid': by_source, 'hstripes': {}, 'vstripes': by_source,
                              'checker': by_source}
  assert '| missed translations, by source class |' in md
  assert md.count(f' {report._misreads(None, by_source)} |') == 3
  assert '| hstripes | 0.00% | - |' in md and md.count(' - | - |') == 1
  # The cycle error, recomputed for one class by hand.
  c_trg = np.eye(4, dtype=np.float32)[[2] * 6]
  x_rec = loaded.translate_np(loaded.g_params, loaded.translate_np(loaded.g_params, x, c_trg),
                              c_org)
  assert rec['procedural_classes']['per_domain']['vstripes'] == pytest.approx(
      np.abs(x - x_rec).mean(), rel=1e-5)
