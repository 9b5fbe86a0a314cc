"""TFDS builder for the built-in face datasets (no download needed).

Build command (the training job also builds them on first use)::

  python -m data_prep.build --dataset=faces --data_dir=~/tensorflow_datasets \
      --image_size=32          # or --dataset=faces_expr

``--kind=attributes`` (``faces``) gives 5 binary attributes named as
CelebA's default (Black_Hair/Blond_Hair/Brown_Hair mutually exclusive, Male,
Young); ``--kind=expressions`` (``faces_expr``) gives RaFD's 8 one-hot
expressions, drawn by the mouth and the brows. Images are deterministic
given ``--seed``; any size from 32 to 256 px. See ``stargan_jax/faces.py``
for the drawing and its pixel readers.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from data_prep import procedural
from stargan_jax import faces

KINDS = ('attributes', 'expressions')


def make_config(kind: str = 'attributes', image_size: int = 32, num_train: int = 8000,
                num_test: int = 500, seed: int = 0) -> procedural.ProceduralConfig:
  # The same config fields as the procedural datasets; the builder's name keeps them apart.
  return procedural.checked_config(procedural.ProceduralConfig, 'faces', KINDS, kind,
                                   image_size, num_train, num_test, seed)


class Faces(procedural.DrawnDataset):
  """Drawn faces whose hair, beard, wrinkles or expression are the domains."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [make_config('attributes', 32), make_config('expressions', 32)]
  ATTRIBUTE_NAMES = faces.ATTRIBUTE_NAMES
  CLASS_NAMES = faces.EXPRESSION_NAMES
  sample_attributes = staticmethod(faces.sample_attribute_example)
  sample_class = staticmethod(faces.sample_expression_example)


def builder(data_dir: str, **config_kwargs) -> Faces:
  return Faces.open(data_dir, make_config(**config_kwargs))
