"""Imports the reference's PyTorch StarGAN checkpoints into an Orbax checkpoint.

The authors' code (yunjey/stargan) saves ``{iter}-G.ckpt`` and ``{iter}-D.ckpt``,
plain ``state_dict``s of its ``model.py`` (``experiments/torch_reference.py`` is
the same networks, key for key). This module turns
them into a checkpoint directory that ``python -m stargan_jax.main --mode=test``,
the evaluators and ``--resume`` accept::

  python -m stargan_jax.import_torch --g_ckpt=stargan_celeba_128/models/200000-G.ckpt \
      --d_ckpt=stargan_celeba_128/models/200000-D.ckpt --workdir=runs/celeba_128_imported \
      --image_size=128 --datasets=celeba --attrs=Black_Hair,Blond_Hair,Brown_Hair,Male,Young

  # the joint CelebA+RaFD model (G label 5 + 8 + 2 = 15, D classifier 13)
  python -m stargan_jax.import_torch --g_ckpt=200000-G.ckpt --d_ckpt=200000-D.ckpt \
      --workdir=runs/joint_imported --datasets=celeba,rafd

Layout conversion (every tensor is checked against the shape our model
expects before anything is written):

* conv kernels OIHW -> HWIO;
* transposed-conv kernels IOHW -> our transposed conv's kernel, which has the
  layout of ``nn.ConvTranspose(transpose_kernel=True, padding=2)``'s:
  (kh, kw, out, in). With ``transpose_kernel=True`` the spatial flip and the
  swap of the channel axes are part of the operation, exactly as in PyTorch's
  transposed conv (the gradient of a conv), so the tensor needs only the same
  axis permutation as a conv kernel and no explicit flip; the parity test in
  ``tests/test_import_torch.py`` is what pins this down;
* instance-norm ``weight``/``bias`` -> ``scale``/``bias``; the running
  statistics buffers are ignored (the reference never runs in eval mode);
* D's ``conv1`` (source head) -> ``conv_src``, ``conv2`` (class head) -> ``conv_cls``.

The reference's parametrised modules are paired with ours in the order our
model calls them (recorded while tracing), so no module name of ours is
hard-coded and a renamed module in ``stargan_jax/models`` needs no change here.
Half-precision files are converted to float32.

torch is an optional extra (``pip install .[torch]``) and is imported only
when a file is loaded, always with ``weights_only=True``.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Mapping, Sequence

import jax
import numpy as np
import optax
from absl import flags
from flax import linen as nn

from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import cli
from stargan_jax import config as config_lib
from stargan_jax import labels as labels_lib
from stargan_jax import models
from stargan_jax import procedural
from stargan_jax import steps

# The reference's default CelebA attributes and RaFD's 8 expressions (sorted
# folder order, as the reference's ImageFolder sees them).
CELEBA_ATTRS = ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male', 'Young')
RAFD_CLASSES = ('angry', 'contemptuous', 'disgusted', 'fearful', 'happy', 'neutral', 'sad',
                'surprised')

# Instance-norm buffers PyTorch stores with track_running_stats=True; unused.
_IGNORED_SUFFIXES = ('.running_mean', '.running_var', '.num_batches_tracked')

CONV, VECTOR = 'conv', 'vector'


class StateDictError(cli.UserError, ValueError):
  """A file is not a reference state dict of the expected keys and shapes."""


class ImportSettingsError(cli.UserError, ValueError):
  """Settings that cannot describe the model (datasets, attributes, step)."""


class TorchFileNotFoundError(cli.UserError, FileNotFoundError):
  """No file where --g_ckpt or --d_ckpt points."""


class OutputExistsError(cli.UserError, FileExistsError):
  """--out already holds checkpoints."""


class TorchMissingError(cli.UserError, ImportError):
  """torch, the optional extra that reads the files, is not installed."""


# -- key maps -----------------------------------------------------------------
# The reference's parametrised modules, in module order, are paired one to one
# with ours in the order our model calls them. Each entry of a key map is
# (path in our flax params, key in the PyTorch state dict, kind), in the
# reference's order, so the first problem reported is the first in the file.


def reference_generator_modules(repeat_num: int = 6) -> list[tuple[str, str]]:
  """(state-dict prefix, 'conv' | 'norm') of the reference G's ``nn.Sequential``."""
  mods = []
  # 0 conv7, 1 IN, 2 ReLU; 3 conv4, 4 IN, 5 ReLU; 6 conv4, 7 IN, 8 ReLU
  for i in range(3):
    mods += [(f'main.{3 * i}', 'conv'), (f'main.{3 * i + 1}', 'norm')]
  # 9 ... 9+r-1: residual blocks, each main.{0 conv, 1 IN, 2 ReLU, 3 conv, 4 IN}
  for b in range(repeat_num):
    block = f'main.{9 + b}.main'
    mods += [(f'{block}.0', 'conv'), (f'{block}.1', 'norm'), (f'{block}.3', 'conv'),
             (f'{block}.4', 'norm')]
  # then two (transposed conv, IN, ReLU), the final conv7 and Tanh
  base = 9 + repeat_num
  for i in range(2):
    mods += [(f'main.{base + 3 * i}', 'conv'), (f'main.{base + 3 * i + 1}', 'norm')]
  mods.append((f'main.{base + 6}', 'conv'))
  return mods


