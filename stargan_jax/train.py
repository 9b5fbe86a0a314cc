"""The training loop and test-time grid writing.

Owns the device mesh: parameters and optimiser states are replicated, every
batch is sharded over a 1-D ``data`` axis of all devices of all hosts, and
each host builds the global batch from its own share
(``jax.make_array_from_process_local_data``). The step functions themselves
(``steps.py``) contain no parallelism code. G's EMA (``--g_ema_decay``), when
kept, is part of the replicated state; sample grids, test grids and the
end-of-run pixel readers use it whenever the state has one. Only process 0
prints, writes TensorBoard scalars and sample images; checkpoints are saved
collectively.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import cli
from stargan_jax import config as config_lib
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax import metric_writer
from stargan_jax import models
from stargan_jax import sampling
from stargan_jax import steps
from stargan_jax.evaluation import pixels


def make_mesh(devices=None) -> jax.sharding.Mesh:
  # Sorted by process: each host's devices are then one contiguous block of
  # the batch axis, the block of rows that host's input pipeline reads.
  devices = (sorted(jax.devices(), key=lambda d: (d.process_index, d.id)) if devices is None
             else devices)
  # Auto axes: the label permutation gathers along the sharded batch axis and
  # XLA inserts the collectives; this is decided here, once.
  return jax.sharding.Mesh(np.asarray(devices), ('data',),
                           axis_types=(jax.sharding.AxisType.Auto,))


def shardings(mesh: jax.sharding.Mesh):
  """(replicated, batch-sharded on 'data') for this mesh."""
  P = jax.sharding.PartitionSpec
  return jax.sharding.NamedSharding(mesh, P()), jax.sharding.NamedSharding(mesh, P('data'))


def jit_steps(model: steps.StarGAN, mesh: jax.sharding.Mesh):
  """(init, d_step, g_step) compiled for ``mesh``: state replicated and donated.

  Shared by the trainer and the benchmark, so the benchmark times exactly the
  functions that train.
  """
  replicated, _ = shardings(mesh)
  # The mesh's platform decides both the convolution forms ('auto' resolved
  # by models.conv's rule) and the compiler options: those of the devices
  # the steps run on, which need not be JAX's default backend.
  platform = mesh.devices.flat[0].platform
  model = model.on_platform(platform)
  # init runs once, so its speed does not matter but its compile time does:
  # XLA's CPU backend optimises the threefry code of the parameter draws for
  # several times longer than it takes to compile unoptimised. (The draws
  # can differ from the optimised ones in the last bit.)
  init_fn = jax.jit(model.init, out_shardings=replicated,
                    compiler_options=({'xla_backend_optimization_level': 0}
                                      if platform == 'cpu' else None))
  d_step = jax.jit(model.d_step, static_argnums=3, donate_argnums=0,
                   out_shardings=(replicated, replicated))
  g_step = jax.jit(model.g_step, static_argnums=3, donate_argnums=0,
                   out_shardings=(replicated, replicated))
  return init_fn, d_step, g_step


class WorkdirInUseError(cli.UserError, FileExistsError):
  """A new run pointed at a run directory that already holds checkpoints."""


class Trainer:
  """Builds data, model, state and compiled steps for a config and a workdir."""

  def __init__(self, cfg: config_lib.Config, workdir: str, devices=None):
    self.cfg = cfg.check()
    self.workdir = os.path.abspath(os.path.expanduser(workdir))
    self.run = ckpt_lib.RunDir(self.workdir)
    self.is_main = jax.process_index() == 0
    self.datasets = [
        input_pipeline.open_dataset(name, cfg.data.data_dir, cfg.data.image_size,
                                    attrs=cfg.data.attrs, manual_dir=cfg.data.manual_dir,
                                    # in joint runs --attrs applies to the attribute datasets
                                    attrs_apply_to_categorical=len(cfg.data.datasets) == 1)
        for name in cfg.data.datasets]
    self.layout = labels_lib.LabelLayout(tuple(d.spec for d in self.datasets))
    self.model = steps.StarGAN.from_config(cfg, self.layout)
    self.mesh = make_mesh(devices)
    n_dev = self.mesh.devices.size
    if cfg.data.batch_size % n_dev:
      raise cli.UserError(f'--batch_size={cfg.data.batch_size} must be divisible by the number '
                          f'of devices ({n_dev})')
    self.replicated, self.batch_sharding = shardings(self.mesh)
    # The keys are made on the mesh, replicated: a key on one device would be
    # copied to every device at every step (an implicit transfer per step).
    root = jax.random.key(cfg.run.seed)
    self.init_key, self.step_key = jax.jit(
        lambda k: (jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)),
        out_shardings=self.replicated)(root)
    self.init_fn, self.d_step, self.g_step = jit_steps(self.model, self.mesh)
    self.translate_fn = jax.jit(self.model.translate)
    self.meta = ckpt_lib.build_meta(cfg, self.layout)
    self.checkpointer = ckpt_lib.Checkpointer(self.run.checkpoints,
                                              keep=cfg.run.keep_checkpoints)

  # -- data ------------------------------------------------------------------

  def train_iterators(self):
    c = self.cfg
    return [input_pipeline.train_iterator(
        d, c.data.batch_size, c.run.seed + 1000 * i, process_index=jax.process_index(),
        process_count=jax.process_count(), num_threads=c.data.num_threads,
        cache_mb=c.data.cache_mb)
            for i, d in enumerate(self.datasets)]

  def to_global(self, local_batch: dict) -> dict:
    return {k: jax.make_array_from_process_local_data(self.batch_sharding, v)
            for k, v in local_batch.items()}

  # -- state -----------------------------------------------------------------

  def init_state(self) -> steps.TrainState:
    return self.init_fn(self.init_key)

  def abstract_state(self):
    return jax.eval_shape(self.model.init, self.init_key)

  def restore(self, step: int | None = None, with_data: bool = True):
    """(state, meta, data_state) of a checkpoint; the state has G's EMA iff the checkpoint has.

    The EMA follows what was saved, not this config's g_ema_decay: test mode
    uses a saved EMA whatever the flags, and ``train`` reconciles the two.
    """
    abstract = self.abstract_state()
    saved_ema = self.checkpointer.saved_has('g_ema_params', step)
    abstract = abstract.replace(g_ema_params=abstract.g_params if saved_ema else None)
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated), abstract)
    return self.checkpointer.restore(abstract, self.meta, step, with_data)

  def _match_ema(self, state: steps.TrainState) -> steps.TrainState:
    """A restored state with G's EMA if and only if this config keeps one."""
    if self.model.g_ema_decay and state.g_ema_params is None:
      self._log('The checkpoint has no EMA of G (saved with --g_ema_decay=0, by an older '
                'version, or imported): the EMA starts from its G.')
      copy = jax.jit(lambda p: jax.tree_util.tree_map(jnp.copy, p),
                     out_shardings=self.replicated)
      state = state.replace(g_ema_params=copy(state.g_params))
    elif not self.model.g_ema_decay and state.g_ema_params is not None:
      self._log('--g_ema_decay=0: the checkpoint\'s EMA of G is dropped; training continues '
                'without one.')
      state = state.replace(g_ema_params=None)
    return state

  @staticmethod
  def generator_params(state, use_ema: bool = True):
    """The G weights to translate with: the EMA when the state has one (unless use_ema=False)."""
    return state.g_ema_params if use_ema and state.g_ema_params is not None else state.g_params

  def param_counts(self, state=None) -> tuple[int, int]:
    state = self.abstract_state() if state is None else state
    return models.count_params(state.g_params), models.count_params(state.d_params)

  # -- training --------------------------------------------------------------

  def train(self, resume: bool = False, num_iters: int | None = None) -> steps.TrainState:
    cfg = self.cfg
    total = cfg.optim.num_iters if num_iters is None else num_iters
    iterators = self.train_iterators()
    existing = self.checkpointer.latest_step()
    if existing is not None and not resume:
      raise WorkdirInUseError(
          f'{self.checkpointer.directory} already holds checkpoints (latest step {existing}); '
          f'pass --resume to continue that run or choose another --workdir')
    if resume and existing is not None:
      state, _, data_state = self.restore()
      state = self._match_ema(state)
      if data_state is not None:
        for it, s in zip(iterators, data_state['iterators']):
          it.set_state(s)
      self._log(f'Resumed from step {int(state.step)} in {self.checkpointer.directory}')
    else:
      state = self.init_state()
    start = int(state.step)
    g_count, d_count = self.param_counts(state)
    self._log(f'G parameters: {g_count:,}  D parameters: {d_count:,}  devices: '
              f'{jax.device_count()} ({jax.devices()[0].platform}), hosts: {jax.process_count()}')

    writer = metric_writer.MetricWriter(self.run.tensorboard, self.is_main)
    fixed = [self._fixed_batch(d) for d in self.datasets]
    pending: dict[str, Any] = {}
    t0, it0 = time.time(), start
    for it in range(start, total):
      for i, it_ds in enumerate(iterators):
        batch = self.to_global(next(it_ds))
        state, d_metrics = self.d_step(state, batch, self.step_key, i)
        pending.update(self._tag(d_metrics, i))
        if (it + 1) % cfg.optim.n_critic == 0:
          state, g_metrics = self.g_step(state, batch, self.step_key, i)
          pending.update(self._tag(g_metrics, i))
      done = it + 1
      if done % cfg.run.log_every == 0 or done == total:
        values = jax.device_get(pending)  # the only host sync of the loop
        rate = (done - it0) / max(time.time() - t0, 1e-9)
        eta = (total - done) / max(rate, 1e-9)
        self._log(f'Iteration [{done}/{total}] {rate:.2f} it/s, ETA {_hms(eta)} | ' +
                  ', '.join(f'{k}: {float(v):.4f}' for k, v in sorted(values.items())))
        if self.is_main:
          writer.scalars(done, values)
      if done % cfg.run.sample_every == 0 or done == total:
        self.write_samples(state, fixed, os.path.join(self.run.samples, f'{done:06d}-images.png'))
      if done % cfg.run.checkpoint_every == 0 or done == total:
        data_state = {'iterators': [it_ds.get_state() for it_ds in iterators]}
        self.checkpointer.save(done, state, self.meta, data_state)
    self.checkpointer.wait()
    writer.close()
    return state

  def _tag(self, metrics: dict, dataset: int) -> dict:
    if self.layout.num_datasets == 1:
      return metrics
    name = self.layout.specs[dataset].dataset
    return {f'{name}/{k}': v for k, v in metrics.items()}

  def _log(self, msg: str) -> None:
    if self.is_main:
      print(msg, flush=True)

  # -- sampling and evaluation -----------------------------------------------

  def _fixed_batch(self, dataset: input_pipeline.Dataset) -> dict:
    return next(input_pipeline.eval_batches(dataset, self.cfg.run.num_samples))

  def _translate_np(self, g_params, x, c):
    return np.asarray(self.translate_fn(g_params, np.asarray(x), np.asarray(c, np.float32)))

  def write_samples(self, state, fixed: list, path: str) -> list[str]:
    """One grid per dataset: rows = fixed test images, columns = input + every domain."""
    paths = []
    for i, batch in enumerate(fixed):
      cols = sampling.translation_columns(self._translate_np, self.generator_params(state),
                                          self.layout, i, batch['image'], batch['label'])
      p = path if len(fixed) == 1 else path.replace('.png', f'-{self.layout.specs[i].dataset}.png')
      if self.is_main:
        sampling.save_png(sampling.grid(cols), p)
      paths.append(p)
    return paths


def _hms(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def train_and_evaluate(cfg: config_lib.Config, workdir: str, resume: bool = False) -> dict:
  trainer = Trainer(cfg, workdir)
  state = trainer.train(resume=resume)
  summary = {'step': int(state.step)}
  if cfg.run.eval_at_end:
    acc = pixels.translation_accuracy(trainer._translate_np, trainer.generator_params(state),
                                      trainer.layout, trainer.datasets)
    if acc is not None:
      summary['pixel_accuracy'] = acc
      for src, per_target in acc.items():
        for trg, r in per_target.items():
          trainer._log(
              f'Test split, {src} -> {trg} domains ({r["translations"]} translations'
              f'{", EMA of G" if state.g_ema_params is not None else ""}): '
              f'target reached {r["target_accuracy"]:.1%}, all labels right '
              f'{r["all_labels_accuracy"]:.1%}, content preserved {r["content_preserved"]:.1%}, '
              f'target reached with content preserved {r["success"]:.1%}')
      if trainer.is_main:
        with open(trainer.run.pixel_accuracy, 'w') as f:
          json.dump(acc, f, indent=2)
  trainer.checkpointer.close()
  return summary
