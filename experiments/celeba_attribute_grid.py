"""The paper's CelebA single- and multi-attribute transfer figure (Figure 4).

  python -m experiments.celeba_attribute_grid --workdir=RUN
  python -m experiments.celeba_attribute_grid --workdir=runs/attr_grid --train  # short run first

Columns: the input, then each hair colour, gender, age, and the combinations
H+G, H+A, G+A, H+G+A (hair colour + gender + age). On CelebA the roles are
the hair colours (Black/Blond/Brown/Gray_Hair), ``Male`` and ``Young``, and
so on the built-in ``faces`` (drawn hair colour, short hair and a beard,
no wrinkles); on the built-in ``procedural`` shapes they are the hue
(Red/Green/Blue), ``Frame`` and ``Dark``. A hair colour is *set* (clearing the other colours),
gender and age are *flipped*; in the combinations H is the next hair colour
after the image's own (so it always changes).

Writes ``celeba_attribute_grid.png`` (rows = test images) and
``celeba_attribute_grid.json``: per column, on ``--num_eval`` test images,
how often every changed attribute reads as its target (pixel readers on the
built-in dataset; otherwise the domain classifier that
``python -m stargan_jax.evaluate`` saved, when there is one), how often the
content is preserved (built-in only) and the mean absolute pixel change.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np

from experiments import common
from stargan_jax import cli
from stargan_jax import inference
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax import procedural
from stargan_jax.evaluation import pixels

PROG = 'python -m experiments.celeba_attribute_grid'
FLAGS = cli.flag_values()
common.define_run_flags(FLAGS, default_datasets=['faces'])
common.define_figure_flags(FLAGS)

ROLES = (
    # (hair colours, gender, age)
    (('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Gray_Hair'), 'Male', 'Young'),  # CelebA, faces
    (procedural.HUE_NAMES, 'Frame', 'Dark'),  # the built-in shapes (procedural)
)


def attribute_roles(spec: labels_lib.DomainSpec):
  """(hair names, gender name, age name) among the checkpoint's attributes."""
  for hair, gender, age in ROLES:
    present = tuple(h for h in hair if h in spec.names)
    if present and gender in spec.names and age in spec.names:
      return present, gender, age
  raise cli.UserError(
      f'dataset {spec.dataset!r} has attributes {list(spec.names)}; this figure needs hair '
      f'colours + Male + Young (CelebA, faces) or Red/Green/Blue + Frame + Dark (procedural)')


def columns(spec: labels_lib.DomainSpec):
  """[(title, fn(c_org) -> (c_trg, changed attribute indices))]."""
  hair, gender, age = attribute_roles(spec)
  idx = spec.names.index
  hair_idx = [idx(h) for h in hair]

  def set_hair(c, which):  # which: N hair positions (indices into hair_idx)
    c = c.copy()
    c[:, hair_idx] = 0.0
    c[np.arange(c.shape[0]), np.asarray(hair_idx)[which]] = 1.0
    return c

  def next_hair(c):
    own = c[:, hair_idx]
    has = own.max(axis=1) > 0
    return np.where(has, (np.argmax(own, axis=1) + 1) % len(hair), 0)

  def flip(c, name):
    c = c.copy()
    c[:, idx(name)] = 1.0 - c[:, idx(name)]
    return c

  def combo(parts):
    def fn(c):
      changed = []
      if 'H' in parts:
        which = next_hair(c)
        c = set_hair(c, which)
        changed.append(('hair', which))
      if 'G' in parts:
        c = flip(c, gender)
        changed.append(idx(gender))
      if 'A' in parts:
        c = flip(c, age)
        changed.append(idx(age))
      return c, changed
    return fn

  cols = []
  for k, h in enumerate(hair):
    cols.append((h, lambda c, k=k: (set_hair(c, np.full(c.shape[0], k)), [hair_idx[k]])))
  cols.append((f'{gender} (G)', combo('G')))
  cols.append((f'{age} (A)', combo('A')))
  for parts in ('HG', 'HA', 'GA', 'HGA'):
    cols.append(('+'.join(parts), combo(parts)))
  return cols, hair_idx


def _changed_columns(changed, hair_idx, n):
  """Per image, the attribute indices a column changed (hair entries resolved per image)."""
  per_image = [[] for _ in range(n)]
  for item in changed:
    if isinstance(item, tuple):  # ('hair', which per image)
      for i, w in enumerate(item[1]):
        per_image[i].append(hair_idx[int(w)])
    else:
      for i in range(n):
        per_image[i].append(item)
  return per_image


