"""What the experiment scripts share: their run flags, the run to use, labelled figures, JSON.

Every script takes ``--workdir`` of a run of ``python -m stargan_jax.main``
(or, with ``--train``, first trains a short one there on the built-in
dataset) and reads everything else from its checkpoint. Each script declares
its flags in its own registry (``stargan_jax.cli``) and offers ``run(argv)``,
which parses and returns the numbers it writes, next to ``main(argv)``, which
returns the exit status.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
from absl import flags
from PIL import Image, ImageDraw

from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import cli
from stargan_jax import config as config_lib
from stargan_jax import inference
from stargan_jax import input_pipeline
from stargan_jax import sampling
from stargan_jax.evaluation import fid
from stargan_jax.evaluation import report


# The demo config's fields that --train's short run takes as flags: (flag, config group).
_SHORT_RUN_FIELDS = (('image_size', 'data'), ('batch_size', 'data'), ('g_conv_dim', 'model'),
                     ('d_conv_dim', 'model'), ('g_repeat_num', 'model'), ('d_repeat_num', 'model'),
                     ('n_critic', 'optim'))


def define_figure_flags(fv: flags.FlagValues) -> None:
  """--num_images, --num_eval, --classifier_dir: the translation grids' own flags."""
  flags.DEFINE_integer('num_images', 8, 'Rows of the figure.', flag_values=fv)
  flags.DEFINE_integer('num_eval', 200, 'Test images for the numbers.', flag_values=fv)
  flags.DEFINE_string('classifier_dir', None, 'Domain classifiers saved by stargan_jax.evaluate '
                      '(default: WORKDIR/classifier).', flag_values=fv)


def load_figure_run(fv: flags.FlagValues) -> inference.LoadedModel:
  """The grids' run, after checking their flags (and a short --train run when asked)."""
  for name in ('num_images', 'num_eval'):
    cli.require(fv[name].value > 0, f'--{name} must be positive, got {fv[name].value}')
  ensure_run(fv)
  return inference.load_model(fv.workdir, fv.step, use_ema=fv.use_ema)


def define_run_flags(fv: flags.FlagValues, default_datasets: Sequence[str]) -> None:
  """--workdir, --step, --use_ema, --data_dir, --out, and the short run of --train."""
  cli.define_run_flags(fv)
  flags.DEFINE_string('out', None, 'Output folder (default: WORKDIR/experiments).',
                      flag_values=fv)
  flags.DEFINE_bool('train', False, 'If WORKDIR has no checkpoint yet, first train a short run '
                    'there: the demo config with the flags below.', flag_values=fv)
  flags.DEFINE_list('datasets', list(default_datasets), 'Dataset(s) of the short run (--train).',
                    flag_values=fv)
  flags.DEFINE_integer('num_iters', 2000, 'Iterations of the short run (--train).',
                       flag_values=fv)
  for name, group in _SHORT_RUN_FIELDS:
    flags.DEFINE_integer(name, None, f'Short run (--train): {group}.{name} (default: the demo '
                         "config's).", flag_values=fv)


def parse(fv: flags.FlagValues, argv: Sequence[str], prog: str) -> None:
  """Parses ``argv`` into ``fv`` for ``run(argv)``; no positional arguments are taken."""
  rest = cli.parse(fv, argv, prog)
  cli.require(not rest, f'unexpected arguments: {rest}')


def has_checkpoint(workdir: str) -> bool:
  try:
    directory = ckpt_lib.RunDir.find(workdir).checkpoints
  except ckpt_lib.CheckpointNotFoundError:
    return False
  return any(n.isdigit() for n in os.listdir(directory))


