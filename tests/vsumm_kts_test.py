"""Kernel temporal segmentation: DP against brute force, planted change points, shot tiling."""

import itertools
import math

import numpy as np
import pytest

from iptnet_jax.vsumm import kts


def _direct_scatter(kernel, first, last):
  """Scatter of steps first..last (inclusive) straight from the definition."""
  idx = np.arange(first, last + 1)
  block = kernel[np.ix_(idx, idx)]
  return np.trace(block) - block.sum() / len(idx)


def _random_kernel(rng, n, dim=3):
  x = rng.normal(size=(n, dim))
  return x @ x.T


def _brute_force(kernel, ncp, lmin=1, lmax=10**6):
  """Minimal objective and its change points over every segmentation with `ncp` change points."""
  n = kernel.shape[0]
  best = (math.inf, None)
  for cps in itertools.combinations(range(1, n), ncp):
    bounds = (0,) + cps + (n,)
    lengths = np.diff(bounds)
    if lengths.min() < lmin or lengths.max() > lmax:
      continue
    value = sum(_direct_scatter(kernel, a, b - 1) for a, b in zip(bounds[:-1], bounds[1:]))
    if value < best[0]:
      best = (value, np.array(cps))
  return best


def test_segment_scatters_match_the_definition():
  kernel = _random_kernel(np.random.default_rng(0), 9)
  scatters = kts.segment_scatters(kernel)
  for i in range(9):
    for j in range(9):
      expected = _direct_scatter(kernel, i, j) if j >= i else 0.0
      assert scatters[i, j] == pytest.approx(expected, abs=1e-9)
  # A single step has no scatter around its own mean.
  np.testing.assert_allclose(np.diag(scatters), 0.0, atol=1e-9)


@pytest.mark.parametrize("lmin,lmax", [(1, 100000), (2, 3), (1, 2)])
def test_cpd_nonlin_matches_brute_force(lmin, lmax):
  rng = np.random.default_rng(1)
  n = 8
  kernel = _random_kernel(rng, n)
  max_ncp = n // lmin - 1
  cps, objective = kts.cpd_nonlin(kernel, max_ncp, lmin=lmin, lmax=lmax)
  assert objective.shape == (max_ncp + 1,)
  for ncp in range(max_ncp + 1):
    best_value, best_cps = _brute_force(kernel, ncp, lmin, lmax)
    if best_cps is None:  # no segmentation with this many change points fits the length bounds
      assert objective[ncp] == np.inf
      continue
    assert objective[ncp] == pytest.approx(best_value, abs=1e-9)
    if (ncp + 1) * lmin <= n <= (ncp + 1) * lmax:
      found, values = kts.cpd_nonlin(kernel, ncp, lmin=lmin, lmax=lmax)
      np.testing.assert_array_equal(found, best_cps)
      assert values[ncp] == pytest.approx(best_value, abs=1e-9)
  assert len(cps) == max_ncp


def test_cpd_nonlin_without_backtrack_gives_the_same_objective():
  kernel = _random_kernel(np.random.default_rng(2), 12)
  cps, objective = kts.cpd_nonlin(kernel, 5)
  none_cps, objective_only = kts.cpd_nonlin(kernel, 5, backtrack=False)
  assert none_cps is None
  np.testing.assert_array_equal(objective, objective_only)
  assert len(cps) == 5 and np.all(np.diff(cps) > 0)


def _planted_features(rng, boundaries, n, dim=16, noise=0.0):
  """Steps whose features are constant (one random direction per segment) between the planted boundaries."""
  bounds = [0, *boundaries, n]
  rows = []
  for a, b in zip(bounds[:-1], bounds[1:]):
    rows.append(np.repeat(rng.normal(size=(1, dim)), b - a, axis=0))
  return np.concatenate(rows) + noise * rng.normal(size=(n, dim))


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_cpd_auto_recovers_planted_change_points(noise):
  rng = np.random.default_rng(3)
  planted = [7, 15, 28, 33]
  x = kts.l2_normalise(_planted_features(rng, planted, 40, noise=noise))
  cps, costs = kts.cpd_auto(x @ x.T, 39, vmax=1.0)
  np.testing.assert_array_equal(cps, planted)
  assert costs.shape == (40,) and int(np.argmin(costs)) == len(planted)


def test_cpd_auto_costs_are_objective_over_n_plus_penalty():
  kernel = _random_kernel(np.random.default_rng(4), 10)
  _, objective = kts.cpd_nonlin(kernel, 9, backtrack=False)
  _, costs = kts.cpd_auto(kernel, 9, vmax=0.3)
  # Hand value: penalty(2) for n = 10, vmax = 1 is 2 / 20 * (log 5 + 1) = 0.260944.
  assert kts.kts_penalties(10, 9, 1.0)[2] == pytest.approx(0.1 * (math.log(5) + 1))
  assert kts.kts_penalties(10, 9, 1.0)[0] == 0.0
  np.testing.assert_allclose(costs, objective / 10 + kts.kts_penalties(10, 9, 0.3))


