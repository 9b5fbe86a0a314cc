"""The web demo, driven over HTTP as a browser would: translate's pixels, controls, bad input."""

import json
import os
import socket
import sys
import tempfile

import numpy as np
import pytest
from PIL import Image

import evaluate_testdata
from conftest import tiny_config
from stargan_jax import demo
from stargan_jax import procedural
from stargan_jax import sampling
from stargan_jax import train
from stargan_jax import translate

os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'  # no telemetry, no version check
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('GRADIO_TEMP_DIR', tempfile.mkdtemp(prefix='stargan-jax-test-gradio-'))
os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')

_RUNS = {}


def _checkpoint(tmp_path_factory, data_dir, datasets=('procedural',), ema=False):
  """An untrained checkpoint of the tiny config, in the trainer's format; once per session.

  No training step is compiled (the page and translate run the same G and D, trained or
  not). ``ema``: with an EMA of G that differs from G (half its weights).
  """
  key = (datasets, ema, data_dir)
  if key not in _RUNS:
    import jax
    workdir = str(tmp_path_factory.mktemp('ema_run' if ema else '_'.join(datasets)))
    cfg = tiny_config(data_dir, datasets=datasets)
    cfg.optim.g_ema_decay = 0.999 if ema else 0.0
    trainer = train.Trainer(cfg, workdir)
    state = trainer.init_state()
    if ema:
      state = state.replace(g_ema_params=jax.tree.map(lambda a: a * 0.5, state.g_params))
    trainer.checkpointer.save(1, state, trainer.meta, wait=True)
    trainer.checkpointer.close()
    _RUNS[key] = workdir
  return _RUNS[key]


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


class Page:
  """A started server and a Gradio client on it (the browser's API calls)."""

  def __init__(self, workdir, tmp, use_ema=True):
    from gradio_client import Client
    self.server = demo.serve(workdir, port=_free_port(), log=lambda m: None, use_ema=use_ema)
    self.url = self.server.url
    self.client = Client(self.url + '/', verbose=False, analytics_enabled=False,
                         download_files=str(tmp), httpx_kwargs={'timeout': 60})

  def call(self, api, *args):
    from gradio_client import handle_file
    args = [handle_file(a) if isinstance(a, os.PathLike) else a for a in args]
    return self.client.predict(*args, api_name=api)

  def config(self):
    import httpx
    return httpx.get(self.url + '/config', timeout=30).json()

  def components(self):
    return {c['id']: c for c in self.config()['components']}

  def close(self):
    self.client.close()
    self.server.close()


@pytest.fixture(scope='module')
def gradio():
  return pytest.importorskip('gradio')


@pytest.fixture(scope='module')
def attr_run(tmp_path_factory, data_dir):
  return _checkpoint(tmp_path_factory, data_dir)


@pytest.fixture(scope='module')
def attr_page(gradio, attr_run, tmp_path_factory):
  page = Page(attr_run, tmp_path_factory.mktemp('downloads'))
  yield page
  page.close()


def _pixels(path):
  with Image.open(path) as im:
    return np.asarray(im)


def _radio_choices(c):
  return [ch[1] if isinstance(ch, (list, tuple)) else ch for ch in c['props']['choices']]


def _controls(page):
  """[(type, label, choices or None, visible)] of the page's radios and checkboxes."""
  out = []
  for c in page.components().values():
    if c['type'] in ('radio', 'checkbox'):
      p = c['props']
      out.append((c['type'], p['label'], _radio_choices(c) if c['type'] == 'radio' else None,
                  p.get('visible', True)))
  return out


def _photo(path, rng_seed=0, size=(64, 48)):
  """A procedural image, cropped to a non-square photo (centre square and resize apply)."""
  image, _ = procedural.sample_attribute_example(np.random.default_rng(rng_seed), 64)
  Image.fromarray(image[:size[1], :size[0]]).save(path)
  return path


