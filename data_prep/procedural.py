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


def checked_config(config_cls, family: str, kinds: tuple[str, ...], kind: str = 'attributes',
                   image_size: int = 32, num_train: int = 8000, num_test: int = 500,
                   seed: int = 0):
  """A config of a drawn dataset (``family`` names it in messages), its arguments checked."""
  if kind not in kinds:
    raise ValueError(f'{family} dataset kind must be one of {kinds}, got {kind!r}')
  if not 32 <= image_size <= 256:
    raise ValueError(f'{family} image_size must be in [32, 256], got {image_size}')
  if num_train < 1 or num_test < 1:
    raise ValueError(f'num_train and num_test must be positive, got {num_train}, {num_test}')
  name = f'{kind}_{image_size}px_{num_train}_{num_test}_seed{seed}'
  return config_cls(name=name, kind=kind, image_size=image_size, num_train=num_train,
                    num_test=num_test, seed=seed, description=f'{family} {kind}, {image_size} px')


def make_config(kind: str = 'attributes', image_size: int = 32, num_train: int = 8000,
                num_test: int = 500, seed: int = 0) -> ProceduralConfig:
  return checked_config(ProceduralConfig, 'procedural', KINDS, kind, image_size, num_train,
                        num_test, seed)


class DrawnDataset(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A dataset drawn from a seed: 'attributes' configs or one-hot classes.

  Subclasses name what they draw: ``ATTRIBUTE_NAMES`` and ``CLASS_NAMES``, and
  ``sample_attributes(rng, size) -> (image, 0/1 vector)`` and
  ``sample_class(rng, size) -> (image, class index)``; example i of a split
  is drawn from the RNG seeded with (seed, split, i).
  """

  ATTRIBUTE_NAMES: tuple[str, ...] = ()
  CLASS_NAMES: tuple[str, ...] = ()

  @staticmethod
  def sample_attributes(rng: np.random.Generator, size: int):
    raise NotImplementedError

  @staticmethod
  def sample_class(rng: np.random.Generator, size: int):
    raise NotImplementedError

  def _info(self):
    size = self.builder_config.image_size
    features = {
        'image': tfds.features.Image(shape=(size, size, 3), encoding_format='png'),
        'file_name': tfds.features.Text(),
    }
    if self.builder_config.kind == 'attributes':
      features['attributes'] = tfds.features.FeaturesDict(
          {name: tfds.features.Scalar(dtype=np.int32) for name in self.ATTRIBUTE_NAMES})
    else:
      features['label'] = tfds.features.ClassLabel(names=self.CLASS_NAMES)
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
        image, attrs = self.sample_attributes(rng, cfg.image_size)
        extra = {'attributes': dict(zip(self.ATTRIBUTE_NAMES, attrs.astype(np.int32)))}
      else:
        image, label = self.sample_class(rng, cfg.image_size)
        extra = {'label': label}
      buf = io.BytesIO()
      Image.fromarray(image).save(buf, format='PNG')
      buf.seek(0)
      yield name, {'image': buf, 'file_name': name, **extra}

  @classmethod
  def open(cls, data_dir: str, config):
    if config in cls.BUILDER_CONFIGS:  # TFDS refuses a twin of a registered config
      config = config.name
    return cls(config=config, data_dir=data_dir, file_format='array_record')


class Procedural(DrawnDataset):
  """Procedural shapes whose colour, frame, shade or pattern are the domains."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '1.1.0': 'Background: fixed mean level, steeper gradients.'}
  BUILDER_CONFIGS = [make_config('attributes', 32), make_config('classes', 32)]
  ATTRIBUTE_NAMES = procedural.ATTRIBUTE_NAMES
  CLASS_NAMES = procedural.CLASS_NAMES
  sample_attributes = staticmethod(procedural.sample_attribute_example)
  sample_class = staticmethod(procedural.sample_class_example)


def builder(data_dir: str, **config_kwargs) -> Procedural:
  return Procedural.open(data_dir, make_config(**config_kwargs))
