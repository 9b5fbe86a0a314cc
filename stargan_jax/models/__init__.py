"""The networks (``stargan``) and the forms their convolutions are computed by (``conv``).

``from stargan_jax import models`` gives both modules' public names:
``models.Generator``, ``models.Discriminator``, ``models.init_params``,
``models.count_params``, and the convolution forms (``models.patches_conv``,
``models.cpu_conv``, ...); ``models.conv`` is the selector's module.
"""

from stargan_jax.models import conv
from stargan_jax.models.conv import (IMPLS, ROLES, cpu_conv, patches_conv,
                                     space_to_depth_conv4x4, subpixel_conv_transpose,
                                     tap_weight_grad_conv, winograd_conv3x3)
from stargan_jax.models.stargan import (ConvTranspose4x4, Discriminator, Generator, InstanceNorm,
                                        ResidualBlock, count_params, init_params,
                                        torch_bias_init, torch_uniform_init)

__all__ = [
    'IMPLS', 'ROLES', 'ConvTranspose4x4', 'Discriminator', 'Generator', 'InstanceNorm',
    'ResidualBlock', 'conv', 'count_params', 'cpu_conv', 'init_params', 'patches_conv',
    'space_to_depth_conv4x4', 'subpixel_conv_transpose', 'tap_weight_grad_conv',
    'torch_bias_init', 'torch_uniform_init', 'winograd_conv3x3',
]
