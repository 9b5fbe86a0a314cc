"""Importing the reference's PyTorch checkpoints: parity of G and D with a PyTorch forward.

The PyTorch networks (``experiments/torch_reference.py``) are the reference's
``model.py`` (yunjey/stargan), layer for layer, so their
state-dict keys are the released checkpoints' (``main.0.weight``, ...).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
from torch import nn

from experiments.torch_reference import TorchDiscriminator, TorchGenerator
from stargan_jax import checkpoint as ckpt_lib
from stargan_jax import import_torch
from stargan_jax import inference
from stargan_jax import models
from stargan_jax import steps
from stargan_jax import train

torch.set_num_threads(2)


def _randomise(module, seed):
  """Random weights on the scale that keeps activations O(1).

  PyTorch's default init shrinks D's activations by about 3x per layer (D's
  outputs would be ~1e-3, making a 1e-4 tolerance meaningless), so convs get
  He-normal weights and D's biases random values; IN scale/shift (1/0 at
  init) get random values too, so the test sees them.
  """
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        fan = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight[:, 0].numel()
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan) ** 0.5)
        if m.bias is not None:
          m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
      elif isinstance(m, nn.InstanceNorm2d):
        m.weight.copy_(1.0 + 0.5 * torch.randn(m.weight.shape, generator=gen))
        m.bias.copy_(0.5 * torch.randn(m.bias.shape, generator=gen))
  return module


def _save_reference(directory, *, g_dim, cls_dim, image_size=128, conv_dim=64, g_repeat=6,
                    d_repeat=6, iteration=200000, seed=0):
  torch.manual_seed(seed)
  G = _randomise(TorchGenerator(conv_dim, g_dim, g_repeat), seed)
  D = _randomise(TorchDiscriminator(image_size, conv_dim, cls_dim, d_repeat), seed + 1)
  G.train(), D.train()  # the reference never switches to eval mode
  # One forward in train mode, as in training: the IN running buffers then
  # hold non-initial values, which the import must ignore.
  with torch.no_grad():
    G(torch.randn(1, 3, image_size, image_size), torch.ones(1, g_dim))
  g_path, d_path = directory / f'{iteration}-G.ckpt', directory / f'{iteration}-D.ckpt'
  torch.save(G.state_dict(), g_path)
  torch.save(D.state_dict(), d_path)
  return G, D, str(g_path), str(d_path)


# conv_dim 16 keeps the two 128 px parity tests at a few seconds on 2 cores
# (conv_dim 64 takes ~50 s, most of it writing a 1 GB TrainState); the
# full-size key/shape map is checked separately, without weights.
PARITY_CONV_DIM = 16


def _parity(tmp_path, datasets, g_dim, cls_dim, conv_dim=PARITY_CONV_DIM, image_size=128):
  G, D, g_path, d_path = _save_reference(tmp_path, g_dim=g_dim, cls_dim=cls_dim,
                                         image_size=image_size, conv_dim=conv_dim)
  directory, step, state, meta = import_torch.import_checkpoints(
      g_path, str(tmp_path / 'out'), d_ckpt=d_path, datasets=datasets, image_size=image_size,
      g_conv_dim=conv_dim, d_conv_dim=conv_dim)
  assert step == 200000 and int(state.step) == 200000
  assert meta['g_dim'] == g_dim and meta['cls_dim'] == cls_dim
  assert meta['imported']['d_params'] == 'imported'

  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 3, image_size, image_size)).astype(np.float32)
  c = rng.integers(0, 2, (2, g_dim)).astype(np.float32)
  with torch.no_grad():
    g_ref = G(torch.from_numpy(x), torch.from_numpy(c)).numpy().transpose(0, 2, 3, 1)
    src_ref, cls_ref = (t.numpy() for t in D(torch.from_numpy(x)))
  src_ref = src_ref.transpose(0, 2, 3, 1)
  x_nhwc = x.transpose(0, 2, 3, 1)
  # jitted: cheaper on CPU than op-by-op dispatch
  g_apply = jax.jit(models.Generator(conv_dim, g_dim, 6).apply)
  g_ours = np.asarray(g_apply(state.g_params, x_nhwc, c))
  src_ours, cls_ours = (np.asarray(t) for t in jax.jit(models.Discriminator(
      image_size, conv_dim, cls_dim, 6).apply)(state.d_params, x_nhwc))
  diffs = {'G': np.max(np.abs(g_ours - g_ref)), 'D src': np.max(np.abs(src_ours - src_ref)),
           'D cls': np.max(np.abs(cls_ours - cls_ref))}
  print(f'\n{"+".join(datasets)} (G label {g_dim}, D cls {cls_dim}), conv_dim {conv_dim}, '
        f'{image_size} px, max abs diff: ' + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items())
        + f' (output std: G {g_ref.std():.3f}, D src {src_ref.std():.3f}, '
          f'D cls {cls_ref.std():.3f})')
  assert all(v < 1e-4 for v in diffs.values()), diffs
  # Outputs of order 1, so the 1e-4 tolerance is a real test.
  assert g_ref.std() > 0.1 and src_ref.std() > 0.1 and cls_ref.std() > 0.1
  return directory, state, meta, x_nhwc, c, g_apply, g_ours


def test_parity_celeba_c5_128px(tmp_path):
  directory, state, meta, x, c, g_apply, g_ours = _parity(tmp_path, ['celeba'], 5, 5)
  assert [d['names'] for d in meta['layout']['datasets']] == [list(import_torch.CELEBA_ATTRS)]
  assert meta['layout']['datasets'][0]['exclusive'] == ['Black_Hair', 'Blond_Hair', 'Brown_Hair']

  # Restore exactly as Trainer.restore does: abstract state of the same
  # config, replicated sharding, and the meta check against a fresh meta.
  cfg = import_torch.make_config(['celeba'], 128, (), PARITY_CONV_DIM, PARITY_CONV_DIM)
  layout = import_torch.label_layout(['celeba'])
  model = steps.StarGAN.from_config(cfg, layout)
  mesh = train.make_mesh()
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  abstract = jax.tree_util.tree_map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
      jax.eval_shape(model.init, jax.random.key(0)))
  checkpointer = ckpt_lib.Checkpointer(directory, create=False)
  restored, saved_meta, data_state = checkpointer.restore(
      abstract, ckpt_lib.build_meta(cfg, layout))
  checkpointer.close()
  assert data_state is None and int(restored.step) == 200000
  assert saved_meta['imported']['optimizer_states'].startswith('fresh Adam')
  np.testing.assert_array_equal(np.asarray(g_apply(restored.g_params, x, c)), g_ours)
  for a, b in zip(jax.tree_util.tree_leaves(restored.d_params),
                  jax.tree_util.tree_leaves(state.d_params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Fresh Adam: zero moments and bias-correction count; the lr schedule's
  # count is where a run of this config would be after 200000 iterations.
  adam, schedule = restored.d_opt_state
  assert int(adam.count) == 0 and int(schedule.count) == 200000
  assert all(not np.any(np.asarray(m)) for m in jax.tree_util.tree_leaves((adam.mu, adam.nu)))
  assert int(restored.g_opt_state[1].count) == 200000 // 5


def test_parity_joint_celeba_rafd_128px(tmp_path):
  _, state, meta, *_ = _parity(tmp_path, ['celeba', 'rafd'], 15, 13)
  specs = meta['layout']['datasets']
  assert [s['dataset'] for s in specs] == ['celeba', 'rafd']
  assert specs[1]['kind'] == 'categorical' and specs[1]['names'] == list(import_torch.RAFD_CLASSES)
  # two D updates per iteration in a joint run
  assert int(state.d_opt_state[1].count) == 2 * 200000


@pytest.mark.parametrize('datasets,image_size,g_count,d_count', [
    (['celeba'], 128, 8_430_528, 44_762_048),
    (['rafd'], 128, 8_439_936, 44_786_624),
    (['celeba', 'rafd'], 128, 8_461_888, 44_827_584),
    (['celeba', 'rafd'], 256, 8_461_888, 45_147_072),
    (['celeba'], 256, 8_430_528, 44_884_928),
])
def test_full_size_key_and_shape_map(datasets, image_size, g_count, d_count):
  """The released checkpoints' keys and shapes (meta-device torch models, no weights)."""
  layout = import_torch.label_layout(datasets)
  with torch.device('meta'):
    G = TorchGenerator(64, layout.g_dim, 6)
    D = TorchDiscriminator(image_size, 64, layout.cls_dim, 6)
  g_shapes = {k: tuple(v.shape) for k, v in G.state_dict().items()}
  d_shapes = {k: tuple(v.shape) for k, v in D.state_dict().items()}
  # the released checkpoints' state-dict layout
  assert g_shapes['main.0.weight'] == (64, 3 + layout.g_dim, 7, 7)
  assert g_shapes['main.15.weight'] == (256, 128, 4, 4)  # IOHW
  assert g_shapes['main.18.weight'] == (128, 64, 4, 4)
  assert g_shapes['main.21.weight'] == (3, 64, 7, 7)
  assert 'main.14.main.4.running_var' in g_shapes
  assert d_shapes['conv1.weight'] == (1, 2048, 3, 3)
  assert d_shapes['conv2.weight'] == (layout.cls_dim, 2048, image_size // 64, image_size // 64)
  assert sum(math.prod(s) for k, s in d_shapes.items()) == d_count

  cfg = import_torch.make_config(datasets, image_size)
  model = steps.StarGAN.from_config(cfg, layout)
  abstract = jax.eval_shape(model.init, jax.random.key(0))
  g_hints, d_hints = import_torch.shape_hints(cfg, layout)
  g_map = import_torch.generator_key_map(model.G, image_size)
  d_map = import_torch.discriminator_key_map(model.D)
  import_torch.check_state_dict(g_shapes, g_map, abstract.g_params, 'G', g_hints)
  import_torch.check_state_dict(d_shapes, d_map, abstract.d_params, 'D', d_hints)
  # every parameter of the file is used (only the IN running buffers are not)
  assert {k for _, k, _ in g_map} == {k for k in g_shapes if not k.endswith(
      ('running_mean', 'running_var', 'num_batches_tracked'))}
  assert {k for _, k, _ in d_map} == set(d_shapes)
  assert dict((k, p) for p, k, _ in d_map)['conv1.weight'][-2] == 'conv_src'
  assert models.count_params(abstract.g_params) == g_count
  assert models.count_params(abstract.d_params) == d_count


def _write(path, obj):
  torch.save(obj, path)
  return str(path)


def test_bad_state_dicts_name_the_key_shapes_and_file(tmp_path):
  # A G trained with 7 labels imported as the 5-attribute CelebA model.
  G, D, g_path, d_path = _save_reference(tmp_path, g_dim=7, cls_dim=7, image_size=32,
                                         conv_dim=8, d_repeat=5, iteration=10)
  kwargs = dict(image_size=32, g_conv_dim=8, d_conv_dim=8, d_repeat_num=5)
  with pytest.raises(import_torch.StateDictError) as e:
    import_torch.import_checkpoints(g_path, str(tmp_path / 'a'), **kwargs)
  msg = str(e.value)
  print('\n' + msg)
  assert g_path in msg and "'main.0.weight'" in msg
  assert '(8, 10, 7, 7)' in msg and 'expected (8, 8, 7, 7)' in msg
  assert "the file's G takes c = 7 labels; celeba 5 give c = 5" in msg
  assert not os.path.exists(tmp_path / 'a')  # nothing written

  # conv_dim 16 expected, the file has 8.
  with pytest.raises(import_torch.StateDictError, match=r"10-G\.ckpt: key 'main\.0\.weight' has "
                     r"shape \(8, 10, 7, 7\), expected \(16, 8, 7, 7\) \(the file's G has "
                     r"conv_dim 8: pass --g_conv_dim=8; the file's G takes c = 7 labels"):
    import_torch.import_checkpoints(g_path, str(tmp_path / 'a'), **dict(kwargs, g_conv_dim=16))

  # The right labels for G (7 attributes), but a D file with 5 classes.
  attrs = ['Red', 'Green', 'Blue', 'Frame', 'Dark', 'A', 'B']
  sd = D.state_dict()
  sd['conv2.weight'] = torch.zeros(5, 128, 1, 1)
  bad_d = _write(tmp_path / 'bad-D.ckpt', sd)
  with pytest.raises(import_torch.StateDictError,
                     match=r"bad-D\.ckpt: key 'conv2\.weight' has shape \(5, 128, 1, 1\), "
                           r"expected \(7, 128, 1, 1\) \(the file's D classifies 5 labels with "
                           r"a 1x1 kernel \(image size 32\); mine 7 give 7 labels"):
    import_torch.import_checkpoints(g_path, str(tmp_path / 'b'), d_ckpt=bad_d, datasets=['mine'],
                                    attrs=attrs, **kwargs)

  # A missing key, then an unexpected one (the D file given as G).
  sd = G.state_dict()
  del sd['main.9.main.3.weight']
  missing = _write(tmp_path / 'missing-G.ckpt', sd)
  with pytest.raises(import_torch.StateDictError,
                     match=r"missing-G\.ckpt: missing key 'main\.9\.main\.3\.weight' "
                           r"\(expected shape \(32, 32, 3, 3\)\)"):
    import_torch.import_checkpoints(missing, str(tmp_path / 'c'), datasets=['mine'], attrs=attrs,
                                    **kwargs)
  with pytest.raises(import_torch.StateDictError, match=r"10-D\.ckpt: key 'main\.0\.weight' has "
                                                        r"shape \(8, 3, 4, 4\), expected "
                                                        r"\(8, 10, 7, 7\)"):
    import_torch.import_checkpoints(d_path, str(tmp_path / 'd'), datasets=['mine'], attrs=attrs,
                                    **kwargs)
  sd = G.state_dict()
  sd['extra.weight'] = torch.zeros(3)
  extra = _write(tmp_path / 'extra-G.ckpt', sd)
  with pytest.raises(import_torch.StateDictError, match=r"extra-G\.ckpt: unexpected key "
                                                        r"'extra\.weight' with shape \(3,\)"):
    import_torch.import_checkpoints(extra, str(tmp_path / 'e'), datasets=['mine'], attrs=attrs,
                                    **kwargs)

  # Not a state dict at all.
  not_dict = _write(tmp_path / 'list.ckpt', [torch.zeros(2)])
  with pytest.raises(import_torch.StateDictError, match=r'list\.ckpt holds a list, not a state '
                                                        r'dict'):
    import_torch.load_state_dict(not_dict)
  text = tmp_path / 'notes.txt'
  text.write_text('not a checkpoint')
  with pytest.raises(import_torch.StateDictError, match=r'notes\.txt could not be loaded as a '
                                                        r'PyTorch state dict'):
    import_torch.load_state_dict(str(text))
  with pytest.raises(FileNotFoundError, match='nope-G.ckpt'):
    import_torch.load_state_dict(str(tmp_path / 'nope-G.ckpt'))
  # G and D from different iterations.
  other_d = _write(tmp_path / '20-D.ckpt', D.state_dict())
  with pytest.raises(ValueError, match='different iterations'):
    import_torch.import_checkpoints(g_path, str(tmp_path / 'f'), d_ckpt=other_d,
                                    datasets=['mine'], attrs=attrs, **kwargs)


def test_import_without_d_restores_in_trainer(tmp_path, monkeypatch, capsys):
  """An import without D, restored by the real Trainer (as --resume does) and --mode=test.

  D has one strided conv here: a fresh D is initialised with jax.random,
  whose compilation (about 1 s per parameter on this CPU) is most of the cost.
  """
  from stargan_jax import config as config_lib
  from stargan_jax.datasets import drawn, registry
  # A 24-image procedural dataset (the default one takes ~20 s to build).
  monkeypatch.setitem(registry._FACTORIES, 'procedural', lambda data_dir, image_size, **_: (
      drawn.procedural_builder(data_dir, kind='attributes', image_size=image_size,
                               num_train=16, num_test=8)))
  G, _, g_path, _ = _save_reference(tmp_path, g_dim=5, cls_dim=5, image_size=32, conv_dim=8,
                                    d_repeat=1, iteration=4)
  workdir = str(tmp_path / 'imported')
  messages = []
  directory, step, state, meta = import_torch.import_checkpoints(
      g_path, workdir, datasets=['procedural'], image_size=32, g_conv_dim=8, d_conv_dim=8,
      d_repeat_num=1, log=messages.append)
  assert step == 4 and meta['imported']['d_ckpt'] is None
  assert meta['imported']['d_params'].startswith('freshly initialised')
  assert len(messages) == 1 and 'no --d_ckpt' in messages[0]

  cfg = config_lib.default_config()
  cfg.data.datasets = ('procedural',)
  cfg.data.data_dir = str(tmp_path / 'tfds')
  cfg.data.image_size, cfg.data.batch_size, cfg.data.num_threads = 32, 2, 1
  cfg.model = config_lib.ModelConfig(g_conv_dim=8, d_conv_dim=8, g_repeat_num=6, d_repeat_num=1)
  cfg.optim.g_ema_decay = 0.0  # imported checkpoints have no EMA
  cfg.run.num_samples, cfg.run.log_every = 2, 1
  trainer = train.Trainer(cfg, workdir)
  restored, _, _ = trainer.restore()
  # What the jitted steps of --resume take: the same tree, shapes and dtypes
  # as a new run's state. (Running train(resume=True) here compiles both
  # steps, ~40 s on a loaded 2-core machine; it was run by hand instead.)
  abstract = trainer.abstract_state()
  assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(abstract)
  assert all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(
      jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(abstract)))
  # A fresh D has PyTorch's default init: uniform in +-1/sqrt(fan_in).
  kernel = np.asarray(restored.d_params['params']['Conv_0']['kernel'])
  bound = 1 / np.sqrt(4 * 4 * 3)
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
  x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  c = np.eye(5, dtype=np.float32)[:2]
  with torch.no_grad():
    ref = G(torch.from_numpy(x.transpose(0, 3, 1, 2)), torch.from_numpy(c)).numpy()
  ours = np.asarray(trainer.translate_fn(restored.g_params, x, c))
  np.testing.assert_array_equal(ours, np.asarray(trainer.translate_fn(state.g_params, x, c)))
  # The reference has no EMA of G: an imported checkpoint translates with G itself.
  assert restored.g_ema_params is None
  loaded = inference.load_model(workdir)
  assert loaded.g_ema_params is None and loaded.generator_weights == 'raw'
  assert loaded.generator_params is loaded.g_params
  diff = np.max(np.abs(ours - ref.transpose(0, 2, 3, 1)))
  print(f'\nrestored through Trainer: G max abs diff to PyTorch {diff:.2e}')
  assert diff < 1e-4
  trainer.checkpointer.close()
  # --mode=test, on the dataset the trainer prepared
  written = inference.write_test_grids(loaded, data_dir=cfg.data.data_dir, limit=1)
  assert len(written) == 1 and os.path.getsize(written[0]) > 0
  assert 'Wrote 1 grids from step 4' in capsys.readouterr().out