def reference_discriminator_modules(repeat_num: int = 6) -> list[tuple[str, str]]:
  """D: ``main.{2i}`` strided convs (with bias), ``conv1`` src head, ``conv2`` cls head."""
  return [(f'main.{2 * i}', 'conv') for i in range(repeat_num)] + [('conv1', 'conv'),
                                                                   ('conv2', 'conv')]


def called_modules(model, image_size: int) -> list[tuple[tuple[str, ...], dict]]:
  """(path, its own params) of every module of ``model`` that holds parameters, in call order."""
  order = []

  def record(next_fun, args, kwargs, context):
    path = tuple(context.module.path)
    if context.method_name == '__call__' and path not in order:
      order.append(path)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    params = jax.eval_shape(lambda k: models.init_params(model, k, image_size),
                            jax.random.key(0))['params']
  out = []
  for path in order:
    node = params
    for k in path:
      node = node[k]
    own = {k: v for k, v in node.items() if not isinstance(v, Mapping)}
    if own:
      out.append((path, own))
  return out


def _key_map(reference_modules, ours) -> list[tuple[tuple[str, ...], str, str]]:
  if len(reference_modules) != len(ours):
    raise AssertionError(f'the reference has {len(reference_modules)} parametrised modules, our '
                         f'model {len(ours)}: {[p for p, _ in ours]}')
  entries = []
  for (prefix, kind), (path, params) in zip(reference_modules, ours):
    names = set(params)
    if kind == 'norm' and names == {'scale', 'bias'}:
      entries += [(('params',) + path + ('scale',), f'{prefix}.weight', VECTOR),
                  (('params',) + path + ('bias',), f'{prefix}.bias', VECTOR)]
    elif kind == 'conv' and names <= {'kernel', 'bias'} and params['kernel'].ndim == 4:
      entries.append((('params',) + path + ('kernel',), f'{prefix}.weight', CONV))
      if 'bias' in names:
        entries.append((('params',) + path + ('bias',), f'{prefix}.bias', VECTOR))
    else:  # a change in models/stargan.py that this importer does not know about
      raise AssertionError(f'reference module {prefix} ({kind}) paired with our {path} holding '
                           f'{sorted(names)}')
  return entries


def generator_key_map(G: models.Generator, image_size: int = 128):
  """[(our param path, state-dict key, kind)] for G, in the reference's module order."""
  return _key_map(reference_generator_modules(G.repeat_num), called_modules(G, image_size))