def test_translation_equals_translate_bit_for_bit(attr_page, attr_run, tmp_path):
  src = _photo(tmp_path / 'photo.png')
  seen, read, status, colour, frame, dark = attr_page.call('/read', src)
  d_read = read['procedural']
  assert set(d_read) == {'Red', 'Green', 'Blue', 'Frame', 'Dark'}
  # The controls start at what D reads.
  on = [n for n in ('Red', 'Green', 'Blue') if d_read[n] == 1.0]
  assert colour == (on[0] if len(on) == 1 else demo.KEEP)
  assert (frame, dark) == (d_read['Frame'] == 1.0, d_read['Dark'] == 1.0)
  np.testing.assert_array_equal(_pixels(seen), sampling.to_uint8(
      translate.load_image(str(src), 32)))  # the image as the model sees it
  assert '64x48: its centred square was used' in status

  frame_to = not frame
  out, info, status = attr_page.call('/translate', src, 'procedural', 'Blue', frame_to, dark)
  name = f'Blue1_Frame{int(frame_to)}_Dark{int(dark)}'
  assert os.path.basename(out) == f'photo-{name}.png' and 'Translated' in status
  cli = tmp_path / 'cli'
  attrs = f'Blue=1,Frame={int(frame_to)},Dark={int(dark)}'
  assert translate.main([f'--workdir={attr_run}', f'--input={src}', f'--out={cli}',
                         f'--attrs={attrs}']) == 0
  expected = _pixels(cli / f'photo-{name}.png')
  assert expected.shape == (32, 32, 3)
  np.testing.assert_array_equal(_pixels(out), expected)
  labels = json.loads((cli / 'labels.json').read_text())['images'][0]
  assert info['labels_read_by_D'] == labels['labels_read_by_D']
  assert info['target'] == labels['targets'][name]
  assert info['target']['procedural']['Red'] == 0.0  # a colour set clears the others

  grid, status = attr_page.call('/grid', src)
  assert translate.main([f'--workdir={attr_run}', f'--input={src}', f'--out={cli}',
                         '--all_domains', '--grid']) == 0
  np.testing.assert_array_equal(_pixels(grid), _pixels(cli / 'photo-grid.png'))
  assert _pixels(grid).shape == (32, 32 * 6, 3)
  assert 'Columns: input, Red, Green, Blue, Frame-flipped, Dark-flipped' in status


def test_attribute_controls_and_examples(attr_page):
  controls = _controls(attr_page)
  visible = [c[:3] for c in controls if c[3]]
  assert visible == [('radio', 'Red / Green / Blue: one at a time',
                      [demo.KEEP, 'Red', 'Green', 'Blue']),
                     ('checkbox', 'Frame', None), ('checkbox', 'Dark', None)]
  # The mask choice exists only for joint checkpoints.
  assert [c for c in controls if not c[3]] == [
      ('radio', 'Dataset whose labels are set (the mask vector)', ['procedural'], False)]
  # The run's dataset is prepared: its first test images are offered.
  (examples,) = [c for c in attr_page.components().values() if c['type'] == 'dataset']
  assert len(examples['props']['samples']) == demo.NUM_EXAMPLES


def test_outputs_older_than_an_hour_are_removed(attr_page, tmp_path):
  import time
  out_dir = attr_page.server.demo.out_dir
  old, recent = os.path.join(out_dir, 'old'), os.path.join(out_dir, 'recent')
  os.makedirs(old)
  os.makedirs(recent)
  os.utime(old, (time.time() - 7200,) * 2)
  out, _, _ = attr_page.call('/translate', _photo(tmp_path / 'p.png'), 'procedural', 'Red', True,
                             False)
  assert _pixels(out).shape == (32, 32, 3)
  assert not os.path.exists(old) and os.path.isdir(recent)
  assert os.path.isdir(os.path.join(out_dir, 'examples'))  # the test images stay


def test_categorical_checkpoint(gradio, data_dir, tmp_path_factory, tmp_path):
  run = evaluate_testdata.classes_checkpoint(tmp_path_factory, data_dir)
  page = Page(run, tmp_path / 'dl')
  try:
    assert [c[:3] for c in _controls(page) if c[3]] == [
        ('radio', 'Target class', list(procedural.CLASS_NAMES))]
    src = tmp_path / 'in.png'
    Image.fromarray(procedural.sample_class_example(np.random.default_rng(1), 32)[0]).save(src)
    _, read, _, cls = page.call('/read', src)
    assert cls == max(read['procedural_classes'], key=read['procedural_classes'].get)
    assert sum(read['procedural_classes'].values()) == 1.0  # one class read
    out, info, _ = page.call('/translate', src, 'procedural_classes', 'hstripes')
    assert info['target'] == {'procedural_classes': dict(solid=0.0, hstripes=1.0, vstripes=0.0,
                                                         checker=0.0)}
    assert translate.main([f'--workdir={run}', f'--input={src}', f'--out={tmp_path / "cli"}',
                           '--domain=hstripes']) == 0
    np.testing.assert_array_equal(_pixels(out), _pixels(tmp_path / 'cli' / 'in-hstripes.png'))
  finally:
    page.close()


