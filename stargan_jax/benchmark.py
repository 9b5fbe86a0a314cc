"""Step-time benchmark: ``python -m stargan_jax.benchmark``; prints one JSON object.

  python -m stargan_jax.benchmark --image_size=128 --batch_size=16 --steps=10 \
      --dtype=bfloat16 --devices=1 --peak_flops=790e12 [--conv_impl=auto]

Times the trainer's own compiled D and G steps (``train.jit_steps``: state
replicated and donated, batch sharded over ``--devices`` devices) on a random
batch with CelebA's 5 attribute labels: the median of ``--steps`` steps, each
blocked on (``block_until_ready``), after a compiled and discarded first call.
``--g_output``, ``--g_upsample`` and ``--lambda_id`` time the demos' G and
G step (``--g_output=mask --g_upsample=resize --lambda_id=5``; the paper's by
default). ``--conv_impl`` names how the convolutions are computed
(``stargan_jax.models.conv``), and ``--g_conv_impl`` / ``--d_conv_impl``
override it for one network, so that the forms of G and of D can be compared
separately (the G step runs D forward and backward too, the D step G
forward). Also reported:

* ``pipelined_iteration_seconds``: ``--steps`` iterations (a D step, and a G
  step every ``--n_critic``) dispatched back to back, blocked once at the
  end, as ``Trainer.train`` runs them; ``dispatch_seconds`` is how long the
  host takes to enqueue one D step. If the pipelined iteration is no faster
  than the blocked steps and dispatch is a small part of a step, fusing
  several iterations into one dispatch (``lax.scan``) cannot win much.
* FLOP/s (``flops_basis``): for the paper's model (``paper_model``), the
  per-image count of the *reference's* work, D step 36.3 GFLOP and G step
  122.8 GFLOP at 128 px (its convolutions only, a multiply-add = 2 FLOP;
  the G step's includes the D weight gradients PyTorch's ``backward()``
  computes), scaled by (size/128)^2. Our G step does less than the
  reference's: it computes no D weight gradients (1.07 GFLOP/image at 128
  px, 0.9% of the step, by XLA's count), so these FLOP/s measure how fast
  the reference's job gets done. For any other model the reference's count
  does not apply and XLA's count of our compiled steps is used instead
  (``xla_flops_per_device``, which also counts elementwise work).
* ``fraction_of_peak`` against ``--peak_flops`` per device (default 790e12,
  a Hopper GPU's dense bf16 rate; the H200's spec sheet gives ~989e12).
* ``projected_schedule_hours``: the paper's 200k iterations (one D step each,
  a G step every 5) at the measured step times.
* ``input_images_per_second``: the input pipeline alone
  (``input_benchmark.measure`` on the built-in dataset at the same size,
  prepared in ``--data_dir`` on first use; ``--input_batches=0`` skips it).

``--devices=N`` uses the first N devices (default: all). To simulate N CPU
devices set ``XLA_FLAGS=--xla_force_host_platform_device_count=N``. In
Python, ``run(parse_args([...]))`` returns the result as a dict.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from stargan_jax import cli
from stargan_jax import config as config_lib
from stargan_jax import distributed
from stargan_jax import labels as labels_lib
from stargan_jax import losses
from stargan_jax import steps
from stargan_jax import train
from stargan_jax.datasets import celeba
from stargan_jax.models import conv

PROG = 'python -m stargan_jax.benchmark'
# The reference's per-image conv FLOPs at 128 px (a multiply-add = 2 FLOP):
# its D step (G's forward pass, D on the real, fake and interpolated images,
# the gradient penalty's double backward) and its G step (G twice, D once,
# all weight gradients, D's included).
REFERENCE_D_STEP_FLOPS_128 = 36.3e9
REFERENCE_G_STEP_FLOPS_128 = 122.8e9
DEFAULT_PEAK_FLOPS = 790e12  # a Hopper GPU's dense bf16 rate, per device
PAPER_SCHEDULE_ITERS = 200_000
# The paper's sizes (its CelebA run: the five default attributes), taken from
# paper_config() so they are written in one place.
_PAPER = config_lib.paper_config()
PAPER_MODEL = {'g_conv_dim': _PAPER.model.g_conv_dim, 'd_conv_dim': _PAPER.model.d_conv_dim,
               'g_repeat_num': _PAPER.model.g_repeat_num,
               'd_repeat_num': _PAPER.model.d_repeat_num,
               'c_dim': len(celeba.DEFAULT_ATTRIBUTES)}

FLAGS = cli.flag_values()
flags.DEFINE_integer('image_size', 128, 'Image size (px).', flag_values=FLAGS)
flags.DEFINE_integer('batch_size', 16, 'Global batch.', flag_values=FLAGS)
flags.DEFINE_integer('steps', 10, 'Timed D steps and G steps (each).', flag_values=FLAGS)
flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                  'Compute dtype (parameters stay float32).', flag_values=FLAGS)
flags.DEFINE_integer('devices', 0, 'Devices to use (0: all).', flag_values=FLAGS)
flags.DEFINE_float('peak_flops', DEFAULT_PEAK_FLOPS,
                   'Peak FLOP/s of one device, for fraction_of_peak.', flag_values=FLAGS)
flags.DEFINE_integer('conv_dim', None, 'Sets both --g_conv_dim and --d_conv_dim.',
                     flag_values=FLAGS)
flags.DEFINE_integer('g_conv_dim', PAPER_MODEL['g_conv_dim'], "Channels of G's first conv.",
                     flag_values=FLAGS)
flags.DEFINE_integer('d_conv_dim', PAPER_MODEL['d_conv_dim'], "Channels of D's first conv.",
                     flag_values=FLAGS)
flags.DEFINE_integer('g_repeat_num', PAPER_MODEL['g_repeat_num'], 'Residual blocks in G.',
                     flag_values=FLAGS)
flags.DEFINE_integer('d_repeat_num', PAPER_MODEL['d_repeat_num'], 'Strided convs in D.',
                     flag_values=FLAGS)
flags.DEFINE_integer('c_dim', PAPER_MODEL['c_dim'], 'Attribute labels.',
                     flag_values=FLAGS)
flags.DEFINE_enum('g_output', _PAPER.model.g_output, ['image', 'mask'],
                  "G's output: image (the paper's) or mask (the demos' attention mask).",
                  flag_values=FLAGS)
flags.DEFINE_enum('g_upsample', _PAPER.model.g_upsample, ['transpose', 'resize'],
                  "G's up-sampling: transpose (the paper's) or resize (the demos').",
                  flag_values=FLAGS)
flags.DEFINE_bool('g_highpass', _PAPER.model.g_highpass,
                  "G's output heads also see the input's high frequencies (stargan_jax.main "
                  '--g_highpass).', flag_values=FLAGS)
flags.DEFINE_bool('g_head_input', _PAPER.model.g_head_input,
                  "G's output heads also see the input image itself (stargan_jax.main "
                  '--g_head_input).', flag_values=FLAGS)
flags.DEFINE_float('lambda_id', _PAPER.loss.lambda_id,
                   'Weight of the identity loss (> 0 adds its G pass to the G step, as the '
                   'demos train).', flag_values=FLAGS)
flags.DEFINE_float('d_cls_cutout', _PAPER.loss.d_cls_cutout,
                   "D's classification loss also on cut-out real images (> 0 adds a D pass to "
                   'the D step; stargan_jax.main --d_cls_cutout).', flag_values=FLAGS)
flags.DEFINE_string('conv_impl', 'auto', 'How convolutions are computed, G\'s and D\'s: '
                    f'{", ".join(conv.IMPLS)} (stargan_jax.models.conv).', flag_values=FLAGS)
flags.DEFINE_string('g_conv_impl', None, "G's convolutions (default: --conv_impl).",
                    flag_values=FLAGS)
flags.DEFINE_string('d_conv_impl', None, "D's convolutions (default: --conv_impl).",
                    flag_values=FLAGS)
flags.DEFINE_integer('n_critic', 5, 'D steps per G step.', flag_values=FLAGS)
flags.DEFINE_integer('schedule_iters', PAPER_SCHEDULE_ITERS,
                     'Iterations of the projected schedule.', flag_values=FLAGS)
flags.DEFINE_bool('pipelined', True, 'Also time iterations dispatched back to back.',
                  flag_values=FLAGS)
flags.DEFINE_integer('input_batches', 50, 'Batches to time the input pipeline over (0: skip).',
                     flag_values=FLAGS)
flags.DEFINE_string('data_dir', '~/tensorflow_datasets',
                    'Where the built-in dataset is (or is built) for the input timing.',
                    flag_values=FLAGS)
flags.DEFINE_integer('input_threads', 4, 'Input pipeline threads.', flag_values=FLAGS)
flags.DEFINE_integer('seed', 0, 'Seed of the parameters and the random batch.',
                     flag_values=FLAGS)


def settings() -> types.SimpleNamespace:
  """The parsed flags as a namespace, checked (``cli.UserError`` for a bad value)."""
  args = types.SimpleNamespace(**{name: FLAGS[name].value for name in FLAGS
                                  if FLAGS[name].name == name})
  if args.conv_dim is not None:
    args.g_conv_dim = args.d_conv_dim = args.conv_dim
  for name in ('image_size', 'batch_size', 'steps', 'g_conv_dim', 'd_conv_dim', 'g_repeat_num',
               'd_repeat_num', 'c_dim', 'n_critic'):
    cli.require(getattr(args, name) >= 1, f'--{name} must be >= 1, got {getattr(args, name)}')
  cli.require(args.image_size % 2**args.d_repeat_num == 0,
              f'--image_size={args.image_size} must be a multiple of 2**d_repeat_num='
              f'{2**args.d_repeat_num}')
  cli.require(args.lambda_id >= 0, f'--lambda_id must be >= 0, got {args.lambda_id}')
  cli.require(0 <= args.d_cls_cutout < 1,
              f'--d_cls_cutout must be in [0, 1), got {args.d_cls_cutout}')
  cli.require(args.devices >= 0 and args.peak_flops > 0,
              f'--devices must be >= 0 and --peak_flops > 0, got {args.devices}, '
              f'{args.peak_flops}')
  conv.check(args.conv_impl)
  for name in ('g_conv_impl', 'd_conv_impl'):
    if getattr(args, name) is None:
      setattr(args, name, args.conv_impl)
    elif getattr(args, name) not in conv.IMPLS:
      raise cli.UserError(f'--{name}={getattr(args, name)!r} is not a convolution form; '
                          f'valid names: {", ".join(conv.IMPLS)}')
  return args


def parse_args(argv) -> types.SimpleNamespace:
  """Parses a command line (without the program name) into the checked settings."""
  rest = cli.parse(FLAGS, list(argv), PROG)
  cli.require(not rest, f'unexpected arguments: {" ".join(rest)}')
  return settings()


def is_paper_model(args) -> bool:
  """Whether the reference's FLOP counts apply: the paper's sizes, G and G step."""
  return (all(getattr(args, k) == v for k, v in PAPER_MODEL.items()) and
          (args.g_output, args.g_upsample, args.g_highpass, args.g_head_input, args.lambda_id,
           args.d_cls_cutout) ==
          (_PAPER.model.g_output, _PAPER.model.g_upsample, _PAPER.model.g_highpass,
           _PAPER.model.g_head_input, _PAPER.loss.lambda_id, _PAPER.loss.d_cls_cutout))


def make_model(args) -> steps.StarGAN:
  cfg = config_lib.paper_config()
  cfg.data.image_size = args.image_size
  cfg.model = config_lib.ModelConfig(
      g_conv_dim=args.g_conv_dim, d_conv_dim=args.d_conv_dim, g_repeat_num=args.g_repeat_num,
      d_repeat_num=args.d_repeat_num, dtype=args.dtype, conv_impl=args.conv_impl,
      g_output=args.g_output, g_upsample=args.g_upsample, g_highpass=args.g_highpass,
      g_head_input=args.g_head_input)
  cfg.optim.n_critic = args.n_critic
  cfg.loss.lambda_id = args.lambda_id
  cfg.loss.d_cls_cutout = args.d_cls_cutout
  names = tuple(f'attr_{i}' for i in range(args.c_dim))
  layout = labels_lib.LabelLayout((labels_lib.DomainSpec('benchmark', names),))
  model = steps.StarGAN.from_config(cfg, layout)
  return dataclasses.replace(model, G=model.G.clone(conv_impl=args.g_conv_impl),
                             D=model.D.clone(conv_impl=args.d_conv_impl))


def select_devices(n: int):
  if n == 0:
    return None  # all devices of all processes
  if jax.process_count() > 1 and n != jax.device_count():
    raise cli.UserError(f'--devices={n}: a multi-process benchmark uses all '
                     f'{jax.device_count()} devices (give --devices=0)')
  if n > jax.device_count():
    raise cli.UserError(f'--devices={n} but only {jax.device_count()} {jax.devices()[0].platform} '
                     f'devices exist (simulate CPU devices with XLA_FLAGS='
                     f'--xla_force_host_platform_device_count={n})')
  return jax.devices()[:n]


def random_batch(args, batch_sharding) -> dict:
  """A global batch; every process holds (and passes) only its rows."""
  rng = np.random.default_rng(args.seed)
  b, s = args.batch_size, args.image_size
  image = rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32)
  label = (rng.random((b, args.c_dim)) < 0.5).astype(np.float32)
  p, n = jax.process_index(), jax.process_count()
  rows = slice(p * b // n, (p + 1) * b // n)
  return {k: jax.make_array_from_process_local_data(batch_sharding, v[rows])
          for k, v in (('image', image), ('label', label))}


def xla_flops(compiled) -> float | None:
  """XLA's FLOP count of a compiled program (per device), if the backend gives one."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # not every backend implements it
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost['flops']) if cost and 'flops' in cost else None


