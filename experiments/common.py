"""What the experiment scripts share: the run to use, test images, labelled figures, JSON.

Every script takes ``--workdir`` of a run of ``python -m stargan_jax.main``
(or, with ``--train``, first trains a short one there on the built-in
dataset) and reads everything else from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from PIL import Image, ImageDraw

from stargan_jax import config as config_lib
from stargan_jax import evaluate
from stargan_jax import input_pipeline
from stargan_jax import sampling


def add_run_flags(parser: argparse.ArgumentParser, default_dataset: str) -> None:
  parser.add_argument('--workdir', required=True, help='Run directory of stargan_jax.main.')
  parser.add_argument('--step', type=int, default=None, help='Checkpoint step (default: latest).')
  parser.add_argument('--data_dir', default=None,
                      help='TFDS data directory (default: the one the run was trained with).')
  parser.add_argument('--out', default=None,
                      help='Output directory (default: WORKDIR/experiments).')
  evaluate.add_use_ema_flag(parser)
  g = parser.add_argument_group('a short training run (only with --train)')
  g.add_argument('--train', action='store_true',
                 help='If WORKDIR has no checkpoint yet, first train one there (the demo config '
                      'with the flags below).')
  g.add_argument('--dataset', default=default_dataset,
                 help=f'Dataset of the short run (default {default_dataset}).')
  g.add_argument('--num_iters', type=int, default=2000, help='Iterations of the short run.')
  g.add_argument('--image_size', type=int, default=None)
  g.add_argument('--batch_size', type=int, default=None)
  g.add_argument('--g_conv_dim', type=int, default=None)
  g.add_argument('--d_conv_dim', type=int, default=None)
  g.add_argument('--g_repeat_num', type=int, default=None)
  g.add_argument('--d_repeat_num', type=int, default=None)
  g.add_argument('--n_critic', type=int, default=None)


def has_checkpoint(workdir: str) -> bool:
  try:
    directory = evaluate.checkpoint_dir(workdir)
  except FileNotFoundError:
    return False
  return any(n.isdigit() for n in os.listdir(directory))


def ensure_run(args, log=print) -> None:
  """Trains the short run of ``--train`` when WORKDIR has no checkpoint; else checks one exists."""
  if has_checkpoint(args.workdir):
    return
  if not args.train:
    raise FileNotFoundError(
        f'no checkpoint in {args.workdir}; train one first (python -m stargan_jax.main '
        f'--workdir={args.workdir}) or pass --train for a short run')
  from stargan_jax import train  # only when training
  cfg = config_lib.default_config()
  cfg.data.datasets = (args.dataset,)
  if args.data_dir:
    cfg.data.data_dir = args.data_dir
  cfg.optim.num_iters = args.num_iters
  cfg.optim.num_iters_decay = args.num_iters // 2
  cfg.run.sample_every = cfg.run.checkpoint_every = args.num_iters
  cfg.run.eval_at_end = False
  for group, name in (('data', 'image_size'), ('data', 'batch_size'), ('model', 'g_conv_dim'),
                      ('model', 'd_conv_dim'), ('model', 'g_repeat_num'),
                      ('model', 'd_repeat_num'), ('optim', 'n_critic')):
    value = getattr(args, name)
    if value is not None:
      setattr(getattr(cfg, group), name, value)
  log(f'No checkpoint in {args.workdir}: training a short run ({args.num_iters} iterations on '
      f'{args.dataset!r})')
  train.train_and_evaluate(cfg, args.workdir)


def out_dir(args) -> str:
  if args.out:
    return args.out
  run = os.path.dirname(evaluate.checkpoint_dir(args.workdir))
  return os.path.join(run, 'experiments')


def test_images(loaded: evaluate.LoadedModel, dataset: int, n: int,
                data_dir: str | None = None) -> dict:
  """The first ``n`` test images and labels of the checkpoint's dataset ``dataset``."""
  d = evaluate.open_datasets(loaded, data_dir)[dataset]
  return next(input_pipeline.eval_batches(d, n, limit=n))


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
  title_font = evaluate.font(12)
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


def find_classifier(loaded: evaluate.LoadedModel, dataset: int, classifier_dir: str | None):
  """The domain classifier ``evaluate`` saved for this dataset, if there is one."""
  from stargan_jax.evaluation import classifier as classifier_lib
  spec = loaded.layout.specs[dataset]
  root = classifier_dir or os.path.join(loaded.run_dir, 'classifier')
  return classifier_lib.load(os.path.join(root, f'{spec.dataset}_{loaded.image_size}px'), spec,
                             loaded.image_size)

