"""Orbax checkpoints: the only module that imports orbax.

A checkpoint step directory holds three items:
  * ``state``: the ``TrainState`` (G and D params, both Adam states, step,
    and G's EMA when the run keeps one);
  * ``data``: the input iterators' positions (JSON), so a resume sees the
    same batches an uninterrupted run would;
  * ``meta``: what the checkpoint *is* (label layout with names, image size,
    model sizes, seed, the full config), so evaluation and translation need no
    training flags and a mismatched config is refused before any array is read.

Orbax writes each step into a temporary directory and renames it only once
complete, so a process killed during a save leaves the previous checkpoints
intact and no partial step that ``latest_step`` would pick up.

Checkpoints written before a state field existed still restore: a field the
saved state lacks and that defaults to None (G's EMA) comes back as None.

Also here: the run directory's layout (``RunDir``: what ``main.py
--workdir=RUN`` writes where) and the meta schema (``build_meta`` /
``check_meta``), so the trainer, the importer of PyTorch checkpoints and the
loader of saved runs agree on both.
"""

from __future__ import annotations

import dataclasses
import logging as std_logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from stargan_jax import cli
from stargan_jax import labels as labels_lib

# Meta fields that must agree between a checkpoint and the config restoring it.
_MUST_MATCH = ('image_size', 'g_dim', 'cls_dim', 'g_conv_dim', 'd_conv_dim', 'g_repeat_num',
               'd_repeat_num', 'g_output', 'g_upsample', 'g_highpass', 'g_head_input')
# What a meta written before a field existed meant by it.
_META_DEFAULTS = {'g_output': 'image', 'g_upsample': 'transpose', 'g_highpass': False,
                  'g_head_input': False}


class CheckpointMismatchError(cli.UserError, ValueError):
  """A checkpoint that does not fit what restores it (named in the message)."""


class CheckpointNotFoundError(cli.UserError, FileNotFoundError):
  """No checkpoint (or not the step asked for) where the user pointed."""


@dataclasses.dataclass(frozen=True)
class RunDir:
  """What ``python -m stargan_jax.main --workdir=RUN`` writes, and where."""

  root: str

  @classmethod
  def find(cls, path: str) -> 'RunDir':
    """The run of ``path``: RUN itself, or its ``checkpoints/`` directory.

    Raises ``CheckpointNotFoundError`` naming what was expected.
    """
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(os.path.join(path, 'checkpoints')):
      return cls(path)
    if os.path.isdir(path) and any(n.isdigit() for n in os.listdir(path)):
      return cls(os.path.dirname(path))  # the user pointed at the checkpoints directory
    raise CheckpointNotFoundError(
        f'no checkpoints in {path}: expected {os.path.join(path, "checkpoints")}/<step>/ as '
        f'written by `python -m stargan_jax.main --workdir={path}`')

  @property
  def checkpoints(self) -> str:
    return os.path.join(self.root, 'checkpoints')

  @property
  def samples(self) -> str:  # training's sample grids
    return os.path.join(self.root, 'samples')

  @property
  def results(self) -> str:  # --mode=test's grids of the whole test split
    return os.path.join(self.root, 'results')

  @property
  def tensorboard(self) -> str:
    return os.path.join(self.root, 'tensorboard')

  @property
  def classifier(self) -> str:  # the Table 3 domain classifiers, one subdirectory per dataset
    return os.path.join(self.root, 'classifier')

  def evaluation(self, step: int) -> str:
    return os.path.join(self.root, 'evaluation', f'step_{step}')

  @property
  def pixel_accuracy(self) -> str:  # the final pixel-reader measurement of a built-in run
    return os.path.join(self.root, 'pixel_accuracy.json')


