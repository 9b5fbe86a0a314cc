"""The domain classifier of the paper's Table 3 protocol: a ResNet-18 in Flax.

The paper measures how well translated images reach their target domain with
a ResNet-18 trained on the *real* training images of the dataset, whose own
error on the real test images is the floor (0.45% on RaFD). This module owns
that classifier: the network (``models/resnet.py``), its training on a prepared dataset, its
prediction in the dataset's label format, and its own Orbax checkpoint (via
``checkpoint.Checkpointer``), which later evaluations reuse so that every
model is judged by the same classifier.

Output heads follow the labels: one sigmoid logit per attribute (multi-label,
a translation reads as an attribute when its logit is > 0), or one softmax
logit per class (categorical, the argmax). ``translation_metrics`` is the
protocol itself: the error of translated test images per target domain.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import shutil
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from stargan_jax import batching
from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax import losses
from stargan_jax.models.resnet import ResNet18

# Images up to this size get the CIFAR-style stem (3x3 stride-1 conv, no max
# pool): the ImageNet stem would shrink a 32 px image to 8 px before the first
# residual stage.
SMALL_INPUT_MAX = 64

@flax.struct.dataclass
class ClassifierState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  epochs: float = 3.0
  min_steps: int = 0  # at least this many steps whatever ``epochs`` says (cli's default)
  batch_size: int = 64
  width: int = 64  # 64 is ResNet-18 as published
  learning_rate: float = 1e-3
  weight_decay: float = 1e-4
  seed: int = 0
  max_train_images: int | None = None  # None: the whole training split
  num_threads: int = 4


def build_model(spec: labels_lib.DomainSpec, image_size: int, width: int) -> ResNet18:
  return ResNet18(spec.c_dim, width, image_size <= SMALL_INPUT_MAX)


def _init_key(seed: int):
  # An 'rbg' key rather than the default threefry: on CPU, XLA takes seconds
  # per distinct parameter shape to compile threefry sampling (over 10 s for
  # a ResNet-18 init), rbg well under one. Only the classifier's own init uses
  # it; the GAN's keys are untouched.
  return jax.random.key(seed, impl='rbg')


_init = jax.jit(lambda model, key, x: model.init(key, x, train=False), static_argnums=0)


def init_variables(model: ResNet18, image_size: int, seed: int = 0):
  return _init(model, _init_key(seed), jnp.zeros((1, image_size, image_size, 3), jnp.float32))


def abstract_variables(model: ResNet18, image_size: int):
  return jax.eval_shape(
      lambda k: model.init(k, jnp.zeros((1, image_size, image_size, 3), jnp.float32),
                           train=False), _init_key(0))


# Compiled once per network shape and reused by every classifier of that
# shape in the process (the module is a static, hashable argument).
_apply = jax.jit(lambda model, variables, x: model.apply(variables, x, train=False),
                 static_argnums=0)


def _optimizer(learning_rate: float, weight_decay: float, total_steps: int):
  return optax.adamw(optax.cosine_decay_schedule(learning_rate, total_steps),
                     weight_decay=weight_decay)


@functools.partial(jax.jit, static_argnames=('model', 'kind', 'learning_rate', 'weight_decay',
                                              'total_steps'), donate_argnums=0)
def train_step(state: ClassifierState, images, labels, *, model: ResNet18, kind: str,
               learning_rate: float, weight_decay: float, total_steps: int):
  """One AdamW step on the classification loss of the dataset's label kind."""
  tx = _optimizer(learning_rate, weight_decay, total_steps)

  def loss_fn(params):
    logits, updates = model.apply({'params': params, 'batch_stats': state.batch_stats}, images,
                                  train=True, mutable=['batch_stats'])
    return losses.classification_loss(logits, labels, kind), updates['batch_stats']

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                       batch_stats=batch_stats, opt_state=opt_state), loss


class _Head:
  """The first ``n`` records of a random-access source (a smaller training set)."""

  def __init__(self, source, n: int):
    self._source, self._n = source, min(n, len(source))

  def __len__(self):
    return self._n

  def __getitem__(self, index):
    if not 0 <= index < self._n:
      raise IndexError(index)
    return self._source[index]


