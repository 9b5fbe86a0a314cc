"""Translate your own images with a trained checkpoint.

  python -m stargan_jax.translate --workdir=RUN --input=a.jpg --out=OUT --attrs=Blond_Hair=1,Male=0
  python -m stargan_jax.translate --workdir=RUN --input=DIR --out=OUT --domain=happy
  python -m stargan_jax.translate --workdir=RUN --input=DIR --out=OUT --all_domains --grid

The checkpoint carries its label names and image size, so no training flags
are repeated. Each image is prepared as in training: the largest centred
square (CelebA's 178x218 images give exactly the reference's 178 centre crop;
``--crop_size`` crops a fixed square instead), resized bilinearly to the
checkpoint's size. Writes ``<name>-<target>.png`` per image and target, and
with ``--grid`` ``<name>-grid.png`` (input, then every target) and ``grid.png``
(all images, one per row).

G needs the *whole* label vector of the input, which a user's photo does not
come with: the original labels are read by the checkpoint's own
discriminator (its classification head), then the requested attributes are
changed (``--attrs``), or the class is replaced (``--domain``), or the test
grid's targets are built from them (``--all_domains``). ``labels.json`` in
the output directory lists what D read and the targets used, per image.

G's EMA translates when the checkpoint has one (``--g_ema_decay`` in
training); ``--use_ema=false`` uses the raw G weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from typing import Callable

import numpy as np
from absl import flags

from stargan_jax import cli
from stargan_jax import images
from stargan_jax import inference
from stargan_jax import labels as labels_lib
from stargan_jax import sampling
from stargan_jax.evaluation import classifier

# One definition with the dataset builders: what counts as an image file, and how
# a file that cannot be decoded is reported.
IMAGE_EXTENSIONS = images.IMAGE_EXTENSIONS
UnreadableImageError = images.UnreadableImageError


class TargetError(cli.UserError, ValueError):
  """A target (attribute, domain) the checkpoint does not know."""


class InputNotFoundError(cli.UserError, FileNotFoundError):
  """--input is no image file nor a directory holding any."""


# -- images ---------------------------------------------------------------------

def list_inputs(path: str) -> tuple[list[str], list[str]]:
  """(image files, ignored non-image files) of a file or a directory (not recursive)."""
  path = os.path.expanduser(path)
  if os.path.isfile(path):
    return [path], []
  if not os.path.isdir(path):
    raise InputNotFoundError(f'--input {path} is neither an image file nor a directory')
  files, ignored = [], []
  for name in sorted(os.listdir(path)):
    full = os.path.join(path, name)
    if not os.path.isfile(full) or name.startswith('.'):
      continue
    (files if images.is_image_file(name) else ignored).append(full)
  return files, ignored


def load_image(path: str, image_size: int, crop_size: int | None = None,
               warn: Callable[[str], None] | None = None) -> np.ndarray:
  """An image file -> image_size x image_size x 3 float32 in [-1, 1], prepared as in training.

  The largest centred square, or the centred ``crop_size`` square (at most
  the largest, with a warning), resized bilinearly; EXIF orientation applied.
  """
  try:
    im = images.open_rgb(path)
  except FileNotFoundError as e:
    raise UnreadableImageError(f'cannot read image {path}: {type(e).__name__}: {e}') from e
  w, h = im.size
  side = min(w, h)
  if crop_size is not None:
    if crop_size > side and warn is not None:
      warn(f'{path} is {w}x{h}, smaller than the {crop_size} px crop; using its largest centred '
           f'square ({side} px)')
    side = min(crop_size, side)
  return np.asarray(images.crop_and_resize(im, image_size, side), np.float32) / 127.5 - 1.0


# -- targets --------------------------------------------------------------------

@dataclasses.dataclass
class Target:
  """One output per image: a name, the dataset whose labels it sets, and how."""

  name: str
  dataset: int
  make: Callable[[np.ndarray], np.ndarray]  # estimated labels N x c_j -> target N x c_j


def _describe(layout: labels_lib.LabelLayout) -> str:
  return '; '.join(f'dataset {s.dataset!r}: {s.kind} {", ".join(s.names)}' for s in layout.specs)


def parse_attrs(text: str) -> list[tuple[str, float]]:
  """'Blond_Hair=1,Male=0' -> [('Blond_Hair', 1.0), ('Male', 0.0)]."""
  out = []
  for item in filter(None, (t.strip() for t in text.split(','))):
    name, sep, value = item.partition('=')
    name, value = name.strip(), value.strip().lower()
    if not sep or not name:
      raise TargetError(f'--attrs entries look like NAME=1 or NAME=0, got {item!r}')
    if value in ('1', 'true', 'yes'):
      out.append((name, 1.0))
    elif value in ('0', 'false', 'no'):
      out.append((name, 0.0))
    else:
      raise TargetError(f'--attrs value for {name!r} must be 1 or 0, got {value!r}')
  if not out:
    raise TargetError('--attrs is empty; give NAME=1 or NAME=0 entries separated by commas')
  names = [n for n, _ in out]
  if len(set(names)) != len(names):
    raise TargetError(f'--attrs names an attribute twice: {names}')
  return out


def build_targets(layout: labels_lib.LabelLayout, attrs: str | None = None,
                  domain: str | None = None, all_domains: bool = False) -> list[Target]:
  """The targets of exactly one of --attrs, --domain, --all_domains, checked against the labels."""
  if sum([attrs is not None, domain is not None, bool(all_domains)]) != 1:
    raise TargetError('give exactly one of --attrs=NAME=1,..., --domain=NAME or --all_domains')
  attr_sets = [j for j, s in enumerate(layout.specs) if s.kind == labels_lib.ATTRIBUTES]
  cat_sets = [j for j, s in enumerate(layout.specs) if s.kind == labels_lib.CATEGORICAL]
  if all_domains:
    targets = []
    for j, spec in enumerate(layout.specs):
      for k, name in enumerate(spec.names):
        label = name if spec.kind == labels_lib.CATEGORICAL or name in spec.exclusive \
            else f'{name}-flipped'
        targets.append(Target(label, j, lambda c, spec=spec, k=k: spec.test_targets(c)[k]))
    return targets
  if domain is not None:
    if not cat_sets:
      raise TargetError(
          f'--domain needs a checkpoint trained on categorical classes, but this one labels '
          f'attributes ({_describe(layout)}); use --attrs=NAME=1,NAME=0 or --all_domains')
    for j in cat_sets:
      spec = layout.specs[j]
      if domain in spec.names:
        k = spec.names.index(domain)

        def one_hot(c, k=k):
          out = np.zeros_like(c)
          out[:, k] = 1.0
          return out

        return [Target(domain, j, one_hot)]
    valid = ', '.join(n for j in cat_sets for n in layout.specs[j].names)
    raise TargetError(f'unknown domain {domain!r}; this checkpoint\'s classes are: {valid}')
  changes = parse_attrs(attrs)
  if not attr_sets:
    raise TargetError(
        f'--attrs needs a checkpoint trained on binary attributes, but this one labels '
        f'categorical classes ({_describe(layout)}); use --domain=NAME or --all_domains')
  owner = {}
  for name, _ in changes:
    found = [j for j in attr_sets if name in layout.specs[j].names]
    if not found:
      valid = ', '.join(n for j in attr_sets for n in layout.specs[j].names)
      raise TargetError(f'unknown attribute {name!r}; this checkpoint\'s attributes are: {valid}')
    owner[name] = found[0]
  if len(set(owner.values())) > 1:
    raise TargetError(f'--attrs mixes attributes of different datasets: {owner}')
  j = next(iter(owner.values()))
  spec = layout.specs[j]
  on = [n for n, v in changes if v == 1.0 and n in spec.exclusive]
  if len(on) > 1:
    raise TargetError(f'{" and ".join(on)} are mutually exclusive; set at most one of them to 1')

  def apply(c):
    c = np.array(c, np.float32)
    for name, value in changes:
      if value == 1.0 and name in spec.exclusive:
        for other in spec.exclusive:  # like the test grid: setting a colour clears the others
          c[:, spec.names.index(other)] = 0.0
    for name, value in changes:
      c[:, spec.names.index(name)] = value
    return c

  label = '_'.join(f'{n}{int(v)}' for n, v in changes)
  return [Target(label, j, apply)]


def estimate_labels(loaded: inference.LoadedModel, x: np.ndarray) -> list[np.ndarray]:
  """Per dataset, the labels D's classification head reads from x (0/1 or one-hot)."""
  logits = loaded.classify_np(x)
  return [classifier.labels_from_logits(logits[:, slice(*loaded.layout.cls_slice(j))], spec.kind)
          for j, spec in enumerate(loaded.layout.specs)]