def g_step_with_d_grads(model: steps.StarGAN):
  """The reference's G step: also D's weight gradients (which it then discards).

  PyTorch's ``backward()`` fills ``.grad`` of every parameter that requires
  it, D's included. Here they are returned (summed), so XLA cannot drop them.
  Only for measuring what ``steps.StarGAN.g_step`` saves.
  """

  def step(state, batch, key):
    x_real, c_org = batch['image'], batch['label']
    c_trg, _ = model._targets(key, state.step, 0, c_org)
    g_org, g_trg = model.layout.embed(0, c_org, jnp), model.layout.embed(0, c_trg, jnp)

    def loss_fn(g_params, d_params):
      x_fake = model.G.apply(g_params, x_real, g_trg)
      out_src, out_cls = model.D.apply(d_params, x_fake)
      x_rec = model.G.apply(g_params, x_fake, g_org)
      return (-losses.critic_fake_loss(out_src) +
              model.lambda_rec * losses.reconstruction_loss(x_real, x_rec) +
              model.lambda_cls * model._cls_loss(out_cls, c_trg, 0))

    g_grads, d_grads = jax.grad(loss_fn, argnums=(0, 1))(state.g_params, state.d_params)
    return g_grads, sum(jnp.sum(g) for g in jax.tree_util.tree_leaves(d_grads))

  return jax.jit(step)


