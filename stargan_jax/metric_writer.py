"""Scalars to TensorBoard (tensorboardX writes event files without TensorFlow)."""

from __future__ import annotations

import os


class MetricWriter:
  """Writes only on process 0 (``enabled``); a no-op elsewhere or without a logdir."""

  def __init__(self, logdir: str | None, enabled: bool = True):
    self._tb = None
    if enabled and logdir:
      from tensorboardX import SummaryWriter
      os.makedirs(logdir, exist_ok=True)
      self._tb = SummaryWriter(logdir)

  def scalars(self, step: int, values: dict) -> None:
    if self._tb is not None:
      for k, v in values.items():
        self._tb.add_scalar(k, float(v), step)

  def close(self):
    if self._tb is not None:
      self._tb.close()