def _safe(name: str) -> str:
  return re.sub(r'[^A-Za-z0-9_.=+-]+', '_', name)


# -- the command ------------------------------------------------------------------

def translate(workdir: str, input_path: str, out_dir: str, attrs: str | None = None,
              domain: str | None = None, all_domains: bool = False, grid: bool = False,
              step: int | None = None, crop_size: int | None = None, batch_size: int = 16,
              log: Callable[[str], None] = print,
              warn: Callable[[str], None] | None = None, use_ema: bool = True) -> dict:
  """Translates every readable image; returns a summary (written, failed, files).

  With G's EMA when the checkpoint has one, unless ``use_ema=False``.
  """
  warn = warn or (lambda m: print(f'warning: {m}', file=sys.stderr))
  files, ignored = list_inputs(input_path)
  loaded = inference.load_model(workdir, step, use_ema=use_ema)
  layout, size = loaded.layout, loaded.image_size
  targets = build_targets(layout, attrs, domain, all_domains)  # before any image is read
  crop = crop_size if crop_size is not None else loaded.meta.get('crop_size')
  if ignored:
    log(f'Ignoring {len(ignored)} file(s) without an image extension: '
        f'{", ".join(os.path.basename(f) for f in ignored)}')
  if not files:
    raise InputNotFoundError(f'no image files in {input_path} (extensions: '
                            f'{", ".join(IMAGE_EXTENSIONS)})')
  arrays, names, failed = [], [], []
  for f in files:
    try:
      arrays.append(load_image(f, size, crop, warn))
      names.append(f)
    except UnreadableImageError as e:
      warn(f'{e}; skipping it')
      failed.append(f)
  summary = {'workdir': os.path.abspath(workdir), 'checkpoint_step': loaded.step,
             'generator_weights': loaded.generator_weights, 'image_size': size,
             'inputs': len(files), 'translated': len(names),
             'failed': [os.path.abspath(f) for f in failed], 'targets': [t.name for t in targets],
             'files': []}
  if not arrays:
    return summary
  os.makedirs(out_dir, exist_ok=True)
  stems = _unique_stems(names)
  records, rows = [], []
  # Every chunk is padded to one batch shape (one compiled program), but a set
  # smaller than a batch is not padded up: XLA may round a batch of 1 and a
  # padded batch of 16 differently (it did on an AVX2 CPU), and a single image
  # must come out exactly as the web demo, which translates one at a time,
  # gives it.
  batch_size = min(batch_size, len(arrays))
  for start in range(0, len(arrays), batch_size):
    x = np.stack(arrays[start:start + batch_size])
    estimated = estimate_labels(loaded, x)
    cols = [x]
    batch_targets = []
    for t in targets:
      c_trg = t.make(estimated[t.dataset])
      batch_targets.append(c_trg)
      cols.append(loaded.translate_batched(x, layout.embed(t.dataset, c_trg), batch_size))
    for i in range(x.shape[0]):
      stem = stems[start + i]
      for t, col in zip(targets, cols[1:]):
        path = os.path.join(out_dir, f'{stem}-{_safe(t.name)}.png')
        sampling.save_png(sampling.to_uint8(col[i]), path)
        summary['files'].append(path)
      if grid:
        path = os.path.join(out_dir, f'{stem}-grid.png')
        sampling.save_png(sampling.grid([c[i:i + 1] for c in cols]), path)
        summary['files'].append(path)
      records.append({
          'input': os.path.abspath(names[start + i]),
          'labels_read_by_D': {s.dataset: dict(zip(s.names, estimated[j][i].tolist()))
                               for j, s in enumerate(layout.specs)},
          'targets': {t.name: {layout.specs[t.dataset].dataset: dict(zip(
              layout.specs[t.dataset].names, c[i].tolist()))} for t, c in zip(targets,
                                                                           batch_targets)},
      })
    if grid:
      rows.append(cols)
  if grid:
    path = os.path.join(out_dir, 'grid.png')
    sampling.save_png(sampling.grid([np.concatenate([r[k] for r in rows]) for k in
                                     range(len(rows[0]))]), path)
    summary['files'].append(path)
  with open(os.path.join(out_dir, 'labels.json'), 'w') as f:
    json.dump({'columns': ['input'] + [t.name for t in targets], 'images': records}, f, indent=2)
  log(f'Translated {len(names)} of {len(files)} image(s) with checkpoint step {loaded.step} '
      f'({size} px, {"EMA" if loaded.generator_weights == "ema" else "raw"} G weights) into '
      f'{len(targets)} target(s): wrote {len(summary["files"])} file(s) '
      f'to {out_dir}' + (f'; {len(failed)} could not be read' if failed else ''))
  return summary


