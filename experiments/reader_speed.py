"""How long the pixel readers take to score a run, and a digest of what they said.

    python -m experiments.reader_speed --workdir=RUN [--repeats=2] [--limit=N]

Scores the run as its last step does (``pixels.translation_accuracy``: every
test image of every dataset translated into every column of the test grid,
own and cross-dataset, and read back) and prints one JSON line: the seconds
of each repeat, the number of translations, and a SHA-256 of the results. G
is compiled before the clock starts.

To compare two versions of the readers on one run, run this file as a script
with the other checkout's package first on the path (a script's own folder,
not the working directory, heads ``sys.path``, so ``stargan_jax`` comes from
``PYTHONPATH``), one after the other on an otherwise idle machine:

    PYTHONPATH=OLD_CHECKOUT python experiments/reader_speed.py --workdir=RUN
    PYTHONPATH=. python experiments/reader_speed.py --workdir=RUN

Equal digests mean the same verdicts to the last digit.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import numpy as np
from absl import flags

from stargan_jax import cli
from stargan_jax import inference
from stargan_jax.evaluation import pixels

FLAGS = cli.flag_values()
flags.DEFINE_string('workdir', None, 'Run directory to score (a built-in dataset\'s run).',
                    flag_values=FLAGS)
flags.DEFINE_integer('repeats', 1, 'Times to score the run.', flag_values=FLAGS)
flags.DEFINE_integer('limit', None, 'Only the first N test images of each dataset.',
                     flag_values=FLAGS)
flags.DEFINE_bool('use_ema', True, "G's EMA weights where the run kept them.", flag_values=FLAGS)


def measure(workdir: str, repeats: int = 1, limit: int | None = None,
            use_ema: bool = True) -> dict:
  loaded = inference.load_model(workdir, use_ema=use_ema)
  cli.require(pixels.readable(loaded.layout),
              f'--workdir={workdir}: pixel readers exist only for the built-in datasets '
              f'{", ".join(pixels.READABLE)}, not {[s.dataset for s in loaded.layout.specs]}')
  datasets = inference.open_datasets(loaded)
  size, batch = loaded.image_size, getattr(pixels, 'EVAL_BATCH', 100)  # older checkouts: 100
  loaded.translate_np(loaded.generator_params, np.zeros((batch, size, size, 3), np.float32),
                      np.zeros((batch, loaded.layout.g_dim), np.float32))
  seconds, acc = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    acc = pixels.translation_accuracy(loaded.translate_np, loaded.generator_params,
                                      loaded.layout, datasets, limit=limit)
    seconds.append(time.perf_counter() - start)
  text = json.dumps(acc, sort_keys=True)
  return {'workdir': workdir, 'step': loaded.step, 'weights': loaded.generator_weights,
          'seconds': [round(s, 2) for s in seconds],
          'translations': sum(r['translations'] for per in acc.values() for r in per.values()),
          'results_sha256': hashlib.sha256(text.encode()).hexdigest()}


@cli.command(FLAGS, 'python -m experiments.reader_speed')
def main(args):
  del args
  cli.require(FLAGS.workdir, '--workdir is required')
  cli.require(FLAGS.repeats >= 1, f'--repeats must be at least 1, got {FLAGS.repeats}')
  print(json.dumps(measure(FLAGS.workdir, FLAGS.repeats, FLAGS.limit, FLAGS.use_ema)),
        flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
