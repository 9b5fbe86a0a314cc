"""TFDS builders of the built-in drawn datasets (no download needed).

The training job builds them on first use; by hand::

  python -m data_prep.build --dataset=procedural --image_size=32   # or procedural_classes
  python -m data_prep.build --dataset=faces --image_size=64        # or faces_expr

``Procedural`` (``stargan_jax/procedural.py`` draws and reads it):
``attributes`` gives 5 binary attributes (Red/Green/Blue mutually exclusive,
Frame, Dark), like CelebA's default; ``classes`` gives 4 one-hot
fill-pattern classes, like RaFD's expressions.

``Faces`` (``stargan_jax/faces.py``): ``attributes`` (``faces``) gives 5
binary attributes named as CelebA's default (Black_Hair/Blond_Hair/
Brown_Hair mutually exclusive, Male, Young); ``expressions`` (``faces_expr``)
gives RaFD's 8 one-hot expressions, drawn by the mouth and the brows.

Images are deterministic given the config's seed; any size from 32 to 256 px.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from stargan_jax import faces, procedural
from stargan_jax.datasets import common

PROCEDURAL_KINDS = ('attributes', 'classes')
FACES_KINDS = ('attributes', 'expressions')


@dataclasses.dataclass
class DrawnConfig(tfds.core.BuilderConfig):
  kind: str = 'attributes'
  image_size: int = 32
  num_train: int = 8000
  num_test: int = 500
  seed: int = 0


def _config(family: str, kinds: tuple[str, ...], kind: str = 'attributes', image_size: int = 32,
            num_train: int = 8000, num_test: int = 500, seed: int = 0) -> DrawnConfig:
  """A config of a drawn dataset (``family`` names it in messages), its arguments checked."""
  if kind not in kinds:
    raise common.BuildError(f'{family} dataset kind must be one of {kinds}, got {kind!r}')
  common.check_image_size(family, image_size, 32, 256)
  if num_train < 1 or num_test < 1:
    raise common.BuildError(f'num_train and num_test must be positive, got {num_train}, '
                            f'{num_test}')
  name = f'{kind}_{image_size}px_{num_train}_{num_test}_seed{seed}'
  return DrawnConfig(name=name, kind=kind, image_size=image_size, num_train=num_train,
                     num_test=num_test, seed=seed, description=f'{family} {kind}, {image_size} px')


def procedural_config(kind: str = 'attributes', image_size: int = 32, num_train: int = 8000,
                      num_test: int = 500, seed: int = 0) -> DrawnConfig:
  return _config('procedural', PROCEDURAL_KINDS, kind, image_size, num_train, num_test, seed)


def faces_config(kind: str = 'attributes', image_size: int = 32, num_train: int = 8000,
                 num_test: int = 500, seed: int = 0) -> DrawnConfig:
  return _config('faces', FACES_KINDS, kind, image_size, num_train, num_test, seed)


SPLITS = ('train', 'test')  # split_id -> name


def example_rng(cfg: DrawnConfig, split_id: int, i: int) -> np.random.Generator:
  """The RNG example i of split ``SPLITS[split_id]`` is drawn from."""
  return np.random.default_rng([cfg.seed, split_id, i])


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
      rng = example_rng(cfg, split_id, i)
      name = f'{SPLITS[split_id]}_{i:06d}.png'
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


class Procedural(DrawnDataset):
  """Procedural shapes whose colour, frame, shade or pattern are the domains."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '1.1.0': 'Background: fixed mean level, steeper gradients.'}
  BUILDER_CONFIGS = [procedural_config('attributes', 32), procedural_config('classes', 32)]
  ATTRIBUTE_NAMES = procedural.ATTRIBUTE_NAMES
  CLASS_NAMES = procedural.CLASS_NAMES
  sample_attributes = staticmethod(procedural.sample_attribute_example)
  sample_class = staticmethod(procedural.sample_class_example)


class Faces(DrawnDataset):
  """Drawn faces whose hair, beard, wrinkles or expression are the domains."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [faces_config('attributes', 32), faces_config('expressions', 32)]
  ATTRIBUTE_NAMES = faces.ATTRIBUTE_NAMES
  CLASS_NAMES = faces.EXPRESSION_NAMES
  sample_attributes = staticmethod(faces.sample_attribute_example)
  sample_class = staticmethod(faces.sample_expression_example)


def procedural_builder(data_dir: str, **config_kwargs) -> Procedural:
  """The procedural builder of ``procedural_config(**config_kwargs)``."""
  return common.open_builder(Procedural, data_dir, procedural_config(**config_kwargs))


def faces_builder(data_dir: str, **config_kwargs) -> Faces:
  """The faces builder of ``faces_config(**config_kwargs)``."""
  return common.open_builder(Faces, data_dir, faces_config(**config_kwargs))
