"""Command lines that prepare data: ``build`` (a dataset into a TFDS data dir) and
``synthetic_sets`` (face sets in CelebA's and RaFD's on-disk layouts).

The builders they run are the library's (``stargan_jax.datasets``); the
other modules here are old import paths of those.
"""
