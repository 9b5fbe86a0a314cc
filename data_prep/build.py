"""Prepares a dataset into a TFDS data dir: ``python -m data_prep.build --dataset=NAME``.

Examples::

  python -m data_prep.build --dataset=procedural --image_size=32
  python -m data_prep.build --dataset=procedural_classes --image_size=32

The builders write into a temporary ``incomplete.*`` directory that TFDS
renames only when every split is written, so an interrupted build never
leaves a dataset that loads as if it were complete.
"""

from __future__ import annotations

from absl import app, flags

from data_prep import registry

flags.DEFINE_string('dataset', 'procedural', f'One of: {", ".join(registry.names())}.')
flags.DEFINE_string('data_dir', '~/tensorflow_datasets', 'TFDS data directory to write.')
flags.DEFINE_integer('image_size', 32, 'Image size in pixels.')
flags.DEFINE_string('manual_dir', None, 'Directory holding the dataset files you downloaded '
                    '(CelebA, RaFD, image folders).')
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  b = registry.prepare(FLAGS.dataset, FLAGS.data_dir, FLAGS.image_size, manual_dir=FLAGS.manual_dir)
  print(f'prepared {b.info.full_name} in {b.data_dir}')


if __name__ == '__main__':
  app.run(main)
