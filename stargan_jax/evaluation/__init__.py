"""Evaluators of a saved run, apart from the trainer; each takes a pure translate function.

* ``pixels``: the built-in datasets' pixel readers (target reached, content kept);
* ``classifier``: the paper's Table 3 protocol (a ResNet-18 trained on real images);
* ``fid`` and ``inception``: FID and KID on Inception-v3 pool features;
* ``protocol``: all of them on one checkpoint (``python -m stargan_jax.evaluate``);
* ``report``: the markdown tables and charts it writes.
"""
