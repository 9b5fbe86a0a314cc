"""Old import path of ``stargan_jax.datasets.celeba`` (the README names it for official_split)."""

from stargan_jax.datasets.celeba import (
    CELEBA_ATTRIBUTES, CROP_SIZE, DEFAULT_ATTRIBUTES, NUM_TEST, CelebA, official_split,
    read_attr_file, split_of_names)

__all__ = ['CELEBA_ATTRIBUTES', 'CROP_SIZE', 'DEFAULT_ATTRIBUTES', 'NUM_TEST', 'CelebA',
           'official_split', 'read_attr_file', 'split_of_names']
