"""Translation accuracy on the built-in datasets, read from pixels.

For every test image and every test-time target domain (the grid columns):
  * ``target``: the translated image reads as the target on the changed
    attribute (attribute datasets) or as the target class (categorical);
  * ``all_labels``: every attribute reads as the target vector;
  * ``content``: the content is preserved (shapes: the object's silhouette
    and the background; faces: the face's position, size and skin tone and
    the background);
  * ``success``: target and content together (the headline number).
Receives a pure ``translate_fn(g_params, x, c)``, not the training loop.
Each built-in dataset names its readers in ``READERS``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Callable

import numpy as np

from stargan_jax import faces
from stargan_jax import labels as labels_lib
from stargan_jax import procedural


@dataclasses.dataclass(frozen=True)
class Readers:
  """A built-in dataset's pixel readers."""
  family: str  # datasets of one family are drawn alike (joint runs translate across them)
  names: tuple[str, ...]  # what ``read`` returns: attribute names, or class names
  read: Callable  # image -> 0/1 vector over ``names`` (attributes) or class index (classes)
  categorical: bool


READERS = {
    'procedural': Readers('shapes', procedural.ATTRIBUTE_NAMES, procedural.read_attributes,
                          False),
    'procedural_classes': Readers('shapes', procedural.CLASS_NAMES, procedural.read_class, True),
    'faces': Readers('faces', faces.ATTRIBUTE_NAMES, faces.read_attributes, False),
    'faces_expr': Readers('faces', faces.EXPRESSION_NAMES, faces.read_expression, True),
}
READABLE = tuple(READERS)
EVAL_BATCH = 100  # test images per G call in translation_accuracy


def content_preserved(source_dataset: str, target_dataset: str, source, translated) -> bool:
  """The content check of the source's family.

  A face keeps its mouth only between ``faces`` domains; into (or out of)
  expressions the mouth moves, and the faces check is told so.
  """
  if READERS[source_dataset].family == 'faces':
    fixed_mouth = source_dataset == 'faces' and target_dataset == 'faces'
    return faces.content_preserved(source, translated, fixed_mouth=fixed_mouth)
  return procedural.content_preserved(source, translated)


def reads_as(spec: labels_lib.DomainSpec, image, target: np.ndarray, changed: int):
  """(target reached, all labels right) for one translated image."""
  readers = READERS[spec.dataset]
  if spec.kind == labels_lib.CATEGORICAL:
    ok = readers.read(image) == readers.names.index(spec.names[changed])
    return ok, ok
  read = readers.read(image)
  values = np.array([read[readers.names.index(n)] for n in spec.names])
  return bool(values[changed] == target[changed]), bool(np.all(values == target))


def evaluate(translate_fn, g_params, layout: labels_lib.LabelLayout, batches, dataset: int = 0,
             target_datasets=None) -> dict:
  """Accuracy of translating dataset ``dataset``'s test images into each target dataset.

  ``batches`` yields {'image', 'label'} numpy batches. Returns, per target
  dataset name, the four rates and per-domain target rates.
  """
  if target_datasets is None:
    target_datasets = range(layout.num_datasets)
  for j in target_datasets:
    if layout.specs[j].dataset not in READABLE:
      raise ValueError(f'pixel readers exist only for {READABLE}, not {layout.specs[j].dataset!r}')
  counts = {j: {'target': 0, 'all_labels': 0, 'content': 0, 'success': 0, 'n': 0,
                'per_domain': np.zeros((layout.specs[j].c_dim, 2))} for j in target_datasets}
  for batch in batches:
    # Each source is compared with all its translations, and each translation
    # is both read and compared: the faces' readers find each face once.
    with faces.same_images_located_once():
      _score_batch(translate_fn, g_params, layout, batch, dataset, target_datasets, counts)
  result = {}
  for j, c in counts.items():
    spec = layout.specs[j]
    n = max(c['n'], 1)
    result[spec.dataset] = {
        'target_accuracy': c['target'] / n,
        'all_labels_accuracy': c['all_labels'] / n,
        'content_preserved': c['content'] / n,
        'success': c['success'] / n,
        'translations': c['n'],
        'per_domain_target_accuracy': {
            name: float(c['per_domain'][k, 0] / max(c['per_domain'][k, 1], 1))
            for k, name in enumerate(spec.names)},
    }
  return result


def _score_batch(translate_fn, g_params, layout, batch, dataset, target_datasets, counts):
  """Adds one batch's translations into every target dataset to ``counts``."""
  x, c_org = batch['image'], batch['label']
  src = np.asarray(x)
  jobs = [(j, k, c_trg) for j in target_datasets
          for k, c_trg in enumerate(layout.test_targets(j, dataset, c_org))]

  def translate(job):
    j, _, c_trg = job
    return translate_fn(g_params, x, layout.embed(j, c_trg))

  # G translates the next target while the readers (numpy, one core) read
  # this one: the two overlap on a CPU, and the order of the counts is kept.
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    ahead = pool.submit(translate, jobs[0]) if jobs else None
    for n, (j, k, c_trg) in enumerate(jobs):
      out = np.asarray(ahead.result())
      if n + 1 < len(jobs):
        ahead = pool.submit(translate, jobs[n + 1])
      spec = layout.specs[j]
      for i in range(out.shape[0]):
        target, all_labels = reads_as(spec, out[i], c_trg[i], k)
        content = content_preserved(layout.specs[dataset].dataset, spec.dataset, src[i],
                                    out[i])
        c = counts[j]
        c['target'] += target
        c['all_labels'] += all_labels
        c['content'] += content
        c['success'] += target and content
        c['n'] += 1
        c['per_domain'][k] += (target, 1)


def real_image_accuracy(batches, spec: labels_lib.DomainSpec) -> float:
  """How often the readers get the real test images' labels right (sanity: ~1.0)."""
  readers = READERS[spec.dataset]
  right = n = 0
  for batch in batches:
    for img, lab in zip(batch['image'], batch['label']):
      if spec.kind == labels_lib.CATEGORICAL:
        right += readers.read(img) == readers.names.index(spec.names[int(np.argmax(lab))])
      else:
        read = readers.read(img)
        right += all(read[readers.names.index(nm)] == lab[k] for k, nm in enumerate(spec.names))
      n += 1
  return right / max(n, 1)


def readable(layout: labels_lib.LabelLayout) -> bool:
  """Whether every dataset of ``layout`` has pixel readers (the built-in datasets)."""
  return all(s.dataset in READABLE for s in layout.specs)


def translation_accuracy(translate_fn, g_params, layout: labels_lib.LabelLayout, datasets,
                         limit: int | None = None, with_real: bool = False) -> dict | None:
  """``evaluate`` of every dataset's test split (``input_pipeline.Dataset``s, in layout order).

  Returns {source dataset: {target dataset: rates}}, or None when a dataset
  has no readers. ``with_real`` wraps each source's entry as
  {'real_image_accuracy': readers on its real test images, 'translations': ...}.
  """
  from stargan_jax import input_pipeline  # the data stack only where data is read
  if not readable(layout):
    return None
  out = {}
  for i, d in enumerate(datasets):
    acc = evaluate(translate_fn, g_params, layout,
                   input_pipeline.eval_batches(d, EVAL_BATCH, limit=limit), dataset=i)
    if with_real:
      real = real_image_accuracy(input_pipeline.eval_batches(d, EVAL_BATCH, limit=limit),
                                 d.spec)
      acc = {'real_image_accuracy': real, 'translations': acc}
    out[d.name] = acc
  return out