def build_meta(cfg, layout: labels_lib.LabelLayout) -> dict:
  """A checkpoint's meta item (``cfg``: a ``config.Config``): what it is, without flags."""
  return {
      'layout': layout.to_dict(),
      'image_size': cfg.data.image_size,
      'g_dim': layout.g_dim,
      'cls_dim': layout.cls_dim,
      'g_conv_dim': cfg.model.g_conv_dim,
      'd_conv_dim': cfg.model.d_conv_dim,
      'g_repeat_num': cfg.model.g_repeat_num,
      'd_repeat_num': cfg.model.d_repeat_num,
      'g_output': cfg.model.g_output,
      'g_upsample': cfg.model.g_upsample,
      'g_highpass': cfg.model.g_highpass,
      'g_head_input': cfg.model.g_head_input,
      'seed': cfg.run.seed,
      'config': cfg.to_dict(),
  }


REQUIRED_META = ('layout', 'config', 'image_size')


def check_meta(meta: dict, where: str) -> labels_lib.LabelLayout:
  """The label layout of a saved meta, after refusing one a loader cannot use.

  Refused: a meta without the keys a loader needs (not written by this
  project), or one whose sizes contradict its label names. The reference's
  most common confusion is a c_dim that does not match the generator's; here
  the label vector is rebuilt from the stored names, so the only way to
  disagree is a meta that contradicts itself.
  """
  for key in REQUIRED_META:
    if key not in meta:
      raise CheckpointMismatchError(
          f'checkpoint {where} has no {key!r} in its meta; it was not written by '
          f'stargan_jax.train (meta keys: {sorted(meta)})')
  layout = labels_lib.LabelLayout.from_dict(meta['layout'])
  for key, value in (('g_dim', layout.g_dim), ('cls_dim', layout.cls_dim)):
    if key in meta and meta[key] != value:
      raise CheckpointMismatchError(
          f'checkpoint {where}: meta says {key}={meta[key]} but its label names '
          f'{[s.names for s in layout.specs]} give {key}={value} (c_dim mismatch)')
  return layout


