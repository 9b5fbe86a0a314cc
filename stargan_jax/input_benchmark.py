"""Measures the input pipeline alone: images/s of ``input_pipeline.train_iterator``.

  python -m stargan_jax.input_benchmark --datasets=procedural --image_size=128 \
      --batch_size=16 --steps=200

Prints one JSON line per dataset. The built-in procedural dataset is prepared
on first use (8,000 training images, about a minute at 128 px), so this runs
with no download; any prepared dataset (``--datasets=celeba``, ``folder:NAME``,
...) works the same. The number covers reading the array_record files, PNG
decoding, the flip, batching and scaling to [-1, 1] in the background
threads: what the trainer waits for if the accelerator is faster.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import flags

from stargan_jax import cli
from stargan_jax import input_pipeline

FLAGS = cli.flag_values()
flags.DEFINE_list('datasets', ['procedural'], 'Registered dataset name(s), each measured alone.',
                  flag_values=FLAGS)
flags.DEFINE_string('data_dir', '~/tensorflow_datasets', 'TFDS data directory.',
                    flag_values=FLAGS)
flags.DEFINE_string('manual_dir', None, 'Files to prepare the dataset from, if not prepared.',
                    flag_values=FLAGS)
flags.DEFINE_integer('image_size', 128, 'Image size in pixels.', flag_values=FLAGS)
flags.DEFINE_integer('batch_size', 16, 'Global batch size (this host reads all of it).',
                     flag_values=FLAGS)
flags.DEFINE_integer('steps', 200, 'Batches timed.', flag_values=FLAGS)
flags.DEFINE_integer('warmup', 10, 'Batches read before timing (threads start, caches fill).',
                     flag_values=FLAGS)
flags.DEFINE_integer('num_threads', 4, 'Background reader threads.', flag_values=FLAGS)
flags.DEFINE_integer('prefetch', 4, 'Prefetch buffer, in elements per thread pool.',
                     flag_values=FLAGS)
flags.DEFINE_integer('seed', 0, 'Shuffle and flip seed.', flag_values=FLAGS)
flags.DEFINE_integer('cache_mb', input_pipeline.DEFAULT_CACHE_MB, 'As main --cache_mb: decode '
                     'the split into memory first when it fits (0: read the prepared files).',
                     flag_values=FLAGS)


def measure(dataset: input_pipeline.Dataset, batch_size: int, steps: int, warmup: int = 10,
            num_threads: int = 4, prefetch: int = 4, seed: int = 0,
            cache_mb: float = input_pipeline.DEFAULT_CACHE_MB) -> dict:
  """Times ``steps`` batches of the training iterator after ``warmup`` batches.

  ``setup_seconds``: making the iterator, which includes decoding the split
  into memory where ``cached`` (paid once per run).
  """
  t0 = time.perf_counter()
  it = input_pipeline.train_iterator(dataset, batch_size, seed, num_threads=num_threads,
                                     prefetch=prefetch, cache_mb=cache_mb)
  setup = time.perf_counter() - t0
  for _ in range(warmup):
    next(it)
  start = time.perf_counter()
  for _ in range(steps):
    batch = next(it)
  seconds = time.perf_counter() - start
  return {
      'dataset': dataset.name,
      'image_size': dataset.image_size,
      'batch_shape': list(batch['image'].shape),
      'batch_size': batch_size,
      'steps': steps,
      'num_threads': num_threads,
      'cached': input_pipeline.fits_in_cache(dataset, cache_mb),
      'setup_seconds': round(setup, 3),
      'seconds': round(seconds, 3),
      'batches_per_s': round(steps / seconds, 2),
      'images_per_s': round(steps * batch_size / seconds, 1),
      'cpu_count': os.cpu_count(),
      'load_average_1min': round(os.getloadavg()[0], 2),
  }


@cli.command(FLAGS, 'python -m stargan_jax.input_benchmark')
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.require(bool(FLAGS.datasets), '--datasets must name at least one dataset')
  cli.require(FLAGS.cache_mb >= 0, f'--cache_mb must be 0 or more, got {FLAGS.cache_mb}')
  for name in ('batch_size', 'steps', 'num_threads', 'prefetch'):
    cli.require(FLAGS[name].value > 0, f'--{name} must be positive, got {FLAGS[name].value}')
  cli.require(FLAGS.warmup >= 0, f'--warmup must be 0 or more, got {FLAGS.warmup}')
  cli.quiet_libraries()
  for name in FLAGS.datasets:
    dataset = input_pipeline.open_dataset(name, os.path.expanduser(FLAGS.data_dir),
                                          FLAGS.image_size, manual_dir=FLAGS.manual_dir)
    print(json.dumps(measure(dataset, FLAGS.batch_size, FLAGS.steps, FLAGS.warmup,
                             FLAGS.num_threads, FLAGS.prefetch, FLAGS.seed,
                             FLAGS.cache_mb)), flush=True)


if __name__ == '__main__':
  sys.exit(main())
