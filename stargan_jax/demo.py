"""A web page to try a trained checkpoint: ``python -m stargan_jax.demo --workdir=RUN``.

  python -m stargan_jax.demo --workdir=RUN [--step=N] [--port=7860] [--host=127.0.0.1]

Starts a local Gradio app (the optional extra: ``pip install 'stargan-jax[demo]'``)
on any checkpoint this project writes or imports; everything (labels, image
size, crop) comes from the checkpoint's meta, as for ``translate``:

* an image input: an upload, or one of the run's dataset test images when
  that dataset is prepared; it is prepared by ``translate.load_image`` (the
  largest centred square, EXIF orientation, bilinear resize to the model's
  size), so the page and the command line see the same pixels;
* the labels the checkpoint's discriminator reads from it, shown, and set as
  the initial state of the controls, which are built from the label layout:
  a choice among mutually exclusive attributes (hair colours; setting one
  clears the others, as ``translate --attrs`` does), a toggle per other
  binary attribute, a choice of class for categorical datasets, and for joint
  models the dataset whose labels are set (the mask vector);
* the translation at the model's size and, on request, the test grid's row
  (input, then every target domain), both PNG files, downloadable;
* G's EMA weights when the checkpoint has them (``LoadedModel.generator_params``, as
  ``translate``; ``--use_ema=false``: the raw G), otherwise G's.

Targets are built by ``translate.build_targets`` from the controls, and G runs
on a batch of one image, as ``translate`` runs it on a single input, so a
translation on the page equals ``translate``'s of the same image alone for the
same targets, bit for bit. G and D are compiled once, for one image at the
model's size, before the server starts. Uploads that are not images, truncated
files and images over PIL's decompression-bomb limit get a message on the page;
grey-scale, RGBA and palette images are converted to RGB and tiny images
upscaled, as ``translate`` does, with a note. The server keeps serving after any
of them.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from typing import Any

import numpy as np
from absl import flags
from PIL import Image

from stargan_jax import cli
from stargan_jax import inference
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib
from stargan_jax import sampling
from stargan_jax import translate

INSTALL_HINT = "pip install 'stargan-jax[demo]' (in a clone: pip install -e '.[demo]')"
KEEP = "keep D's reading"
# PIL's own decompression-bomb threshold (it warns above it, refuses above twice it):
# a 10,000 x 10,000 image (100 MP, 300 MB decoded) is refused before it is decoded.
MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
NUM_EXAMPLES = 8
# The 32-128 px images are shown enlarged, with square pixels.
CSS = ('.pixelated img { image-rendering: pixelated; width: 100%; height: 100%; '
       'object-fit: contain; }')


class InputError(ValueError):
  """An upload the page cannot translate; the message is shown to the user."""


@dataclasses.dataclass
class Control:
  """One control of the page: the dataset it labels, its kind and its label names."""

  dataset: int
  kind: str  # 'exclusive' (a radio), 'attribute' (a checkbox), 'class' (a radio)
  names: tuple[str, ...]
  label: str

  @property
  def choices(self) -> list[str]:
    return [KEEP, *self.names] if self.kind == 'exclusive' else list(self.names)


def build_controls(layout: labels_lib.LabelLayout) -> list[Control]:
  """The page's controls, in page order, from the checkpoint's label layout."""
  out = []
  for j, spec in enumerate(layout.specs):
    where = f' ({spec.dataset})' if layout.num_datasets > 1 else ''
    if spec.kind == labels_lib.CATEGORICAL:
      out.append(Control(j, 'class', spec.names, f'Target class{where}'))
      continue
    if spec.exclusive:
      out.append(Control(j, 'exclusive', spec.exclusive,
                         f'{" / ".join(spec.exclusive)}: one at a time{where}'))
    for name in spec.names:
      if name not in spec.exclusive:
        out.append(Control(j, 'attribute', (name,), name))
  return out


def target_from_controls(layout: labels_lib.LabelLayout, controls: list[Control], values: list,
                         dataset: int) -> translate.Target:
  """The target the controls of one dataset ask for, built by ``translate.build_targets``.

  Attributes become ``--attrs``: the chosen exclusive attribute (unless kept as
  D reads it) and every toggle; a class becomes ``--domain``.
  """
  changes = []
  for ctl, value in zip(controls, values):
    if ctl.dataset != dataset:
      continue
    if ctl.kind == 'class':
      if value not in ctl.names:
        raise InputError(f'unknown class {value!r}; the classes are: {", ".join(ctl.names)}')
      return _owned(translate.build_targets(layout, domain=value)[0], layout, dataset)
    if ctl.kind == 'exclusive':
      if value != KEEP:
        if value not in ctl.names:
          raise InputError(f'unknown choice {value!r}; the choices are: '
                           f'{", ".join(ctl.choices)}')
        changes.append(f'{value}=1')
    else:
      changes.append(f'{ctl.names[0]}={int(bool(value))}')
  if not changes:  # only exclusive attributes, all kept: the labels as D read them
    return translate.Target('as_read', dataset, lambda c: np.array(c, np.float32))
  return _owned(translate.build_targets(layout, attrs=','.join(changes))[0], layout, dataset)


def _owned(target: translate.Target, layout: labels_lib.LabelLayout, dataset: int):
  # build_targets finds a name in the first dataset that has it; two datasets of a joint
  # model that share a label name cannot be told apart by name.
  if target.dataset != dataset:
    raise InputError(f'{target.name}: these label names belong to dataset '
                     f'{layout.specs[target.dataset].dataset!r} too; cannot set them on '
                     f'{layout.specs[dataset].dataset!r} by name')
  return target


class Demo:
  """What the page does, without Gradio: read an upload, translate it, build a grid row."""

  def __init__(self, loaded: inference.LoadedModel, out_dir: str | None = None):
    self.loaded = loaded
    self.layout = loaded.layout
    self.size = loaded.image_size
    self.crop = loaded.meta.get('crop_size')
    # The weights translate and evaluate use: G's EMA when the checkpoint has one
    # (unless loaded with use_ema=False), else the raw G.
    self.g_params = loaded.generator_params
    self.uses_ema = loaded.generator_weights == 'ema'
    self.controls = build_controls(self.layout)
    self.out_dir = out_dir or tempfile.mkdtemp(prefix='stargan-jax-demo-')
    os.makedirs(self.out_dir, exist_ok=True)
    self.compile_s = None

  # -- set up ----------------------------------------------------------------

  def warm_up(self) -> float:
    """Compiles G and D for one image at the model's size (the only shape used)."""
    start = time.perf_counter()
    x = np.zeros((1, self.size, self.size, 3), np.float32)
    self.loaded.classify_np(x)
    self.loaded.translate_np(self.g_params, x, np.zeros((1, self.layout.g_dim), np.float32))
    self.compile_s = time.perf_counter() - start
    return self.compile_s

  def write_examples(self, limit: int = NUM_EXAMPLES) -> tuple[list[str], list[str]]:
    """(PNG files, notes) of the first test images of each prepared dataset.

    A dataset that is not prepared (or labels differently) is noted and skipped;
    nothing is downloaded or built here.
    """
    cfg = self.loaded.cfg
    files, notes = [], []
    per_dataset = max(1, limit // self.layout.num_datasets)
    for j, spec in enumerate(self.layout.specs):
      attrs = spec.names if spec.kind == labels_lib.ATTRIBUTES else None
      try:
        ds = input_pipeline.open_dataset(spec.dataset, cfg.data.data_dir, self.size, attrs=attrs,
                                         prepare=False, manual_dir=cfg.data.manual_dir)
        if ds.spec.names != spec.names or 'test' not in ds.sources:
          raise ValueError(f'it labels {list(ds.spec.names)} or has no test split')
        test = ds.sources['test']
        for i in range(min(per_dataset, len(test))):
          ex = ds.example(test[i])
          path = os.path.join(self.out_dir, 'examples', f'{translate._safe(spec.dataset)}-{i}.png')
          sampling.save_png(ex['image'], path)
          files.append(path)
      except Exception as e:  # any failure here only costs the examples
        notes.append(f'no test images of {spec.dataset!r} ({type(e).__name__}: {e})')
    return files, notes

  # -- requests --------------------------------------------------------------

  def prepare(self, path: str | None, name: str | None = None) -> tuple[np.ndarray, list[str]]:
    """An uploaded file -> (1 x S x S x 3 in [-1, 1], notes), or InputError saying why not."""
    if not path:
      raise InputError('no image: upload one, or pick a test image below it')
    name = name or os.path.basename(path)
    notes = []
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        with Image.open(path) as im:  # the header only
          w, h, mode = im.width, im.height, im.mode
          alpha = 'A' in mode or 'transparency' in im.info
    except Image.DecompressionBombError as e:
      raise InputError(f'{name} is too large to decode here ({e}); downscale it first') from e
    except Exception as e:  # UnidentifiedImageError, or a header PIL cannot parse
      raise InputError(f'{name} is not an image file that PIL can read (JPEG, PNG, BMP, GIF, '
                       f'WebP, TIFF, ...): {type(e).__name__}') from e
    if w * h > MAX_PIXELS:
      raise InputError(f'{name} is {w}x{h} ({w * h / 1e6:.1f} megapixels), more than the '
                       f'{MAX_PIXELS / 1e6:.1f} MP this page decodes (PIL\'s decompression-bomb '
                       f'limit); downscale it first')
    if mode != 'RGB':
      notes.append(f'{mode} image converted to RGB' +
                   (' (transparency dropped)' if alpha else ''))
    if min(w, h) < self.size:
      notes.append(f'{w}x{h} is smaller than the model\'s {self.size} px: upscaled')
    try:
      x = translate.load_image(path, self.size, self.crop,
                               warn=lambda m: notes.append(m.replace(path, name)))
    except translate.UnreadableImageError as e:
      cause = e.__cause__ or e
      raise InputError(f'{name} cannot be decoded, it is truncated or corrupt '
                       f'({type(cause).__name__}: {cause})') from e
    if w != h:
      notes.append(f'{w}x{h}: its centred square was used')
    return x[None], notes

  def read(self, path: str | None, name: str | None = None):
    """(image as the model sees it, what D read {dataset: {name: 0/1}}, estimated, notes)."""
    x, notes = self.prepare(path, name)
    estimated = translate.estimate_labels(self.loaded, x)
    read = {s.dataset: dict(zip(s.names, estimated[j][0].tolist()))
            for j, s in enumerate(self.layout.specs)}
    return x, read, estimated, notes

  def initial_values(self, estimated: list[np.ndarray]) -> list[Any]:
    """The controls set to what D read (so that translating changes nothing)."""
    values = []
    for ctl in self.controls:
      spec = self.layout.specs[ctl.dataset]
      read = dict(zip(spec.names, estimated[ctl.dataset][0].tolist()))
      if ctl.kind == 'class':
        values.append(spec.names[int(np.argmax(estimated[ctl.dataset][0]))])
      elif ctl.kind == 'exclusive':
        on = [n for n in ctl.names if read[n] == 1.0]
        values.append(on[0] if len(on) == 1 else KEEP)
      else:
        values.append(read[ctl.names[0]] == 1.0)
    return values

  def dataset_index(self, choice: str | None) -> int:
    if self.layout.num_datasets == 1 or choice is None:
      return 0
    names = [s.dataset for s in self.layout.specs]
    if choice not in names:
      raise InputError(f'unknown dataset {choice!r}; this checkpoint\'s datasets are: '
                       f'{", ".join(names)}')
    return names.index(choice)

  def _apply(self, x: np.ndarray, dataset: int, c_trg: np.ndarray) -> np.ndarray:
    return self.loaded.translate_np(self.g_params, x, self.layout.embed(dataset, c_trg))

  def _out_path(self, name: str, suffix: str) -> str:
    """A new file in a folder of its own (its download name); folders older than an hour go."""
    now = time.time()
    for entry in os.scandir(self.out_dir):
      if entry.name != 'examples' and entry.is_dir() and now - entry.stat().st_mtime > 3600:
        shutil.rmtree(entry.path, ignore_errors=True)
    stem = translate._safe(os.path.splitext(os.path.basename(name))[0]) or 'image'
    return os.path.join(self.out_dir, uuid.uuid4().hex[:12],
                        f'{stem}-{translate._safe(suffix)}.png')

  def translate(self, path: str | None, dataset_choice: str | None, values: list,
                name: str | None = None) -> tuple[str, dict, str]:
    """(PNG of the translation, {labels read, target}, status line)."""
    start = time.perf_counter()
    x, read, estimated, notes = self.read(path, name)
    j = self.dataset_index(dataset_choice)
    target = target_from_controls(self.layout, self.controls, values, j)
    c_trg = target.make(estimated[j])
    y = self._apply(x, j, c_trg)
    out = sampling.save_png(sampling.to_uint8(y[0]), self._out_path(name or path, target.name))
    spec = self.layout.specs[j]
    info = {'labels_read_by_D': read,
            'target': {spec.dataset: dict(zip(spec.names, c_trg[0].tolist()))},
            'target_name': target.name}
    took = time.perf_counter() - start
    return out, info, self._status(f'Translated to {target.name} in {took:.2f} s', notes)

  def grid_row(self, path: str | None, name: str | None = None) -> tuple[str, str]:
    """(PNG of the test grid's row: input, then every target domain, status line)."""
    start = time.perf_counter()
    x, _, estimated, notes = self.read(path, name)
    targets = translate.build_targets(self.layout, all_domains=True)
    cols = [x] + [self._apply(x, t.dataset, t.make(estimated[t.dataset])) for t in targets]
    out = sampling.save_png(sampling.grid(cols), self._out_path(name or path, 'grid'))
    took = time.perf_counter() - start
    return out, self._status(f'Columns: input, {", ".join(t.name for t in targets)} '
                             f'({len(targets)} translations in {took:.2f} s)', notes)

  def _status(self, line: str, notes: list[str]) -> str:
    return line + ''.join(f'\n* {n}' for n in notes)

  def describe(self) -> str:
    m = self.loaded
    labels = '; '.join(f'{s.dataset}: {s.kind} {", ".join(s.names)}' for s in self.layout.specs)
    if self.uses_ema:
      weights = "G's EMA weights"
    elif m.g_ema_params is not None:
      weights = "raw G weights (--use_ema=false; the checkpoint has an EMA)"
    else:
      weights = 'G weights (the checkpoint has no EMA)'
    return (f'Checkpoint `{m.run_dir}` step {m.step}, {self.size} px, {weights}. Labels: {labels}. '
            f'The controls start at what the discriminator reads from the image.')


# -- the page ---------------------------------------------------------------------

def _payload_path(payload) -> tuple[str | None, str | None]:
  """(server-side file, original name) of an Image component's raw value (a FileData dict).

  Gradio has already checked that the file was uploaded (a path elsewhere on the
  server is refused before this runs).
  """
  if payload is None:
    return None, None
  if isinstance(payload, dict):
    path = payload.get('path')
    if not path and str(payload.get('url') or '').startswith('data:'):
      raise InputError('inline (data URL) images are not accepted; upload the file')
    return path, payload.get('orig_name') or (os.path.basename(path) if path else None)
  raise InputError(f'unexpected image value {type(payload).__name__}')


def build_app(demo: Demo, examples: list[str] | None = None):
  """The Gradio Blocks of the page (not launched)."""
  import gradio as gr

  layout = demo.layout
  title = 'StarGAN (JAX): try a checkpoint'

  def guard(fn):
    def wrapped(*args):
      try:
        return fn(*args)
      except (InputError, translate.TargetError) as e:  # the user's to fix: said on the page
        raise gr.Error(str(e), print_exception=False) from None
    wrapped.__name__ = fn.__name__
    return wrapped

  # delete_cache: uploads and outputs older than an hour are removed every hour.
  with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
    gr.Markdown(f'## {title}\n{demo.describe()}')
    with gr.Row():
      with gr.Column():
        image = gr.Image(label='Input image (upload, or pick a test image below)',
                         type='filepath', image_mode=None, sources=['upload', 'clipboard'],
                         height=256)
        if examples:
          gr.Examples([[p] for p in examples], inputs=[image],
                      label='Test images of the run\'s dataset (first of its test split)',
                      examples_per_page=NUM_EXAMPLES)
        seen = gr.Image(label=f'As the model sees it ({demo.size} px)', type='filepath',
                        format='png', interactive=False, height=128,
                        elem_classes=['pixelated'])
        read_json = gr.JSON(label='Labels the discriminator reads')
      with gr.Column():
        dataset = gr.Radio([s.dataset for s in layout.specs], value=layout.specs[0].dataset,
                           label='Dataset whose labels are set (the mask vector)',
                           visible=layout.num_datasets > 1)
        groups, components = [], []
        for j, spec in enumerate(layout.specs):
          with gr.Group(visible=j == 0) as group:
            if layout.num_datasets > 1:
              gr.Markdown(f'**{spec.dataset}** ({spec.kind})')
            for ctl in demo.controls:
              if ctl.dataset != j:
                continue
              if ctl.kind == 'attribute':
                components.append(gr.Checkbox(label=ctl.label, value=False))
              else:
                components.append(gr.Radio(ctl.choices, value=ctl.choices[0], label=ctl.label))
          groups.append(group)
        with gr.Row():
          translate_btn = gr.Button('Translate', variant='primary')
          grid_btn = gr.Button('Test-grid row (every domain)')
        output = gr.Image(label=f'Translation ({demo.size} px PNG)', type='filepath',
                          format='png', interactive=False, height=256,
                          buttons=['download', 'fullscreen'], elem_classes=['pixelated'])
        grid = gr.Image(label='Test-grid row: input, then every target domain (PNG)',
                        type='filepath', format='png', interactive=False, height=128,
                        buttons=['download', 'fullscreen'], elem_classes=['pixelated'])
        status = gr.Markdown()
        with gr.Accordion('Target labels used', open=False):
          target_json = gr.JSON(label='Labels read by D, and the target given to G')

    @guard
    def on_image(payload):
      path, name = _payload_path(payload)
      if path is None:
        return [None, None, ''] + [gr.update() for _ in components]
      x, read, estimated, notes = demo.read(path, name)
      seen_path = sampling.save_png(sampling.to_uint8(x[0]), demo._out_path(name, 'input'))
      return [seen_path, read, demo._status('Labels read; set the targets and translate', notes)
              ] + demo.initial_values(estimated)

    @guard
    def on_translate(payload, dataset_choice, *values):
      path, name = _payload_path(payload)
      out, info, line = demo.translate(path, dataset_choice, list(values), name)
      return out, info, line

    @guard
    def on_grid(payload):
      path, name = _payload_path(payload)
      return demo.grid_row(path, name)

    def on_dataset(choice):
      j = demo.dataset_index(choice)
      return [gr.update(visible=k == j) for k in range(len(groups))]

    # preprocess=False: the page opens the upload itself (translate.load_image), so a
    # file that is not an image gets the page's message, not Gradio's decoder error.
    image.change(on_image, [image], [seen, read_json, status] + components, api_name='read',
                 preprocess=False)
    translate_btn.click(on_translate, [image, dataset] + components, [output, target_json, status],
                        api_name='translate', preprocess=False)
    grid_btn.click(on_grid, [image], [grid, status], api_name='grid', preprocess=False)
    dataset.change(on_dataset, [dataset], groups, api_visibility='private')
  return app


@dataclasses.dataclass
class Server:
  app: Any
  demo: Demo
  url: str

  def close(self) -> None:
    self.app.close()
    shutil.rmtree(self.demo.out_dir, ignore_errors=True)


def serve(workdir: str, step: int | None = None, host: str = '127.0.0.1', port: int = 7860,
          num_examples: int = NUM_EXAMPLES, log=print, loaded: inference.LoadedModel | None = None,
          use_ema: bool = True) -> Server:
  """Loads the checkpoint, compiles, and starts the server (in a thread); returns it."""
  os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
  os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')
  import gradio  # noqa: F401  (fail before loading anything when it is missing)
  loaded = loaded or inference.load_model(workdir, step, use_ema=use_ema)
  demo = Demo(loaded)
  try:
    compile_s = demo.warm_up()
    files, notes = demo.write_examples(num_examples) if num_examples else ([], [])
    for n in notes:
      log(f'Note: {n}')
    app = build_app(demo, files)
    app.queue(default_concurrency_limit=1)
    _, local_url, _ = app.launch(server_name=host, server_port=port, share=False,
                                 prevent_thread_lock=True, quiet=True, show_error=False,
                                 ssr_mode=False, allowed_paths=[demo.out_dir], css=CSS)
  except BaseException:
    shutil.rmtree(demo.out_dir, ignore_errors=True)
    raise
  url = local_url.rstrip('/')
  weights = 'G EMA' if demo.uses_ema else 'G'
  log(f'Checkpoint step {loaded.step} ({demo.size} px, {weights} weights) compiled in '
      f'{compile_s:.1f} s; serving {url}/ (Ctrl+C stops it)')
  return Server(app, demo, url)


def _wait(server: Server) -> None:
  """Serves until Ctrl+C (tests replace it)."""
  try:
    while True:
      time.sleep(1)
  except KeyboardInterrupt:
    pass


FLAGS = cli.flag_values()
cli.define_run_flags(FLAGS, data_dir=False)
flags.DEFINE_integer('port', 7860, 'Port.', flag_values=FLAGS)
flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on (127.0.0.1: this machine only; '
                    '0.0.0.0 serves the network).', flag_values=FLAGS)
flags.DEFINE_integer('examples', NUM_EXAMPLES, "Test images of the run's dataset offered on the "
                     'page, when it is prepared (0: none).', flag_values=FLAGS)


@cli.command(FLAGS, 'python -m stargan_jax.demo')
def main(args):
  cli.require(not args, f'unexpected arguments: {args}')
  cli.require(0 < FLAGS.port < 65536, f'--port must be in 1..65535, got {FLAGS.port}')
  cli.require(FLAGS.examples >= 0, f'--examples must be 0 or more, got {FLAGS.examples}')
  os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
  try:
    import gradio  # noqa: F401
  except ImportError as e:
    raise cli.UserError(f'the demo needs Gradio ({e}); install the extra: {INSTALL_HINT}') from e
  cli.quiet_libraries()
  loaded = inference.load_model(FLAGS.workdir, FLAGS.step, use_ema=FLAGS.use_ema)
  try:
    server = serve(FLAGS.workdir, FLAGS.step, FLAGS.host, FLAGS.port, FLAGS.examples,
                   loaded=loaded)
  except OSError as e:  # the port is taken, or the host is not an address of this machine
    raise cli.UserError(f'cannot serve on --host={FLAGS.host} --port={FLAGS.port}: '
                        f'{str(e).splitlines()[0]}') from e
  try:
    _wait(server)
  finally:
    server.close()


if __name__ == '__main__':
  sys.exit(main())
