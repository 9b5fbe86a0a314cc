"""Training configuration: a tree of named, commented fields.

Presets (``PRESETS``, ``main.py --preset``): ``default_config()`` is the
built-in demo (the quick start), ``joint_demo_config()`` the built-in pair
trained jointly, ``small_config(dataset)`` the user's own data on small
compute, ``paper_config(dataset)`` the paper's CelebA / RaFD setting,
and ``tiny_config()`` the smallest model that runs every code path (tests,
examples). Flags in ``main.py`` override fields; ``Config.from_dict`` builds
one from nested values (a checkpoint's meta, or a few overrides). A config
never enters traced code: the step functions bind the scalars they need once.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ModelConfig:
  g_conv_dim: int = 64
  d_conv_dim: int = 64
  g_repeat_num: int = 6  # residual blocks in G
  d_repeat_num: int = 6  # strided convs in D; image_size must be a multiple of 2**d_repeat_num
  dtype: str = 'float32'  # compute dtype: float32 or bfloat16 (params stay float32)
  # How convolutions are computed (the same parameters and numbers to float
  # rounding): 'auto' picks per platform and CPU kind (stargan_jax.models.conv),
  # 'xla' is XLA's own convolution everywhere; other names force one form.
  conv_impl: str = 'auto'
  # G's output: 'image' (the paper's) or 'mask' (GANimation's attention mask,
  # a * colour + (1 - a) * input; not in StarGAN, see models.Generator).
  g_output: str = 'image'
  # G's up-sampling: 'transpose' (the paper's 4x4 stride-2 transposed convs) or
  # 'resize' (nearest-neighbour x2 then a 3x3 conv, StarGAN v2's; not in v1).
  g_upsample: str = 'transpose'
  # Not in StarGAN: G's output heads also see the input's high frequencies
  # (x minus its 3x3 blur; see models.Generator).
  g_highpass: bool = False
  # Not in StarGAN: G's output heads also see the input image itself, so the
  # colour head can paint from the colours around a pixel (see models.Generator).
  g_head_input: bool = False


ADV_LOSSES = ('wgan-gp', 'ns-r1')


@dataclasses.dataclass
class LossConfig:
  lambda_cls: float = 1.0
  lambda_rec: float = 10.0
  lambda_gp: float = 10.0
  # The adversarial loss: 'wgan-gp' is StarGAN's (Wasserstein critic,
  # gradient penalty on interpolates weighted by lambda_gp). 'ns-r1' (not in
  # StarGAN v1; StarGAN v2's) is the non-saturating GAN loss with the R1
  # penalty on real images weighted by lambda_r1 (v2: 1); lambda_gp is then
  # unused.
  adv_loss: str = 'wgan-gp'
  lambda_r1: float = 1.0
  # Not in StarGAN: CycleGAN's identity loss, L1(G(x, c_org), x), weighted
  # by lambda_id. 0 (off) everywhere but the built-in demos (config below).
  lambda_id: float = 0.0
  # Not in StarGAN: weight of mean a(1 - a) over G's attention mask (g_output
  # 'mask'), which pushes each pixel to be kept or repainted, not blended.
  lambda_mask: float = 0.0
  # Not in StarGAN: D's classification loss on real images is also taken on a
  # copy of them with one random square, this fraction of the image side,
  # blanked, so D's classifier must read every cue of a domain (an expression's
  # brows as well as its mouth). 0 (off) in every preset: it did not help (README).
  d_cls_cutout: float = 0.0


@dataclasses.dataclass
class OptimConfig:
  g_lr: float = 1e-4
  d_lr: float = 1e-4
  beta1: float = 0.5
  beta2: float = 0.999
  n_critic: int = 5  # D updates per G update
  num_iters: int = 200_000
  num_iters_decay: int = 100_000  # the lr decays over the last num_iters_decay iterations
  # 'linear': the paper's linear decay to 0 over the last num_iters_decay
  # iterations (default). 'reference': the reference code's behaviour, which
  # subtracts lr/num_iters_decay every lr_update_step iterations and so ends
  # at 99.9% of the start. 'constant': no decay.
  lr_schedule: str = 'linear'
  lr_update_step: int = 1000
  # Not in StarGAN v1 (StarGAN v2 uses 0.999): an exponential moving average
  # of G's weights, ema = decay * ema + (1 - decay) * G after every G step,
  # which sample grids, --mode=test, evaluate, translate and the experiments
  # then use. 0 = off: nothing is stored or computed (the paper preset). The
  # demos use 0.99, not v2's 0.999: their G gets about a thousand updates,
  # after which an EMA at 0.999 still holds a third of the initial G.
  g_ema_decay: float = 0.0


@dataclasses.dataclass
class DataConfig:
  datasets: tuple[str, ...] = ('procedural',)
  data_dir: str = '~/tensorflow_datasets'
  manual_dir: str | None = None
  image_size: int = 128
  attrs: tuple[str, ...] = ()  # attribute subset by name (attribute datasets); () = default
  batch_size: int = 16  # global batch, split over all devices and hosts
  num_threads: int = 4  # background reader threads per host
  # A training split whose decoded pixels fit in this many MiB is decoded into
  # memory once instead of at every read (the same batches; 0: never).
  cache_mb: int = 1024


@dataclasses.dataclass
class RunConfig:
  seed: int = 0
  log_every: int = 10
  sample_every: int = 1000
  checkpoint_every: int = 10_000
  keep_checkpoints: int = 3
  num_samples: int = 8  # test images in each sample grid
  eval_at_end: bool = True  # pixel-reader accuracy at the end (built-in datasets)


@dataclasses.dataclass
class Config:
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  loss: LossConfig = dataclasses.field(default_factory=LossConfig)
  optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  run: RunConfig = dataclasses.field(default_factory=RunConfig)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def check(self) -> 'Config':
    """Refuses values that cannot train, naming the flag; returns the config.

    Raises ``cli.UserError``, so ``main.py`` prints one line instead of a
    traceback from deep inside the model.
    """
    from stargan_jax import cli  # cli imports nothing of the library
    m, o, d = self.model, self.optim, self.data
    for flag, value in (('image_size', d.image_size), ('batch_size', d.batch_size),
                        ('g_conv_dim', m.g_conv_dim), ('d_conv_dim', m.d_conv_dim),
                        ('d_repeat_num', m.d_repeat_num), ('num_iters', o.num_iters),
                        ('n_critic', o.n_critic)):
      cli.require(value >= 1, f'--{flag} must be at least 1, got {value}')
    cli.require(d.cache_mb >= 0, f'--cache_mb must be 0 or more, got {d.cache_mb}')
    cli.require(m.g_repeat_num >= 0, f'--g_repeat_num must be 0 or more, got {m.g_repeat_num}')
    cli.require(d.image_size % 2**m.d_repeat_num == 0 and d.image_size % 4 == 0,
                f'--image_size={d.image_size} must be a multiple of 2**d_repeat_num = '
                f'{2**m.d_repeat_num} (D halves it d_repeat_num times; G halves it twice), e.g. '
                f'{max(4, 2**m.d_repeat_num) * max(1, round(d.image_size / 2**m.d_repeat_num))}')
    cli.require(m.g_output in ('image', 'mask'),
                f"--g_output must be 'image' or 'mask', got {m.g_output!r}")
    cli.require(m.g_upsample in ('transpose', 'resize'),
                f"--g_upsample must be 'transpose' or 'resize', got {m.g_upsample!r}")
    cli.require(m.dtype in ('float32', 'bfloat16'),
                f"--dtype must be 'float32' or 'bfloat16', got {m.dtype!r}")
    cli.require(o.lr_schedule in ('linear', 'reference', 'constant'),
                f"--lr_schedule must be linear, reference or constant, got {o.lr_schedule!r}")
    cli.require(0 <= o.g_ema_decay < 1, f'--g_ema_decay must be in [0, 1), got {o.g_ema_decay}')
    cli.require(o.num_iters_decay >= 0,
                f'--num_iters_decay must be 0 or more, got {o.num_iters_decay}')
    cli.require(self.loss.lambda_mask >= 0,
                f'--lambda_mask must be 0 or more, got {self.loss.lambda_mask}')
    cli.require(not self.loss.lambda_mask or m.g_output == 'mask',
                f'--lambda_mask={self.loss.lambda_mask} needs --g_output=mask (G has no mask '
                f'with --g_output={m.g_output})')
    cli.require(0 <= self.loss.d_cls_cutout < 1,
                f'--d_cls_cutout must be in [0, 1) (a fraction of the image side), got '
                f'{self.loss.d_cls_cutout}')
    cli.require(self.loss.adv_loss in ADV_LOSSES,
                f'--adv_loss must be one of {", ".join(ADV_LOSSES)}, got {self.loss.adv_loss!r}')
    cli.require(self.loss.lambda_r1 >= 0,
                f'--lambda_r1 must be 0 or more, got {self.loss.lambda_r1}')
    cli.require(len(d.datasets) >= 1, '--datasets names no dataset')
    return self

  @classmethod
  def from_dict(cls, d: dict | None = None, base: 'Config | None' = None) -> 'Config':
    """A ``Config`` from nested values, e.g. ``Config.to_dict()`` as stored in checkpoint meta.

    Fields not given keep ``base``'s values (default: the dataclass
    defaults), so ``Config.from_dict({'model': {'g_conv_dim': 8}},
    default_config())`` overrides one field. Unknown fields (from a newer
    version) are ignored; lists become tuples.
    """
    base = base or cls()
    groups = {}
    for f in dataclasses.fields(cls):
      sub = getattr(base, f.name)
      names = {g.name for g in dataclasses.fields(sub)}
      values = {k: tuple(v) if isinstance(v, list) else v
                for k, v in ((d or {}).get(f.name) or {}).items() if k in names}
      groups[f.name] = dataclasses.replace(sub, **values)
    return cls(**groups)


def paper_config(dataset: str = 'celeba') -> Config:
  """The paper's setting: 128 px, conv_dim 64, batch 16, 200k iterations."""
  cfg = Config()
  cfg.data.datasets = (dataset,)
  return cfg


