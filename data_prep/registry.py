"""Old import path of ``stargan_jax.datasets.registry`` (tests/conftest.py still uses it).

The library reads the datasets it trains on, so their registry and builders
live in ``stargan_jax.datasets``; ``data_prep`` holds the command lines.
"""

from stargan_jax.datasets.registry import (
    _FACTORIES, AUTO_PREPARE, UnknownDatasetError, default_attributes, get_builder, names, prepare)

__all__ = ['_FACTORIES', 'AUTO_PREPARE', 'UnknownDatasetError', 'default_attributes',
           'get_builder', 'names', 'prepare']
