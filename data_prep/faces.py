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

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from stargan_jax import faces

KINDS = ('attributes', 'expressions')


@dataclasses.dataclass
class FacesConfig(tfds.core.BuilderConfig):
  kind: str = 'attributes'
  image_size: int = 32
  num_train: int = 8000
  num_test: int = 500
  seed: int = 0


def make_config(kind: str = 'attributes', image_size: int = 32, num_train: int = 8000,
                num_test: int = 500, seed: int = 0) -> FacesConfig:
  if kind not in KINDS:
    raise ValueError(f'faces dataset kind must be one of {KINDS}, got {kind!r}')
  if not 32 <= image_size <= 256:
    raise ValueError(f'faces image_size must be in [32, 256], got {image_size}')
  if num_train < 1 or num_test < 1:
    raise ValueError(f'num_train and num_test must be positive, got {num_train}, {num_test}')
  name = f'{kind}_{image_size}px_{num_train}_{num_test}_seed{seed}'
  return FacesConfig(name=name, kind=kind, image_size=image_size, num_train=num_train,
                     num_test=num_test, seed=seed, description=f'faces {kind}, {image_size} px')


class Faces(tfds.core.GeneratorBasedBuilder):
  """Drawn faces whose hair, beard, wrinkles or expression are the domains."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [make_config('attributes', 32), make_config('expressions', 32)]

  def _info(self):
    size = self.builder_config.image_size
    features = {
        'image': tfds.features.Image(shape=(size, size, 3), encoding_format='png'),
        'file_name': tfds.features.Text(),
    }
    if self.builder_config.kind == 'attributes':
      features['attributes'] = tfds.features.FeaturesDict(
          {name: tfds.features.Scalar(dtype=np.int32) for name in faces.ATTRIBUTE_NAMES})
    else:
      features['label'] = tfds.features.ClassLabel(names=faces.EXPRESSION_NAMES)
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features))

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    return {'train': self._generate_examples(0, cfg.num_train),
            'test': self._generate_examples(1, cfg.num_test)}

  def _generate_examples(self, split_id: int, count: int):
    cfg = self.builder_config
    for i in range(count):
      rng = np.random.default_rng([cfg.seed, split_id, i])
      name = f'{"train" if split_id == 0 else "test"}_{i:06d}.png'
      if cfg.kind == 'attributes':
        image, attrs = faces.sample_attribute_example(rng, cfg.image_size)
        extra = {'attributes': dict(zip(faces.ATTRIBUTE_NAMES, attrs.astype(np.int32)))}
      else:
        image, label = faces.sample_expression_example(rng, cfg.image_size)
        extra = {'label': label}
      buf = io.BytesIO()
      Image.fromarray(image).save(buf, format='PNG')
      buf.seek(0)
      yield name, {'image': buf, 'file_name': name, **extra}


def builder(data_dir: str, **config_kwargs) -> Faces:
  config = make_config(**config_kwargs)
  if config in Faces.BUILDER_CONFIGS:  # TFDS refuses a twin of a registered config
    config = config.name
  return Faces(config=config, data_dir=data_dir, file_format='array_record')
