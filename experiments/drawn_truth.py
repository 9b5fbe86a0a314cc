"""What a perfect G would output on the built-in ``faces`` test images: the builder's own drawing.

The ``faces`` builder draws test image i from the RNG ``drawn.example_rng``
gives it, so every test face can be drawn again with other labels: another
hair colour, with or without the beard and short hair (``Male``) or the
wrinkles (``Young``), or with an expression of ``faces_expr`` (its brows and
mouth). That drawing is the translation a perfect G would make, the
reference that a reader's or an FID's verdict on G's translations is judged
against (``joint_cross_by_source --truth``, ``realism_check --truth``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stargan_jax import cli
from stargan_jax import faces
from stargan_jax import labels as labels_lib
from stargan_jax.datasets import drawn
from stargan_jax.datasets import registry
from stargan_jax.evaluation import fid

SOURCE = 'faces'  # the dataset whose test faces can be drawn again
TARGETS = ('faces', 'faces_expr')  # the datasets whose labels they can be drawn with


def drawn_test_faces(config: drawn.DrawnConfig) -> dict[bytes, faces.AttributeFace]:
  """The ``faces`` test split as the builder drew it: image bytes -> the face drawn."""
  test = drawn.SPLITS.index('test')
  out = {}
  for i in range(config.num_test):
    face = faces.sample_attribute_face(drawn.example_rng(config, test, i))
    out[face.render(config.image_size).tobytes()] = face
  return out


def run_test_faces(data_dir: str, image_size: int) -> dict[bytes, faces.AttributeFace]:
  """``drawn_test_faces`` of the ``faces`` builder a run at ``image_size`` reads from ``data_dir``."""
  return drawn_test_faces(registry.get_builder(SOURCE, data_dir, image_size).builder_config)


def faces_of(faces_by_image: dict[bytes, faces.AttributeFace], x) -> list[faces.AttributeFace]:
  """The drawn face of every image of batch ``x`` (floats in [-1, 1], as the pipeline gives)."""
  out = []
  for img in fid.to_pixels(x):
    face = faces_by_image.get(img.tobytes())
    if face is None:
      raise cli.UserError('--truth: a test image of faces is not one the faces builder draws '
                          'at this size (a dataset built by another version?); pass --notruth')
    out.append(face)
  return out


def draw(face: faces.AttributeFace, size: int, spec: labels_lib.DomainSpec,
         c: np.ndarray) -> np.ndarray:
  """uint8: ``face`` drawn with labels ``c`` of dataset ``spec`` (``faces`` or ``faces_expr``).

  ``faces`` labels set the hair colour, ``Male`` and ``Young`` they name (a
  run may select a subset; the others stay the face's own); a ``faces_expr``
  label draws its expression on the face.
  """
  c = np.asarray(c)
  if spec.dataset == 'faces_expr':
    return face.render(size, int(np.argmax(c)))
  if spec.dataset != 'faces':
    raise ValueError(f'no drawing of {spec.dataset!r} labels')
  hair, male, young = face.hair, face.male, face.young
  for name, value in zip(spec.names, c):
    if name in faces.HAIR_NAMES and value:
      hair = faces.HAIR_NAMES.index(name)
    elif name == 'Male':
      male = bool(value)
    elif name == 'Young':
      young = bool(value)
  return dataclasses.replace(face, hair=hair, male=male, young=young).render(size)


def as_floats(images: list[np.ndarray]) -> np.ndarray:
  """uint8 drawings -> a batch of floats in [-1, 1], as G's translations are."""
  return np.stack(images).astype(np.float32) / 127.5 - 1.0


def truth_images(faces_by_image: dict[bytes, faces.AttributeFace], x,
                 spec: labels_lib.DomainSpec, c_trg, batch_faces=None) -> np.ndarray:
  """The faces of batch ``x`` drawn with targets ``c_trg`` of ``spec``, floats in [-1, 1].

  ``batch_faces``: ``faces_of(faces_by_image, x)`` when the caller already has it.
  """
  if batch_faces is None:
    batch_faces = faces_of(faces_by_image, x)
  size = np.asarray(x).shape[1]
  return as_floats([draw(f, size, spec, c) for f, c in zip(batch_faces, np.asarray(c_trg))])
