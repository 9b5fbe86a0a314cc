"""Domain labels: what each dataset labels, and the joint layout with the mask.

A ``DomainSpec`` describes one dataset's labels: binary ``attributes``
(CelebA-like, sigmoid CE, several may be set) or one-hot ``categorical``
classes (RaFD-like, softmax CE). ``LabelLayout`` lays several out as
``[c_1 | c_2 | ... | mask]`` (paper section 3.2): the mask is one-hot over
the datasets and is present only when there are two or more. G sees the whole
vector; D's classification head has c_1 + c_2 + ... outputs and a batch of
dataset i is classified only on its own slice.
"""

from __future__ import annotations

import dataclasses

import numpy as np

ATTRIBUTES = 'attributes'
CATEGORICAL = 'categorical'

# Attributes that are mutually exclusive when selected together; at test time
# setting one clears the others (the reference's hair colours).
KNOWN_EXCLUSIVE_GROUPS = (
    ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Gray_Hair'),
    ('Red', 'Green', 'Blue'),
)


@dataclasses.dataclass(frozen=True)
class DomainSpec:
  dataset: str
  names: tuple[str, ...]
  kind: str = ATTRIBUTES
  exclusive: tuple[str, ...] = ()  # the selected names of a mutually exclusive group

  def __post_init__(self):
    if self.kind not in (ATTRIBUTES, CATEGORICAL):
      raise ValueError(f'label kind must be {ATTRIBUTES!r} or {CATEGORICAL!r}, got {self.kind!r}')
    if not self.names:
      raise ValueError(f'dataset {self.dataset!r} has no labels selected')
    if len(set(self.names)) != len(self.names):
      raise ValueError(f'dataset {self.dataset!r}: duplicate label names in {self.names}')

  @property
  def c_dim(self) -> int:
    return len(self.names)

  def test_targets(self, c_org: np.ndarray) -> list[np.ndarray]:
    """Target labels for the test grid, one per column (reference ``create_labels``).

    Attributes: one target per attribute; an exclusive attribute sets itself
    and clears the rest of its group, any other attribute is flipped.
    Categorical: one target per class.
    """
    c_org = np.asarray(c_org, np.float32)
    targets = []
    for i, name in enumerate(self.names):
      if self.kind == CATEGORICAL:
        c = np.zeros_like(c_org)
        c[:, i] = 1.0
      else:
        c = c_org.copy()
        if name in self.exclusive:
          for other in self.exclusive:
            c[:, self.names.index(other)] = 0.0
          c[:, i] = 1.0
        else:
          c[:, i] = 1.0 - c[:, i]
      targets.append(c)
    return targets

  def to_dict(self) -> dict:
    return {'dataset': self.dataset, 'names': list(self.names), 'kind': self.kind,
            'exclusive': list(self.exclusive)}

  @classmethod
  def from_dict(cls, d: dict) -> 'DomainSpec':
    return cls(d['dataset'], tuple(d['names']), d['kind'], tuple(d.get('exclusive', ())))


def exclusive_group(names) -> tuple[str, ...]:
  """The selected names that form a known mutually exclusive group (2 or more)."""
  for group in KNOWN_EXCLUSIVE_GROUPS:
    chosen = tuple(n for n in names if n in group)
    if len(chosen) >= 2:
      return chosen
  return ()


@dataclasses.dataclass(frozen=True)
class LabelLayout:
  specs: tuple[DomainSpec, ...]

  def __post_init__(self):
    if not self.specs:
      raise ValueError('a label layout needs at least one dataset')

  @property
  def num_datasets(self) -> int:
    return len(self.specs)

  @property
  def cls_dim(self) -> int:
    """Outputs of D's classification head: c_1 + c_2 + ..."""
    return sum(s.c_dim for s in self.specs)

  @property
  def mask_dim(self) -> int:
    return self.num_datasets if self.num_datasets > 1 else 0

  @property
  def g_dim(self) -> int:
    """Length of the label G sees: c_1 + ... + c_n (+ n mask entries if n > 1)."""
    return self.cls_dim + self.mask_dim

  def cls_slice(self, i: int) -> tuple[int, int]:
    start = sum(s.c_dim for s in self.specs[:i])
    return start, start + self.specs[i].c_dim

  def embed(self, i: int, c, xp=np):
    """Dataset i's labels N x c_i -> G's label N x g_dim (zeros elsewhere, mask one-hot)."""
    n = c.shape[0]
    start, stop = self.cls_slice(i)
    parts = []
    if start:
      parts.append(xp.zeros((n, start), c.dtype))
    parts.append(c)
    if self.cls_dim - stop:
      parts.append(xp.zeros((n, self.cls_dim - stop), c.dtype))
    if self.mask_dim:
      mask = np.zeros((1, self.mask_dim), np.float32)
      mask[0, i] = 1.0
      parts.append(xp.broadcast_to(xp.asarray(mask, c.dtype), (n, self.mask_dim)))
    return xp.concatenate(parts, axis=1)

  def test_targets(self, target: int, source: int, c_org) -> list[np.ndarray]:
    """The test grid's targets in dataset ``target`` for images of dataset ``source``.

    From the images' own labels ``c_org`` within their dataset; across
    datasets their labels there are unknown, so from zeros (as the
    reference's joint test grids do). One N x c_target array per column.
    """
    spec = self.specs[target]
    c_org = np.asarray(c_org, np.float32)
    own = c_org if target == source else np.zeros((c_org.shape[0], spec.c_dim), np.float32)
    return spec.test_targets(own)

  def to_dict(self) -> dict:
    return {'datasets': [s.to_dict() for s in self.specs]}

  @classmethod
  def from_dict(cls, d: dict) -> 'LabelLayout':
    return cls(tuple(DomainSpec.from_dict(s) for s in d['datasets']))
