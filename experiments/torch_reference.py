"""The reference implementation's networks and training steps, in PyTorch.

``TorchGenerator`` / ``TorchDiscriminator`` are the reference's ``model.py``
(yunjey/stargan) layer for layer, so their state-dict keys are the released
checkpoints' (``main.0.weight``, ..., ``conv1.weight``, ``conv2.weight``);
the checkpoint-import tests compare our networks with them. ``ReferenceSteps``
is the D step and the G step of the reference's ``solver.py`` (CelebA
attributes), statement for statement, including its waste (the G step also
computes D's weight gradients, and the D step builds G's autograd graph),
for ``experiments/reference_speed.py``.

Needs the ``torch`` extra (``pip install -e '.[torch]'``); nothing in
``stargan_jax`` imports this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TorchResidualBlock(nn.Module):

  def __init__(self, dim):
    super().__init__()
    self.main = nn.Sequential(
        nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, bias=False),
        nn.InstanceNorm2d(dim, affine=True, track_running_stats=True),
        nn.ReLU(inplace=True),
        nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, bias=False),
        nn.InstanceNorm2d(dim, affine=True, track_running_stats=True))

  def forward(self, x):
    return x + self.main(x)


class TorchGenerator(nn.Module):

  def __init__(self, conv_dim=64, c_dim=5, repeat_num=6):
    super().__init__()
    layers = [nn.Conv2d(3 + c_dim, conv_dim, kernel_size=7, stride=1, padding=3, bias=False),
              nn.InstanceNorm2d(conv_dim, affine=True, track_running_stats=True),
              nn.ReLU(inplace=True)]
    dim = conv_dim
    for _ in range(2):
      layers += [nn.Conv2d(dim, dim * 2, kernel_size=4, stride=2, padding=1, bias=False),
                 nn.InstanceNorm2d(dim * 2, affine=True, track_running_stats=True),
                 nn.ReLU(inplace=True)]
      dim *= 2
    layers += [TorchResidualBlock(dim) for _ in range(repeat_num)]
    for _ in range(2):
      layers += [nn.ConvTranspose2d(dim, dim // 2, kernel_size=4, stride=2, padding=1, bias=False),
                 nn.InstanceNorm2d(dim // 2, affine=True, track_running_stats=True),
                 nn.ReLU(inplace=True)]
      dim //= 2
    layers += [nn.Conv2d(dim, 3, kernel_size=7, stride=1, padding=3, bias=False), nn.Tanh()]
    self.main = nn.Sequential(*layers)

  def forward(self, x, c):
    c = c.view(c.size(0), c.size(1), 1, 1).repeat(1, 1, x.size(2), x.size(3))
    return self.main(torch.cat([x, c], dim=1))


class TorchDiscriminator(nn.Module):

  def __init__(self, image_size=128, conv_dim=64, c_dim=5, repeat_num=6):
    super().__init__()
    layers = [nn.Conv2d(3, conv_dim, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.01)]
    dim = conv_dim
    for _ in range(1, repeat_num):
      layers += [nn.Conv2d(dim, dim * 2, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.01)]
      dim *= 2
    self.main = nn.Sequential(*layers)
    self.conv1 = nn.Conv2d(dim, 1, kernel_size=3, stride=1, padding=1, bias=False)
    self.conv2 = nn.Conv2d(dim, c_dim, kernel_size=image_size // 2**repeat_num, bias=False)

  def forward(self, x):
    h = self.main(x)
    out_cls = self.conv2(h)
    return self.conv1(h), out_cls.view(out_cls.size(0), out_cls.size(1))



class ReferenceSteps:
  """solver.py's D and G updates (CelebA: sigmoid CE summed over attributes / batch)."""

  def __init__(self, G, D, lr=1e-4, beta1=0.5, beta2=0.999, lambda_cls=1.0, lambda_rec=10.0,
               lambda_gp=10.0):
    self.G, self.D = G, D
    self.g_optimizer = torch.optim.Adam(G.parameters(), lr, [beta1, beta2])
    self.d_optimizer = torch.optim.Adam(D.parameters(), lr, [beta1, beta2])
    self.lambda_cls, self.lambda_rec, self.lambda_gp = lambda_cls, lambda_rec, lambda_gp

  def reset_grad(self):
    self.g_optimizer.zero_grad()
    self.d_optimizer.zero_grad()

  @staticmethod
  def classification_loss(logit, target):
    return F.binary_cross_entropy_with_logits(logit, target, reduction='sum') / logit.size(0)

  @staticmethod
  def gradient_penalty(y, x):
    weight = torch.ones(y.size())
    dydx = torch.autograd.grad(outputs=y, inputs=x, grad_outputs=weight, retain_graph=True,
                               create_graph=True, only_inputs=True)[0]
    dydx = dydx.view(dydx.size(0), -1)
    dydx_l2norm = torch.sqrt(torch.sum(dydx**2, dim=1))
    return torch.mean((dydx_l2norm - 1)**2)

  def d_step(self, x_real, label_org, c_trg):
    out_src, out_cls = self.D(x_real)
    d_loss_real = -torch.mean(out_src)
    d_loss_cls = self.classification_loss(out_cls, label_org)
    x_fake = self.G(x_real, c_trg)
    out_src, out_cls = self.D(x_fake.detach())
    d_loss_fake = torch.mean(out_src)
    alpha = torch.rand(x_real.size(0), 1, 1, 1)
    x_hat = (alpha * x_real.data + (1 - alpha) * x_fake.data).requires_grad_(True)
    out_src, _ = self.D(x_hat)
    d_loss_gp = self.gradient_penalty(out_src, x_hat)
    d_loss = d_loss_real + d_loss_fake + self.lambda_cls * d_loss_cls + self.lambda_gp * d_loss_gp
    self.reset_grad()
    d_loss.backward()
    self.d_optimizer.step()
    return float(d_loss.detach())

  def g_step(self, x_real, c_org, c_trg):
    x_fake = self.G(x_real, c_trg)
    out_src, out_cls = self.D(x_fake)
    g_loss_fake = -torch.mean(out_src)
    g_loss_cls = self.classification_loss(out_cls, c_trg)
    x_reconst = self.G(x_fake, c_org)
    g_loss_rec = torch.mean(torch.abs(x_real - x_reconst))
    g_loss = g_loss_fake + self.lambda_rec * g_loss_rec + self.lambda_cls * g_loss_cls
    self.reset_grad()
    g_loss.backward()
    self.g_optimizer.step()
    return float(g_loss.detach())