def default_config() -> Config:
  """The built-in demo: the drawn faces (CelebA's five default attributes), 32 px.

  The paper's architecture family, its StarGAN losses, Adam betas,
  n_critic = 5 and lambda_cls / lambda_gp, scaled down: 32 px, G conv_dim
  16 with 4 residual blocks, D conv_dim 16 with 5 strided convs (a 1x1
  PatchGAN output at 32 px), DEMO_ITERS iterations, and departures measured
  by FID against the real-image floor and the pixel readers (README, Quick
  start and Departures):
  * G's attention-mask output (``g_output='mask'``, GANimation's): with the
    paper's output G repainted every background one grey with speckle;
  * G's up-sampling by nearest-neighbour resize and a 3x3 conv
    (``g_upsample='resize'``, StarGAN v2's) instead of the transposed convs,
    whose uneven overlap draws a checkerboard into what G paints;
  * an EMA of G's weights at 0.99 (``g_ema_decay``), the weights the demo
    translates with;
  * a 10x higher learning rate (1e-3 for G and D, decaying linearly to 0
    over the second half): at the paper's 1e-4 the generator had not learnt
    the task after 3,000 iterations;
  * lambda_rec = 20 instead of 10, and an identity loss (not StarGAN's,
    CycleGAN's) L1(G(x, c_org), x) weighted lambda_id = 5: with the paper's
    losses a short run kept the content of too few translations, and with
    heavier ones (50 / 10) it reached fewer targets (README, Quick start).
  """
  cfg = Config()
  cfg.data.datasets = ('faces',)
  cfg.data.image_size = 32
  cfg.model = ModelConfig(g_conv_dim=16, d_conv_dim=16, g_repeat_num=4, d_repeat_num=5,
                          g_output='mask', g_upsample='resize')
  cfg.optim.g_lr = cfg.optim.d_lr = 1e-3
  cfg.optim.num_iters = DEMO_ITERS
  cfg.optim.num_iters_decay = DEMO_ITERS // 2
  cfg.optim.g_ema_decay = 0.99
  cfg.loss.lambda_rec = 20.0
  cfg.loss.lambda_id = 5.0
  cfg.run.sample_every = 1000
  cfg.run.checkpoint_every = 1000
  return cfg