def _reads(spec, x_fake, c_trg, per_image, classifier):
  """Per image: every changed attribute read as its target (None when nothing can read)."""
  if _pixel_readable(spec):
    readers = pixels.READERS[spec.dataset]
    read = np.stack([readers.read(img) for img in x_fake])
    read = read[:, [readers.names.index(n) for n in spec.names]]
  elif classifier is not None:
    read = classifier.predict(x_fake)
  else:
    return None
  return np.array([np.all(read[i, ch] == c_trg[i, ch]) for i, ch in enumerate(per_image)])


def _pixel_readable(spec: labels_lib.DomainSpec) -> bool:
  """A built-in attribute dataset (procedural, faces): pixel readers, no classifier."""
  return spec.dataset in pixels.READERS and not pixels.READERS[spec.dataset].categorical


def run(argv: Sequence[str]) -> dict:
  """Parses ``argv``, draws the figure and measures its columns; returns the numbers."""
  common.parse(FLAGS, argv, PROG)
  return make_figure()


def make_figure() -> dict:
  loaded = common.load_figure_run(FLAGS)
  layout = loaded.layout
  candidates = [j for j, s in enumerate(layout.specs) if s.kind == labels_lib.ATTRIBUTES]
  if not candidates:
    raise cli.UserError(f'the checkpoint in {FLAGS.workdir} has no attribute dataset '
                        f'({[s.dataset for s in layout.specs]}); this figure needs CelebA-like '
                        f'attributes (see experiments/rafd_expression_grid.py for classes)')
  j = candidates[0]
  spec = layout.specs[j]
  cols, hair_idx = columns(spec)
  dataset = inference.open_datasets(loaded, FLAGS.data_dir)[j]
  classifier = None
  if not _pixel_readable(spec):
    classifier = common.find_classifier(loaded, j, FLAGS.classifier_dir)

  def translate(x, c):
    return loaded.translate_np(loaded.generator_params, x, layout.embed(j, c))

  # The figure.
  batch = next(input_pipeline.eval_batches(dataset, FLAGS.num_images, limit=FLAGS.num_images))
  x, c_org = batch['image'], np.asarray(batch['label'], np.float32)
  images = [x] + [translate(x, fn(c_org)[0]) for _, fn in cols]
  out = common.out_dir(FLAGS)
  png = common.labelled_grid(images, ['Input'] + [t for t, _ in cols],
                             os.path.join(out, 'celeba_attribute_grid.png'))

  # The numbers.
  stats = {t: {'reached': 0, 'content': 0, 'change': 0.0, 'n': 0} for t, _ in cols}
  can_read = True
  for b in input_pipeline.eval_batches(dataset, 50, limit=FLAGS.num_eval):
    x, c_org = b['image'], np.asarray(b['label'], np.float32)
    for title, fn in cols:
      c_trg, changed = fn(c_org)
      x_fake = translate(x, c_trg)
      ok = _reads(spec, x_fake, c_trg, _changed_columns(changed, hair_idx, x.shape[0]),
                  classifier)
      s = stats[title]
      if ok is None:
        can_read = False
      else:
        s['reached'] += int(ok.sum())
      if _pixel_readable(spec):
        s['content'] += sum(pixels.content_preserved(spec.dataset, spec.dataset, a, f)
                            for a, f in zip(x, x_fake))
      s['change'] += float(np.abs(x_fake - x).mean(axis=(1, 2, 3)).sum())
      s['n'] += x.shape[0]
  numbers = {}
  for title, s in stats.items():
    n = max(s['n'], 1)
    numbers[title] = {
        'target_reached': s['reached'] / n if can_read else None,
        'content_preserved': s['content'] / n if _pixel_readable(spec) else None,
        'mean_abs_change': s['change'] / n,
        'images': s['n'],
    }
  result = {
      'figure': os.path.abspath(png), 'workdir': os.path.abspath(FLAGS.workdir),
      'checkpoint_step': loaded.step, 'dataset': spec.dataset,
      'roles': dict(zip(('hair', 'gender', 'age'), attribute_roles(spec))),
      'reader': ('pixel readers' if _pixel_readable(spec) else
                 'domain classifier' if classifier is not None else None),
      'rule': 'target_reached: every attribute the column changes reads as its target value',
      'columns': numbers,
  }
  common.write_json(result, os.path.join(out, 'celeba_attribute_grid.json'))
  print(f'Wrote {png} and celeba_attribute_grid.json (step {loaded.step}, {spec.dataset})')
  for title, v in numbers.items():
    reached = '-' if v['target_reached'] is None else f'{v["target_reached"]:.1%}'
    print(f'  {title:>16}: target reached {reached}, mean |change| {v["mean_abs_change"]:.3f}')
  return result


@cli.command(FLAGS, PROG)
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.quiet_libraries()
  make_figure()


if __name__ == '__main__':
  sys.exit(main())
