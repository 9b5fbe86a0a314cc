"""Realism as a number: FID and KID of translations, against the floor of real images.

FID (Heusel et al., 2017) is the Fréchet distance between Gaussians fitted to
the Inception pool features (``stargan_jax.inception``) of two image sets:
``|mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))``. KID (Binkowski et
al., 2018) is the unbiased estimate of the squared MMD between the feature
sets with the polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over
random subsets (100 of at most 1,000 images each, as clean-fid reports it,
drawn from at most 2,000 images of each set); unlike FID it has no bias that
depends on the number of images.

Protocol (StarGAN v2's, per target domain): *real* = the domain's training
images, *fake* = the test images translated into the domain (sources already
in it skipped). A domain is a class of a categorical dataset, a set hair
colour (an attribute of a mutually exclusive group), or one value of a binary
attribute (``Male=1``, ``Male=0``). Every figure comes with its **floor**: the
same distance between that domain's *real test* images and its training
images, at the same number of images (FID is biased upward at small counts,
so a translation FID is only readable next to the floor at its own count):
``fid`` and its ``floor`` use ``n = min(translations, real test images of the
domain)`` images on both sides, and ``fid_all_translations`` uses every
translation (StarGAN v2's figure). The same again for all translations into a
dataset against all its training images.

Generated images are quantised to uint8 as a saved PNG would be, so real and
translated images reach the network through the same path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Callable

import numpy as np

from stargan_jax import batching
from stargan_jax import labels as labels_lib

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


# -- the distances ------------------------------------------------------------------

_CHUNK = 1024  # rows per float64 block when accumulating moments


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance (N - 1 normalised, as numpy.cov and every FID tool) in float64.

  Accumulated over blocks of rows, so that a large float32 feature set is never
  copied whole into float64.
  """
  f = np.asarray(features)
  n = f.shape[0]
  if n < 2:
    raise ValueError(f'FID needs at least 2 images per set, got {n}')
  mu = np.zeros(f.shape[1])
  for i in range(0, n, _CHUNK):
    mu += f[i:i + _CHUNK].astype(np.float64).sum(axis=0)
  mu /= n
  sigma = np.zeros((f.shape[1], f.shape[1]))
  for i in range(0, n, _CHUNK):
    block = f[i:i + _CHUNK].astype(np.float64) - mu
    sigma += block.T @ block
  return mu, sigma / (n - 1)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh((s + s.T) / 2)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

  Tr (S1 S2)^(1/2) is computed as Tr (S1^(1/2) S2 S1^(1/2))^(1/2): the two
  matrices are similar, and the second is symmetric positive semi-definite, so
  its square root comes from a symmetric eigendecomposition (no complex
  round-off to discard, as scipy.linalg.sqrtm of S1 S2 leaves).
  """
  return Reference.from_moments(mu1, sigma1).distance(mu2, sigma2)


class Reference:
  """A set that many sets are compared with (a domain's training images).

  FID: when both sets have fewer images than feature dimensions (every set up
  to 2,047 images), ``Tr (S1 S2)^(1/2)`` is the nuclear norm of the cross-Gram
  matrix ``X1 X2^T / sqrt((n1 - 1)(n2 - 1))`` of the centred features (the
  eigenvalues of ``S1 S2`` are the squared singular values of ``X1 X2^T``), an
  n1 x n2 problem instead of 2048 x 2048 ones. Otherwise the covariance route,
  with this set's square root taken once.

  KID: the kernel matrices are computed once on a pool of at most
  ``2 * KID_SUBSET_SIZE`` images of each set, and every subset's estimate is
  read off them, so the 100 subsets cost three matrix products, and this
  set's own kernel is shared by every comparison.
  """

  def __init__(self, features: np.ndarray | None, mu=None, sigma=None, seed: int = 0):
    self.seed = seed
    self._root = None
    self._centred = None
    if features is None:  # from moments only: FID through the covariance route
      self.features = None
      self.mu, self.sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
      self.n, self.dim = None, self.mu.shape[0]
    else:
      self.features = np.asarray(features)
      self.n, self.dim = self.features.shape
      self.mu, self.sigma = gaussian(self.features)
      if self.n < self.dim:
        self._centred = self.features.astype(np.float64) - self.mu
    self.trace = float(np.trace(self.sigma))
    self._pool = self._pool_kernel = None

  @classmethod
  def from_moments(cls, mu, sigma) -> 'Reference':
    return cls(None, mu, sigma)

  def distance(self, mu, sigma) -> float:
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if self._root is None:
      self._root = _psd_sqrt(self.sigma)
    m = self._root @ sigma @ self._root
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = self.mu - mu
    return float(diff @ diff + self.trace + np.trace(sigma) - 2.0 * tr_covmean)

  def fid(self, features: np.ndarray) -> float:
    f = np.asarray(features)
    mu, sigma = gaussian(f)
    if self._centred is None or f.shape[0] >= self.dim:
      return self.distance(mu, sigma)
    centred = f.astype(np.float64) - mu
    sv = np.linalg.svd(self._centred @ centred.T, compute_uv=False)
    tr_covmean = float(sv.sum() / np.sqrt((self.n - 1) * (f.shape[0] - 1)))
    diff = self.mu - mu
    return float(diff @ diff + self.trace + np.trace(sigma) - 2.0 * tr_covmean)

  def kid(self, features: np.ndarray, subsets: int = KID_SUBSETS,
          subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """(mean, std) over ``subsets`` random subsets of equal size of both sets."""
    if self.features is None:
      raise ValueError('KID needs the features, not only their moments')
    pool_size = 2 * subset_size
    if self._pool is None:
      self._pool = _subsample(self.features, pool_size, self.seed).astype(np.float64)
      self._pool_kernel = _poly_kernel(self._pool, self._pool)
    other = _subsample(np.asarray(features), pool_size, seed + 1).astype(np.float64)
    k_oo = _poly_kernel(other, other)
    k_or = _poly_kernel(other, self._pool)
    size = min(subset_size, other.shape[0], self._pool.shape[0])
    if size < 2:
      raise ValueError(f'KID needs at least 2 images per set, got {size}')
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
      a = rng.choice(other.shape[0], size, replace=False)
      b = rng.choice(self._pool.shape[0], size, replace=False)
      values.append(_mmd2_from_kernels(k_oo[np.ix_(a, a)], self._pool_kernel[np.ix_(b, b)],
                                       k_or[np.ix_(a, b)]))
    return float(np.mean(values)), float(np.std(values))


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_from_kernels(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
  """The unbiased estimate: the diagonals of K_xx and K_yy are left out."""
  m, n = kxx.shape[0], kyy.shape[0]
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
               - 2.0 * kxy.mean())


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
  return Reference(f1).fid(f2)


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (the diagonals of K_xx, K_yy left out)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.shape[0] < 2 or y.shape[0] < 2:
    raise ValueError(f'KID needs at least 2 images per set, got {x.shape[0]} and {y.shape[0]}')
  return _mmd2_from_kernels(_poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y))


def kid(f1: np.ndarray, f2: np.ndarray, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
  """(mean, std) of the unbiased MMD^2 over random subsets of equal size of both sets."""
  return Reference(f2, seed=seed).kid(f1, subsets, subset_size, seed)


def to_pixels(images: np.ndarray) -> np.ndarray:
  """Images in [-1, 1] -> uint8 as a saved PNG holds them (the training data's inverse)."""
  return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


# -- domains ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Domain:
  name: str
  column: int  # the test-grid column whose target translates into it
  attribute: int  # label index that defines membership
  value: float  # membership: label[attribute] == value

  def contains(self, labels: np.ndarray) -> np.ndarray:
    return np.asarray(labels)[:, self.attribute] == self.value


def domains(spec: labels_lib.DomainSpec) -> list[Domain]:
  """A class; a hair colour set; or each value of a binary attribute."""
  out = []
  for k, name in enumerate(spec.names):
    if spec.kind == labels_lib.CATEGORICAL or name in spec.exclusive:
      out.append(Domain(name, k, k, 1.0))
    else:
      out += [Domain(f'{name}=1', k, k, 1.0), Domain(f'{name}=0', k, k, 0.0)]
  return out


# -- real-image features, cached ------------------------------------------------------

def _fingerprint(dataset, split: str) -> str:
  """Identifies a prepared split by its size and a few of its images and labels."""
  source = dataset.sources[split]
  h = hashlib.sha1(f'{dataset.name}|{split}|{len(source)}|{dataset.image_size}|'
                   f'{list(dataset.spec.names)}'.encode())
  n = len(source)
  for i in sorted({0, 1, 2, n // 2, n - 1}):
    ex = dataset.example(source[i])
    h.update(np.ascontiguousarray(ex['image']).tobytes())
    h.update(np.asarray(ex['label']).tobytes())
  return h.hexdigest()[:16]


def cache_dir() -> str:
  return os.path.join(os.path.expanduser(os.environ.get('STARGAN_JAX_CACHE',
                                                        '~/.cache/stargan_jax')), 'fid_stats')


def real_features(dataset, split: str, count: int, extractor, batch_size: int = 50,
                  log: Callable[[str], None] = print, use_cache: bool = True):
  """(features N x 2048, labels N x c) of the first ``count`` images of a split, cached.

  The cache key holds the dataset's name, size, split, count, a fingerprint of
  its images and the Inception weights' SHA-1, so a rebuilt dataset or other
  weights never reuse stale features.
  """
  from stargan_jax import input_pipeline  # the data stack only where data is read
  n = min(count, len(dataset.sources[split]))
  key = (f'{dataset.name.replace(":", "-")}_{dataset.image_size}px_{split}_{n}_'
         f'{_fingerprint(dataset, split)}_{extractor.weights_sha1[:12]}')
  path = os.path.join(cache_dir(), key + '.npz')
  if use_cache and os.path.isfile(path):
    with np.load(path) as z:
      return z['features'], z['labels']
  log(f'FID: Inception features of {n} real {split} images of {dataset.name!r} '
      f'({dataset.image_size} px)')
  feats, labels = [], []
  for batch in input_pipeline.eval_batches(dataset, batch_size, split=split, limit=n):
    feats.append(extractor(to_pixels(batch['image'])))
    labels.append(np.asarray(batch['label'], np.float32))
  feats, labels = np.concatenate(feats), np.concatenate(labels)
  if use_cache:
    os.makedirs(cache_dir(), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}.npz'
    np.savez(tmp, features=feats, labels=labels)
    os.replace(tmp, path)  # never a half-written entry under the real name
  return feats, labels


# -- the protocol ------------------------------------------------------------------------

def _subsample(f: np.ndarray, n: int, seed: int) -> np.ndarray:
  if f.shape[0] <= n:
    return f
  return f[np.sort(np.random.default_rng(seed).choice(f.shape[0], n, replace=False))]


def _pair(fake: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> dict:
  """The figures of one fake set against its real training images, with the floor."""
  entry = {'translations': int(fake.shape[0]), 'real_train_images': int(train.shape[0]),
           'real_test_images': int(test.shape[0])}
  if fake.shape[0] < 2 or train.shape[0] < 2:
    return dict(entry, fid=None, floor=None, n=0, note='fewer than 2 images')
  ref = Reference(train, seed=seed)
  entry['fid_all_translations'] = ref.fid(fake)
  entry['kid'], entry['kid_std'] = ref.kid(fake, seed=seed)
  n = min(fake.shape[0], test.shape[0])
  entry['n'] = int(n)
  if n < 2:
    entry.update(fid=None, floor=None, note='fewer than 2 real test images: no floor')
    return entry
  fake_n, test_n = _subsample(fake, n, seed), _subsample(test, n, seed + 1)
  entry['fid'] = ref.fid(fake_n)
  entry['floor'] = ref.fid(test_n)
  entry['kid_floor'], entry['kid_floor_std'] = ref.kid(test_n, seed=seed + 2)
  entry['fid_over_floor'] = entry['fid'] / entry['floor'] if entry['floor'] > 0 else None
  return entry


def evaluate(translate_fn, g_params, layout: labels_lib.LabelLayout, datasets, extractor,
             fid_samples: int = 2000, batch_size: int = 50, limit: int | None = None,
             log: Callable[[str], None] = print, use_cache: bool = True) -> dict:
  """FID and KID of translating every dataset's test images into every dataset's domains.

  ``translate_fn(g_params, x, c)`` -> images in [-1, 1] (c in G's layout);
  ``datasets`` are the layout's datasets (``input_pipeline.Dataset``);
  ``extractor`` maps uint8-valued N x H x W x 3 images to N x 2048 features
  (``inception.FeatureExtractor``). ``fid_samples`` bounds every image set:
  real training and test images per dataset, translations per domain.
  Returns result[source][target] = {'domains': {name: figures}, 'mean': ...,
  'all': figures}.
  """
  from stargan_jax import input_pipeline
  if fid_samples < 2:
    raise ValueError(f'--fid_samples must be at least 2, got {fid_samples}')
  train = [real_features(d, 'train', fid_samples, extractor, batch_size, log, use_cache)
           for d in datasets]
  test = [real_features(d, 'test', fid_samples if limit is None else min(limit, fid_samples),
                        extractor, batch_size, log, use_cache) for d in datasets]
  result = {}
  for src, d in enumerate(datasets):
    doms = [domains(s) for s in layout.specs]
    fakes = {(j, q): [] for j in range(len(datasets)) for q in range(len(doms[j]))}
    counts = dict.fromkeys(fakes, 0)
    for batch in input_pipeline.eval_batches(d, batch_size, limit=limit):
      x, c_org = np.asarray(batch['image'], np.float32), np.asarray(batch['label'], np.float32)
      for j in range(layout.num_datasets):
        targets = layout.test_targets(j, src, c_org)
        for q, dom in enumerate(doms[j]):
          if counts[(j, q)] >= fid_samples:
            continue
          rows = ~dom.contains(c_org) if j == src else np.ones(x.shape[0], bool)
          c_trg = targets[dom.column]
          rows &= dom.contains(c_trg)  # the column's target lies in this domain
          rows = np.flatnonzero(rows)[:fid_samples - counts[(j, q)]]
          if rows.size == 0:
            continue
          rows_up = -(-rows.size // batch_size) * batch_size  # a multiple: few compiled shapes
          out = batching.apply_padded(lambda xx, cc: np.asarray(translate_fn(g_params, xx, cc)),
                                      rows_up, x[rows], layout.embed(j, c_trg[rows]))
          fakes[(j, q)].append(extractor(to_pixels(out)))
          counts[(j, q)] += rows.size
    per_target = {}
    for j, spec in enumerate(layout.specs):
      tr_f, tr_l = train[j]
      te_f, te_l = test[j]
      entries, all_fake = {}, []
      for q, dom in enumerate(doms[j]):
        fake = (np.concatenate(fakes[(j, q)]) if fakes[(j, q)]
                else np.zeros((0, tr_f.shape[1]), np.float32))
        all_fake.append(fake)
        entries[dom.name] = _pair(fake, tr_f[dom.contains(tr_l)], te_f[dom.contains(te_l)],
                                  seed=q)
      scored = [e for e in entries.values() if e.get('fid') is not None]
      mean = {k: float(np.mean([e[k] for e in scored])) if scored else None
              for k in ('fid', 'floor', 'kid', 'kid_floor', 'fid_all_translations')}
      if mean['fid'] is not None and mean['floor']:
        mean['fid_over_floor'] = mean['fid'] / mean['floor']
      per_target[spec.dataset] = {
          'domains': entries, 'mean': mean,
          'all': _pair(np.concatenate(all_fake), tr_f, te_f, seed=len(doms[j])),
      }
    result[d.name] = per_target
  return result



def summary_lines(result: dict) -> list[str]:
  lines = []
  for src, per_trg in result.items():
    for trg, e in per_trg.items():
      m, a = e['mean'], e['all']
      if m['fid'] is None:
        lines.append(f'FID {src} -> {trg}: not enough images')
        continue
      lines.append(
          f'FID {src} -> {trg} domains: mean over domains {m["fid"]:.2f} (floor '
          f'{m["floor"]:.2f}, {m.get("fid_over_floor", float("nan")):.2f}x), KID x 1000 '
          f'{1000 * m["kid"]:.2f} (floor {1000 * m["kid_floor"]:.2f}); all translations '
          f'{_f(a.get("fid"))} at n={a.get("n")} (floor {_f(a.get("floor"))})')
  return lines


def _f(x) -> str:
  return '-' if x is None else f'{x:.2f}'


def markdown_lines(result: dict) -> list[str]:
  lines = ['## Realism: FID and KID (Inception pool features)', '',
           'Per target domain: *real* = its training images, *fake* = test images translated '
           'into it; the floor is the domain\'s real test images against the same training '
           'images, at the same count n. KID x 1000.', '']
  for src, per_trg in result.items():
    for trg, e in per_trg.items():
      lines += [f'### {src} test images -> {trg} domains', '',
                '| domain | n | FID | floor | FID / floor | KID | KID floor | FID, all translations (count) |',
                '|---|---|---|---|---|---|---|---|']
      rows = list(e['domains'].items()) + [('**mean**', e['mean']), ('**all domains**', e['all'])]
      for name, r in rows:
        ratio = r.get('fid_over_floor')
        kid_v, kid_f = r.get('kid'), r.get('kid_floor')
        lines.append(
            f'| {name} | {r.get("n", "")} | {_f(r.get("fid"))} | {_f(r.get("floor"))} | '
            f'{"-" if ratio is None else f"{ratio:.2f}x"} | '
            f'{"-" if kid_v is None else f"{1000 * kid_v:.2f}"} | '
            f'{"-" if kid_f is None else f"{1000 * kid_f:.2f}"} | '
            f'{_f(r.get("fid_all_translations"))}'
            f'{"" if "translations" not in r else " (" + str(r["translations"]) + ")"} |')
      lines.append('')
  return lines