@dataclasses.dataclass
class DomainClassifier:
  """A trained classifier, ready to read labels from N x H x W x 3 images in [-1, 1]."""

  model: ResNet18
  variables: Any
  spec: labels_lib.DomainSpec
  image_size: int
  meta: dict

  def logits(self, x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.shape[1:3] != (self.image_size, self.image_size):
      raise ValueError(f'classifier for {self.spec.dataset!r} takes {self.image_size} px images, '
                       f'got shape {x.shape}')
    return np.asarray(_apply(self.model, self.variables, x))

  def predict(self, x) -> np.ndarray:
    """Labels in the dataset's format: 0/1 attributes, or one-hot classes."""
    return labels_from_logits(self.logits(x), self.spec.kind)


def labels_from_logits(logits: np.ndarray, kind: str) -> np.ndarray:
  logits = np.asarray(logits)
  if kind == labels_lib.CATEGORICAL:
    out = np.zeros_like(logits, np.float32)
    out[np.arange(logits.shape[0]), np.argmax(logits, axis=1)] = 1.0
    return out
  return (logits > 0).astype(np.float32)


def train(dataset: input_pipeline.Dataset, settings: TrainSettings,
          log: Callable[[str], None] = print) -> tuple[ResNet18, Any, dict]:
  """Trains a ResNet-18 on ``dataset``'s real training images; returns (model, variables, info)."""
  spec, size = dataset.spec, dataset.image_size
  if settings.max_train_images is not None:
    dataset = dataclasses.replace(dataset, sources=dict(
        dataset.sources, train=_Head(dataset.sources['train'], settings.max_train_images)))
  n_train = len(dataset)
  batch = min(settings.batch_size, n_train)
  steps_per_epoch = max(n_train // batch, 1)
  total = max(int(math.ceil(settings.epochs * steps_per_epoch)), settings.min_steps, 1)
  epochs = total / steps_per_epoch  # what was trained, the floor included
  model = build_model(spec, size, settings.width)
  variables = init_variables(model, size, settings.seed)
  tx = _optimizer(settings.learning_rate, settings.weight_decay, total)
  state = ClassifierState(jnp.zeros((), jnp.int32), variables['params'],
                          variables['batch_stats'], tx.init(variables['params']))
  step_fn = functools.partial(train_step, model=model, kind=spec.kind,
                              learning_rate=settings.learning_rate,
                              weight_decay=settings.weight_decay, total_steps=total)
  it = input_pipeline.train_iterator(dataset, batch, settings.seed + 7,
                                     num_threads=settings.num_threads)
  log(f'Training the {spec.dataset!r} domain classifier (ResNet-18, width {settings.width}, '
      f'{"CIFAR" if model.small_input else "ImageNet"}-style stem) on {n_train} real training '
      f'images: {total} steps of batch {batch} ({epochs:g} epochs)')
  t0 = time.time()
  loss = None
  log_every = max(total // 10, 1)
  for step in range(total):
    b = next(it)
    state, loss = step_fn(state, b['image'], b['label'])
    if (step + 1) % log_every == 0 or step + 1 == total:
      log(f'  classifier step {step + 1}/{total}, loss {float(loss):.4f}, '
          f'{time.time() - t0:.0f} s')
  info = {'steps': total, 'epochs': round(epochs, 3), 'batch_size': batch, 'train_images': n_train,
          'final_loss': float(loss), 'train_seconds': round(time.time() - t0, 1)}
  return model, {'params': state.params, 'batch_stats': state.batch_stats}, info


def real_error(classifier: DomainClassifier, batches) -> dict:
  """The classifier's error on real labelled images (the Table 3 'real images' row).

  Categorical: fraction of images whose argmax is not the label, and per
  class. Attributes: fraction of (image, attribute) pairs read wrong (the
  headline ``error``), per attribute, and the fraction of images with any
  attribute wrong (``exact_match_error``).
  """
  spec = classifier.spec
  wrong = np.zeros(spec.c_dim)
  count = np.zeros(spec.c_dim)
  any_wrong = n = 0
  for batch in batches:
    pred = classifier.predict(batch['image'])
    label = np.asarray(batch['label'])
    if spec.kind == labels_lib.CATEGORICAL:
      cls = np.argmax(label, axis=1)
      miss = np.argmax(pred, axis=1) != cls
      np.add.at(wrong, cls, miss)
      np.add.at(count, cls, 1)
      any_wrong += int(miss.sum())
    else:
      miss = pred != label
      wrong += miss.sum(0)
      count += miss.shape[0]
      any_wrong += int(miss.any(1).sum())
    n += label.shape[0]
  per_domain = {name: float(wrong[k] / count[k]) if count[k] else None
                for k, name in enumerate(spec.names)}
  if spec.kind == labels_lib.CATEGORICAL:
    return {'error': any_wrong / max(n, 1), 'per_domain': per_domain, 'images': n}
  return {'error': float(wrong.sum() / max(count.sum(), 1)), 'per_domain': per_domain,
          'exact_match_error': any_wrong / max(n, 1), 'images': n}


# -- checkpoint --------------------------------------------------------------

_IDENTITY = ('dataset', 'names', 'kind', 'image_size', 'width', 'small_input')


def _meta(spec: labels_lib.DomainSpec, image_size: int, model: ResNet18) -> dict:
  return {'dataset': spec.dataset, 'names': list(spec.names), 'kind': spec.kind,
          'image_size': image_size, 'width': model.width, 'small_input': model.small_input,
          'architecture': 'resnet18'}


def save(directory: str, classifier: DomainClassifier) -> None:
  ck = ckpt_lib.Checkpointer(directory, keep=1)
  ck.save(1, classifier.variables, classifier.meta, wait=True)
  ck.close()


def load(directory: str, spec: labels_lib.DomainSpec, image_size: int,
         width: int | None = None) -> DomainClassifier | None:
  """The classifier saved in ``directory``, or None if there is none.

  Raises ``CheckpointMismatchError`` if the saved classifier was trained for
  other labels, another image size or (when ``width`` is given) another width.
  """
  directory = os.path.abspath(os.path.expanduser(directory))
  if not os.path.isdir(directory):
    return None
  ck = ckpt_lib.Checkpointer(directory, keep=1, create=False)
  if ck.latest_step() is None:
    ck.close()
    return None
  _, meta = ck.restore_meta()
  expected = {'dataset': spec.dataset, 'names': list(spec.names), 'kind': spec.kind,
              'image_size': image_size}
  if width is not None:
    expected['width'] = width
  diffs = [f'{k}: saved {meta.get(k)!r}, needed {v!r}' for k, v in expected.items()
           if meta.get(k) != v]
  if diffs:
    ck.close()
    raise ckpt_lib.CheckpointMismatchError(
        f'the domain classifier in {directory} was trained for something else:\n  ' +
        '\n  '.join(diffs) + '\nchoose another --classifier_dir or pass --retrain_classifier')
  model = ResNet18(len(meta['names']), meta['width'], meta['small_input'])
  abstract = ckpt_lib.abstract_like(abstract_variables(model, image_size),
                                    jax.sharding.SingleDeviceSharding(jax.devices()[0]))
  variables, meta, _ = ck.restore(abstract, step=None, with_data=False)
  ck.close()
  return DomainClassifier(model, variables, spec, image_size, meta)


def load_or_train(directory: str, dataset: input_pipeline.Dataset, settings: TrainSettings,
                  retrain: bool = False,
                  log: Callable[[str], None] = print) -> tuple[DomainClassifier, bool]:
  """(classifier, reused): the one saved in ``directory``, or a newly trained and saved one."""
  if not retrain:
    found = load(directory, dataset.spec, dataset.image_size, settings.width)
    if found is not None:
      log(f'Reusing the {dataset.spec.dataset!r} domain classifier in {directory} '
          f'(trained {found.meta.get("epochs")} epochs on {found.meta.get("train_images")} images)')
      return found, True
  elif os.path.isdir(directory):
    # A fresh directory: the old classifier is replaced, not kept beside the new one.
    shutil.rmtree(directory)
  model, variables, info = train(dataset, settings, log)
  meta = dict(_meta(dataset.spec, dataset.image_size, model), **info,
              learning_rate=settings.learning_rate, seed=settings.seed)
  classifier = DomainClassifier(model, variables, dataset.spec, dataset.image_size, meta)
  save(directory, classifier)
  return classifier, False


def count_params(variables) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables['params']))


# -- the protocol: translated test images, judged ----------------------------------

RULE_CATEGORICAL = 'correct when the classifier\'s argmax is the target class'
RULE_ATTRIBUTES = ('correct when the classifier reads the changed attribute (the column\'s hair '
                   'colour set, or the flipped attribute) as its target value (logit > 0 means 1)')



def _target_sets(layout: labels_lib.LabelLayout, source: int, c_org: np.ndarray):
  """[(target dataset j, [c_trg per domain])], as in the test grids."""
  return [(j, layout.test_targets(j, source, c_org)) for j in range(layout.num_datasets)]


def translation_metrics(translate_fn, g_params, layout: labels_lib.LabelLayout, datasets,
                        classifiers: dict, batch_size: int = 50,
                        limit: int | None = None) -> tuple[dict, dict]:
  """Table 3: classification error of translated test images, and the L1 cycle error.

  ``translate_fn(g_params, x, c)`` is G (numpy in and out), ``datasets`` the
  test datasets in layout order, ``classifiers`` maps a target dataset index
  to its ``DomainClassifier``. Returns (translation, reconstruction):
  translation[source][target] and reconstruction[source] (reconstruction
  only for a dataset's own domains, as in training). For a categorical
  target dataset (RaFD's expressions) ``read_as[target][class]`` counts the
  translations into ``target`` that the classifier read as each class: what
  a missed expression was taken for; where the source dataset is categorical
  too, ``missed_from[target][class]`` counts the missed translations into
  ``target`` by the source image's class: which changes G fails to make
  (e.g. ``neutral`` missed mostly from faces with a turned-down mouth).
  """

  def translate(x, c):
    return batching.apply_padded(lambda xx, cc: translate_fn(g_params, xx, cc), batch_size,
                                  x, c)

  translation, reconstruction = {}, {}
  for src, d in enumerate(datasets):
    counts = {j: np.zeros((s.c_dim, 3)) for j, s in enumerate(layout.specs)}  # wrong, all-wrong, n
    read_as = {j: np.zeros((s.c_dim, s.c_dim), np.int64) for j, s in enumerate(layout.specs)}
    src_spec = layout.specs[src]
    by_source = src_spec.kind == labels_lib.CATEGORICAL
    missed_from = {j: np.zeros((s.c_dim, src_spec.c_dim), np.int64)
                   for j, s in enumerate(layout.specs)}
    rec = np.zeros((layout.specs[src].c_dim, 2))  # sum of per-image L1, n
    for batch in input_pipeline.eval_batches(d, batch_size, limit=limit):
      x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
      g_org = layout.embed(src, c_org)
      for j, targets in _target_sets(layout, src, c_org):
        spec, clf = layout.specs[j], classifiers[j]
        for k, c_trg in enumerate(targets):
          x_fake = translate(x, layout.embed(j, c_trg))
          read = batching.apply_padded(clf.predict, batch_size, x_fake)
          if spec.kind == labels_lib.CATEGORICAL:
            wrong = read[:, k] != 1.0
            all_wrong = wrong
            read_as[j][k] += np.bincount(np.argmax(read, axis=1), minlength=spec.c_dim)
            if by_source:
              missed_from[j][k] += np.bincount(np.argmax(c_org, axis=1)[wrong],
                                               minlength=src_spec.c_dim)
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
      else:
        entry['read_as'] = {n: {spec.names[r]: int(v) for r, v in enumerate(read_as[j][k]) if v}
                            for k, n in enumerate(spec.names)}
        if by_source:
          entry['missed_from'] = {
              n: {src_spec.names[r]: int(v) for r, v in enumerate(missed_from[j][k]) if v}
              for k, n in enumerate(spec.names)}
      translation[src_name][spec.dataset] = entry
    reconstruction[src_name] = {
        'l1': float(rec[:, 0].sum() / max(rec[:, 1].sum(), 1)),
        'per_domain': {n: float(rec[k, 0] / max(rec[k, 1], 1))
                       for k, n in enumerate(layout.specs[src].names)},
        'images': int(rec[0, 1]),
    }
  return translation, reconstruction
