"""Command line: ``python -m stargan_jax.main --mode=train|test --workdir=DIR``.

Flags -> config -> train (``train.train_and_evaluate``) or test. Defaults are
the built-in demo (procedural dataset, 32 px, minutes on a CPU);
``--preset=joint`` trains the built-in pair jointly with the mask vector;
``--preset=paper`` selects the paper's 128 px / conv_dim 64 / 200k setting;
``--preset=tiny`` the smallest model that runs every code path. ``--mode=test``
needs only ``--workdir``: the model comes from the checkpoint's meta
(``inference.load_model``).
"""

from __future__ import annotations

import sys

from absl import flags

from stargan_jax import cli
from stargan_jax import config as config_lib

FLAGS = cli.flag_values()
flags.DEFINE_enum('mode', 'train', ['train', 'test'], 'Train, or write test-split grids.',
                  flag_values=FLAGS)
flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, samples, TensorBoard.',
                    flag_values=FLAGS)
flags.mark_flag_as_required('workdir', flag_values=FLAGS)
flags.DEFINE_enum('preset', None, sorted(config_lib.PRESETS), 'Base config the other flags '
                  'override: demo (the built-in faces, 32 px, minutes on a CPU), joint (the '
                  'built-in pair trained jointly with the mask vector), small (your own data '
                  'on small compute: 64 px, 6,000 iterations; with --datasets=rafd also '
                  f'{config_lib.settings_as_flags(config_lib.RAFD_SMALL)}; README: which preset '
                  'for which data), '
                  'paper (128 px, conv_dim 64, batch 16, 200k iterations), tiny (the smallest '
                  'model: tests, smoke runs). Default: chosen from --datasets (config.preset_for) '
                  'and named at start.', flag_values=FLAGS)
flags.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in --workdir.',
                  flag_values=FLAGS)
flags.DEFINE_integer('test_step', None, 'Checkpoint step for --mode=test (default: latest).',
                     flag_values=FLAGS)
flags.DEFINE_bool('use_ema', True, "--mode=test: translate with G's EMA when the checkpoint has "
                  'one (see --g_ema_decay); --use_ema=false uses the raw G weights.',
                  flag_values=FLAGS)
# data
flags.DEFINE_list('datasets', None, 'Dataset(s); several for joint training with the mask '
                  'vector.', flag_values=FLAGS)
flags.DEFINE_string('data_dir', None, 'TFDS data directory.', flag_values=FLAGS)
flags.DEFINE_string('manual_dir', None, 'Where the downloaded files of CelebA/RaFD/folders are.',
                    flag_values=FLAGS)
flags.DEFINE_list('attrs', None, 'Attribute names to train on, in order (attribute datasets).',
                  flag_values=FLAGS)
flags.DEFINE_integer('image_size', None, 'Image size in pixels.', flag_values=FLAGS)
flags.DEFINE_integer('batch_size', None, 'Global batch size (split over devices and hosts).',
                     flag_values=FLAGS)
flags.DEFINE_integer('num_threads', None, 'Background reader threads per host.', flag_values=FLAGS)
flags.DEFINE_integer('cache_mb', None, 'Decode a training split into memory once when its '
                     'pixels fit in this many MiB (the same batches, without decoding the '
                     'prepared files at every read); 0: never. Default 1024.',
                     flag_values=FLAGS)
# model
flags.DEFINE_integer('g_conv_dim', None, "Channels of G's first conv.", flag_values=FLAGS)
flags.DEFINE_integer('d_conv_dim', None, "Channels of D's first conv.", flag_values=FLAGS)
flags.DEFINE_integer('g_repeat_num', None, 'Residual blocks in G.', flag_values=FLAGS)
flags.DEFINE_integer('d_repeat_num', None, 'Strided convs in D.', flag_values=FLAGS)
flags.DEFINE_enum('dtype', None, ['float32', 'bfloat16'], 'Compute dtype (params stay float32).',
                  flag_values=FLAGS)
flags.DEFINE_enum('g_output', None, ['image', 'mask'], "G's output: image (the paper's) or "
                  "mask (GANimation's attention mask: a * colour + (1 - a) * input, pixels G "
                  'does not change are copied; not in StarGAN).', flag_values=FLAGS)
flags.DEFINE_enum('g_upsample', None, ['transpose', 'resize'], "G's up-sampling: transpose "
                  "(the paper's 4x4 stride-2 transposed convs) or resize (nearest-neighbour x2 "
                  "then a 3x3 conv, StarGAN v2's; not in StarGAN v1).", flag_values=FLAGS)