DEMO_ITERS = 6000


def joint_demo_config() -> Config:
  """The built-in joint demo (paper section 3.2, mask vector, Figure 1): the
  drawn faces with attributes (CelebA's stand-in) and with expressions
  (RaFD's) trained together, so a face of the first gets an expression of the
  second; each iteration does a D step (and a G step when due) on a batch of
  each. The demo's other settings, except a wider D (``d_conv_dim`` 24, not
  16): one D of the demo's width classifies both datasets' domains, and with
  it the joint run drew expressions far worse than a run on ``faces_expr``
  alone (README, Joint training); at 24 it reaches both datasets' targets
  more often for about an eighth more time per iteration. For a like-for-like
  SNG run of experiments/joint_sng_vs_jnt.py, train ``--datasets=faces
  --d_conv_dim=24``."""
  cfg = default_config()
  cfg.data.datasets = ('faces', 'faces_expr')
  cfg.model = dataclasses.replace(cfg.model, d_conv_dim=24)
  return cfg


def tiny_config(data_dir: str = '~/tensorflow_datasets', datasets=('procedural',),
                num_iters: int = 6) -> Config:
  """The demo's settings with the smallest networks and batches that run every code path.

  For tests and examples: the paper's G output (no mask) and no EMA, so
  every path the paper preset takes is the one tested most; G conv_dim 8
  with one residual block, D conv_dim 8
  (5 strided convs, a 1x1 critic output at 32 px), batch 4, a G step every 2
  D steps, a sample grid and a checkpoint at the end, no final evaluation, and
  the training split read from its files (``cache_mb`` 0).
  """
  cfg = default_config()
  cfg.data.datasets = tuple(datasets)
  cfg.data.data_dir = data_dir
  cfg.data.batch_size = 4
  cfg.data.num_threads = 2
  # A few batches read from the files: decoding a whole split into memory
  # first (thousands of images, seconds per dataset) would outlast the run.
  cfg.data.cache_mb = 0
  cfg.model = ModelConfig(g_conv_dim=8, d_conv_dim=8, g_repeat_num=1, d_repeat_num=5)
  cfg.optim.num_iters = num_iters
  cfg.optim.num_iters_decay = num_iters // 2
  cfg.optim.g_ema_decay = 0.0
  cfg.optim.n_critic = 2
  cfg.run.log_every = 2
  cfg.run.sample_every = num_iters
  cfg.run.checkpoint_every = num_iters
  cfg.run.num_samples = 2
  cfg.run.eval_at_end = False
  return cfg


