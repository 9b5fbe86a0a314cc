"""Training state and the two pure step functions, ``d_step`` and ``g_step``.

No parallelism code lives here: the trainer wraps each step in ``jax.jit``
with shardings and donation. Randomness comes only from
``fold_in(fold_in(base_key, iteration), dataset_index)``, so a resumed run
draws exactly the numbers an uninterrupted one would.

``state.step`` counts completed iterations. It is advanced by the D step of
the last dataset (every iteration has one D step per dataset); a G step of
that iteration, which runs after it, therefore looks back one iteration to
recover the same key and hence the same target labels.

With ``g_ema_decay > 0`` the state also carries an exponential moving average
of G's weights (StarGAN v2's; not in StarGAN v1), updated at the end of every
G step; with 0 the field is ``None``: nothing is stored or computed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from stargan_jax import config as config_lib
from stargan_jax import labels as labels_lib
from stargan_jax import losses
from stargan_jax import models


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # completed iterations, int32
  g_params: Any
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any
  # EMA of g_params (StarGAN v2; not in v1), or None when g_ema_decay is 0.
  # Last and defaulted, so states built without it (older code, the PyTorch
  # importer) are still valid.
  g_ema_params: Any = None


def lr_schedule(cfg: config_lib.OptimConfig, base_lr: float) -> Callable[[Any], Any]:
  """Learning rate as a function of the iteration number (traceable)."""
  total, decay = cfg.num_iters, cfg.num_iters_decay
  start = total - decay
  if cfg.lr_schedule == 'constant' or decay <= 0:
    return lambda it: jnp.asarray(base_lr, jnp.float32)
  if cfg.lr_schedule == 'linear':
    # Paper: constant, then linearly to 0 over the last `decay` iterations.
    return lambda it: base_lr * jnp.clip((total - it) / decay, 0.0, 1.0).astype(jnp.float32)
  if cfg.lr_schedule == 'reference':
    # Reference code: after iteration i (1-based) with i % u == 0 and i > start,
    # lr -= base_lr / decay; the new lr applies from the next iteration on.
    u = cfg.lr_update_step

    def fn(it):
      it = jnp.asarray(it, jnp.int32)
      updates = jnp.maximum(it // u - start // u, 0)
      return (base_lr - base_lr / decay * updates).astype(jnp.float32)

    return fn
  raise ValueError(f"lr_schedule must be 'linear', 'reference' or 'constant', got {cfg.lr_schedule!r}")


def make_optimizers(cfg: config_lib.OptimConfig, num_datasets: int = 1):
  """Adam for G and D; each optimiser's own update count mapped to iterations.

  Every iteration updates D once per dataset, and G once per dataset every
  n_critic iterations, so D's k-th update is in iteration k // num_datasets
  and G's in (k // num_datasets) * n_critic + n_critic - 1.
  """
  d_sched = lr_schedule(cfg, cfg.d_lr)
  g_sched = lr_schedule(cfg, cfg.g_lr)
  n, m = cfg.n_critic, num_datasets
  g_tx = optax.adam(lambda count: g_sched(count // m * n + n - 1), cfg.beta1, cfg.beta2,
                    eps=1e-8)
  d_tx = optax.adam(lambda count: d_sched(count // m), cfg.beta1, cfg.beta2, eps=1e-8)
  return g_tx, d_tx


def ema_update(ema, params, decay: float):
  """decay * ema + (1 - decay) * params, leaf by leaf, in the EMA's dtype."""
  return jax.tree_util.tree_map(
      lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema, params)


