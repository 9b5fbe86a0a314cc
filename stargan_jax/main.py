"""Command line: ``python -m stargan_jax.main --mode=train|test --workdir=DIR``.

Defaults are the built-in demo (procedural dataset, 32 px, minutes on a CPU);
``--preset=joint`` trains the built-in pair jointly with the mask vector;
``--preset=paper`` selects the paper's 128 px / conv_dim 64 / 200k setting.
"""

from __future__ import annotations

from absl import app, flags, logging

from stargan_jax import config as config_lib

F = flags
F.DEFINE_enum('mode', 'train', ['train', 'test'], 'Train, or write test-split grids.')
F.DEFINE_string('workdir', None, 'Run directory: checkpoints, samples, TensorBoard.')
F.DEFINE_enum('preset', 'demo', sorted(config_lib.PRESETS),
              'Base config the other flags override: demo (built-in dataset, minutes on a CPU), '
              'joint (the built-in pair trained jointly with the mask vector), paper (128 px, '
              'conv_dim 64, batch 16, 200k iterations).')
F.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in --workdir.')
F.DEFINE_integer('test_step', None, 'Checkpoint step for --mode=test (default: latest).')
F.DEFINE_bool('use_ema', True, '--mode=test: translate with G\'s EMA when the checkpoint has one '
              '(see --g_ema_decay); --use_ema=false uses the raw G weights.')
# data
F.DEFINE_list('datasets', None, 'Dataset(s); several for joint training with the mask vector.')
F.DEFINE_string('data_dir', None, 'TFDS data directory.')
F.DEFINE_string('manual_dir', None, 'Where the downloaded files of CelebA/RaFD/folders are.')
F.DEFINE_list('attrs', None, 'Attribute names to train on, in order (attribute datasets).')
F.DEFINE_integer('image_size', None, 'Image size in pixels.')
F.DEFINE_integer('batch_size', None, 'Global batch size (split over devices and hosts).')
F.DEFINE_integer('num_threads', None, 'Background reader threads per host.')
# model
F.DEFINE_integer('g_conv_dim', None, 'Channels of G\'s first conv.')
F.DEFINE_integer('d_conv_dim', None, 'Channels of D\'s first conv.')
F.DEFINE_integer('g_repeat_num', None, 'Residual blocks in G.')
F.DEFINE_integer('d_repeat_num', None, 'Strided convs in D.')
F.DEFINE_enum('dtype', None, ['float32', 'bfloat16'], 'Compute dtype (params stay float32).')
F.DEFINE_string('conv_impl', None, 'How convolutions are computed: auto (default: the form '
                'measured fastest for this platform and CPU kind), xla (XLA\'s own), or a named '
                'form (stargan_jax.models.conv).')
# optimisation
F.DEFINE_integer('num_iters', None, 'Training iterations (one D step each).')
F.DEFINE_integer('num_iters_decay', None, 'Iterations over which the lr decays, at the end.')
F.DEFINE_enum('lr_schedule', None, ['linear', 'reference', 'constant'],
              'linear: the paper\'s decay to 0 (default); reference: the reference code\'s '
              'near-constant decay; constant.')
F.DEFINE_float('g_lr', None, 'G learning rate.')
F.DEFINE_float('d_lr', None, 'D learning rate.')
F.DEFINE_float('beta1', None, 'Adam beta1.')
F.DEFINE_float('beta2', None, 'Adam beta2.')
F.DEFINE_integer('n_critic', None, 'D updates per G update.')
F.DEFINE_float('g_ema_decay', None, 'Keep an EMA of G\'s weights, ema = d * ema + (1 - d) * G '
               'after every G step, used by sample/test grids, evaluate, translate and the '
               'experiments; not in StarGAN v1 (v2 uses 0.999); 0 turns it off (paper preset: 0).')
F.DEFINE_float('lambda_cls', None, 'Weight of the domain classification loss.')
F.DEFINE_float('lambda_rec', None, 'Weight of the reconstruction loss.')
F.DEFINE_float('lambda_gp', None, 'Weight of the gradient penalty.')
F.DEFINE_float('lambda_id', None, 'Weight of the identity loss L1(G(x, c_org), x); not in '
               'StarGAN (CycleGAN\'s); 0 turns it off (paper preset: 0).')
# run
F.DEFINE_integer('seed', None, 'Seed of initialisation, data order, flips and targets.')
F.DEFINE_integer('log_every', None, 'Iterations between progress lines.')
F.DEFINE_integer('sample_every', None, 'Iterations between sample grids.')
F.DEFINE_integer('checkpoint_every', None, 'Iterations between checkpoints.')
F.DEFINE_integer('keep_checkpoints', None, 'Checkpoints kept.')
F.DEFINE_integer('num_samples', None, 'Images (rows) per sample / test grid.')
F.DEFINE_bool('eval_at_end', None, 'Measure pixel-reader accuracy after training.')
# multi-host (stargan_jax/distributed.py); every process runs the same command
F.DEFINE_enum('distributed', 'auto', ['auto', 'detect', 'off'],
              'auto: join a multi-process job when a coordinator is given (flags below or '
              'JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); detect: let JAX '
              'read SLURM / Open MPI / Kubernetes / Cloud TPU; off: one process.')
F.DEFINE_string('coordinator_address', None, 'host:port of process 0 (multi-host).')
F.DEFINE_integer('num_processes', None, 'Processes in the job (multi-host).')
F.DEFINE_integer('process_id', None, 'This process, 0 .. num_processes - 1 (multi-host).')
FLAGS = flags.FLAGS

_FIELDS = {
    'data': ('data_dir', 'manual_dir', 'image_size', 'batch_size', 'num_threads'),
    'model': ('g_conv_dim', 'd_conv_dim', 'g_repeat_num', 'd_repeat_num', 'dtype', 'conv_impl'),
    'optim': ('num_iters', 'num_iters_decay', 'lr_schedule', 'g_lr', 'd_lr', 'beta1', 'beta2',
              'n_critic', 'g_ema_decay'),
    'loss': ('lambda_cls', 'lambda_rec', 'lambda_gp', 'lambda_id'),
    'run': ('seed', 'log_every', 'sample_every', 'checkpoint_every', 'keep_checkpoints',
            'num_samples', 'eval_at_end'),
}


def config_from_flags() -> config_lib.Config:
  cfg = config_lib.PRESETS[FLAGS.preset]()
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required (where checkpoints and samples go)')
  if not FLAGS['verbosity'].present:
    # Orbax and TFDS log every file operation at INFO; progress is printed.
    logging.set_verbosity(logging.WARNING)
  from stargan_jax import distributed, train  # after flag parsing: keeps --help fast
  # Before anything touches a device.
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                         mode=FLAGS.distributed)
  cfg = config_from_flags()
  if FLAGS.mode == 'train':
    train.train_and_evaluate(cfg, FLAGS.workdir, resume=FLAGS.resume)
  else:
    trainer = train.Trainer(cfg, FLAGS.workdir)
    trainer.test(step=FLAGS.test_step, use_ema=FLAGS.use_ema)


if __name__ == '__main__':
  app.run(main)
