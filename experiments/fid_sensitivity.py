"""How far FID moves when REAL images lose a little sharpness or grain.

``python -m experiments.fid_sensitivity --datasets=celeba --image_size=64 --data_dir=DIR --count=1000``

A translation's FID is read against the floor of real test images against real
training images. This script asks what a generator's usual shortfalls cost
on their own: the first ``--count`` real test images, each degraded in one
way, against the first ``--count`` real training images, next to the floor
(the undegraded test images) at the same count:

* ``blur_0.5`` / ``blur_0.8``: a Gaussian blur of 0.5 / 0.8 px (PIL);
* ``median_3``: a 3 x 3 median filter, which removes sensor noise and JPEG
  grain while keeping edges;
* ``noise_4``: added Gaussian noise, 4 grey levels standard deviation;
* ``levels_16``: every channel quantised to 16 levels (flat colour).

Prints one markdown row per degradation (FID and its ratio to the floor) and
writes the JSON to ``--out`` if given. Real images only: no run needed.

``--workdir=RUN`` also asks the converse of a run of ``stargan_jax.main``: its
translations of the same test images (each into one target, as
``experiments.realism_check``; G's EMA where kept), and the same translations
changed only where G painted (a pixel whose channels moved by more than 8 grey
levels from the source, grown by one pixel to its four neighbours), to see what
the FID gap is made of:

* ``noise_1`` / ``noise_2`` where painted: the set's grain (sensor noise of
  1 / 2 grey levels) put back on G's smooth paint;
* ``source_highpass`` where painted: the source photo's own fine detail (it
  minus its 1 px Gaussian blur) added back;
* ``source_unpainted``: every unpainted pixel exactly the source's;
* ``blur_0.5``: the whole translation blurred as the real images above.
"""

from __future__ import annotations

import json

import numpy as np
from absl import flags
from PIL import Image, ImageFilter

from experiments import common
from stargan_jax import cli
from stargan_jax.evaluation import fid

FLAGS = cli.flag_values()
flags.DEFINE_list('datasets', ['faces'], 'The prepared dataset (one).', flag_values=FLAGS)
flags.DEFINE_integer('image_size', 32, 'Image size of the prepared dataset.', flag_values=FLAGS)
flags.DEFINE_string('data_dir', '~/tensorflow_datasets', 'TFDS data directory.',
                    flag_values=FLAGS)
flags.DEFINE_integer('count', 1000, 'Real test images (degraded) and real training images.',
                     flag_values=FLAGS)
flags.DEFINE_integer('batch_size', 50, 'Feature extractor batch size.', flag_values=FLAGS)
flags.DEFINE_string('inception_weights', None, 'As evaluate --inception_weights.',
                    flag_values=FLAGS)
flags.DEFINE_string('out', None, 'Also write the JSON to this file.', flag_values=FLAGS)
flags.DEFINE_string('workdir', None, "Also score this run's translations and copies of them "
                    'changed only where G painted.', flag_values=FLAGS)


def _u8(x: np.ndarray) -> np.ndarray:
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _pil(images: np.ndarray, image_filter) -> np.ndarray:
  return np.stack([np.asarray(Image.fromarray(im).filter(image_filter)) for im in images])


