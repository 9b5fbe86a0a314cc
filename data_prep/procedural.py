"""TFDS builder for the built-in procedural dataset (no download needed).

Build command (the training job also builds it on first use)::

  python -m data_prep.build --dataset=procedural --data_dir=~/tensorflow_datasets \
      --image_size=32          # or --dataset=procedural_classes

``--kind=attributes`` gives 5 binary attributes (Red/Green/Blue mutually
exclusive, Frame, Dark), like CelebA's default; ``--kind=classes`` gives 4
one-hot fill-pattern classes, like RaFD's expressions. Images are
deterministic given ``--seed``; any size from 32 to 256 px. See
``stargan_jax/procedural.py`` for the task and its pixel readers.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from stargan_jax import procedural

KINDS = ('attributes', 'classes')


@dataclasses.dataclass
class ProceduralConfig(tfds.core.BuilderConfig):
  kind: str = 'attributes'
  image_size: int = 32
  num_train: int = 8000
  num_test: int = 500
  seed: int = 0


def make_config(kind: str = 'attributes', image_size: int = 32, num_train: int = 8000,
                num_test: int = 500, seed: int = 0) -> ProceduralConfig:
  if kind not in KINDS:
    raise ValueError(f'procedural dataset kind must be one of {KINDS}, got {kind!r}')
  if not 32 <= image_size <= 256:
    raise ValueError(f'procedural image_size must be in [32, 256], got {image_size}')
  if num_train < 1 or num_test < 1:
    raise ValueError(f'num_train and num_test must be positive, got {num_train}, {num_test}')
  name = f'{kind}_{image_size}px_{num_train}_{num_test}_seed{seed}'
  return ProceduralConfig(name=name, kind=kind, image_size=image_size, num_train=num_train,
                          num_test=num_test, seed=seed,
                          description=f'procedural {kind}, {image_size} px')


class Procedural(tfds.core.GeneratorBasedBuilder):
  """Procedural shapes whose colour, frame, shade or pattern are the domains."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '1.1.0': 'Background: fixed mean level, steeper gradients.'}
  BUILDER_CONFIGS = [make_config('attributes', 32), make_config('classes', 32)]

  def _info(self):
    size = self.builder_config.image_size
    features = {
        'image': tfds.features.Image(shape=(size, size, 3), encoding_format='png'),
        'file_name': tfds.features.Text(),
    }
    if self.builder_config.kind == 'attributes':
      features['attributes'] = tfds.features.FeaturesDict(
          {name: tfds.features.Scalar(dtype=np.int32) for name in procedural.ATTRIBUTE_NAMES})
    else:
      features['label'] = tfds.features.ClassLabel(names=procedural.CLASS_NAMES)
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
        image, attrs = procedural.sample_attribute_example(rng, cfg.image_size)
        extra = {'attributes': dict(zip(procedural.ATTRIBUTE_NAMES, attrs.astype(np.int32)))}
      else:
        image, label = procedural.sample_class_example(rng, cfg.image_size)
        extra = {'label': label}
      buf = io.BytesIO()
      Image.fromarray(image).save(buf, format='PNG')
      buf.seek(0)
      yield name, {'image': buf, 'file_name': name, **extra}


def builder(data_dir: str, **config_kwargs) -> Procedural:
  config = make_config(**config_kwargs)
  if config in Procedural.BUILDER_CONFIGS:  # TFDS refuses a twin of a registered config
    config = config.name
  return Procedural(config=config, data_dir=data_dir, file_format='array_record')