def small_config(datasets: str | tuple[str, ...] = 'celeba') -> Config:
  """Your own data on small compute: 64 px, 6,000 iterations.

  Meant for about 10,000 images in about 30 minutes on 2 CPU cores. The
  demo's recipe (its departures: the attention-mask output, resize
  up-sampling, the EMA, lambda_rec 20 and the identity loss, lr 1e-3) at
  64 px, with D's five strided convs leaving a 2 x 2 PatchGAN output as the
  paper's six do at 128 px, and G's lr halved to 5e-4 (D keeps 1e-3, so D's
  classifier stays ahead of G): on the CelebA layout that reached more targets
  with a lower FID on two seeds; on the RaFD layout a lower FID, with targets
  within the spread between seeds.

  Trained on RaFD alone (``datasets`` is ``rafd``), three settings more
  (``RAFD_SMALL``): G's output heads also see the input's high frequencies
  (``g_highpass``) and the input image itself (``g_head_input``), both not in
  StarGAN, and the paper's lambda_rec of 10. An expression is a few small
  strokes (mouth and brows); with the mask alone G left the source's brows or
  mouth corners in place under a new mouth, with ``g_highpass`` it reached
  more expressions than the base recipe on every seed tried, and with
  ``g_head_input`` as well the colour head can paint skin over the old strokes
  from the colours around them. On the CelebA layout ``g_highpass`` lost
  targets, and ``g_head_input`` lowered the FID a little but lost targets, so
  attribute data (and a folder set of classes, which may be anything) keeps
  the base recipe. The README ("Which preset") gives what each reaches and
  which preset to pick.
  """
  datasets = (datasets,) if isinstance(datasets, str) else tuple(datasets)
  cfg = default_config()
  cfg.data.datasets = datasets
  cfg.data.image_size = 64
  cfg.optim.num_iters = SMALL_ITERS
  cfg.optim.num_iters_decay = SMALL_ITERS // 2
  cfg.optim.g_lr = 5e-4
  cfg.run.sample_every = cfg.run.checkpoint_every = 1000
  return _with(cfg, dataset_settings('small', datasets))