flags.DEFINE_bool('g_highpass', None, "G's output heads also see the input's high frequencies "
                  '(x minus its 3x3 blur), so what G paints can keep the photo\'s grain; not '
                  'in StarGAN.', flag_values=FLAGS)
flags.DEFINE_bool('g_head_input', None, "G's output heads also see the input image itself, so "
                  'the colour head can paint over a feature with the colours around it; not in '
                  'StarGAN.', flag_values=FLAGS)
flags.DEFINE_enum('conv_impl', None, ['auto', 'xla', 'patches', 'winograd'], 'How '
                  'convolutions are computed (same numbers): auto (default: the rule of '
                  'stargan_jax.models.conv for this platform and CPU kind), xla (XLA\'s own '
                  'everywhere), patches (D\'s strided convs as patches @ kernel, G\'s transposed '
                  'convs sub-pixel), winograd (patches plus G\'s CPU forms).', flag_values=FLAGS)
# optimisation
flags.DEFINE_integer('num_iters', None, 'Training iterations (one D step each).', flag_values=FLAGS)
flags.DEFINE_integer('num_iters_decay', None, 'Iterations over which the lr decays, at the end.',
                     flag_values=FLAGS)
flags.DEFINE_enum('lr_schedule', None, ['linear', 'reference', 'constant'], "linear: the paper's "
                  "decay to 0 (default); reference: the reference code's near-constant decay; "
                  'constant.', flag_values=FLAGS)
flags.DEFINE_float('g_lr', None, 'G learning rate.', flag_values=FLAGS)
flags.DEFINE_float('d_lr', None, 'D learning rate.', flag_values=FLAGS)
flags.DEFINE_float('beta1', None, 'Adam beta1.', flag_values=FLAGS)
flags.DEFINE_float('beta2', None, 'Adam beta2.', flag_values=FLAGS)
flags.DEFINE_integer('n_critic', None, 'D updates per G update.', flag_values=FLAGS)
flags.DEFINE_float('g_ema_decay', None, "Keep an EMA of G's weights, ema = d * ema + (1 - d) * G "
                   'after every G step, used by sample/test grids, evaluate, translate and the '
                   'experiments; not in StarGAN v1 (v2 uses 0.999); 0 turns it off (paper '
                   'preset: 0).', flag_values=FLAGS)
flags.DEFINE_float('lambda_cls', None, 'Weight of the domain classification loss.',
                   flag_values=FLAGS)
flags.DEFINE_float('lambda_rec', None, 'Weight of the reconstruction loss.', flag_values=FLAGS)
flags.DEFINE_float('lambda_gp', None, 'Weight of the gradient penalty.', flag_values=FLAGS)
flags.DEFINE_enum('adv_loss', None, list(config_lib.ADV_LOSSES), "Adversarial loss: wgan-gp "
                  "(StarGAN's: Wasserstein critic, gradient penalty weighted by --lambda_gp) or "
                  "ns-r1 (StarGAN v2's: non-saturating loss, R1 penalty on real images weighted "
                  'by --lambda_r1); every preset: wgan-gp.', flag_values=FLAGS)
flags.DEFINE_float('lambda_r1', None, 'Weight of the R1 penalty with --adv_loss=ns-r1 '
                   '(StarGAN v2: 1).', flag_values=FLAGS)
flags.DEFINE_float('lambda_id', None, 'Weight of the identity loss L1(G(x, c_org), x); not in '
                   "StarGAN (CycleGAN's); 0 turns it off (paper preset: 0).", flag_values=FLAGS)
flags.DEFINE_float('lambda_mask', None, "Weight of mean a(1 - a) over G's mask (--g_output=mask): "
                   'each pixel kept or repainted, not blended; not in StarGAN; 0: off.',
                   flag_values=FLAGS)
flags.DEFINE_float('d_cls_cutout', None, "D's classification loss on real images also taken on "
                   'a copy with one random square of this fraction of the side blanked, so it '
                   'reads every cue of a domain; not in StarGAN; 0: off.', flag_values=FLAGS)
# run
flags.DEFINE_integer('seed', None, 'Seed of initialisation, data order, flips and targets.',
                     flag_values=FLAGS)