def _one_error_line(err):
  lines = [ln for ln in err.strip().splitlines() if ln.strip()]
  assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in err, err
  return lines[0]


def test_command_line(tmp_path, capsys):
  _, _, g_path, d_path = _save_reference(tmp_path, g_dim=15, cls_dim=13, image_size=32,
                                         conv_dim=8, d_repeat=5, iteration=7)
  out_dir = tmp_path / 'out'
  argv = [f'--g_ckpt={g_path}', f'--d_ckpt={d_path}', f'--workdir={out_dir}', '--image_size=32',
          '--datasets=celeba,rafd', '--g_conv_dim=8', '--d_conv_dim=8', '--d_repeat_num=5']
  assert import_torch.main(argv) == 0
  out = capsys.readouterr().out
  assert 'as step 7' in out and 'G label 15, D classifier 13' in out
  # The checkpoint's meta holds the labels and sizes: the follow-up needs no model flag.
  assert out.splitlines()[-1] == (
      f'Test grids: python -m stargan_jax.main --mode=test --workdir={out_dir}')
  assert os.path.isdir(os.path.join(out_dir, 'checkpoints', '7'))
  assert import_torch.main(argv) == 2
  assert 'already holds checkpoints' in _one_error_line(capsys.readouterr().err)
  assert import_torch.main(['--dataset=celeba', f'--g_ckpt={g_path}']) == 2  # an alias
  assert import_torch.FLAGS.datasets == ['celeba']
  assert _one_error_line(capsys.readouterr().err) == 'error: --workdir is required'


def test_importing_stargan_jax_does_not_import_torch():
  code = ('import sys; import stargan_jax.import_torch, stargan_jax.train; '
          'assert "torch" not in sys.modules, "torch imported"')
  subprocess.run([sys.executable, '-c', code], check=True)
