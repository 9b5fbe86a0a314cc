"""Fixed-size batches for jitted functions: ``apply_padded``.

Evaluation feeds test splits and image folders whose sizes are no multiple of
the batch; padding the last batch keeps one compiled shape per function.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def pad_to(a: np.ndarray, rows: int) -> np.ndarray:
  """``a`` with its last row repeated up to ``rows`` rows (``a`` itself when it has them)."""
  if a.shape[0] >= rows:
    return a
  return np.concatenate([a, np.repeat(a[-1:], rows - a.shape[0], axis=0)], axis=0)


def apply_padded(fn: Callable, batch: int, x: np.ndarray, *rows: np.ndarray) -> np.ndarray:
  """``fn(x, *rows)`` with every argument padded to ``batch`` rows; the padding cut off."""
  n = x.shape[0]
  if n == batch:
    return fn(x, *rows)
  return fn(pad_to(x, batch), *(pad_to(r, batch) for r in rows))[:n]