flags.DEFINE_integer('log_every', None, 'Iterations between progress lines.', flag_values=FLAGS)
flags.DEFINE_integer('sample_every', None, 'Iterations between sample grids.', flag_values=FLAGS)
flags.DEFINE_integer('checkpoint_every', None, 'Iterations between checkpoints.', flag_values=FLAGS)
flags.DEFINE_integer('keep_checkpoints', None, 'Checkpoints kept.', flag_values=FLAGS)
flags.DEFINE_integer('num_samples', None, 'Images (rows) per sample / test grid.',
                     flag_values=FLAGS)
flags.DEFINE_bool('eval_at_end', None, 'Measure pixel-reader accuracy after training.',
                  flag_values=FLAGS)
# multi-host (stargan_jax/distributed.py); every process runs the same command
flags.DEFINE_enum('distributed', 'auto', ['auto', 'detect', 'off'], 'auto: join a multi-process '
                  'job when a coordinator is given (flags below or JAX_COORDINATOR_ADDRESS, '
                  'JAX_NUM_PROCESSES, JAX_PROCESS_ID); detect: let JAX read SLURM / Open MPI / '
                  'Kubernetes / Cloud TPU; off: one process.', flag_values=FLAGS)
flags.DEFINE_string('coordinator_address', None, 'host:port of process 0 (multi-host).',
                    flag_values=FLAGS)
flags.DEFINE_integer('num_processes', None, 'Processes in the job (multi-host).', flag_values=FLAGS)
flags.DEFINE_integer('process_id', None, 'This process, 0 .. num_processes - 1 (multi-host).',
                     flag_values=FLAGS)

_FIELDS = {
    'data': ('data_dir', 'manual_dir', 'image_size', 'batch_size', 'num_threads',
             'cache_mb'),
    'model': ('g_conv_dim', 'd_conv_dim', 'g_repeat_num', 'd_repeat_num', 'dtype', 'conv_impl',
              'g_output', 'g_upsample', 'g_highpass', 'g_head_input'),
    'optim': ('num_iters', 'num_iters_decay', 'lr_schedule', 'g_lr', 'd_lr', 'beta1', 'beta2',
              'n_critic', 'g_ema_decay'),
    'loss': ('lambda_cls', 'lambda_rec', 'lambda_gp', 'adv_loss', 'lambda_r1', 'lambda_id',
             'lambda_mask', 'd_cls_cutout'),
    'run': ('seed', 'log_every', 'sample_every', 'checkpoint_every', 'keep_checkpoints',
            'num_samples', 'eval_at_end'),
}


# What --mode=test reads from the flags; the rest comes from the checkpoint's meta.
_TEST_FLAGS = ('data_dir', 'num_samples')


def config_from_flags(log=print) -> config_lib.Config:
  preset = FLAGS.preset
  if preset is None:
    preset, why = config_lib.preset_for(FLAGS.datasets or ())
    log(f'--preset not given: {why}', flush=True)
  cfg = config_lib.preset_config(preset, FLAGS.datasets or ())
  for group, names in _FIELDS.items():
    sub = getattr(cfg, group)
    for name in names:
      value = getattr(FLAGS, name)
      if value is not None:
        setattr(sub, name, value)
  if FLAGS.datasets:
    cfg.data.datasets = tuple(FLAGS.datasets)
  if FLAGS.attrs:
    cfg.data.attrs = tuple(FLAGS.attrs)
  if FLAGS.num_iters is not None and FLAGS.num_iters_decay is None:
    cfg.optim.num_iters_decay = FLAGS.num_iters // 2
  return cfg


@cli.command(FLAGS, 'python -m stargan_jax.main')
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.quiet_libraries()
  from stargan_jax import distributed, train  # after flag parsing: keeps --help fast
  # Before anything touches a device.
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                         mode=FLAGS.distributed)
  if FLAGS.mode == 'test':
    from stargan_jax import inference
    ignored = [f'--{n}' for names in _FIELDS.values() for n in names
               if FLAGS[n].present and n not in _TEST_FLAGS]
    ignored += [f'--{n}' for n in ('datasets', 'attrs', 'preset', 'resume') if FLAGS[n].present]
    if ignored:
      print(f'--mode=test takes the model, its labels and sizes from the checkpoint; '
            f'ignoring {", ".join(ignored)}', flush=True)
    loaded = inference.load_model(FLAGS.workdir, FLAGS.test_step, use_ema=FLAGS.use_ema)
    inference.write_test_grids(loaded, data_dir=FLAGS.data_dir, num_samples=FLAGS.num_samples)
    return
  train.train_and_evaluate(config_from_flags().check(), FLAGS.workdir, resume=FLAGS.resume)


if __name__ == '__main__':
  sys.exit(main())
