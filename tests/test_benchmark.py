"""The benchmark's JSON, and the step doing less work than the reference's.

* ``python -m stargan_jax.benchmark`` (its ``main``) at 32 px, conv_dim 8,
  2 steps: every reported field present and consistent with the others.
* The G step computes no D weight gradients: XLA's FLOP count of our G step
  is below that of the same step that also returns D's weight gradients (as
  PyTorch's ``backward()`` in the reference computes them), by about D's
  forward convolutions.
* ``models.patches_conv`` (D's strided convs on CPU) equals XLA's
  convolution, and so do its first and second derivatives (the gradient
  penalty's).
* ``--conv_impl`` / ``--g_conv_impl`` / ``--d_conv_impl`` reach the networks;
  bad flags are one ``error:`` line; the reference's timing
  (``experiments.reference_speed``), the CPU table (``experiments.cpu_speed``)
  and the GPU check (``experiments.gpu_check --tiny``) run.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stargan_jax import benchmark
from stargan_jax import cli
from stargan_jax import models
from stargan_jax import train
from stargan_jax.models import conv

TINY = ['--image_size', '32', '--conv_dim', '8', '--g_repeat_num', '1', '--d_repeat_num', '2',
        '--batch_size', '8', '--steps', '2', '--n_critic', '2']


def test_benchmark_cli_json(data_dir, capsys):
  assert benchmark.main(TINY + ['--data_dir', data_dir, '--input_batches', '3',
                                '--peak_flops', '1e12']) == 0
  lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith('{')]
  assert len(lines) == 1
  r = json.loads(lines[0])
  assert (r['platform'], r['devices'], r['processes']) == ('cpu', 1, 1)
  assert (r['image_size'], r['batch_size'], r['dtype'], r['steps']) == (32, 8, 'float32', 2)
  assert r['g_conv_dim'] == r['d_conv_dim'] == 8 and not r['paper_model']
  # What the steps were compiled with: 'auto' resolved for the CPU this runs on.
  assert r['conv_impl'] == 'auto'
  assert r['g_conv_impl'] == r['d_conv_impl'] == conv.auto_impl('cpu', conv.read_cpuinfo())
  assert r['cpu_kind'] in ('avx512f', 'avx2', 'other')
  for k in ('d_step_seconds', 'g_step_seconds', 'd_step_compile_seconds',
            'g_step_compile_seconds', 'pipelined_iteration_seconds', 'dispatch_seconds',
            'd_step_process_cpu_seconds', 'input_images_per_second'):
    assert r[k] > 0, k
  lo, hi = r['d_step_seconds_min_max']
  assert lo <= r['d_step_seconds'] <= hi
  t_it = r['d_step_seconds'] + r['g_step_seconds'] / 2
  assert r['iteration_seconds'] == pytest.approx(t_it)
  assert r['images_per_second'] == pytest.approx(8 / t_it)
  assert r['d_step_images_per_second'] == pytest.approx(8 / r['d_step_seconds'])
  # Not the paper's model: FLOPs are XLA's count of our steps, per image.
  assert r['flops_basis'] == 'xla'
  xla = r['xla_flops_per_device']
  assert 0 < xla['d_step'] < xla['g_step']
  assert r['flops_per_image']['d_step'] == pytest.approx(xla['d_step'] / 8)
  achieved = (xla['d_step'] + xla['g_step'] / 2) / t_it
  assert r['achieved_flops_per_second'] == pytest.approx(achieved)
  assert r['fraction_of_peak'] == pytest.approx(achieved / 1e12)
  assert r['projected_schedule_hours'] == pytest.approx(200_000 * t_it / 3600)
  assert r['input_pipeline']['batch_shape'] == [8, 32, 32, 3]


def test_benchmark_reference_flops_for_paper_model():
  args = benchmark.parse_args(['--image_size', '64'])
  assert benchmark.PAPER_MODEL == {k: getattr(args, k) for k in benchmark.PAPER_MODEL}
  # The reference's count at 64 px: 9.07 and 30.7 GFLOP per image.
  assert benchmark.REFERENCE_D_STEP_FLOPS_128 / 4 == pytest.approx(9.07e9, rel=1e-3)
  assert benchmark.REFERENCE_G_STEP_FLOPS_128 / 4 == pytest.approx(30.7e9, rel=1e-3)


def test_benchmark_bad_flags(capsys):
  with pytest.raises(cli.UserError):
    benchmark.parse_args(['--image_size', '48'])  # not a multiple of 2**6
  with pytest.raises(cli.UserError, match='--devices=3'):
    benchmark.select_devices(3)
  for flag, message in (('--conv_impl=fast', "--conv_impl='fast' is not"),
                        ('--d_conv_impl=fast', "--d_conv_impl='fast' is not"),
                        ('--image_size=48', 'multiple of 2**d_repeat_num'),
                        ('--no_such_flag=1', 'no_such_flag')):
    assert benchmark.main([flag]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and message in err, err
  assert 'auto, xla, patches, winograd' in benchmark.FLAGS['conv_impl'].help


def test_benchmark_conv_impl_per_network():
  model = benchmark.make_model(benchmark.parse_args(TINY + ['--conv_impl=xla']))
  assert model.G.conv_impl == model.D.conv_impl == 'xla'
  model = benchmark.make_model(benchmark.parse_args(
      TINY + ['--conv_impl=xla', '--d_conv_impl=patches']))
  assert (model.G.conv_impl, model.D.conv_impl) == ('xla', 'patches')
  model = benchmark.make_model(benchmark.parse_args(TINY + ['--g_conv_impl=winograd']))
  assert (model.G.conv_impl, model.D.conv_impl) == ('winograd', 'auto')
  # Each call starts from the defaults.
  assert benchmark.parse_args(TINY).d_conv_impl == 'auto'


def test_benchmark_times_the_demos_g_and_g_step():
  demo = ['--g_output=mask', '--g_upsample=resize', '--lambda_id=5']
  model = benchmark.make_model(benchmark.parse_args(TINY + demo))
  assert (model.G.output, model.G.upsample, model.lambda_id) == ('mask', 'resize', 5.0)
  paper = benchmark.make_model(benchmark.parse_args(TINY))
  assert (paper.G.output, paper.G.upsample, paper.lambda_id) == ('image', 'transpose', 0.0)
  # The reference's FLOP counts are the paper's G step's only.
  assert benchmark.is_paper_model(benchmark.parse_args([]))
  for flag in demo:
    assert not benchmark.is_paper_model(benchmark.parse_args([flag]))
  with pytest.raises(cli.UserError, match='--lambda_id must be >= 0'):
    benchmark.parse_args(TINY + ['--lambda_id=-1'])
  cut = benchmark.make_model(benchmark.parse_args(TINY + ['--d_cls_cutout=0.25', '--g_highpass',
                                                          '--g_head_input']))
  assert (cut.d_cls_cutout, paper.d_cls_cutout) == (0.25, 0.0)
  assert (cut.G.highpass, paper.G.highpass) == (True, False)
  assert (cut.G.head_input, paper.G.head_input) == (True, False)
  for flag in ('--d_cls_cutout=0.25', '--g_highpass', '--g_head_input'):
    assert not benchmark.is_paper_model(benchmark.parse_args([flag]))
  with pytest.raises(cli.UserError, match=r'--d_cls_cutout must be in \[0, 1\)'):
    benchmark.parse_args(TINY + ['--d_cls_cutout=1'])


def test_g_step_computes_no_d_weight_gradients():
  args = benchmark.parse_args(TINY)
  model = benchmark.make_model(args)
  _, d_step, g_step = train.jit_steps(model, train.make_mesh(jax.devices()[:1]))
  state = jax.eval_shape(model.init, jax.random.key(0))
  batch = {'image': jax.ShapeDtypeStruct((8, 32, 32, 3), jnp.float32),
           'label': jax.ShapeDtypeStruct((8, 5), jnp.float32)}
  key = jax.eval_shape(lambda: jax.random.key(0))
  # XLA's count on the lowered (unoptimised) programs: nothing is compiled.
  flops = lambda lowered: lowered.cost_analysis()['flops']
  ours = flops(g_step.lower(state, batch, key, 0))
  with_d = flops(benchmark.g_step_with_d_grads(model).lower(state, batch, key))
  d_fwd = flops(jax.jit(model.D.apply).lower(state.d_params, batch['image']))
  saved = with_d - ours
  # D's weight gradients cost about D's forward convolutions (measured 0.78x
  # at this size; 1.07 GFLOP/image = 0.9% of the G step at 128 px).
  assert 0.5 * d_fwd < saved < 1.5 * d_fwd, (ours, with_d, d_fwd)


@pytest.mark.parametrize('shape,kernel,stride,padding', [
    ((2, 16, 16, 5), (4, 4, 5, 7), 2, ((1, 1), (1, 1))),  # D's strided convs
    ((1, 9, 9, 3), (3, 3, 3, 4), 2, ((1, 2), (0, 1))),
    ((2, 4, 4, 8), (4, 4, 8, 3), 1, 'VALID'),
])
def test_patches_conv_equals_xla_conv(shape, kernel, stride, padding):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  w = jnp.asarray(rng.normal(size=kernel), jnp.float32)
  ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride, stride), padding,
                                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  new = lambda x, w: models.patches_conv(x, w, (stride, stride), padding)

  def second(conv):  # the gradient penalty's shape of derivative
    return jax.grad(lambda w: jnp.sum(
        jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, w))))(x) ** 2))(w)

  for f in (lambda c: c(x, w), lambda c: jax.grad(lambda w: jnp.sum(jnp.sin(c(x, w))))(w),
            second):
    a, b = np.asarray(jax.jit(lambda: f(ref))()), np.asarray(jax.jit(lambda: f(new))())
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, atol=2e-5 * np.abs(a).max())


def test_discriminator_uses_patches_conv_on_cpu():
  d = models.Discriminator(32, 8, 5, 2)
  params = jax.eval_shape(lambda: models.init_params(d, jax.random.key(0), 32))
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  jaxpr = str(jax.make_jaxpr(lambda p, x: d.apply(p, x))(params, x))
  # The 2 strided convs are matmuls; only conv_src and conv_cls remain convolutions
  # (on every CPU kind: 'auto' is 'patches' or 'winograd' there).
  assert jaxpr.count('conv_general_dilated') == 2
  assert jaxpr.count('dot_general') == 2
  xla = str(jax.make_jaxpr(lambda p, x: d.clone(conv_impl='xla').apply(p, x))(params, x))
  assert xla.count('conv_general_dilated') == 4 and xla.count('dot_general') == 0
  with pytest.raises(ValueError, match='lhs_dilation'):
    models.patches_conv(jnp.zeros((1, 8, 8, 3)), jnp.zeros((4, 4, 3, 2)), (1, 1), 'VALID',
                        lhs_dilation=(2, 2))


def test_reference_speed_times_the_torch_steps_and_compares(tmp_path):
  pytest.importorskip('torch')
  from experiments import reference_speed
  ours = {'platform': 'cpu', 'image_size': 32, 'batch_size': 2, 'd_step_seconds': 0.5,
          'g_step_seconds': 1.0}
  path = tmp_path / 'bench.json'
  path.write_text('some log line\n' + json.dumps(ours) + '\n')
  args = reference_speed.parse_args(['--image_size=32', '--batch_size=2', '--steps=1',
                                     '--conv_dim=4', '--g_repeat_num=1', '--d_repeat_num=5',
                                     f'--compare={path}'])
  assert (args.image_size, args.batch_size, args.conv_dim, args.compare) == (32, 2, 4, str(path))
  r = reference_speed.run(args)
  assert r['d_step_seconds'] > 0 and r['g_step_seconds'] > 0
  assert r['speedup_d_step'] == pytest.approx(r['d_step_seconds'] / 0.5)
  assert r['speedup_d_plus_g'] == pytest.approx((r['d_step_seconds'] + r['g_step_seconds']) / 1.5)
  ours['batch_size'] = 16
  path.write_text(json.dumps(ours))
  with pytest.raises(cli.UserError, match='batch_size is 16 there but 2 here'):
    reference_speed.run(args)
  with pytest.raises(cli.UserError, match='multiple of 2'):
    reference_speed.parse_args(['--image_size=48'])
  assert reference_speed.main(['--steps=0']) == 2


def test_cpu_speed_table(tmp_path, monkeypatch, capsys):
  # The script's loop, ratios and files, with the measurements stubbed (the
  # benchmark and the reference timing are tested above).
  from experiments import cpu_speed
  timed = []

  def ours(size, model, impl, batch, steps):
    timed.append((size, impl))
    d = {'xla': 2.0, 'patches': 1.0, 'winograd': 1.0}[conv.resolve(impl, 'cpu')]
    return {'d_step_seconds': d, 'g_step_seconds': 5 * d, 'load_average_1min': 0.5,
            'g_conv_impl': conv.resolve(impl, 'cpu'), 'd_conv_impl': conv.resolve(impl, 'cpu')}

  ref = lambda size, model, batch, steps: {'d_step_seconds': 4.0, 'g_step_seconds': 20.0,
                                           'load_average_1min': 0.5}
  monkeypatch.setattr(cpu_speed, 'measure_ours', ours)
  monkeypatch.setattr(cpu_speed, 'measure_reference', ref)
  out = tmp_path / 'speed'
  assert cpu_speed.main([f'--out={out}', '--steps=1']) == 0
  auto = conv.resolve('auto', 'cpu')
  # Each distinct program once: 'auto' is one of the named forms.
  assert len(timed) == len(set(timed)) == 3 + 2 and (32, 'auto') in timed
  assert (32, auto) not in timed and (128, 'xla') in timed
  record = json.loads((out.with_suffix('.json')).read_text())
  assert record['cpu']['auto'] == auto and record['cpu']['cpu_kind'] in ('avx512f', 'avx2',
                                                                          'other')
  rows = {(r['size'], r['implementation']): r for r in record['rows']}
  a = rows[(128, 'ours, auto')]
  assert a['d_plus_g'] == 6.0 and a['iteration'] == 2.0
  assert a['reference_over_ours_d_plus_g'] == pytest.approx(24 / 6)
  assert a['xla_over_this_d_plus_g'] == pytest.approx(2.0)
  assert rows[(32, f'ours, {auto}')]['same_as'] == 'auto'
  table = out.with_suffix('.md').read_text()
  assert '| 128 | paper | reference (PyTorch) |' in table and 'auto = ' in table
  assert table in capsys.readouterr().out
  assert cpu_speed.main(['--sizes=64']) == 2
  assert cpu_speed.main(['--impls_32=fast']) == 2


def test_cpu_speed_reference_subprocess():
  pytest.importorskip('torch')
  from experiments import cpu_speed
  r = cpu_speed.measure_reference(32, cpu_speed.TINY_MODEL[1], 2, 1)
  assert r['d_step_seconds'] > 0 and r['g_step_seconds'] > 0 and r['image_size'] == 32


def test_gpu_check_needs_a_gpu_or_tiny(tmp_path, capsys):
  from experiments import gpu_check
  assert gpu_check.main([]) == 2
  err = capsys.readouterr().err
  assert 'no GPU' in err and 'jax[cuda12]' in err and '--tiny' in err
  out = tmp_path / 'gpu.jsonl'
  assert gpu_check.main(['--tiny', '--dtypes=float32', '--batch_sizes=2', '--cache_dir=',
                         '--d_conv_impls=patches', f'--out={out}']) == 0
  lines = [json.loads(l) for l in out.read_text().splitlines()]
  assert len(lines) == 1 and lines[0]['d_conv_impl'] == 'patches'
  assert lines[0]['projected_schedule_hours'] > 0
  assert json.dumps(lines[0]) in capsys.readouterr().out
  assert gpu_check.main(['--tiny', '--d_conv_impls=fast']) == 2
