"""Old import path of ``stargan_jax.datasets.rafd``, for the scripts that still use it."""

from stargan_jax.datasets.rafd import (
    DEFAULT_ANGLES, DEFAULT_CROP, EXPRESSIONS, RaFD, parse_raw_name)

__all__ = ['DEFAULT_ANGLES', 'DEFAULT_CROP', 'EXPRESSIONS', 'RaFD', 'parse_raw_name']