def discriminator_key_map(D: models.Discriminator):
  return _key_map(reference_discriminator_modules(D.repeat_num),
                  called_modules(D, D.image_size))


def _torch_shape(flax_shape, kind):
  """The PyTorch shape of a tensor whose flax shape is ``flax_shape``."""
  if kind == CONV:
    # HWIO -> OIHW for a conv; for ConvTranspose(transpose_kernel=True) the
    # flax kernel is (kh, kw, out, in) and PyTorch's is IOHW = (in, out, kh, kw):
    # the same permutation.
    h, w, i, o = flax_shape
    return (o, i, h, w)
  return tuple(flax_shape)


def _to_flax(array: np.ndarray, kind: str) -> np.ndarray:
  if kind == CONV:
    return np.ascontiguousarray(np.transpose(array, (2, 3, 1, 0)))
  return array


# -- loading and conversion -----------------------------------------------------


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Loads a PyTorch state dict (``weights_only=True``) as float32 numpy arrays."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise TorchMissingError('importing PyTorch checkpoints needs torch: pip install '
                            '"stargan-jax[torch]" (or pip install torch)') from e
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise TorchFileNotFoundError(f'no PyTorch checkpoint file at {path}')
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises several types for non-checkpoint files
    raise StateDictError(f'{path} could not be loaded as a PyTorch state dict '
                         f'(torch.load(weights_only=True) failed: {type(e).__name__}: {e})') from e
  if not isinstance(obj, Mapping):
    raise StateDictError(f'{path} holds a {type(obj).__name__}, not a state dict '
                         f'(a mapping of parameter names to tensors)')
  out = {}
  for key, value in obj.items():
    if not isinstance(value, torch.Tensor):
      raise StateDictError(f'{path} is not a state dict of tensors: key {key!r} holds a '
                           f'{type(value).__name__} (top-level keys: {list(obj)[:10]})')
    out[str(key)] = value.detach().cpu().float().numpy() if value.is_floating_point() \
        else value.detach().cpu().numpy()
  # nn.DataParallel wraps every key in 'module.'; the reference does not, but
  # users' own runs sometimes do.
  if out and all(k.startswith('module.') for k in out):
    out = {k[len('module.'):]: v for k, v in out.items()}
  return out


def check_state_dict(shapes: Mapping[str, Sequence[int]], key_map, abstract_params, source: str,
                     hints: Mapping[str, Any] | None = None) -> None:
  """Checks a state dict's keys and shapes (given as key -> shape) against our model.

  Raises ``StateDictError`` naming ``source``, the first missing or
  mismatched key (in the reference's module order) and both shapes, or the
  first key that our model has no place for.
  """
  hints = hints or {}
  expected = dict(_flatten(abstract_params))
  mapped = {path for path, _, _ in key_map}
  if mapped != set(expected):  # a bug in the key map, not in the file
    raise AssertionError(f'key map and model disagree: {sorted(mapped ^ set(expected), key=str)}')
  for path, key, kind in key_map:
    want = _torch_shape(expected[path].shape, kind)
    if key not in shapes:
      raise StateDictError(f'{source}: missing key {key!r} (expected shape {want}); '
                           f'the file has keys {_preview(shapes)}')
    got = tuple(shapes[key])
    if got != want:
      hint = hints[key](got, want) if key in hints and len(got) == len(want) else None
      raise StateDictError(f'{source}: key {key!r} has shape {got}, expected {want}'
                           + (f' ({hint})' if hint else ''))
  known = {key for _, key, _ in key_map}
  for key in shapes:
    if key not in known and not key.endswith(_IGNORED_SUFFIXES):
      raise StateDictError(f'{source}: unexpected key {key!r} with shape {tuple(shapes[key])}; '
                           f'is this the right file (G vs D) and the right '
                           f'--g_repeat_num/--d_repeat_num?')


