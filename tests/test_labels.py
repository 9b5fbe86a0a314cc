"""Domain specs, test-time targets and the joint label layout with the mask."""

import numpy as np
import pytest

from stargan_jax import labels

CELEBA = labels.DomainSpec('celeba', ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male', 'Young'),
                           labels.ATTRIBUTES,
                           labels.exclusive_group(('Black_Hair', 'Blond_Hair', 'Brown_Hair',
                                                   'Male', 'Young')))
RAFD = labels.DomainSpec('rafd', ('angry', 'contemptuous', 'disgusted', 'fearful', 'happy',
                                  'neutral', 'sad', 'surprised'), labels.CATEGORICAL)


def test_attribute_targets_follow_reference():
  c_org = np.array([[1, 0, 0, 1, 0]], np.float32)  # black hair, male, old
  t = CELEBA.test_targets(c_org)
  assert len(t) == 5
  np.testing.assert_array_equal(t[0], [[1, 0, 0, 1, 0]])  # black: set, others cleared
  np.testing.assert_array_equal(t[1], [[0, 1, 0, 1, 0]])  # blond
  np.testing.assert_array_equal(t[2], [[0, 0, 1, 1, 0]])  # brown
  np.testing.assert_array_equal(t[3], [[1, 0, 0, 0, 0]])  # male flipped
  np.testing.assert_array_equal(t[4], [[1, 0, 0, 1, 1]])  # young flipped


def test_categorical_targets_are_one_hot_per_class():
  t = RAFD.test_targets(np.eye(8, dtype=np.float32)[[3, 5]])
  assert len(t) == 8
  for k, c in enumerate(t):
    np.testing.assert_array_equal(c, np.eye(8)[[k, k]])


def test_single_dataset_layout_has_no_mask():
  layout = labels.LabelLayout((CELEBA,))
  assert (layout.g_dim, layout.cls_dim, layout.mask_dim) == (5, 5, 0)
  c = np.ones((2, 5), np.float32)
  np.testing.assert_array_equal(layout.embed(0, c), c)


def test_joint_layout_and_mask():
  layout = labels.LabelLayout((CELEBA, RAFD))
  assert (layout.g_dim, layout.cls_dim, layout.mask_dim) == (15, 13, 2)
  assert layout.cls_slice(0) == (0, 5) and layout.cls_slice(1) == (5, 13)
  c = np.array([[1, 0, 0, 1, 1]], np.float32)
  np.testing.assert_array_equal(layout.embed(0, c), [[1, 0, 0, 1, 1] + [0] * 8 + [1, 0]])
  r = np.eye(8, dtype=np.float32)[[4]]
  np.testing.assert_array_equal(layout.embed(1, r), [[0] * 5 + list(np.eye(8)[4]) + [0, 1]])


def test_three_datasets_mask_is_one_hot_over_n():
  third = labels.DomainSpec('other', ('a', 'b', 'c'), labels.CATEGORICAL)
  layout = labels.LabelLayout((CELEBA, RAFD, third))
  assert layout.g_dim == 5 + 8 + 3 + 3
  e = layout.embed(2, np.eye(3, dtype=np.float32)[[1]])
  np.testing.assert_array_equal(e[0, -3:], [0, 0, 1])
  np.testing.assert_array_equal(e[0, 13:16], [0, 1, 0])
  assert e[0, :13].sum() == 0


def test_roundtrip_and_errors():
  layout = labels.LabelLayout((CELEBA, RAFD))
  assert labels.LabelLayout.from_dict(layout.to_dict()) == layout
  with pytest.raises(ValueError, match='kind'):
    labels.DomainSpec('x', ('a',), 'multi')
  with pytest.raises(ValueError, match='duplicate'):
    labels.DomainSpec('x', ('a', 'a'))
