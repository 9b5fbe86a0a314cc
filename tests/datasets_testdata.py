"""Small datasets in the real layouts of CelebA, RaFD and image folders, for tests.

Not collected by pytest. Every image is a JPEG whose rows outside the centre
crop are red (top) and blue (bottom) and whose inside is green with a
per-image grey square, so a test can tell whether the crop was right.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np
from PIL import Image

from stargan_jax.datasets import celeba, rafd


def image(width: int, height: int, crop: int | None, seed: int) -> np.ndarray:
  """HxWx3 uint8: green, red rows above and blue rows below the centre ``crop`` square."""
  crop = min(width, height) if crop is None else crop
  top = int(round((height - crop) / 2.0))
  left = int(round((width - crop) / 2.0))
  x = np.zeros((height, width, 3), np.uint8)
  x[...] = (0, 200, 0)
  x[:top] = (220, 0, 0)
  x[top + crop:] = (0, 0, 220)
  x[:, :left] = (220, 0, 0)
  x[:, left + crop:] = (0, 0, 220)
  rng = np.random.default_rng(seed)
  s = crop // 4
  r, c = top + rng.integers(s, 2 * s), left + rng.integers(s, 2 * s)
  x[r:r + s, c:c + s] = rng.integers(60, 200)
  return x


def write_jpeg(path: str, array: np.ndarray) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  # 4:4:4 chroma, so colours bleed at most within an 8x8 block across the crop line
  Image.fromarray(array).save(path, format='JPEG', quality=95, subsampling=0)
  return path


def write_attr_file(path: str, names, attr_names, values, count: int | None = None) -> str:
  """A file in CelebA's format; values are 0/1 (written as -1/1, with CelebA's spacing)."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(path, 'w') as f:
    f.write(f'{len(names) if count is None else count}\n')
    f.write(' '.join(attr_names) + ' \n')
    for n, v in zip(names, values):
      f.write(n + ' ' + ' '.join(f'{2 * int(b) - 1:2d}' for b in v) + '\n')
  return path


def celeba_values(n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 2, (n, len(celeba.CELEBA_ATTRIBUTES)))


def write_celeba(root: str, n: int = 24, layout: str = 'reference', seed: int = 0):
  """CelebA in ``layout``: 'reference' (celeba/images), 'release' (img_align_celeba/) or 'zip'.

  Returns (names, values): file names in file order and their 0/1 attributes.
  """
  names = [f'{i:06d}.jpg' for i in range(1, n + 1)]
  values = celeba_values(n, seed)
  if layout == 'reference':
    image_dir, attr = os.path.join(root, 'celeba', 'images'), os.path.join(root, 'celeba')
  else:
    image_dir, attr = os.path.join(root, 'img_align_celeba'), root
  write_attr_file(os.path.join(attr, 'list_attr_celeba.txt'), names, celeba.CELEBA_ATTRIBUTES,
                  values)
  for i, name in enumerate(names):
    write_jpeg(os.path.join(image_dir, name), image(178, 218, 178, seed * 1000 + i))
  if layout == 'zip':
    with zipfile.ZipFile(os.path.join(root, 'img_align_celeba.zip'), 'w') as z:
      for name in names:
        z.write(os.path.join(image_dir, name), f'img_align_celeba/{name}')
    for name in names:
      os.remove(os.path.join(image_dir, name))
    os.rmdir(image_dir)
  return names, values


def write_rafd_reference(root: str, train_per_class: int = 3, test_per_class: int = 1,
                         size=(280, 300)) -> str:
  """RaFD/{train,test}/<expression>/*.jpg, images ``size`` (w, h) with a 256 crop marked."""
  base = os.path.join(root, 'RaFD')
  k = 0
  for split, count in (('train', train_per_class), ('test', test_per_class)):
    for e in rafd.EXPRESSIONS:
      for i in range(count):
        write_jpeg(os.path.join(base, split, e, f'{e}_{i:03d}.jpg'),
                   image(size[0], size[1], 256, k))
        k += 1
  return base


def raw_name(angle: int, person: int, expression: str, gaze: str = 'frontal',
             ethnicity: str = 'Caucasian', gender: str = 'female') -> str:
  return f'Rafd{angle:03d}_{person:02d}_{ethnicity}_{gender}_{expression}_{gaze}.jpg'


def write_rafd_raw(root: str, people=(1, 2, 3, 5), angles=(90,), gazes=('frontal',),
                   expressions=rafd.EXPRESSIONS, size=(136, 204)) -> list[str]:
  """The raw release's flat folder RaFD/Rafd090_01_..._angry_frontal.jpg.

  The real photos are 681x1024; a fifth of that keeps the test fast with the
  same aspect ratio (the crop is then the largest centred square).
  """
  names = []
  k = 0
  for person in people:
    for angle in angles:
      for e in expressions:
        for g in gazes:
          name = raw_name(angle, person, e, g)
          write_jpeg(os.path.join(root, 'RaFD', name), image(size[0], size[1], None, k))
          names.append(name)
          k += 1
  return names


def write_class_folders(root: str, classes=('cats', 'dogs', 'owls'), per_class: int = 8,
                        size=(48, 40)) -> str:
  """DIR/<class>/img_NNN.jpg of ``size`` (w, h)."""
  k = 0
  for c in classes:
    for i in range(per_class):
      write_jpeg(os.path.join(root, c, f'img_{i:03d}.jpg'), image(size[0], size[1], None, k))
      k += 1
  return root


def tiny_config(data_dir: str, datasets, num_iters: int = 2, attrs=()):
  """The library's tiny preset with a G step every iteration, so a 2-step run trains both."""
  from stargan_jax import config as config_lib
  cfg = config_lib.tiny_config(data_dir, datasets, num_iters)
  cfg.data.attrs = tuple(attrs)
  cfg.optim.num_iters_decay = 1
  cfg.optim.n_critic = 1
  cfg.run.log_every = 1
  cfg.run.num_samples = 4
  return cfg


def train_briefly(data_dir: str, workdir: str, datasets, attrs=(), num_iters: int = 2):
  """Trains ``num_iters`` iterations; returns (trainer, final state)."""
  from stargan_jax import train
  trainer = train.Trainer(tiny_config(data_dir, datasets, num_iters, attrs), workdir)
  state = trainer.train()
  trainer.checkpointer.close()
  return trainer, state
