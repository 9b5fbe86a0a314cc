"""Subprocess helper for tests/test_parallel.py (not collected by pytest).

JAX fixes its device count and its multi-process membership when it first
initialises, so each parity check runs in a fresh interpreter:

* ``mesh``: one process with 8 simulated CPU devices trains the same global
  batches on a 1-device mesh and on the 8-device mesh and writes both final
  states to ``--out`` (npz).
* ``train``: one process of a ``--num_processes`` job (or the whole job when
  that is 1) runs ``Trainer.train`` for half the iterations, saves a
  checkpoint, restores it with a fresh trainer and trains on to the end; it
  writes its first local batch and the final parameters to ``--out``.

Both use the built-in dataset at 32 px (prepared in ``--data_dir``) and a tiny model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# Run as a script, the interpreter puts tests/ first on sys.path; the package
# is imported from the repository root whether or not it is installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument('mode', choices=['mesh', 'train'])
  p.add_argument('--data_dir', required=True)
  p.add_argument('--workdir', required=True)
  p.add_argument('--out', required=True, help='npz file for the results')
  p.add_argument('--devices', type=int, default=8, help='simulated CPU devices (mesh mode)')
  p.add_argument('--coordinator_address', default=None)
  p.add_argument('--num_processes', type=int, default=1)
  p.add_argument('--process_id', type=int, default=0)
  p.add_argument('--iters', type=int, default=4)
  p.add_argument('--via_env', action='store_true',
                 help='pass the coordinator settings as JAX_* environment variables')
  return p.parse_args(argv)


def tiny_config(data_dir: str, iters: int):
  from stargan_jax import config as config_lib
  cfg = config_lib.default_config()
  cfg.data.datasets = ('procedural',)
  cfg.data.data_dir = data_dir
  cfg.data.image_size = 32
  cfg.data.batch_size = 8
  cfg.data.num_threads = 1
  cfg.model = config_lib.ModelConfig(g_conv_dim=8, d_conv_dim=8, g_repeat_num=1, d_repeat_num=2)
  cfg.optim.g_ema_decay = 0.0  # the paper's G, whatever the demo's
  cfg.optim.g_lr = cfg.optim.d_lr = 1e-4  # the paper's (test_parallel.LR), whatever the demo's
  # The paper's losses, whatever the demo's: with the demo's (a heavier lambda_rec
  # and the L1 identity term) 8-device and 1-device runs drifted apart beyond
  # this test's tolerance (reduction-order rounding, sign-flipped in the L1
  # terms and made lr-sized by Adam).
  cfg.loss.lambda_rec, cfg.loss.lambda_id = 10.0, 0.0
  cfg.optim.num_iters = iters
  cfg.optim.num_iters_decay = iters // 2
  cfg.optim.n_critic = 2
  cfg.run.log_every = 1
  cfg.run.sample_every = iters // 2
  cfg.run.checkpoint_every = iters // 2
  cfg.run.eval_at_end = False
  return cfg


def flat_params(state, prefix: str) -> dict:
  import jax
  import numpy as np
  out = {}
  for name, tree in (('g', state.g_params), ('d', state.d_params), ('g_opt', state.g_opt_state),
                     ('d_opt', state.d_opt_state)):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      out[prefix + name + jax.tree_util.keystr(path)] = np.asarray(leaf)
  out[prefix + 'step'] = np.asarray(state.step)
  return out


def run_mesh(args):
  import jax
  import numpy as np
  from stargan_jax import train
  cfg = tiny_config(args.data_dir, args.iters)
  devices = jax.devices()
  assert len(devices) == args.devices, devices
  it = None
  results = {}
  for n in (1, len(devices)):
    trainer = train.Trainer(cfg, os.path.join(args.workdir, f'mesh{n}'), devices=devices[:n])
    if it is None:
      it = trainer.train_iterators()[0]
      batches = [next(it) for _ in range(args.iters)]
    state = trainer.init_state()
    for i, local in enumerate(batches):
      batch = trainer.to_global(local)
      if i == 0:  # the batch is split over the mesh, one slice of rows per device
        shards = sorted((s.index[0].start or 0, s.data.shape[0])
                        for s in batch['image'].addressable_shards)
        results[f'shards{n}'] = np.asarray(shards)
      # The loop body of Trainer.train: no implicit transfer (host sync) allowed.
      with jax.transfer_guard('disallow'):
        state, d_metrics = trainer.d_step(state, batch, trainer.step_key, 0)
        if (i + 1) % cfg.optim.n_critic == 0:
          state, g_metrics = trainer.g_step(state, batch, trainer.step_key, 0)
    results.update(flat_params(state, f'mesh{n}/'))
    results['first/image'], results['first/label'] = batches[0]['image'], batches[0]['label']
    results[f'mesh{n}/D/loss_gp'] = np.asarray(d_metrics['D/loss_gp'])
    results[f'mesh{n}/G/loss_rec'] = np.asarray(g_metrics['G/loss_rec'])
    results[f'mesh{n}/param_sharding_replicated'] = np.asarray(
        state.g_params['params']['Conv_0']['kernel'].sharding.is_fully_replicated)
  np.savez(args.out, **results)


def run_train(args):
  from stargan_jax import distributed
  if args.via_env:  # as a cluster launcher would
    os.environ.update(JAX_COORDINATOR_ADDRESS=args.coordinator_address,
                      JAX_NUM_PROCESSES=str(args.num_processes),
                      JAX_PROCESS_ID=str(args.process_id))
    joined = distributed.initialize()
  else:
    joined = distributed.initialize(args.coordinator_address, args.num_processes,
                                    args.process_id)
  import jax
  import numpy as np
  from stargan_jax import train
  assert joined == (args.num_processes > 1)
  assert jax.process_count() == args.num_processes, jax.process_count()
  cfg = tiny_config(args.data_dir, args.iters)
  trainer = train.Trainer(cfg, args.workdir)
  first = next(trainer.train_iterators()[0])  # this host's share of the first global batch
  trainer.train(num_iters=args.iters // 2)
  # Resuming restores the checkpoint just saved (collectively) and trains on;
  # the same trainer, so nothing is compiled twice.
  state = trainer.train(resume=True)
  trainer.checkpointer.close()
  results = {'first/image': first['image'], 'first/label': first['label'],
             'process_count': np.asarray(jax.process_count()),
             'device_count': np.asarray(jax.device_count())}
  results.update(flat_params(state, ''))
  np.savez(args.out, **results)
  print(json.dumps({'process': jax.process_index(), 'done': True}), flush=True)


def main(argv=None):
  args = parse_args(argv)
  if args.mode == 'mesh':
    # Must be set before JAX initialises its CPU backend.
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                               f' --xla_force_host_platform_device_count={args.devices}')
  if args.mode == 'mesh':
    run_mesh(args)
  else:
    run_train(args)


if __name__ == '__main__':
  sys.exit(main())