def _unique_stems(paths: list[str]) -> list[str]:
  stems, seen = [], {}
  for p in paths:
    stem = _safe(os.path.splitext(os.path.basename(p))[0])
    n = seen.get(stem, 0)
    seen[stem] = n + 1
    stems.append(stem if n == 0 else f'{stem}_{n + 1}')
  return stems


FLAGS = cli.flag_values()
cli.define_run_flags(FLAGS, data_dir=False)
flags.DEFINE_string('input', None, 'An image file or a directory of images.', flag_values=FLAGS)
flags.DEFINE_string('out', None, 'Output folder.', flag_values=FLAGS)
flags.mark_flags_as_required(['input', 'out'], flag_values=FLAGS)
flags.DEFINE_string('attrs', None, 'Attribute changes, e.g. Blond_Hair=1,Male=0 (attribute '
                    'checkpoints); the other attributes keep the values D reads from the image.',
                    flag_values=FLAGS)
flags.DEFINE_string('domain', None, 'Target class, e.g. happy (categorical checkpoints).',
                    flag_values=FLAGS)
flags.DEFINE_bool('all_domains', False, 'Every target of the test grid (each class; each '
                  'attribute set or flipped).', flag_values=FLAGS)
flags.DEFINE_bool('grid', False, 'Also write side-by-side grids.', flag_values=FLAGS)
flags.DEFINE_integer('crop_size', None, 'Centre crop in pixels before resizing (default: the '
                     'largest centred square).', flag_values=FLAGS)
flags.DEFINE_integer('batch_size', 16, 'Images translated at once.', flag_values=FLAGS)


@cli.command(FLAGS, 'python -m stargan_jax.translate')
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.require(FLAGS.crop_size is None or FLAGS.crop_size >= 1,
              f'--crop_size must be positive, got {FLAGS.crop_size}')
  cli.require(FLAGS.batch_size >= 1, f'--batch_size must be positive, got {FLAGS.batch_size}')
  cli.quiet_libraries()
  summary = translate(FLAGS.workdir, FLAGS.input, FLAGS.out, FLAGS.attrs, FLAGS.domain,
                      FLAGS.all_domains, FLAGS.grid, FLAGS.step, FLAGS.crop_size,
                      FLAGS.batch_size, use_ema=FLAGS.use_ema)
  if summary['translated'] == 0:
    print(f'error: none of the {summary["inputs"]} input image(s) could be read', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