@dataclasses.dataclass(frozen=True)
class StarGAN:
  """The two networks, the label layout and the loss weights; no state."""

  G: models.Generator
  D: models.Discriminator
  layout: labels_lib.LabelLayout
  image_size: int
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  lambda_cls: float = 1.0
  lambda_rec: float = 10.0
  lambda_gp: float = 10.0
  lambda_id: float = 0.0  # not StarGAN's: CycleGAN's identity loss (0: off, not computed)
  g_ema_decay: float = 0.0  # not StarGAN v1's: EMA of G's weights (0: off, not stored)
  lambda_mask: float = 0.0  # not StarGAN's: mean a(1 - a) of G's mask (0: off)
  d_cls_cutout: float = 0.0  # not StarGAN's: D's real cls loss also on cut-out reals (0: off)
  adv_loss: str = 'wgan-gp'  # or 'ns-r1' (StarGAN v2's; config.LossConfig)
  lambda_r1: float = 1.0

  @classmethod
  def from_config(cls, cfg: config_lib.Config, layout: labels_lib.LabelLayout) -> 'StarGAN':
    dtype = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}.get(cfg.model.dtype)
    if dtype is None:
      raise ValueError(f"model dtype must be 'float32' or 'bfloat16', got {cfg.model.dtype!r}")
    conv_impl = models.conv.check(cfg.model.conv_impl)  # a UserError naming --conv_impl
    g = models.Generator(cfg.model.g_conv_dim, layout.g_dim, cfg.model.g_repeat_num, dtype,
                         conv_impl=conv_impl, output=cfg.model.g_output,
                         upsample=cfg.model.g_upsample, highpass=cfg.model.g_highpass,
                         head_input=cfg.model.g_head_input)
    d = models.Discriminator(cfg.data.image_size, cfg.model.d_conv_dim, layout.cls_dim,
                             cfg.model.d_repeat_num, dtype, conv_impl=conv_impl)
    g_tx, d_tx = make_optimizers(cfg.optim, layout.num_datasets)
    if cfg.loss.adv_loss not in config_lib.ADV_LOSSES:
      raise ValueError(f'adv_loss must be one of {config_lib.ADV_LOSSES}, got '
                       f'{cfg.loss.adv_loss!r}')
    if not 0.0 <= cfg.optim.g_ema_decay < 1.0:
      raise ValueError(f'g_ema_decay must be in [0, 1), got {cfg.optim.g_ema_decay}')
    return cls(g, d, layout, cfg.data.image_size, g_tx, d_tx, cfg.loss.lambda_cls,
               cfg.loss.lambda_rec, cfg.loss.lambda_gp, cfg.loss.lambda_id,
               cfg.optim.g_ema_decay, cfg.loss.lambda_mask, cfg.loss.d_cls_cutout,
               cfg.loss.adv_loss, cfg.loss.lambda_r1)

  def on_platform(self, platform: str) -> 'StarGAN':
    """This model with G's and D's ``conv_impl`` resolved for ``platform`` ('auto' fixed).

    The compiled steps then use the forms of the devices they run on, not
    those of JAX's default backend.
    """
    return dataclasses.replace(
        self, G=self.G.clone(conv_impl=models.conv.resolve(self.G.conv_impl, platform)),
        D=self.D.clone(conv_impl=models.conv.resolve(self.D.conv_impl, platform)))

  def init(self, key) -> TrainState:
    g_key, d_key = jax.random.split(key)
    g_params = models.init_params(self.G, g_key, self.image_size)
    d_params = models.init_params(self.D, d_key, self.image_size)
    # The EMA starts as a copy of G (as in StarGAN v2): its own buffers, so
    # that donating the state to a step never donates one buffer twice.
    g_ema = jax.tree_util.tree_map(jnp.copy, g_params) if self.g_ema_decay else None
    return TrainState(jnp.zeros((), jnp.int32), g_params, d_params, self.g_tx.init(g_params),
                      self.d_tx.init(d_params), g_ema)

  # -------------------------------------------------------------------------

  @staticmethod
  def _step_key(base_key, iteration, dataset: int):
    """The key of one iteration's step on one dataset (the resumable draws)."""
    return jax.random.fold_in(jax.random.fold_in(base_key, iteration), dataset)

  def _targets(self, base_key, iteration, dataset: int, c_org):
    """c_trg (the batch's labels permuted) and the GP's alpha for one iteration."""
    key = self._step_key(base_key, iteration, dataset)
    perm_key, alpha_key = jax.random.split(key)
    c_trg = c_org[jax.random.permutation(perm_key, c_org.shape[0])]
    alpha = jax.random.uniform(alpha_key, (c_org.shape[0], 1, 1, 1), jnp.float32)
    return c_trg, alpha

  def _cls_loss(self, out_cls, c, dataset: int):
    start, stop = self.layout.cls_slice(dataset)
    return losses.classification_loss(out_cls[:, start:stop], c, self.layout.specs[dataset].kind)

  def d_step(self, state: TrainState, batch, base_key, dataset: int = 0):
    """One D update on a batch of dataset ``dataset``; changes only D (and step)."""
    x_real, c_org = batch['image'], batch['label']
    c_trg, alpha = self._targets(base_key, state.step, dataset, c_org)
    g_trg = self.layout.embed(dataset, c_trg, jnp)
    x_fake = jax.lax.stop_gradient(self.G.apply(state.g_params, x_real, g_trg))

    def loss_fn(d_params):
      out_src_real, out_cls_real = self.D.apply(d_params, x_real)
      out_src_fake, _ = self.D.apply(d_params, x_fake)
      critic = lambda x: self.D.apply(d_params, x)[0]
      if self.adv_loss == 'ns-r1':
        loss_real = losses.nonsat_real_loss(out_src_real)
        loss_fake = losses.nonsat_fake_loss(out_src_fake)
        # StarGAN v2's penalty: on the reals only (alpha's draw is left unused,
        # so the other draws are those of a wgan-gp run).
        penalty = {'D/loss_r1': losses.r1_penalty(critic, x_real)}
        loss_pen = self.lambda_r1 * penalty['D/loss_r1']
      else:
        loss_real = losses.critic_real_loss(out_src_real)
        loss_fake = losses.critic_fake_loss(out_src_fake)
        penalty = {'D/loss_gp': losses.gradient_penalty(critic, x_real, x_fake, alpha)}
        loss_pen = self.lambda_gp * penalty['D/loss_gp']
      loss_cls = self._cls_loss(out_cls_real, c_org, dataset)
      cls_term, metrics = loss_cls, {}
      if self.d_cls_cutout:
        # Not in StarGAN: with one cue of a domain blanked D's classifier must
        # read the others, so a fake keeping the source's brows under the
        # target's mouth no longer passes as the target. Only the
        # classification sees the cut-out copies: the critic never learns
        # blanked squares as real. Its own key (folded in, so the targets'
        # and the GP's draws are those of a run without it).
        cut_key = jax.random.fold_in(self._step_key(base_key, state.step, dataset), 1)
        x_cut = losses.cutout(x_real, cut_key, self.d_cls_cutout)
        loss_cls_cut = self._cls_loss(self.D.apply(d_params, x_cut)[1], c_org, dataset)
        metrics['D/loss_cls_cutout'] = loss_cls_cut
        cls_term = 0.5 * (loss_cls + loss_cls_cut)  # lambda_cls keeps its weight
      loss = loss_real + loss_fake + self.lambda_cls * cls_term + loss_pen
      return loss, {'D/loss_real': loss_real, 'D/loss_fake': loss_fake, 'D/loss_cls': loss_cls,
                    **penalty, **metrics}

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.d_params)
    updates, d_opt_state = self.d_tx.update(grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    last = dataset == self.layout.num_datasets - 1
    return state.replace(step=state.step + int(last), d_params=d_params,
                         d_opt_state=d_opt_state), metrics

  def g_step(self, state: TrainState, batch, base_key, dataset: int = 0):
    """One G update, after this iteration's D step on the same batch; changes only G.

    Gradients are taken with respect to G's parameters only: D's weights are
    constants here, so (unlike the reference) no D weight gradients are
    computed.
    """
    x_real, c_org = batch['image'], batch['label']
    last = dataset == self.layout.num_datasets - 1
    iteration = state.step - int(last)  # the last D step of the iteration advanced it
    c_trg, _ = self._targets(base_key, iteration, dataset, c_org)
    g_org = self.layout.embed(dataset, c_org, jnp)
    g_trg = self.layout.embed(dataset, c_trg, jnp)

    def loss_fn(g_params):
      if self.lambda_mask:
        x_fake, inter = self.G.apply(g_params, x_real, g_trg, mutable=['intermediates'])
        (mask,) = inter['intermediates']['mask']
      else:
        x_fake = self.G.apply(g_params, x_real, g_trg)
      out_src, out_cls = self.D.apply(state.d_params, x_fake)
      x_rec = self.G.apply(g_params, x_fake, g_org)
      if self.adv_loss == 'ns-r1':
        loss_fake = losses.nonsat_real_loss(out_src)  # -E[log sigmoid D_src(G(x, c))]
      else:
        loss_fake = -losses.critic_fake_loss(out_src)
      loss_cls = self._cls_loss(out_cls, c_trg, dataset)
      loss_rec = losses.reconstruction_loss(x_real, x_rec)
      loss = loss_fake + self.lambda_rec * loss_rec + self.lambda_cls * loss_cls
      metrics = {'G/loss_fake': loss_fake, 'G/loss_rec': loss_rec, 'G/loss_cls': loss_cls}
      if self.lambda_id:
        # Not in StarGAN (CycleGAN's identity loss): G asked for the image's
        # own labels should return it unchanged. Off unless --lambda_id > 0.
        loss_id = losses.reconstruction_loss(x_real, self.G.apply(g_params, x_real, g_org))
        loss = loss + self.lambda_id * loss_id
        metrics['G/loss_id'] = loss_id
      if self.lambda_mask:
        # Not in StarGAN: a mask that half-keeps the source draws the new
        # feature over a faint copy of the old one; a(1 - a) is 0 only where
        # G either keeps the pixel or repaints it whole.
        loss_mask = jnp.mean(mask * (1.0 - mask))
        loss = loss + self.lambda_mask * loss_mask
        metrics['G/loss_mask'] = loss_mask
      return loss, metrics

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.g_params)
    updates, g_opt_state = self.g_tx.update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    state = state.replace(g_params=g_params, g_opt_state=g_opt_state)
    if self.g_ema_decay:
      state = state.replace(g_ema_params=ema_update(state.g_ema_params, g_params,
                                                    self.g_ema_decay))
    return state, metrics

  def translate(self, g_params, x, c):
    """G(x, c) with c already in G's label layout."""
    return self.G.apply(g_params, x, c)