def _block(tree):
  jax.block_until_ready(tree)
  return tree


def time_steps(args, model, mesh) -> dict:
  init_fn, d_step, g_step = train.jit_steps(model, mesh)
  replicated, batch_sharding = train.shardings(mesh)
  init_key, step_key = jax.jit(
      lambda k: (jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)),
      out_shardings=replicated)(jax.random.key(args.seed))
  state = _block(init_fn(init_key))
  batch = random_batch(args, batch_sharding)

  out = {}
  compiled = {}
  for name, fn in (('d_step', d_step), ('g_step', g_step)):
    t0 = time.perf_counter()
    compiled[name] = fn.lower(state, batch, step_key, 0).compile()
    out[f'{name}_compile_seconds'] = time.perf_counter() - t0
  out['xla_flops_per_device'] = {k: xla_flops(c) for k, c in compiled.items()}

  # First calls (same executables as the AOT compile, so no recompilation) are
  # discarded; then each step is timed alone, blocked on.
  state, _ = _block(d_step(state, batch, step_key, 0))
  state, _ = _block(g_step(state, batch, step_key, 0))
  times = {'d_step': [], 'g_step': []}
  cpu = {'d_step': [], 'g_step': []}
  for _ in range(args.steps):
    for name, fn in (('d_step', d_step), ('g_step', g_step)):
      t0, c0 = time.perf_counter(), time.process_time()
      state, metrics = fn(state, batch, step_key, 0)
      _block((state, metrics))
      times[name].append(time.perf_counter() - t0)
      cpu[name].append(time.process_time() - c0)
  for name, ts in times.items():
    out[f'{name}_seconds'] = statistics.median(ts)
    out[f'{name}_seconds_min_max'] = [min(ts), max(ts)]
    # CPU time of this process (all its threads): on a shared machine, wall
    # time / CPU time shows how much of the machine the step actually got.
    out[f'{name}_process_cpu_seconds'] = statistics.median(cpu[name])

  if args.pipelined:
    # Trainer.train's pattern: no blocking inside the loop.
    dispatch = []
    t0 = time.perf_counter()
    for it in range(args.steps):
      t1 = time.perf_counter()
      state, metrics = d_step(state, batch, step_key, 0)
      dispatch.append(time.perf_counter() - t1)
      if (it + 1) % args.n_critic == 0:
        state, metrics = g_step(state, batch, step_key, 0)
    _block((state, metrics))
    total = time.perf_counter() - t0
    n_g = args.steps // args.n_critic
    out['pipelined_iterations'] = args.steps
    out['pipelined_g_steps'] = n_g
    out['pipelined_seconds'] = total
    # Per iteration of the schedule (a D step + 1/n_critic G step), correcting
    # for the whole number of G steps in the timed run.
    out['pipelined_iteration_seconds'] = (
        (total - n_g * out['g_step_seconds']) / args.steps + out['g_step_seconds'] / args.n_critic)
    out['dispatch_seconds'] = statistics.median(dispatch)
  return out