def convert(state_dict: Mapping[str, np.ndarray], key_map, abstract_params, source: str,
            hints: Mapping[str, Any] | None = None) -> dict:
  """PyTorch arrays -> a flax param tree (numpy) shaped like ``abstract_params``."""
  check_state_dict({k: np.shape(v) for k, v in state_dict.items()}, key_map, abstract_params,
                   source, hints)
  return _unflatten({path: _to_flax(np.asarray(state_dict[key], np.float32), kind)
                     for path, key, kind in key_map})


def _flatten(tree, prefix=()):
  if isinstance(tree, Mapping):
    for k, v in tree.items():
      yield from _flatten(v, prefix + (k,))
  else:
    yield prefix, tree


def _unflatten(flat: dict) -> dict:
  out: dict = {}
  for path, value in flat.items():
    node = out
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = value
  return out


def _preview(state_dict, n=6) -> str:
  keys = list(state_dict)
  return str(keys[:n])[:-1] + (f', ... ({len(keys)} keys)]' if len(keys) > n else ']')


# -- the model description -------------------------------------------------------


def label_layout(datasets: Sequence[str], attrs: Sequence[str] | None = None,
                 rafd_classes: Sequence[str] = RAFD_CLASSES) -> labels_lib.LabelLayout:
  """The layout a run of the trainer on ``datasets`` would have.

  ``rafd`` and ``procedural_classes`` are categorical (one-hot classes); every
  other dataset is an attribute dataset labelled by ``attrs`` (default: the
  reference's five CelebA attributes, or the procedural dataset's five).
  """
  if not datasets:
    raise ImportSettingsError('--datasets must name at least one dataset')
  specs = []
  for name in datasets:
    if name == 'rafd':
      specs.append(labels_lib.DomainSpec(name, tuple(rafd_classes), labels_lib.CATEGORICAL))
    elif name == 'procedural_classes':
      specs.append(labels_lib.DomainSpec(name, procedural.CLASS_NAMES, labels_lib.CATEGORICAL))
    else:
      names = tuple(attrs) if attrs else _default_attrs(name)
      specs.append(labels_lib.DomainSpec(name, names, labels_lib.ATTRIBUTES,
                                         labels_lib.exclusive_group(names)))
  return labels_lib.LabelLayout(tuple(specs))


def _default_attrs(name: str) -> tuple[str, ...]:
  if name == 'celeba':
    return CELEBA_ATTRS
  if name == 'procedural':
    return procedural.ATTRIBUTE_NAMES
  raise ImportSettingsError(f'dataset {name!r}: give its attribute names with --attrs (in the '
                            f'order the PyTorch model was trained with)')


def make_config(datasets: Sequence[str], image_size: int = 128, attrs: Sequence[str] = (),
                g_conv_dim: int = 64, d_conv_dim: int = 64, g_repeat_num: int = 6,
                d_repeat_num: int = 6, seed: int = 0) -> config_lib.Config:
  """The paper config with the imported model's sizes (what ``--preset=paper`` gives)."""
  cfg = config_lib.paper_config(datasets[0])
  cfg.data.datasets = tuple(datasets)
  cfg.data.image_size = image_size
  cfg.data.attrs = tuple(attrs)
  cfg.model = config_lib.ModelConfig(g_conv_dim=g_conv_dim, d_conv_dim=d_conv_dim,
                                     g_repeat_num=g_repeat_num, d_repeat_num=d_repeat_num)
  cfg.run.seed = seed
  return cfg


def step_from_filename(path: str) -> int | None:
  """200000 for ``.../200000-G.ckpt`` (the reference's naming), else None."""
  m = re.fullmatch(r'(\d+)-[GD]\.ckpt', os.path.basename(path))
  return int(m.group(1)) if m else None


