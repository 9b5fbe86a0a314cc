"""Old import path of the procedural builder (``stargan_jax.datasets.drawn``)."""

from stargan_jax.datasets.drawn import Procedural
from stargan_jax.datasets.drawn import procedural_builder as builder
from stargan_jax.datasets.drawn import procedural_config as make_config

__all__ = ['Procedural', 'builder', 'make_config']
