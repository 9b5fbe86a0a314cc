"""A saved run, loaded for translation: ``load_model(workdir)``.

The one loader of a run of ``python -m stargan_jax.main`` (or of an imported
PyTorch checkpoint): everything comes from the checkpoint's meta (label names,
image size, model sizes, the training config), so no training flag is
repeated. ``translate``, ``evaluate``, the web demo, the experiment scripts and
``main.py --mode=test`` all start here and hand the evaluators (pixel readers,
the Table 3 classifier, FID) a pure ``translate_fn(g_params, x, c)``.

Which G weights: the checkpoint's EMA of G when it holds one (trained with
``--g_ema_decay`` > 0), unless ``use_ema=False``; older, EMA-less and
imported checkpoints use G.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import numpy as np

from stargan_jax import batching
from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import cli
from stargan_jax import config as config_lib
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax import models
from stargan_jax import sampling
from stargan_jax import steps

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

  @property
  def run(self) -> ckpt_lib.RunDir:
    return ckpt_lib.RunDir(self.run_dir)

  def translate_np(self, g_params, x, c) -> np.ndarray:
    return np.asarray(self.translate_fn(g_params, np.asarray(x, np.float32),
                                        np.asarray(c, np.float32)))

  def translate_batched(self, x: np.ndarray, c: np.ndarray, batch_size: int) -> np.ndarray:
    """G(x, c) with ``generator_params``, in padded batches of ``batch_size`` rows."""
    g = self.generator_params
    return np.concatenate([
        batching.apply_padded(lambda xx, cc: self.translate_np(g, xx, cc), batch_size,
                     x[i:i + batch_size], c[i:i + batch_size])
        for i in range(0, x.shape[0], batch_size)]) if x.shape[0] else x

  def classify_np(self, x) -> np.ndarray:
    """D's classification logits N x cls_dim (what the GAN's own critic reads)."""
    return np.asarray(_d_cls(self.model.D, self.d_params, np.asarray(x, np.float32)))

  @property
  def image_size(self) -> int:
    return int(self.meta['image_size'])

  def param_counts(self) -> dict:
    g = models.count_params(self.g_params)
    d = models.count_params(self.d_params)
    return {'G': g, 'D': d, 'total': g + d}


def load_model(workdir: str, step: int | None = None, use_ema: bool = True) -> LoadedModel:
  """Restores a checkpoint of ``python -m stargan_jax.main`` without its training flags.

  ``workdir`` is the run directory (its ``checkpoints/`` is accepted too).
  G's EMA is restored whenever the checkpoint holds one; ``use_ema=False``
  makes ``generator_params`` the raw G weights all the same.
  """
  run = ckpt_lib.RunDir.find(workdir)
  ck = ckpt_lib.Checkpointer(run.checkpoints, create=False)
  try:
    step, meta = ck.restore_meta(step)
    where = os.path.join(run.checkpoints, str(step))
    layout = ckpt_lib.check_meta(meta, where)
    cfg = config_lib.Config.from_dict(meta['config'])
    # How convolutions are computed is a choice of the machine, not of the
    # model (same numbers): the run's own --conv_impl may not suit this one.
    model = steps.StarGAN.from_config(
        dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, conv_impl='auto')), layout)
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
                     functools.partial(_g_apply, model.G), run.root,
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


def open_datasets(loaded: LoadedModel, data_dir: str | None = None) -> list[input_pipeline.Dataset]:
  """The checkpoint's datasets, at its image size, with its label selection; checked."""
  cfg = loaded.cfg
  data_dir = data_dir or cfg.data.data_dir
  out = []
  for spec in loaded.layout.specs:
    attrs = spec.names if spec.kind == labels_lib.ATTRIBUTES else None
    d = input_pipeline.open_dataset(spec.dataset, data_dir, loaded.image_size, attrs=attrs,
                                    manual_dir=cfg.data.manual_dir)
    if d.spec.names != spec.names or d.spec.kind != spec.kind:
      raise ckpt_lib.CheckpointMismatchError(
          f'dataset {spec.dataset!r} in {data_dir} labels {d.spec.kind} {list(d.spec.names)}, '
          f'but the checkpoint was trained on {spec.kind} {list(spec.names)}')
    if 'test' not in d.sources:
      raise cli.UserError(f'dataset {spec.dataset!r} in {data_dir} has no test split '
                          f'(splits: {sorted(d.sources)})')
    out.append(d)
  return out


def write_test_grids(loaded: LoadedModel, out_dir: str | None = None,
                     data_dir: str | None = None, num_samples: int | None = None,
                     limit: int | None = None, log: Callable[[str], None] = print) -> list[str]:
  """Translation grids of the whole test split of every dataset (``main.py --mode=test``).

  One PNG per ``num_samples`` test images (default: the run's
  ``--num_samples``): each row an input, then one column per target domain,
  as the reference's test mode. Written to RUN/results by default.
  """
  out_dir = out_dir or loaded.run.results
  rows = num_samples or loaded.cfg.run.num_samples
  datasets = open_datasets(loaded, data_dir)
  written = []
  for i, d in enumerate(datasets):
    for k, batch in enumerate(input_pipeline.eval_batches(d, rows, limit=limit)):
      cols = sampling.translation_columns(loaded.translate_np, loaded.generator_params,
                                          loaded.layout, i, batch['image'], batch['label'])
      name = f'{k + 1:04d}-images.png' if len(datasets) == 1 else f'{d.name}-{k + 1:04d}-images.png'
      if jax.process_index() == 0:
        written.append(sampling.save_png(sampling.grid(cols), os.path.join(out_dir, name)))
  weights = 'EMA' if loaded.generator_weights == 'ema' else 'raw'
  log(f'Wrote {len(written)} grids from step {loaded.step} ({weights} G weights) to {out_dir}')
  return written