def _schedule_counts(opt_state, count: int):
  """Sets the lr schedule's update count, leaving Adam's own (bias-correction) count at 0.

  Our schedules are functions of the optimiser's update count, so a fresh
  optimiser would start the lr schedule over while ``state.step`` says
  ``step``. Setting only the schedule's count makes ``--resume`` continue the
  schedule where a run of this config would be, while Adam's moments and its
  bias correction start fresh, as the reference's own resume does.
  """
  def fix(s):
    if isinstance(s, optax.ScaleByScheduleState):
      return s._replace(count=np.asarray(count, np.asarray(s.count).dtype))
    return s
  return jax.tree_util.tree_map(fix, opt_state,
                                is_leaf=lambda s: isinstance(s, optax.ScaleByScheduleState))


def build_state(cfg: config_lib.Config, layout: labels_lib.LabelLayout, g_path: str,
                d_path: str | None = None, step: int = 0) -> tuple[steps.TrainState, dict]:
  """A ``TrainState`` from the PyTorch files, and a note of what was imported."""
  model = steps.StarGAN.from_config(cfg, layout)
  abstract = jax.eval_shape(model.init, jax.random.key(0))
  g_hints, d_hints = shape_hints(cfg, layout)
  g_params = convert(load_state_dict(g_path), generator_key_map(model.G, cfg.data.image_size),
                     abstract.g_params, g_path, g_hints)
  if d_path is not None:
    d_params = convert(load_state_dict(d_path), discriminator_key_map(model.D),
                       abstract.d_params, d_path, d_hints)
  else:
    # The model's own (PyTorch-default) initialisation. The key is 'rbg'
    # rather than the trainer's threefry: on CPU, XLA takes about a second to
    # compile each threefry draw (~15 s for D), rbg a small fraction of that.
    # The values therefore differ from a new run's D, which does not matter.
    d_key = jax.random.key(cfg.run.seed, impl='rbg')
    d_params = jax.jit(lambda k: models.init_params(model.D, k, cfg.data.image_size))(d_key)
  to_jax = lambda t: jax.tree_util.tree_map(jax.numpy.asarray, t)
  g_params, d_params = to_jax(g_params), to_jax(d_params)
  # The reference saves no optimiser state, so both Adam states start fresh
  # (zero moments, bias-correction count 0); only the lr schedule's count is
  # advanced to `step` (see _schedule_counts).
  n = layout.num_datasets  # the trainer does one D update per dataset per iteration
  g_opt_state = _schedule_counts(model.g_tx.init(g_params), (step // cfg.optim.n_critic) * n)
  d_opt_state = _schedule_counts(model.d_tx.init(d_params), step * n)
  state = steps.TrainState(jax.numpy.asarray(step, jax.numpy.int32), g_params, d_params,
                           to_jax(g_opt_state), to_jax(d_opt_state))
  imported = {
      'source': 'PyTorch state dicts of the reference implementation (yunjey/stargan)',
      'g_ckpt': os.path.abspath(os.path.expanduser(g_path)),
      'd_ckpt': os.path.abspath(os.path.expanduser(d_path)) if d_path else None,
      'd_params': 'imported' if d_path else 'freshly initialised (no --d_ckpt given)',
      'optimizer_states': 'fresh Adam (the reference saves none)',
      'step': step,
  }
  return state, imported


def shape_hints(cfg: config_lib.Config, layout: labels_lib.LabelLayout):
  """Explanations of size- and label-dependent shapes for the mismatch messages (G, D).

  Each maps a state-dict key to ``hint(file_shape, expected_shape) -> str | None``.
  """
  r = cfg.model.d_repeat_num
  k = cfg.data.image_size // 2**r

  def g_first(got, want):
    hints = []
    if got[0] != want[0]:
      hints.append(f"the file's G has conv_dim {got[0]}: pass --g_conv_dim={got[0]}")
    if got[1] != want[1]:
      hints.append(f"the file's G takes c = {got[1] - 3} labels; {_label_summary(layout)} give "
                   f'c = {layout.g_dim}: check --datasets, --attrs and --rafd_classes')
    return '; '.join(hints) or None

  def d_first(got, want):
    if got[0] != want[0]:
      return f"the file's D has conv_dim {got[0]}: pass --d_conv_dim={got[0]}"
    return None

  def d_cls(got, want):
    if got[1] != want[1]:
      return None  # a conv_dim or repeat_num mismatch, reported at an earlier key
    return (f"the file's D classifies {got[0]} labels with a {got[2]}x{got[3]} kernel "
            f'(image size {got[2] * 2**r}); {_label_summary(layout, mask=False)} give '
            f'{layout.cls_dim} labels and --image_size={cfg.data.image_size} a {k}x{k} kernel')

  return {'main.0.weight': g_first}, {'main.0.weight': d_first, 'conv2.weight': d_cls}


def _label_summary(layout: labels_lib.LabelLayout, mask: bool = True) -> str:
  parts = [f'{s.dataset} {s.c_dim}' for s in layout.specs]
  if mask and layout.mask_dim:
    parts.append(f'mask {layout.mask_dim}')
  return ' + '.join(parts)


def import_checkpoints(g_ckpt: str, out: str, *, d_ckpt: str | None = None,
                       datasets: Sequence[str] = ('celeba',), attrs: Sequence[str] | None = None,
                       rafd_classes: Sequence[str] = RAFD_CLASSES, image_size: int = 128,
                       g_conv_dim: int = 64, d_conv_dim: int = 64, g_repeat_num: int = 6,
                       d_repeat_num: int = 6, step: int | None = None, seed: int = 0,
                       log=print) -> tuple[str, int, steps.TrainState, dict]:
  """Converts the PyTorch files and writes ``out/checkpoints/<step>``.

  Returns (checkpoint directory, step, state, meta). The checkpoint has the
  meta a training run of the same config writes, plus ``meta['imported']``.
  """
  layout = label_layout(datasets, attrs, rafd_classes)
  # --attrs as the trainer gets it: () means each dataset's default selection.
  cfg = make_config(datasets, image_size, tuple(attrs or ()), g_conv_dim, d_conv_dim,
                    g_repeat_num, d_repeat_num, seed)
  if step is None:
    g_step = step_from_filename(g_ckpt)
    d_step = step_from_filename(d_ckpt) if d_ckpt else None
    if g_step is not None and d_step is not None and g_step != d_step:
      raise ImportSettingsError(
          f'--g_ckpt ({g_ckpt}, iteration {g_step}) and --d_ckpt ({d_ckpt}, iteration '
          f'{d_step}) come from different iterations; pass --step to import anyway')
    step = g_step if g_step is not None else d_step
    if step is None:
      log(f'note: no iteration in the file name {os.path.basename(g_ckpt)!r} (the reference '
          f'writes ITER-G.ckpt); saving as step 0 (pass --step to choose)')
      step = 0
  if step < 0:
    raise ImportSettingsError(f'--step must be >= 0, got {step}')
  directory = os.path.join(os.path.abspath(os.path.expanduser(out)), 'checkpoints')
  if os.path.isdir(directory):
    existing = ckpt_lib.Checkpointer(directory, create=False)
    existing_steps = existing.all_steps()
    existing.close()
    if existing_steps:
      raise OutputExistsError(f'{directory} already holds checkpoints (steps {existing_steps}); '
                            f'choose another --out')
  # Everything is read and checked before anything is written.
  state, imported = build_state(cfg, layout, g_ckpt, d_ckpt, step)
  meta = ckpt_lib.build_meta(cfg, layout)
  meta['imported'] = imported
  if d_ckpt is None:
    log('WARNING: no --d_ckpt given: D is freshly initialised. Translation and evaluation use '
        'only G; fine-tuning with --resume starts D from scratch.')
  checkpointer = ckpt_lib.Checkpointer(directory, keep=cfg.run.keep_checkpoints)
  checkpointer.save(step, state, meta, wait=True)
  checkpointer.close()
  return directory, step, state, meta


# -- command line ---------------------------------------------------------------


FLAGS = cli.flag_values()
flags.DEFINE_string('g_ckpt', None, "The reference's generator state dict, e.g. 200000-G.ckpt.",
                    flag_values=FLAGS)
flags.DEFINE_string('d_ckpt', None, 'Its discriminator state dict (optional: without it D is '
                    'freshly initialised).', flag_values=FLAGS)
flags.DEFINE_string('workdir', None, 'Run directory to create; the checkpoint goes to '
                    'WORKDIR/checkpoints/STEP.', flag_values=FLAGS)
flags.DEFINE_integer('step', None, 'Step to save as (default: the iteration in the file name, '
                     'e.g. 200000 for 200000-G.ckpt, else 0).', flag_values=FLAGS)
flags.DEFINE_list('datasets', ['celeba'], 'Dataset(s) the model was trained on; two or more for '
                  'the joint model with the mask vector, e.g. celeba,rafd.', flag_values=FLAGS)
flags.DEFINE_alias('dataset', 'datasets', flag_values=FLAGS)
flags.DEFINE_list('attrs', None, 'Attribute names, in the order the model was trained with '
                  f'(attribute datasets; default for celeba: {",".join(CELEBA_ATTRS)}).',
                  flag_values=FLAGS)
flags.DEFINE_list('rafd_classes', list(RAFD_CLASSES), 'RaFD expression classes in label order.',
                  flag_values=FLAGS)
flags.DEFINE_integer('image_size', 128, 'Image size the model was trained at (128 or 256).',
                     flag_values=FLAGS)
flags.DEFINE_integer('g_conv_dim', 64, "Channels of G's first conv.", flag_values=FLAGS)
flags.DEFINE_integer('d_conv_dim', 64, "Channels of D's first conv.", flag_values=FLAGS)
flags.DEFINE_integer('g_repeat_num', 6, 'Residual blocks in G.', flag_values=FLAGS)
flags.DEFINE_integer('d_repeat_num', 6, 'Strided convs in D.', flag_values=FLAGS)
flags.DEFINE_integer('seed', 0, 'Seed of a fresh D (when --d_ckpt is not given).',
                     flag_values=FLAGS)


@cli.command(FLAGS, 'python -m stargan_jax.import_torch')
def main(args):
  """Imports as the flags say; prints a summary and the command that writes the test grids."""
  cli.require(not args, f'unexpected arguments: {args}')
  for name in ('g_ckpt', 'workdir'):
    cli.require(bool(FLAGS[name].value), f'--{name} is required')
  cli.quiet_libraries()  # Orbax logs every save step at INFO
  directory, step, state, meta = import_checkpoints(
      FLAGS.g_ckpt, FLAGS.workdir, d_ckpt=FLAGS.d_ckpt, datasets=FLAGS.datasets, attrs=FLAGS.attrs,
      rafd_classes=FLAGS.rafd_classes, image_size=FLAGS.image_size, g_conv_dim=FLAGS.g_conv_dim,
      d_conv_dim=FLAGS.d_conv_dim, g_repeat_num=FLAGS.g_repeat_num,
      d_repeat_num=FLAGS.d_repeat_num, step=FLAGS.step, seed=FLAGS.seed,
      log=lambda msg: print(msg, file=sys.stderr, flush=True))
  layout = labels_lib.LabelLayout.from_dict(meta['layout'])
  print(f'Imported G ({models.count_params(state.g_params):,} parameters) and D '
        f'({models.count_params(state.d_params):,} parameters, '
        f'{meta["imported"]["d_params"]}) as step {step}: {directory}/{step}')
  print(f'Labels: {_label_summary(layout)} -> G label {layout.g_dim}, D classifier '
        f'{layout.cls_dim}; image size {FLAGS.image_size}')
  # The checkpoint's meta holds the model's sizes and labels: no other flag is needed.
  print(f'Test grids: python -m stargan_jax.main --mode=test --workdir={FLAGS.workdir}')


if __name__ == '__main__':
  sys.exit(main())
