"""stargan-jax: StarGAN (Choi et al., CVPR 2018) in JAX/Flax."""

__version__ = '0.3.0'
