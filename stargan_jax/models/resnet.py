"""ResNet-18 (He et al. 2016) in Flax: the domain classifier of the paper's Table 3 protocol.

Trained on real images and used to judge translations
(``stargan_jax/evaluation/classifier.py``); initialised as torchvision's.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

# torchvision's ResNet init: He normal on the conv kernels, fan-out mode.
_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


class BasicBlock(nn.Module):
  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                     name=name)
    y = nn.Conv(self.features, (3, 3), self.strides, padding=1, use_bias=False,
                kernel_init=_conv_init, name='conv1')(x)
    y = nn.relu(norm('bn1')(y))
    y = nn.Conv(self.features, (3, 3), 1, padding=1, use_bias=False, kernel_init=_conv_init,
                name='conv2')(y)
    y = norm('bn2')(y)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1), self.strides, use_bias=False, kernel_init=_conv_init,
                  name='shortcut_conv')(x)
      x = norm('shortcut_bn')(x)
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """ResNet-18 (He et al. 2016): 4 stages of 2 basic blocks, widths w, 2w, 4w, 8w.

  ``small_input`` selects the CIFAR-style stem (see ``SMALL_INPUT_MAX``);
  otherwise the ImageNet stem (7x7 stride-2 conv and 3x3 stride-2 max pool).
  Input: N x H x W x 3 in [-1, 1]; output N x num_outputs logits.
  """

  num_outputs: int
  width: int = 64
  small_input: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                     name=name)
    if self.small_input:
      x = nn.Conv(self.width, (3, 3), 1, padding=1, use_bias=False, kernel_init=_conv_init,
                  name='stem_conv')(x)
      x = nn.relu(norm('stem_bn')(x))
    else:
      x = nn.Conv(self.width, (7, 7), 2, padding=3, use_bias=False, kernel_init=_conv_init,
                  name='stem_conv')(x)
      x = nn.relu(norm('stem_bn')(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for stage in range(4):
      for block in range(2):
        strides = 2 if stage > 0 and block == 0 else 1
        x = BasicBlock(self.width * 2**stage, strides, name=f'stage{stage + 1}_block{block + 1}')(
            x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_outputs, name='head')(x)
