"""Translation grids: each row an input image, then one column per target domain."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def to_uint8(images) -> np.ndarray:
  """[-1, 1] floats -> uint8."""
  x = (np.asarray(images, np.float32) + 1.0) * 127.5
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def grid(columns: list) -> np.ndarray:
  """columns[j] is N x H x W x 3 in [-1, 1]; returns (N*H) x (len*W) x 3 uint8."""
  cols = [to_uint8(c) for c in columns]
  rows = [np.concatenate([c[i] for c in cols], axis=1) for i in range(cols[0].shape[0])]
  return np.concatenate(rows, axis=0)


def save_png(array: np.ndarray, path: str) -> str:
  """Writes atomically (temporary file + rename), so a kill never leaves half a PNG."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  Image.fromarray(array).save(tmp, format='PNG')
  os.replace(tmp, path)
  return path


def translation_columns(translate_fn, g_params, layout, dataset: int, x, c_org,
                        target_datasets=None) -> list:
  """[x, G(x, t_1), G(x, t_2), ...] for every test-time target of the given datasets.

  For dataset ``dataset`` the targets come from its own labels ``c_org``; for
  any other dataset j (joint models) the image's labels there are unknown, so
  its targets are built from zeros (one-hot classes, or single attributes).
  """
  if target_datasets is None:
    target_datasets = range(layout.num_datasets)
  cols = [np.asarray(x)]
  for j in target_datasets:
    for c_trg in layout.test_targets(j, dataset, c_org):
      cols.append(np.asarray(translate_fn(g_params, x, layout.embed(j, c_trg))))
  return cols