def input_images_per_second(args) -> dict:
  from stargan_jax import input_benchmark  # noqa: lazily: it defines absl flags
  from stargan_jax import input_pipeline
  dataset = input_pipeline.open_dataset('procedural', os.path.expanduser(args.data_dir),
                                        args.image_size)
  return input_benchmark.measure(dataset, args.batch_size, args.input_batches,
                                 warmup=min(5, args.input_batches),
                                 num_threads=args.input_threads)


def run(args) -> dict:
  devices = select_devices(args.devices)
  mesh = train.make_mesh(devices)
  n_dev = mesh.devices.size
  if args.batch_size % n_dev:
    raise cli.UserError(f'--batch_size={args.batch_size} must be divisible by the number of '
                     f'devices ({n_dev})')
  model = make_model(args)
  t = time_steps(args, model, mesh)

  b, scale = args.batch_size, (args.image_size / 128) ** 2
  paper = is_paper_model(args)
  xla = t['xla_flops_per_device']
  if paper or None in xla.values():
    basis = 'reference'
    ref_d, ref_g = REFERENCE_D_STEP_FLOPS_128 * scale, REFERENCE_G_STEP_FLOPS_128 * scale
  else:  # the reference's count is for the paper's model only
    basis = 'xla'
    ref_d, ref_g = xla['d_step'] * n_dev / b, xla['g_step'] * n_dev / b
  t_d, t_g = t['d_step_seconds'], t['g_step_seconds']
  t_it = t_d + t_g / args.n_critic
  it_flops = (ref_d + ref_g / args.n_critic) * b
  peak = args.peak_flops * n_dev
  dev = mesh.devices.flat[0]
  result = {
      'platform': dev.platform,
      'device_kind': dev.device_kind,
      'devices': n_dev,
      'processes': jax.process_count(),
      'jax_version': jax.__version__,
      'image_size': args.image_size,
      'batch_size': b,
      'dtype': args.dtype,
      'g_conv_dim': args.g_conv_dim,
      'd_conv_dim': args.d_conv_dim,
      'g_repeat_num': args.g_repeat_num,
      'd_repeat_num': args.d_repeat_num,
      'c_dim': args.c_dim,
      'conv_impl': args.conv_impl,
      # What the compiled steps used: 'auto' resolved for the mesh's platform.
      'g_conv_impl': conv.resolve(args.g_conv_impl, dev.platform),
      'd_conv_impl': conv.resolve(args.d_conv_impl, dev.platform),
      **(cpu_description() if dev.platform == 'cpu' else {}),
      'paper_model': paper,
      'n_critic': args.n_critic,
      'steps': args.steps,
      **t,
      'iteration_seconds': t_it,
      'd_step_images_per_second': b / t_d,
      'g_step_images_per_second': b / t_g,
      'images_per_second': b / t_it,
      'flops_per_image': {'d_step': ref_d, 'g_step': ref_g},
      'flops_basis': basis,
      'd_step_flops_per_second': ref_d * b / t_d,
      'g_step_flops_per_second': ref_g * b / t_g,
      'achieved_flops_per_second': it_flops / t_it,
      'peak_flops_per_device': args.peak_flops,
      'fraction_of_peak': it_flops / t_it / peak,
      'schedule_iterations': args.schedule_iters,
      'projected_schedule_hours': args.schedule_iters * t_it / 3600,
      'flops_note': (
          "flops_basis 'reference': the reference's per-image conv FLOPs, scaled by "
          '(size/128)^2 (its G step, 122.8 GFLOP/image at 128 px, includes D weight gradients, '
          "which ours does not compute); 'xla': XLA's count of our compiled steps, used when "
          'the model is not the paper\'s'),
      'load_average_1min': round(os.getloadavg()[0], 2),
      'cpu_count': os.cpu_count(),
  }
  if 'pipelined_iteration_seconds' in t:
    result['pipelined_images_per_second'] = b / t['pipelined_iteration_seconds']
    result['projected_schedule_hours_pipelined'] = (
        args.schedule_iters * t['pipelined_iteration_seconds'] / 3600)
  if args.input_batches > 0:
    measured = input_images_per_second(args)
    result['input_images_per_second'] = measured['images_per_s']
    result['input_pipeline'] = measured
  return result


def cpu_description() -> dict:
  """This machine's CPU: the model name and the kind ``conv.auto_impl`` reads (Linux)."""
  info = conv.read_cpuinfo()
  model = next((line.partition(':')[2].strip() for line in (info or '').splitlines()
                if line.startswith('model name')), None)
  return {'cpu_model': model, 'cpu_kind': conv.cpu_kind(info)}


@cli.command(FLAGS, PROG)
def main(rest) -> int:
  cli.require(not rest, f'unexpected arguments: {" ".join(rest)}')
  args = settings()
  distributed.initialize()  # a multi-host benchmark if JAX_COORDINATOR_ADDRESS etc. are set
  result = run(args)
  if jax.process_index() == 0:
    print(json.dumps(result), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
