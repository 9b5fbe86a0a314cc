"""Training configuration: a tree of named, commented fields.

Presets (``PRESETS``, ``main.py --preset``): ``default_config()`` is the
built-in demo (the quick start), ``joint_demo_config()`` the built-in pair
trained jointly, ``paper_config(dataset)`` the paper's CelebA / RaFD setting,
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


@dataclasses.dataclass
class LossConfig:
  lambda_cls: float = 1.0
  lambda_rec: float = 10.0
  lambda_gp: float = 10.0
  # Not in StarGAN: CycleGAN's identity loss, L1(G(x, c_org), x), weighted
  # by lambda_id. 0 (off) everywhere but the built-in demos (config below).
  lambda_id: float = 0.0


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
  # demos keep 0 as well: their G gets only 800 updates, after which an EMA
  # at 0.999 still holds 0.999**800 = 45% of the initial G (it reached fewer
  # targets and kept less content than the raw G; README, Departures).
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
    cli.require(m.g_repeat_num >= 0, f'--g_repeat_num must be 0 or more, got {m.g_repeat_num}')
    cli.require(d.image_size % 2**m.d_repeat_num == 0 and d.image_size % 4 == 0,
                f'--image_size={d.image_size} must be a multiple of 2**d_repeat_num = '
                f'{2**m.d_repeat_num} (D halves it d_repeat_num times; G halves it twice), e.g. '
                f'{max(4, 2**m.d_repeat_num) * max(1, round(d.image_size / 2**m.d_repeat_num))}')
    cli.require(m.dtype in ('float32', 'bfloat16'),
                f"--dtype must be 'float32' or 'bfloat16', got {m.dtype!r}")
    cli.require(o.lr_schedule in ('linear', 'reference', 'constant'),
                f"--lr_schedule must be linear, reference or constant, got {o.lr_schedule!r}")
    cli.require(0 <= o.g_ema_decay < 1, f'--g_ema_decay must be in [0, 1), got {o.g_ema_decay}')
    cli.require(o.num_iters_decay >= 0,
                f'--num_iters_decay must be 0 or more, got {o.num_iters_decay}')
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
  """The built-in demo: trains in about 9 minutes on a 2-core CPU.

  The paper's architecture family, its StarGAN losses, Adam betas,
  n_critic = 5 and lambda_cls / lambda_gp, scaled down: 32 px, G conv_dim
  16 with 4 residual blocks, D conv_dim 16 with 5 strided convs (a 1x1
  PatchGAN output at 32 px), 4,000 iterations, and two departures measured
  on the pixel readers (README, Quick start):
  * a 10x higher learning rate (1e-3 for G and D, decaying linearly to 0
    over the second half): at the paper's 1e-4 the generator had not learnt
    the task after 3,000 iterations (68% of targets reached, noisy images);
  * lambda_rec = 50 instead of 10, and an identity loss (not StarGAN's,
    CycleGAN's) L1(G(x, c_org), x) weighted lambda_id = 10: the demo's G
    gets 800 updates, and with the paper's losses it reached 99% of
    targets but kept the object's silhouette and background in only 64%
    of translations (seed 0); with lambda_rec 50 alone 62-98% (4 seeds,
    the failures a drifting background gradient); with both 98-99%.
  """
  cfg = Config()
  cfg.data.datasets = ('procedural',)
  cfg.data.image_size = 32
  cfg.model = ModelConfig(g_conv_dim=16, d_conv_dim=16, g_repeat_num=4, d_repeat_num=5)
  cfg.optim.g_lr = cfg.optim.d_lr = 1e-3
  cfg.optim.num_iters = 4000
  cfg.optim.num_iters_decay = 2000
  cfg.loss.lambda_rec = 50.0
  cfg.loss.lambda_id = 10.0
  cfg.run.sample_every = 1000
  cfg.run.checkpoint_every = 1000
  return cfg


def joint_demo_config() -> Config:
  """The built-in joint demo (paper section 3.2, mask vector): the procedural
  attribute dataset (CelebA's stand-in) and its categorical variant (RaFD's)
  trained together; each iteration does a D step (and a G step when due) on a
  batch of each. The demo's other settings, so that the SNG and JNT runs of
  experiments/joint_sng_vs_jnt.py differ only in the data."""
  cfg = default_config()
  cfg.data.datasets = ('procedural', 'procedural_classes')
  return cfg


def tiny_config(data_dir: str = '~/tensorflow_datasets', datasets=('procedural',),
                num_iters: int = 6) -> Config:
  """The demo's settings with the smallest networks and batches that run every code path.

  For tests and examples: G conv_dim 8 with one residual block, D conv_dim 8
  (5 strided convs, a 1x1 critic output at 32 px), batch 4, a G step every 2
  D steps, a sample grid and a checkpoint at the end, no final evaluation.
  """
  cfg = default_config()
  cfg.data.datasets = tuple(datasets)
  cfg.data.data_dir = data_dir
  cfg.data.batch_size = 4
  cfg.data.num_threads = 2
  cfg.model = ModelConfig(g_conv_dim=8, d_conv_dim=8, g_repeat_num=1, d_repeat_num=5)
  cfg.optim.num_iters = num_iters
  cfg.optim.num_iters_decay = num_iters // 2
  cfg.optim.n_critic = 2
  cfg.run.log_every = 2
  cfg.run.sample_every = num_iters
  cfg.run.checkpoint_every = num_iters
  cfg.run.num_samples = 2
  cfg.run.eval_at_end = False
  return cfg


PRESETS = {'demo': default_config, 'joint': joint_demo_config, 'paper': paper_config,
           'tiny': tiny_config}