def test_joint_checkpoint(gradio, data_dir, tmp_path_factory, tmp_path):
  run = _checkpoint(tmp_path_factory, data_dir, ('procedural', 'procedural_classes'))
  page = Page(run, tmp_path / 'dl')
  try:
    controls = _controls(page)
    assert [c[:3] for c in controls] == [
        ('radio', 'Dataset whose labels are set (the mask vector)',
         ['procedural', 'procedural_classes']),
        ('radio', 'Red / Green / Blue: one at a time (procedural)',
         [demo.KEEP, 'Red', 'Green', 'Blue']),
        ('checkbox', 'Frame', None), ('checkbox', 'Dark', None),
        ('radio', 'Target class (procedural_classes)', list(procedural.CLASS_NAMES))]
    assert controls[0][3]  # the mask choice is shown
    src = _photo(tmp_path / 'j.png', rng_seed=3)
    _, read, _, colour, frame, dark, cls = page.call('/read', src)
    assert set(read) == {'procedural', 'procedural_classes'}  # D reads both label sets
    cli = tmp_path / 'cli'
    # The mask on the categorical dataset: only its controls count.
    out, info, _ = page.call('/translate', src, 'procedural_classes', 'Red', True, True, 'checker')
    assert list(info['target']) == ['procedural_classes']
    assert translate.main([f'--workdir={run}', f'--input={src}', f'--out={cli}',
                           '--domain=checker']) == 0
    np.testing.assert_array_equal(_pixels(out), _pixels(cli / 'j-checker.png'))
    # The mask on the attribute dataset.
    out, info, _ = page.call('/translate', src, 'procedural', 'Green', frame, not dark, cls)
    name = f'Green1_Frame{int(frame)}_Dark{int(not dark)}'
    assert translate.main([f'--workdir={run}', f'--input={src}', f'--out={cli}',
                           f'--attrs=Green=1,Frame={int(frame)},Dark={int(not dark)}']) == 0
    np.testing.assert_array_equal(_pixels(out), _pixels(cli / f'j-{name}.png'))
    grid, _ = page.call('/grid', src)
    assert _pixels(grid).shape == (32, 32 * (1 + 5 + 4), 3)  # every domain of both datasets
  finally:
    page.close()