def test_cpd_auto_large_penalty_gives_no_change_point():
  x = kts.l2_normalise(_planted_features(np.random.default_rng(5), [10], 20))
  cps, _ = kts.cpd_auto(x @ x.T, 19, vmax=1e6)
  assert cps.size == 0


def test_kts_shots_maps_step_change_points_through_picks_and_tiles_frames():
  rng = np.random.default_rng(6)
  planted = [5, 12]
  features = _planted_features(rng, planted, 20, noise=0.02)
  picks = np.arange(20) * 15 + 2  # frames 0..1 precede the first step: they join the first shot
  change_points, nfps = kts.kts_shots(features, picks, n_frames=305)
  np.testing.assert_array_equal(change_points, [[0, 76], [77, 181], [182, 304]])
  np.testing.assert_array_equal(nfps, [77, 105, 123])
  fixed, fixed_nfps = kts.kts_shots(features, picks, n_frames=305, n_shots=3)
  np.testing.assert_array_equal(fixed, change_points)


@pytest.mark.parametrize("n_shots", [1, 2, 5, 20])
def test_kts_shots_with_a_fixed_count_tile_every_frame_once(n_shots):
  rng = np.random.default_rng(7)
  features = rng.random((20, 8))
  n_frames = 20 * 60 + 37
  change_points, nfps = kts.kts_shots(features, np.arange(20) * 60, n_frames, n_shots=n_shots)
  assert change_points.shape == (n_shots, 2)
  coverage = np.zeros(n_frames, dtype=int)
  for first, last in change_points:
    coverage[first:last + 1] += 1
  np.testing.assert_array_equal(coverage, 1)
  np.testing.assert_array_equal(nfps, change_points[:, 1] - change_points[:, 0] + 1)
  # Boundaries fall on picks.
  assert set(change_points[1:, 0]) <= set(np.arange(20) * 60)


def test_uniform_shots_hand_examples():
  cps, nfps = kts.uniform_shots(10, 4)
  np.testing.assert_array_equal(cps, [[0, 3], [4, 7], [8, 9]])
  np.testing.assert_array_equal(nfps, [4, 4, 2])
  cps, _ = kts.uniform_shots(10, 2.5)  # starts 0, ceil(2.5)=3, 5, ceil(7.5)=8
  np.testing.assert_array_equal(cps, [[0, 2], [3, 4], [5, 7], [8, 9]])
  cps, _ = kts.uniform_shots(5, 8)
  np.testing.assert_array_equal(cps, [[0, 4]])
  cps, nfps = kts.uniform_shots(7 * 120 + 5, 2 * 30000 / 1001)  # 2 s at 29.97 fps
  assert nfps.sum() == 845 and cps[1, 0] == 60 and cps[-1, 1] == 844


def test_eccv16_shot_count_reproduces_the_released_files():
  # Shot counts of released eccv16 videos (nchucvml/STVT issue #8): TVSum video_1, video_12, video_13, SumMe video_12.
  for n_frames, shots in [(10597, 71), (13511, 91), (3532, 24), (950, 7), (150, 1), (151, 2)]:
    assert kts.eccv16_shot_count(n_frames) == shots


def test_bad_inputs_raise_kts_input_error():
  with pytest.raises(kts.KtsInputError, match="square"):
    kts.cpd_nonlin(np.zeros((3, 4)), 1)
  with pytest.raises(kts.KtsInputError, match="cannot tile"):
    kts.cpd_nonlin(np.eye(3), 3)
  with pytest.raises(kts.KtsInputError, match="lmin"):
    kts.cpd_auto(np.eye(5), 2, 1.0, lmin=3, lmax=2)
  with pytest.raises(kts.KtsInputError, match="finite"):
    kts.cpd_auto(np.full((3, 3), np.nan), 2, 1.0)
  with pytest.raises(kts.KtsInputError, match="picks"):
    kts.kts_shots(np.ones((4, 2)), np.array([0, 5, 5, 9]), 20)
  with pytest.raises(kts.KtsInputError, match="picks"):
    kts.kts_shots(np.ones((4, 2)), np.array([0, 5, 10, 20]), 20)
  with pytest.raises(kts.KtsInputError, match="n_shots"):
    kts.kts_shots(np.ones((4, 2)), np.array([0, 5, 10, 15]), 20, n_shots=5)
  with pytest.raises(kts.KtsInputError, match="boundaries"):
    kts.shots_from_boundaries([0, 5], 10)
  with pytest.raises(kts.KtsInputError, match="shot_len_frames"):
    kts.uniform_shots(10, 0.5)