# What ``small`` sets on top of its recipe for a RaFD-layout dataset, by config group.
RAFD_SMALL = {'model': {'g_highpass': True, 'g_head_input': True}, 'loss': {'lambda_rec': 10.0}}


def dataset_settings(preset: str, datasets) -> dict[str, dict]:
  """What ``preset`` sets on top of its recipe for ``datasets``, by config group.

  The one place a preset's choice depends on the data (the start line of
  ``preset_for`` is written from it): ``small`` on RaFD alone adds
  ``RAFD_SMALL``; everything else adds nothing.
  """
  if preset == 'small' and tuple(datasets) == ('rafd',):
    return RAFD_SMALL
  return {}


def _with(cfg: Config, settings: dict[str, dict]) -> Config:
  for group, values in settings.items():
    setattr(cfg, group, dataclasses.replace(getattr(cfg, group), **values))
  return cfg


def settings_as_flags(settings: dict[str, dict]) -> str:
  """``{'model': {'g_highpass': True}, 'loss': {'lambda_rec': 10.0}}`` ->
  ``--g_highpass and --lambda_rec=10`` (as a user would type them; three or more
  as ``--a, --b and --c``)."""
  flags = []
  for values in settings.values():
    for name, value in values.items():
      if isinstance(value, bool):
        flags.append(f'--{name}' if value else f'--no{name}')
      else:
        flags.append(f'--{name}={value:g}' if isinstance(value, float) else f'--{name}={value}')
  return ' and '.join(flags) if len(flags) < 3 else ', '.join(flags[:-1]) + ' and ' + flags[-1]


SMALL_ITERS = 6000

PRESETS = {'demo': default_config, 'joint': joint_demo_config, 'paper': paper_config,
           'small': small_config, 'tiny': tiny_config}

# Datasets drawn by the library (no files from the user): the demos' presets fit them.
BUILT_IN = ('faces', 'faces_expr', 'procedural', 'procedural_classes')


def preset_for(datasets) -> tuple[str, str]:
  """(preset, the line saying why) for ``--datasets`` when no ``--preset`` is given.

  Built-in datasets get the demo's preset (``joint`` for two of them); any
  dataset of the user's (CelebA, RaFD, folders) gets ``small``, never the
  32 px demo's config.
  """
  datasets = tuple(datasets)
  if not datasets:
    return 'demo', "the built-in demo (preset 'demo': faces, 32 px)"
  if all(d in BUILT_IN for d in datasets):
    if len(datasets) > 1:
      return 'joint', f"built-in datasets {','.join(datasets)}: preset 'joint' (32 px)"
    return 'demo', f"built-in dataset {datasets[0]}: preset 'demo' (32 px)"
  extra = settings_as_flags(dataset_settings('small', datasets))
  extra = f"; for {','.join(datasets)}: {extra}" if extra else ''
  return 'small', (f"dataset {','.join(datasets)}: preset 'small' (64 px, "
                   f"{SMALL_ITERS:,} iterations{extra}); --preset=paper for the paper's 128 px / "
                   "200k setting")


def preset_config(preset: str, datasets=()) -> Config:
  """``PRESETS[preset]`` for ``datasets`` (empty: the preset's own), with
  ``dataset_settings``: the config ``main.py --preset=PRESET --datasets=...``
  starts from before the other flags."""
  if preset not in PRESETS:
    raise ValueError(f'preset must be one of {sorted(PRESETS)}, got {preset!r}')
  cfg = PRESETS[preset]()
  datasets = tuple(datasets)
  if not datasets:
    return cfg
  cfg.data.datasets = datasets
  # small_config applies them itself (it is also called directly); applying a
  # group's values twice changes nothing.
  return _with(cfg, dataset_settings(preset, datasets))
