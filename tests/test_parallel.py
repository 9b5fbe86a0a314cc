"""Data parallelism: an 8-device step and a 2-process job equal one device.

Each JAX process fixes its devices when it starts, so the runs happen in
subprocesses (``tests/multiprocess_worker.py``), all three at once:

* ``mesh``: 8 simulated CPU devices; the same 4 global batches are trained on a
  1-device mesh and on the 8-device mesh (4 D steps, 2 G steps);
* ``train`` x 2: two processes on localhost (``jax.distributed`` with gloo CPU
  collectives, 1 device each; process 0 configured by arguments, process 1 by
  the ``JAX_*`` environment variables) run ``Trainer.train`` for 2
  iterations, save a checkpoint, restore it and train 2 more, each host
  reading half of every batch.

The 1-device run of ``mesh`` is the reference for both: ``Trainer.train``
draws the same batches and keys as its loop.

How equal: Adam divides each gradient element by its own magnitude, so a
gradient element that is zero in exact arithmetic but float32 noise on both
runs moves its parameter by +-lr on each run, independently. StarGAN has such
elements: the centre tap of G's first conv on the label channels, which are
spatially constant, so the instance norm after the conv removes them. Adam's
moments (linear in the gradients) and the losses are therefore compared to
float32 tolerance (the moments to 1e-3 of a tensor's largest value: from the
second G step on, G's gradients are taken at parameters that already differ by
that noise, which moved G's moments by up to 3e-4 of their scale with jax
0.10), the parameters to float32 tolerance except for at most 2% of (or one of)
the elements of a tensor, which must stay within the +-lr per update that Adam
can give noise.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'multiprocess_worker.py')
ITERS = 4  # 4 D steps and, with n_critic = 2, 2 G steps
LR = 1e-4  # the config's g_lr and d_lr


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _env():
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  # The steps of a tiny model run in milliseconds either way; unoptimised
  # code compiles about twice as fast, and every run here compiles the same way.
  env['XLA_FLAGS'] = '--xla_backend_optimization_level=0'
  return env


@pytest.fixture(scope='module')
def runs(data_dir, tmp_path_factory):
  tmp = tmp_path_factory.mktemp('parallel')
  port = _free_port()
  common = ['--data_dir', data_dir, '--iters', str(ITERS)]
  cmds = {'mesh': [sys.executable, WORKER, 'mesh', '--devices', '8', '--workdir',
                   str(tmp / 'mesh'), '--out', str(tmp / 'mesh.npz')] + common}
  for p in range(2):
    cmds[f'proc{p}'] = [sys.executable, WORKER, 'train', '--workdir', str(tmp / 'multi'),
                        '--out', str(tmp / f'proc{p}.npz'), '--num_processes', '2',
                        '--process_id', str(p), '--coordinator_address',
                        f'127.0.0.1:{port}'] + common + (['--via_env'] if p else [])
  procs = {}
  for k, c in cmds.items():
    with open(tmp / f'{k}.log', 'w') as log:
      procs[k] = subprocess.Popen(c, env=_env(), stdout=log, stderr=subprocess.STDOUT)
  deadline = time.monotonic() + 600
  try:
    # If one process fails, the other would wait for it until JAX's own
    # timeout: stop them all at the first failure.
    while any(p.poll() is None for p in procs.values()):
      if time.monotonic() > deadline or any(p.poll() for p in procs.values()):
        break
      time.sleep(0.2)
  finally:
    for p in procs.values():
      if p.poll() is None:
        p.kill()
        p.wait()
  logs = {k: (tmp / f'{k}.log').read_text() for k in procs}
  for k, p in procs.items():
    assert p.returncode == 0, f'{k} failed (exit {p.returncode}):\n{logs[k][-6000:]}'
  out = {k: dict(np.load(tmp / f'{k}.npz')) for k in procs}
  return out, logs, tmp


def _assert_state_close(ref: dict, other: dict, what: str, updates: dict):
  keys = [k for k in ref if k.split('[')[0] in ('g', 'd', 'g_opt', 'd_opt') or k == 'step']
  assert len(keys) > 20, keys
  for k in keys:
    a, b = ref[k], other[k]
    assert a.shape == b.shape, (what, k)
    if a.dtype.kind != 'f':
      np.testing.assert_array_equal(a, b, err_msg=f'{what}: {k}')
      continue
    scale = float(np.max(np.abs(a))) + 1e-30
    close = np.abs(a - b) <= 5e-5 * scale + 1e-4 * np.abs(a)
    if k.startswith(('g_opt', 'd_opt')):
      close |= np.abs(a - b) <= 1e-3 * scale  # module docstring
    if k.startswith(('g[', 'd[')):
      # Parameters: Adam turns float32 noise of exactly-zero gradients into
      # +-lr steps (module docstring).
      # A small tensor may hold one such element (e.g. the bias of a
      # channel that the ReLU after it leaves dead), more than 2% of it.
      n = updates[k[0]]
      assert np.sum(~close) <= max(1, 0.02 * a.size), (
          f'{what}: {k}: {np.sum(~close)} of {a.size} elements differ')
      assert np.max(np.abs(a - b)) <= 4 * LR * n, (what, k, np.max(np.abs(a - b)))
    else:  # Adam's moments and counts: linear in the gradients
      assert np.all(close), (f'{what}: {k}: max difference {np.max(np.abs(a - b)):.3g} '
                             f'(largest value {scale:.3g})')


def test_eight_devices_equal_one(runs):
  out, _, _ = runs
  r = out['mesh']
  # The 8-device batch really is split: one row of the 8 on each device.
  np.testing.assert_array_equal(r['shards1'], [[0, 8]])
  np.testing.assert_array_equal(r['shards8'], [[i, 1] for i in range(8)])
  assert bool(r['mesh8/param_sharding_replicated'])
  one = {k[len('mesh1/'):]: v for k, v in r.items() if k.startswith('mesh1/')}
  eight = {k[len('mesh8/'):]: v for k, v in r.items() if k.startswith('mesh8/')}
  assert int(one['step']) == ITERS
  np.testing.assert_allclose(eight['D/loss_gp'], one['D/loss_gp'], rtol=1e-5)
  np.testing.assert_allclose(eight['G/loss_rec'], one['G/loss_rec'], rtol=1e-5)
  _assert_state_close(one, eight, '8 devices vs 1', {'g': ITERS // 2, 'd': ITERS})


def test_two_processes_equal_one(runs):
  out, logs, tmp = runs
  one = {k[len('mesh1/'):]: v for k, v in out['mesh'].items() if k.startswith('mesh1/')}
  p0, p1 = out['proc0'], out['proc1']
  for p in (p0, p1):
    assert int(p['process_count']) == 2 and int(p['device_count']) == 2
  # Each host read only its half of the first global batch.
  np.testing.assert_array_equal(p0['first/image'], out['mesh']['first/image'][:4])
  np.testing.assert_array_equal(p1['first/image'], out['mesh']['first/image'][4:])
  np.testing.assert_array_equal(np.concatenate([p0['first/label'], p1['first/label']]),
                                out['mesh']['first/label'])
  # Both hosts end with the same state, equal to one device's uninterrupted run
  # (the 2-process run was checkpointed and restored half way).
  for k in p0:
    if k.startswith(('g[', 'd[', 'g_opt', 'd_opt')):
      np.testing.assert_array_equal(p0[k], p1[k], err_msg=k)
  _assert_state_close(one, p0, '2 processes vs 1', {'g': ITERS // 2, 'd': ITERS})
  # Only process 0 logged and wrote images and TensorBoard events.
  assert 'Resumed from step 2' in logs['proc0'] and 'Iteration [4/4]' in logs['proc0']
  assert 'Iteration [' not in logs['proc1'] and 'Resumed' not in logs['proc1']
  assert sorted(os.listdir(tmp / 'multi' / 'samples')) == ['000002-images.png',
                                                           '000004-images.png']
  events = [f for f in os.listdir(tmp / 'multi' / 'tensorboard') if 'tfevents' in f]
  assert len(events) == 2, events  # one per train() call, of process 0 only
  assert sorted(os.listdir(tmp / 'multi' / 'checkpoints')) == ['2', '4']


def test_distributed_settings():
  from stargan_jax import distributed
  resolve = distributed.resolve
  assert resolve(env={}) is None  # nothing configured: one process
  assert resolve(num_processes=1, env={}) is None
  env = {'JAX_COORDINATOR_ADDRESS': '10.0.0.1:1234', 'JAX_NUM_PROCESSES': '4',
         'JAX_PROCESS_ID': '3', 'JAX_LOCAL_DEVICE_IDS': '0,1'}
  assert resolve(env=env) == {'coordinator_address': '10.0.0.1:1234', 'num_processes': 4,
                              'process_id': 3, 'local_device_ids': [0, 1]}
  # Flags win over the environment.
  assert resolve('h:1', 2, 1, env=env) == {'coordinator_address': 'h:1', 'num_processes': 2,
                                           'process_id': 1, 'local_device_ids': [0, 1]}
  assert resolve(env=env, mode='off') is None
  # detect: whatever is known, JAX's cluster detection fills in the rest.
  assert resolve(process_id=0, env={}, mode='detect') == {'process_id': 0}
  with pytest.raises(ValueError, match='--coordinator_address, --process_id not given'):
    resolve(num_processes=2, env={})
  with pytest.raises(ValueError, match="JAX_NUM_PROCESSES='two' must be an integer"):
    resolve(env={'JAX_NUM_PROCESSES': 'two'})
  with pytest.raises(ValueError, match=r'must be in \[0, num_processes=2\), got 2'):
    resolve('h:1', 2, 2, env={})
  with pytest.raises(ValueError, match="must be host:port, got 'localhost'"):
    resolve('localhost', 2, 0, env={})
  with pytest.raises(ValueError, match='--distributed must be one of'):
    resolve(env={}, mode='yes')
  assert distributed.initialize(mode='off') is False
