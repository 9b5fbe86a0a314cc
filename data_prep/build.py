"""Prepares a dataset into a TFDS data dir: ``python -m data_prep.build --dataset=NAME``.

Examples::

  python -m data_prep.build --dataset=procedural --image_size=32
  python -m data_prep.build --dataset=procedural_classes --image_size=32
  python -m data_prep.build --dataset=faces --image_size=64
  python -m data_prep.build --dataset=faces_expr --image_size=64
  python -m data_prep.build --dataset=celeba --image_size=128 --manual_dir=~/data
  python -m data_prep.build --dataset=rafd --image_size=128 --manual_dir=~/data
  python -m data_prep.build --dataset=folder:horses --image_size=128 --manual_dir=~/horses

One dataset per command, as each reads its own ``--manual_dir``;
``--datasets`` (the trainer's flag name) is accepted as an alias of
``--dataset``. The builders write into a temporary ``incomplete.*`` directory
that TFDS renames only when every split is written, so an interrupted build
never leaves a dataset that loads as if it were complete. Building a dataset
that is already prepared checks that it was built with the same options.
Mistakes in the flags or the files print one ``error:`` line (exit status 2).
"""

from __future__ import annotations

import sys

from absl import flags

from stargan_jax import cli
from stargan_jax.datasets import registry

FLAGS = cli.flag_values()
flags.DEFINE_string('dataset', 'procedural', f'The dataset to build, one of: '
                    f'{", ".join(registry.names())}, or folder:NAME for your own images.',
                    flag_values=FLAGS)
flags.DEFINE_alias('datasets', 'dataset', flag_values=FLAGS)
flags.DEFINE_string('data_dir', '~/tensorflow_datasets', 'TFDS data directory to write.',
                    flag_values=FLAGS)
flags.DEFINE_integer('image_size', 32, 'Image size in pixels.', flag_values=FLAGS)
flags.DEFINE_string('manual_dir', None, 'Directory holding the dataset files you downloaded '
                    '(CelebA, RaFD, image folders).', flag_values=FLAGS)
flags.DEFINE_bool('skip_corrupt', False, 'Skip images that cannot be decoded (corrupt or '
                  'truncated) and report how many, instead of stopping at the first.',
                  flag_values=FLAGS)
flags.DEFINE_integer('crop_size', None, 'Centre crop in pixels before resizing (rafd: default '
                     '256 for the reference layout, the largest square for the raw release; '
                     'folder: default the largest square).', flag_values=FLAGS)
flags.DEFINE_float('test_fraction', None, 'Fraction held out for testing (rafd raw release: of '
                   'the people; folder: of each class, or of all images; default 0.1).',
                   flag_values=FLAGS)
flags.DEFINE_integer('test_count', None, 'Test images instead of a fraction (folder: per class '
                     'for class folders, in total with an attribute file; celeba: default 1999, '
                     'the official split, smaller only for subsets).', flag_values=FLAGS)
flags.DEFINE_string('attr_file', None, 'folder: the attribute file in CelebA\'s format (default: '
                    'list_attr.txt, attributes.txt or list_attr_celeba.txt in --manual_dir).',
                    flag_values=FLAGS)
flags.DEFINE_list('rafd_angles', None, 'rafd raw release: camera angles kept (default 45,90,135, '
                  'the paper\'s 4,824 images).', flag_values=FLAGS)
flags.DEFINE_enum('image_format', None, ['png', 'jpeg'], 'How prepared images are stored: png '
                  '(default; lossless, the reference\'s exact pixels) or jpeg (quality 95, a '
                  'third of the disk).', flag_values=FLAGS)
flags.DEFINE_integer('num_workers', None, 'Threads decoding and resizing images (default: the '
                     'number of CPUs, at most 16).', flag_values=FLAGS)

_OPTION_FLAGS = ('crop_size', 'test_fraction', 'test_count', 'attr_file', 'rafd_angles',
                 'image_format', 'num_workers')


def build_options() -> dict:
  """The option flags the user set (builders reject those that do not apply to them)."""
  options = {k: FLAGS[k].value for k in _OPTION_FLAGS if FLAGS[k].value is not None}
  if FLAGS.skip_corrupt:
    options['skip_corrupt'] = True
  return options


@cli.command(FLAGS, 'python -m data_prep.build')
def main(args):
  cli.require(not args, f'unexpected arguments: {" ".join(args)}')
  cli.require(',' not in FLAGS.dataset, f'--dataset={FLAGS.dataset}: one dataset per command '
              f'(each reads its own --manual_dir); run it once per dataset')
  cli.require(FLAGS.image_size > 0, f'--image_size must be positive, got {FLAGS.image_size}')
  cli.quiet_libraries()
  b = registry.prepare(FLAGS.dataset, FLAGS.data_dir, FLAGS.image_size,
                       manual_dir=FLAGS.manual_dir, **build_options())
  sizes = ', '.join(f'{k}: {v.num_examples}' for k, v in sorted(b.info.splits.items()))
  print(f'prepared {b.info.full_name} in {b.data_dir} ({sizes})')
  recorded = b.recorded_metadata() if hasattr(b, 'recorded_metadata') else None
  skipped = (recorded or {}).get('skipped_corrupt', [])
  if skipped:
    print(f'skipped {len(skipped)} corrupt image(s): {", ".join(skipped[:10])}'
          + (' ...' if len(skipped) > 10 else ''))


if __name__ == '__main__':
  sys.exit(main())
