"""Multi-host start-up: flags or environment variables -> ``jax.distributed.initialize``.

JAX's multi-controller runtime runs one Python process per host (or per GPU);
every process runs the same program, sees all devices of all processes in
``jax.devices()``, and feeds only its own share of each global batch. This
module decides, once and before anything touches a device, whether this
process is part of such a job. Three modes:

* ``auto`` (default): initialise when a coordinator is configured, by flags or
  by the environment variables ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of
  process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; flags win over the
  environment. Nothing configured (or one process): a single-process run.
* ``detect``: call ``jax.distributed.initialize`` and let JAX read a cluster
  manager's environment (SLURM, Open MPI, Kubernetes, Cloud TPU) for whatever
  was not given.
* ``off``: never initialise.

``JAX_LOCAL_DEVICE_IDS`` (comma-separated) limits the devices a process uses,
e.g. one process per GPU. On CPU, cross-process collectives use gloo (JAX's
default; ``JAX_CPU_COLLECTIVES_IMPLEMENTATION=mpi`` selects MPI).
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import jax

from stargan_jax import cli

MODES = ('auto', 'detect', 'off')
ENV_ADDRESS = 'JAX_COORDINATOR_ADDRESS'
ENV_NUM_PROCESSES = 'JAX_NUM_PROCESSES'
ENV_PROCESS_ID = 'JAX_PROCESS_ID'
ENV_LOCAL_DEVICE_IDS = 'JAX_LOCAL_DEVICE_IDS'


class SettingsError(cli.UserError, ValueError):
  """Multi-host flags or environment variables that do not make a job."""


def _env_int(env: Mapping[str, str], name: str) -> int | None:
  value = env.get(name)
  if value is None or value.strip() == '':
    return None
  try:
    return int(value)
  except ValueError:
    raise SettingsError(f'environment variable {name}={value!r} must be an integer') from None


def _parse_ids(value, source: str) -> list[int] | None:
  if value is None or (isinstance(value, str) and not value.strip()):
    return None
  if isinstance(value, str):
    value = value.split(',')
  try:
    return [int(v) for v in value]
  except (TypeError, ValueError):
    raise SettingsError(f'{source}={value!r} must be a comma-separated list of device ids '
                        f'(e.g. 0,1)') from None


def resolve(coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None, local_device_ids: Sequence[int] | str | None = None,
            mode: str = 'auto', env: Mapping[str, str] | None = None) -> dict | None:
  """The keyword arguments for ``jax.distributed.initialize``, or None for one process.

  Pure (reads ``env``, defaulting to ``os.environ``; touches no device), so
  the decision and its error messages are testable.
  """
  env = os.environ if env is None else env
  if mode not in MODES:
    raise SettingsError(f'--distributed must be one of {MODES}, got {mode!r}')
  if mode == 'off':
    return None
  address = coordinator_address or env.get(ENV_ADDRESS) or None
  n = num_processes if num_processes is not None else _env_int(env, ENV_NUM_PROCESSES)
  pid = process_id if process_id is not None else _env_int(env, ENV_PROCESS_ID)
  ids = _parse_ids(local_device_ids, '--local_device_ids')
  if ids is None:
    ids = _parse_ids(env.get(ENV_LOCAL_DEVICE_IDS), ENV_LOCAL_DEVICE_IDS)
  if n is not None and n < 1:
    raise SettingsError(f'--num_processes (or {ENV_NUM_PROCESSES}) must be >= 1, got {n}')
  if pid is not None and (pid < 0 or (n is not None and pid >= n)):
    raise SettingsError(f'--process_id (or {ENV_PROCESS_ID}) must be in [0, num_processes={n}), '
                        f'got {pid}')
  if address is not None and ':' not in address:
    raise SettingsError(f'--coordinator_address (or {ENV_ADDRESS}) must be host:port, got '
                        f'{address!r}')
  kwargs = {k: v for k, v in (('coordinator_address', address), ('num_processes', n),
                               ('process_id', pid), ('local_device_ids', ids)) if v is not None}
  if mode == 'detect':
    return kwargs  # JAX fills in the rest from the cluster manager's environment
  if address is None and n is None and pid is None:
    return None
  if n == 1 and address is None:
    return None
  missing = [flag for flag, v in (('--coordinator_address', address), ('--num_processes', n),
                                  ('--process_id', pid)) if v is None]
  if missing:
    raise SettingsError(
        f'multi-host run half configured: {", ".join(missing)} not given (flags, or the '
        f'environment variables {ENV_ADDRESS}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}); '
        f'give all three, or --distributed=detect under SLURM/Open MPI/Kubernetes/Cloud TPU')
  return kwargs


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | str | None = None,
               mode: str = 'auto', initialization_timeout: int = 300) -> bool:
  """Joins a multi-process JAX job if one is configured; returns whether it did.

  Must run before the first use of a device (``jax.devices()``, any array).
  """
  kwargs = resolve(coordinator_address, num_processes, process_id, local_device_ids, mode)
  if kwargs is None:
    return False
  if jax.distributed.is_initialized():
    return True
  jax.distributed.initialize(initialization_timeout=initialization_timeout, **kwargs)
  return True

