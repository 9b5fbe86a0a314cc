"""Command lines that prepare data: ``build`` (a dataset into a TFDS data dir) and
``synthetic_sets`` (face sets in CelebA's and RaFD's on-disk layouts).

The builders they run are the library's (``stargan_jax.datasets``): training
reads every dataset back through its builder and prepares the built-in ones on
first use, so the library needs them and this package only drives them.
"""