def test_bad_uploads_get_a_message_and_the_server_keeps_serving(attr_page, attr_run, tmp_path):
  from gradio_client.exceptions import AppError
  good = _photo(tmp_path / 'good.png', rng_seed=5)
  (tmp_path / 'notes.txt').write_text('not an image')
  (tmp_path / 'fake.jpg').write_bytes(b'\xff\xd8 this is not a JPEG')
  noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
  Image.fromarray(noise).save(tmp_path / 'full.png')
  data = (tmp_path / 'full.png').read_bytes()
  (tmp_path / 'truncated.png').write_bytes(data[:len(data) // 2])
  Image.fromarray(noise).save(tmp_path / 'full.jpg', quality=90)
  data = (tmp_path / 'full.jpg').read_bytes()
  (tmp_path / 'truncated.jpg').write_bytes(data[:len(data) // 3])
  Image.new('1', (10000, 10000)).save(tmp_path / 'huge.png')  # 10,000 x 10,000, 1 bit/pixel
  refused = {
      'notes.txt': 'notes.txt is not an image file that PIL can read',
      'fake.jpg': 'fake.jpg is not an image file that PIL can read',
      'truncated.png': 'truncated.png cannot be decoded, it is truncated or corrupt',
      'truncated.jpg': 'truncated.jpg cannot be decoded, it is truncated or corrupt',
      'huge.png': 'huge.png is 10000x10000 (100.0 megapixels), more than the 89.5 MP',
  }
  for name, message in refused.items():
    for api, args in (('/read', ()), ('/translate', ('procedural', 'Red', True, False)),
                      ('/grid', ())):
      with pytest.raises(AppError) as e:
        attr_page.call(api, tmp_path / name, *args)
      assert message in str(e.value), (name, api, str(e.value))
    out, _, status = attr_page.call('/translate', good, 'procedural', 'Red', True, False)
    assert _pixels(out).shape == (32, 32, 3) and status.startswith('Translated')
  with pytest.raises(AppError, match='no image: upload one'):
    attr_page.call('/translate', None, 'procedural', 'Red', True, False)

  # Converted, said so, and translated exactly as translate does.
  Image.fromarray(noise[..., 0]).save(tmp_path / 'grey.png')
  Image.fromarray(np.dstack([noise, noise[..., :1]])).save(tmp_path / 'rgba.png')
  Image.new('RGB', (1, 1), (200, 30, 30)).save(tmp_path / 'dot.png')
  Image.fromarray(noise).convert('P').save(tmp_path / 'palette.png')
  converted = {'grey.png': 'L image converted to RGB',
               'rgba.png': 'RGBA image converted to RGB (transparency dropped)',
               'dot.png': "1x1 is smaller than the model's 32 px: upscaled",
               'palette.png': 'P image converted to RGB'}
  for name, note in converted.items():
    out, _, status = attr_page.call('/translate', tmp_path / name, 'procedural', 'Green', False,
                                    False)
    assert note in status, status
    assert ('transparency' in status) == (name == 'rgba.png'), status
    assert translate.main([f'--workdir={attr_run}', f'--input={tmp_path / name}',
                           f'--out={tmp_path / "cli"}', '--attrs=Green=1,Frame=0,Dark=0']) == 0
    stem = name.split('.')[0]
    np.testing.assert_array_equal(_pixels(out),
                                  _pixels(tmp_path / 'cli' / f'{stem}-Green1_Frame0_Dark0.png'))
  # A name the checkpoint does not know (a hand-made API call) is refused by name.
  with pytest.raises(AppError, match="unknown choice 'Purple'"):
    attr_page.call('/translate', good, 'procedural', 'Purple', True, False)
  out, _, _ = attr_page.call('/translate', good, 'procedural', demo.KEEP, True, False)
  assert _pixels(out).shape == (32, 32, 3)


def test_ema_weights_when_the_checkpoint_has_them(gradio, data_dir, tmp_path_factory, tmp_path):
  from stargan_jax import inference
  run = _checkpoint(tmp_path_factory, data_dir, ema=True)
  src = _photo(tmp_path / 'e.png', rng_seed=7)
  page = Page(run, tmp_path / 'dl')  # the default: G's EMA
  try:
    (about,) = [c['props']['value'] for c in page.components().values()
                if c['type'] == 'markdown' and 'Checkpoint' in str(c['props'].get('value'))]
    assert "G's EMA weights" in about  # the page says which weights translate
    ema, _, _ = page.call('/translate', src, 'procedural', 'Red', True, True)
  finally:
    page.close()
  # --use_ema=false, without a server (the same Demo object the page calls).
  raw_demo = demo.Demo(inference.load_model(run, use_ema=False), str(tmp_path / 'raw'))
  assert 'raw G weights (--use_ema=false' in raw_demo.describe()
  raw, _, _ = raw_demo.translate(str(src), 'procedural', ['Red', True, True])
  for out, use_ema in ((ema, True), (raw, False)):
    cli = tmp_path / f'cli{use_ema}'
    assert translate.main([f'--workdir={run}', f'--input={src}', f'--out={cli}',
                           '--attrs=Red=1,Frame=1,Dark=1', f'--use_ema={use_ema}']) == 0
    np.testing.assert_array_equal(_pixels(out), _pixels(cli / 'e-Red1_Frame1_Dark1.png'))
  assert not np.array_equal(_pixels(ema), _pixels(raw))


def _one_error_line(err):
  lines = [ln for ln in err.strip().splitlines() if ln.strip()]
  assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in err, err
  return lines[0]


def test_command_line_errors(gradio, attr_run, tmp_path, capsys, monkeypatch):
  assert demo.main([f'--workdir={tmp_path / "nothing"}']) == 2
  assert 'no checkpoints in' in _one_error_line(capsys.readouterr().err)
  assert demo.main([f'--workdir={tmp_path}']) == 2  # exists, but holds no checkpoint
  assert f'no checkpoints in {tmp_path}' in _one_error_line(capsys.readouterr().err)
  assert demo.main([f'--workdir={attr_run}', '--step=999']) == 2
  assert 'no checkpoint for step 999' in _one_error_line(capsys.readouterr().err)
  assert demo.main([f'--workdir={attr_run}', '--port=70000']) == 2
  assert '--port must be in 1..65535' in _one_error_line(capsys.readouterr().err)
  with monkeypatch.context() as m:
    m.setitem(sys.modules, 'gradio', None)  # as if the extra were not installed
    assert demo.main([f'--workdir={attr_run}']) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "the demo needs Gradio" in line and "pip install 'stargan-jax[demo]'" in line


def test_command_line_serves_and_refuses_a_taken_port(gradio, attr_run, capsys, monkeypatch):
  import httpx
  served = []

  def one_request(server):  # instead of waiting for Ctrl+C
    served.append(httpx.get(server.url + '/config', timeout=30).json()['title'])

  monkeypatch.setattr(demo, '_wait', one_request)
  port = _free_port()
  assert demo.main([f'--workdir={attr_run}', f'--port={port}', '--examples=0']) == 0
  assert served == ['StarGAN (JAX): try a checkpoint']
  assert f'serving http://127.0.0.1:{port}/' in capsys.readouterr().out
  with socket.socket() as busy:
    busy.bind(('127.0.0.1', 0))
    busy.listen()
    port = busy.getsockname()[1]
    assert demo.main([f'--workdir={attr_run}', f'--port={port}', '--examples=0']) == 2
  line = _one_error_line(capsys.readouterr().err)
  assert f'cannot serve on --host=127.0.0.1 --port={port}' in line