DEGRADATIONS = {
    'blur_0.5': lambda x, rng: _pil(x, ImageFilter.GaussianBlur(0.5)),
    'blur_0.8': lambda x, rng: _pil(x, ImageFilter.GaussianBlur(0.8)),
    'median_3': lambda x, rng: _pil(x, ImageFilter.MedianFilter(3)),
    'noise_4': lambda x, rng: _u8(x + rng.normal(0.0, 4.0, x.shape)),
    'levels_16': lambda x, rng: (x // 16 * 16 + 8).astype(np.uint8),
}


def painted(source: np.ndarray, fake: np.ndarray, threshold: float = 8.0) -> np.ndarray:
  """N x H x W x 1 float: 1 where a channel moved by more than ``threshold`` grey levels
  from the source, grown by one pixel to its four neighbours, else 0."""
  moved = np.abs(fake.astype(np.float32) - source.astype(np.float32)).max(-1) > threshold
  grown = moved.copy()
  grown[:, 1:] |= moved[:, :-1]
  grown[:, :-1] |= moved[:, 1:]
  grown[:, :, 1:] |= moved[:, :, :-1]
  grown[:, :, :-1] |= moved[:, :, 1:]
  return grown[..., None].astype(np.float32)


def repairs(source: np.ndarray, fake: np.ndarray, rng,
            m: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """The translations changed in one way each (the module docstring's list); ``m``:
  ``painted(source, fake)`` where the caller has it."""
  m = painted(source, fake) if m is None else m
  f, x = fake.astype(np.float32), source.astype(np.float32)
  detail = x - _pil(source, ImageFilter.GaussianBlur(1.0)).astype(np.float32)
  return {
      'noise_1': _u8(f + m * rng.normal(0.0, 1.0, f.shape)),
      'noise_2': _u8(f + m * rng.normal(0.0, 2.0, f.shape)),
      'source_highpass': _u8(f + m * detail),
      'source_unpainted': _u8(m * f + (1.0 - m) * x),
      'blur_0.5': DEGRADATIONS['blur_0.5'](fake, rng),
  }


REPAIRS = ('noise_1', 'noise_2', 'source_highpass', 'source_unpainted', 'blur_0.5')


def translations(source: np.ndarray, fake: np.ndarray, f_test: np.ndarray,
                 f_train: np.ndarray, extractor, seed: int = 0) -> dict:
  """{'floor', 'translations', each repair: FID against the training features}, and
  'painted': the share of pixels G painted."""
  m = painted(source, fake)
  out = {'n': int(min(f_test.shape[0], f_train.shape[0], fake.shape[0])),
         'floor': fid.fid_from_features(f_test, f_train),
         'translations': fid.fid_from_features(extractor(fake), f_train),
         'painted': float(m.mean())}
  for name, images in repairs(source, fake, np.random.default_rng(seed), m).items():
    out[name] = fid.fid_from_features(extractor(images), f_train)
  return out


def sensitivity(test: np.ndarray, f_test: np.ndarray, f_train: np.ndarray, extractor,
                seed: int = 0) -> dict:
  """{'floor': FID(test, train), name: FID(degraded test, train) for each degradation}.

  ``test``: the real test images (uint8); ``f_test``, ``f_train``: the
  features of the real test and training images (evaluate's cached ones).
  """
  out = {'n': int(min(f_test.shape[0], f_train.shape[0])),
         'floor': fid.fid_from_features(f_test, f_train)}
  rng = np.random.default_rng(seed)
  for name, degrade in DEGRADATIONS.items():
    out[name] = fid.fid_from_features(extractor(degrade(test, rng)), f_train)
  return out


def rows(result: dict, what: str = 'real test images', names=tuple(DEGRADATIONS)) -> list[str]:
  lines = [f'| {what} ({result["n"]}) | FID | / floor |', '|---|---|---|',
           f'| real test images as they are (the floor) | {result["floor"]:.2f} | 1x |']
  for name in names:
    lines.append(f'| {name} | {result[name]:.2f} | {result[name] / result["floor"]:.1f}x |')
  return lines


@cli.command(FLAGS, 'python -m experiments.fid_sensitivity')
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  for name in ('count', 'batch_size'):
    cli.require(FLAGS[name].value > 1, f'--{name} must be at least 2, got {FLAGS[name].value}')
  cli.quiet_libraries()
  d, ex = common.open_real_set(FLAGS.datasets, FLAGS.data_dir, FLAGS.image_size,
                               FLAGS.inception_weights, FLAGS.batch_size)
  dataset = FLAGS.datasets[0]
  f_test, _ = fid.real_features(d, 'test', FLAGS.count, ex, FLAGS.batch_size)
  f_train, _ = fid.real_features(d, 'train', FLAGS.count, ex, FLAGS.batch_size)
  test = common.real_images(d, 'test', FLAGS.count, FLAGS.batch_size)
  result = sensitivity(test, f_test, f_train, ex)
  result.update(dataset=dataset, image_size=FLAGS.image_size)
  print('\n'.join(rows(result)))
  if FLAGS.workdir:
    from experiments import realism_check
    from stargan_jax import inference
    loaded = inference.load_model(FLAGS.workdir)
    trained_on = [spec.name for spec in loaded.layout.specs]
    cli.require(trained_on == [dataset] and loaded.image_size == FLAGS.image_size,
                f'--workdir={FLAGS.workdir}: the run was trained on {",".join(trained_on)} at '
                f'{loaded.image_size} px, not on --datasets={dataset} at --image_size='
                f'{FLAGS.image_size}')
    fake = realism_check.one_target_translations(loaded, d, FLAGS.count, FLAGS.batch_size)
    run = translations(test[:fake.shape[0]], fake, f_test, f_train, ex)
    run.update(workdir=FLAGS.workdir, step=loaded.step, weights=loaded.generator_weights)
    result['run'] = run
    print(f"\n{FLAGS.workdir} (step {loaded.step}, {loaded.generator_weights} weights): "
          f"G painted {100 * run['painted']:.1f}% of the pixels")
    print('\n'.join(rows(run, 'translations', ('translations', *REPAIRS))))
  if FLAGS.out:
    with open(FLAGS.out, 'w') as f:
      json.dump(result, f, indent=2)
  return 0


if __name__ == '__main__':
  main()