class Checkpointer:

  def __init__(self, directory: str, keep: int = 3, create: bool = True):
    self.directory = os.path.abspath(os.path.expanduser(directory))
    if not create and not os.path.isdir(self.directory):
      raise CheckpointNotFoundError(f'no checkpoint directory at {self.directory}')
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, meta: dict, data_state: dict | None = None,
           wait: bool = False) -> None:
    items = {'state': ocp.args.StandardSave(state), 'meta': ocp.args.JsonSave(meta)}
    if data_state is not None:
      items['data'] = ocp.args.JsonSave(data_state)
    self._manager.save(step, args=ocp.args.Composite(**items), force=True)
    if wait:
      self._manager.wait_until_finished()

  def _resolve(self, step: int | None) -> int:
    if step is None:
      step = self.latest_step()
      if step is None:
        raise CheckpointNotFoundError(f'no checkpoint found in {self.directory}')
    elif step not in self.all_steps():
      raise CheckpointNotFoundError(f'no checkpoint for step {step} in {self.directory}; '
                              f'available steps: {self.all_steps()}')
    return step

  def restore_meta(self, step: int | None = None) -> tuple[int, dict]:
    step = self._resolve(step)
    out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return step, out['meta']

  def restore(self, abstract_state, meta: dict | None = None, step: int | None = None,
              with_data: bool = True) -> tuple[Any, dict, dict | None]:
    """Restores (state, meta, data_state); checks ``meta`` against the saved one first."""
    step, saved_meta = self.restore_meta(step)
    if meta is not None:
      check_compatible(saved_meta, meta, os.path.join(self.directory, str(step)))
    target, rebuild = _restore_target(abstract_state, self._saved_tree(step))
    items = {'state': ocp.args.StandardRestore(target)}
    has_data = with_data and 'data' in self._item_names(step)
    if has_data:
      items['data'] = ocp.args.JsonRestore()
    out = self._manager.restore(step, args=ocp.args.Composite(**items))
    return rebuild(out['state']), saved_meta, (out['data'] if has_data else None)

  def saved_shapes(self, step: int | None = None, item: str = 'state') -> dict[tuple, tuple]:
    """{path: shape} of an item's saved arrays, from its metadata alone (no array is read).

    A path is the tuple of dict keys / attribute names / indices down to the
    array, so it compares with ``path_names`` of a live tree.
    """
    tree = self._saved_tree(step, item)
    return {path_names(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(tree)}

  def saved_has(self, field: str, step: int | None = None) -> bool:
    """Whether the saved state holds arrays under ``field`` (e.g. 'g_ema_params')."""
    return any(k[:1] == (field,) for k in self.saved_shapes(step))

  def _saved_tree(self, step: int | None, item: str = 'state'):
    step = self._resolve(step)
    reader = ocp.StandardCheckpointer()
    # Reading one item's metadata directly, Orbax looks for the step's own
    # metadata file inside the item and warns that it is missing; the item's
    # tree metadata it then reads is complete, so the warning is only noise.
    quiet = _DropMessage('Metadata file does not exist')
    std_logging.getLogger('absl').addFilter(quiet)
    try:
      metadata = reader.metadata(os.path.join(self.directory, str(step), item))
    finally:
      std_logging.getLogger('absl').removeFilter(quiet)
      reader.close()
    return metadata.item_metadata.tree

  def _item_names(self, step: int) -> list[str]:
    path = os.path.join(self.directory, str(step))
    return os.listdir(path) if os.path.isdir(path) else []

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()


class _DropMessage(std_logging.Filter):
  def __init__(self, text: str):
    super().__init__()
    self.text = text

  def filter(self, record: std_logging.LogRecord) -> bool:
    return self.text not in record.getMessage()


def _restore_target(abstract_state, saved_tree):
  """(what to restore, how to rebuild the state from it) for a dataclass state.

  Orbax restores only a tree of the saved structure. A state saved before a
  field existed lacks it on disk; if that field defaults to None it is left
  out of the restore and comes back as None (the caller decides what to put
  there, e.g. the trainer starts G's EMA from G). Any other difference is
  left for Orbax to report.
  """
  if not (dataclasses.is_dataclass(abstract_state) and isinstance(saved_tree, dict)):
    return abstract_state, lambda restored: restored
  fields = {f.name: f for f in dataclasses.fields(abstract_state)}
  missing = [n for n, f in fields.items() if n not in saved_tree and f.default is None]
  target = {n: getattr(abstract_state, n) for n in fields if n not in missing}

  def rebuild(restored: dict):
    return dataclasses.replace(abstract_state, **restored, **{n: None for n in missing})

  return target, rebuild


def check_compatible(saved: dict, current: dict, where: str) -> None:
  """Raises CheckpointMismatchError naming every differing value."""
  diffs = []
  for key in _MUST_MATCH:
    s, c = (m.get(key, _META_DEFAULTS.get(key)) for m in (saved, current))
    if s is not None and c is not None and s != c:
      diffs.append(f'{key}: checkpoint has {s}, current config has {c}')
  saved_names = [d['names'] for d in saved.get('layout', {}).get('datasets', [])]
  cur_names = [d['names'] for d in current.get('layout', {}).get('datasets', [])]
  if saved_names and cur_names and saved_names != cur_names:
    diffs.append(f'labels: checkpoint has {saved_names}, current config has {cur_names}')
  if diffs:
    raise CheckpointMismatchError(f'checkpoint {where} does not match the current configuration:\n  '
                                  + '\n  '.join(diffs))


def path_names(path) -> tuple:
  """A jax tree path as plain names: dict keys, attribute names, sequence indices."""
  return tuple(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', None))) for k in path)


def abstract_like(state, sharding=None):
  """ShapeDtypeStructs (with a sharding) for restoring into ``state``'s structure."""
  def to_struct(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding if sharding is not None
                                else getattr(x, 'sharding', None))
  return jax.tree_util.tree_map(to_struct, state)