def short_run_config(fv: flags.FlagValues) -> config_lib.Config:
  """The demo config with the short run's flags (``--train``); the trainer checks the values."""
  n = fv.num_iters
  values = {'data': {'datasets': list(fv.datasets)},
            'optim': {'num_iters': n, 'num_iters_decay': n // 2},
            'run': {'sample_every': n, 'checkpoint_every': n, 'eval_at_end': False}}
  if fv.data_dir:
    values['data']['data_dir'] = fv.data_dir
  for name, group in _SHORT_RUN_FIELDS:
    if fv[name].value is not None:
      values.setdefault(group, {})[name] = fv[name].value
  return config_lib.Config.from_dict(values, config_lib.default_config())


def ensure_run(fv: flags.FlagValues, log=print) -> None:
  """Trains the short run of ``--train`` when WORKDIR has no checkpoint; else checks one exists."""
  if has_checkpoint(fv.workdir):
    return
  if not fv.train:
    raise ckpt_lib.CheckpointNotFoundError(
        f'no checkpoint in {fv.workdir}; train one first (python -m stargan_jax.main '
        f'--workdir={fv.workdir}) or pass --train for a short run')
  from stargan_jax import train  # only when training
  cfg = short_run_config(fv)
  log(f'No checkpoint in {fv.workdir}: training a short run ({cfg.optim.num_iters} iterations '
      f'on {list(cfg.data.datasets)})')
  train.train_and_evaluate(cfg, fv.workdir)


def out_dir(fv: flags.FlagValues) -> str:
  return fv.out or os.path.join(ckpt_lib.RunDir.find(fv.workdir).root, 'experiments')


def labelled_grid(columns: list[np.ndarray], titles: list[str], path: str,
                  min_cell: int = 96) -> str:
  """A translation grid (rows = images) with a title above every column.

  Small images are enlarged (nearest neighbour, an integer factor) so that
  cells are at least ``min_cell`` pixels and the titles fit.
  """
  array = sampling.grid(columns)
  size = columns[0].shape[1]
  scale = max(1, -(-min_cell // size))
  img = Image.fromarray(array)
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  cell = size * scale
  header = 22
  out = Image.new('RGB', (img.width, img.height + header), 'white')
  out.paste(img, (0, header))
  draw = ImageDraw.Draw(out)
  title_font = report.font(12)
  for k, title in enumerate(titles):
    w = draw.textlength(title, font=title_font)
    draw.text((k * cell + max((cell - w) / 2, 2), 4), title, fill='black', font=title_font)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  out.save(path)
  return path


def write_json(obj: dict, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(obj, f, indent=2)
  return path


def find_classifier(loaded: inference.LoadedModel, dataset: int, classifier_dir: str | None):
  """The domain classifier ``evaluate`` saved for this dataset, if there is one."""
  from stargan_jax.evaluation import classifier as classifier_lib
  spec = loaded.layout.specs[dataset]
  root = classifier_dir or loaded.run.classifier
  return classifier_lib.load(os.path.join(root, f'{spec.dataset}_{loaded.image_size}px'), spec,
                             loaded.image_size)


def real_images(dataset, split: str, count: int, batch_size: int = 100) -> np.ndarray:
  """The first ``count`` images of a split as uint8 pixels (as a saved PNG holds them)."""
  return np.concatenate([fid.to_pixels(b['image']) for b in input_pipeline.eval_batches(
      dataset, batch_size, split=split, limit=count)])


def open_real_set(datasets: Sequence[str], data_dir: str, image_size: int,
                  inception_weights: str | None, batch_size: int):
  """(the one prepared dataset, the FID feature extractor) of a real-images-only script.

  A missing or wrong weights file is the user's mistake: one line, no traceback.
  """
  from stargan_jax.evaluation import inception  # the network only where it is used
  cli.require(len(datasets) == 1, f'--datasets: one prepared dataset, got {list(datasets)}')
  d = input_pipeline.open_dataset(datasets[0], os.path.expanduser(data_dir), image_size)
  try:
    ex = inception.FeatureExtractor(inception_weights, batch_size=batch_size)
  except inception.WeightsError as e:  # no weights file, or not the FID network's
    raise cli.UserError(str(e)) from e
  return d, ex
