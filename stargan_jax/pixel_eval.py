"""Translation accuracy on the built-in procedural datasets, read from pixels.

For every test image and every test-time target domain (the grid columns):
  * ``target``: the translated image reads as the target on the changed
    attribute (attribute datasets) or as the target class (categorical);
  * ``all_labels``: every attribute reads as the target vector;
  * ``content``: the object's silhouette and the background are preserved;
  * ``success``: target and content together (the headline number).
Receives a pure ``translate_fn(g_params, x, c)``, not the training loop.
"""

from __future__ import annotations

import numpy as np

from stargan_jax import labels as labels_lib
from stargan_jax import procedural

READABLE = ('procedural', 'procedural_classes')


def _reads_as(spec: labels_lib.DomainSpec, image, target: np.ndarray, changed: int):
  """(target reached, all labels right) for one translated image."""
  if spec.kind == labels_lib.CATEGORICAL:
    ok = procedural.read_class(image) == procedural.CLASS_NAMES.index(spec.names[changed])
    return ok, ok
  read = procedural.read_attributes(image)
  values = np.array([read[procedural.ATTRIBUTE_NAMES.index(n)] for n in spec.names])
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
    x, c_org = batch['image'], batch['label']
    src = np.asarray(x)
    for j in target_datasets:
      spec = layout.specs[j]
      own = np.asarray(c_org) if j == dataset else np.zeros((x.shape[0], spec.c_dim), np.float32)
      for k, c_trg in enumerate(spec.test_targets(own)):
        out = np.asarray(translate_fn(g_params, x, layout.embed(j, c_trg)))
        for i in range(out.shape[0]):
          target, all_labels = _reads_as(spec, out[i], c_trg[i], k)
          content = procedural.content_preserved(src[i], out[i])
          c = counts[j]
          c['target'] += target
          c['all_labels'] += all_labels
          c['content'] += content
          c['success'] += target and content
          c['n'] += 1
          c['per_domain'][k] += (target, 1)
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


def real_image_accuracy(batches, spec: labels_lib.DomainSpec) -> float:
  """How often the readers get the real test images' labels right (sanity: ~1.0)."""
  right = n = 0
  for batch in batches:
    for img, lab in zip(batch['image'], batch['label']):
      if spec.kind == labels_lib.CATEGORICAL:
        right += procedural.read_class(img) == procedural.CLASS_NAMES.index(
            spec.names[int(np.argmax(lab))])
      else:
        read = procedural.read_attributes(img)
        right += all(read[procedural.ATTRIBUTE_NAMES.index(nm)] == lab[k]
                     for k, nm in enumerate(spec.names))
      n += 1
  return right / max(n, 1)
