"""Kendall tau-b and Spearman rho of predictions against users (Otani et al. CVPR 2019), checked against
brute-force definitions written here, not against scipy."""

import itertools
import math

import numpy as np
import pytest

from iptnet_jax.errors import InputError
from iptnet_jax.vsumm import rank_correlation as rc


def _tau_b(x, y):
  """Kendall's tau-b from its definition: (concordant - discordant) / sqrt((n0 - ties_x)(n0 - ties_y))."""
  concordant = discordant = ties_x = ties_y = 0
  for i, j in itertools.combinations(range(len(x)), 2):
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    ties_x += dx == 0
    ties_y += dy == 0
    concordant += dx * dy > 0
    discordant += dx * dy < 0
  n0 = len(x) * (len(x) - 1) / 2
  return (concordant - discordant) / math.sqrt((n0 - ties_x) * (n0 - ties_y))


def _average_ranks(x):
  """1-based ranks, ties sharing the mean of the ranks they span."""
  return np.asarray([1 + np.sum(x < v) + (np.sum(x == v) - 1) / 2 for v in x], np.float64)


def _rho(x, y):
  rx, ry = _average_ranks(np.asarray(x)), _average_ranks(np.asarray(y))
  rx, ry = rx - rx.mean(), ry - ry.mean()
  return float(rx @ ry / math.sqrt((rx @ rx) * (ry @ ry)))


def test_hand_computed_values():
  # x has one tied pair: 5 concordant, 0 discordant, n0 = 6, 1 tie in x -> 5 / sqrt(5 * 6).
  taus, rhos = rc.user_rank_correlations([1, 2, 3, 4], [[1, 2, 2, 3]])
  assert taus[0] == pytest.approx(5 / math.sqrt(30))
  # Ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): centred (-1.5, 0, 0, 1.5) . (-1.5, -.5, .5, 1.5) = 4.5,
  # norms sqrt(4.5) and sqrt(5) -> 4.5 / sqrt(22.5).
  assert rhos[0] == pytest.approx(4.5 / math.sqrt(22.5))
  taus, rhos = rc.user_rank_correlations([0.1, 0.5, 0.9], [[1, 2, 3], [3, 2, 1]])
  np.testing.assert_allclose(taus, [1, -1])
  np.testing.assert_allclose(rhos, [1, -1])


def test_matches_brute_force_definitions_with_many_ties():
  rng = np.random.default_rng(0)
  pred = np.round(rng.random(40), 1)  # ties in the prediction too
  users = rng.integers(1, 6, size=(5, 40)).astype(np.float64)  # TVSum-like 1..5 scores
  taus, rhos = rc.user_rank_correlations(pred, users)
  np.testing.assert_allclose(taus, [_tau_b(u, pred) for u in users], rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(rhos, [_rho(u, pred) for u in users], rtol=1e-12, atol=1e-12)


def test_invariant_to_monotone_transforms_of_the_prediction():
  rng = np.random.default_rng(1)
  pred, users = rng.random(30), rng.integers(1, 6, size=(3, 30))
  base = rc.video_rank_correlation(pred, users)
  assert rc.video_rank_correlation(np.exp(5 * pred) - 3, users) == pytest.approx(base)


def test_mean_over_users_then_videos():
  pred = np.array([1.0, 2.0, 3.0, 4.0])
  up, down = pred, -pred
  videos = {"a": np.stack([up, up]), "b": np.stack([up, down, down, down])}
  result = rc.dataset_rank_correlation({"a": pred, "b": pred}, videos)
  # Video a: 1; video b: (1 - 3) / 4 = -0.5; mean over videos 0.25 (pooling the 6 users would give 0).
  assert result.kendall_tau == pytest.approx(0.25) and result.spearman_rho == pytest.approx(0.25)
  assert result.num_videos == 2 and result.num_undefined == 0
  assert result.per_video["b"]["kendall_tau"] == pytest.approx(-0.5)
  assert result.to_dict(with_per_video=True)["per_video"]["a"]["spearman_rho"] == pytest.approx(1.0)
  as_lists = rc.dataset_rank_correlation([pred, pred], [videos["a"], videos["b"]])
  assert as_lists.kendall_tau == pytest.approx(0.25)


def test_constant_prediction_is_undefined_and_counted():
  result = rc.dataset_rank_correlation([np.ones(5)], [np.arange(10.0).reshape(2, 5)])
  assert math.isnan(result.kendall_tau) and math.isnan(result.spearman_rho)
  assert result.num_undefined == 2


def test_random_floor_is_near_zero_and_seeded():
  rng = np.random.default_rng(2)
  users = {f"v{i}": rng.integers(1, 6, size=(10, 100)) for i in range(3)}
  floor = rc.random_rank_correlation(users, 7, trials=5)
  assert floor == rc.random_rank_correlation(users, 7, trials=5)
  assert floor != rc.random_rank_correlation(users, 8, trials=5)
  # 150 (trial, video, user) coefficients of 100 items: standard errors about 0.006 (tau) and 0.008 (rho),
  # so the floor sits within 5 of them of 0.
  assert abs(floor["kendall_tau"]) < 0.03 and abs(floor["spearman_rho"]) < 0.04
  assert floor["trials"] == 5 and floor["kendall_tau_std"] > 0


@pytest.mark.parametrize("pred, users, message", [
    (np.ones(4), np.ones((4, 3)), r"user_scores: expected \(users >= 1, N=4\).*transposed"),
    (np.ones(4), np.ones(4), r"user_scores: expected a 2-D array"),
    (np.ones(1), np.ones((2, 1)), r"pred: expected at least 2 scores"),
    (np.array([1.0, np.nan]), np.ones((2, 2)), r"pred"),
])
def test_bad_inputs(pred, users, message):
  with pytest.raises(InputError, match=message):
    rc.dataset_rank_correlation([pred], [users])


def test_mismatched_videos():
  with pytest.raises(rc.VsummInputError, match=r"preds: expected the same videos as user_scores"):
    rc.dataset_rank_correlation({"a": np.ones(3)}, {"b": np.ones((1, 3))})
  with pytest.raises(rc.VsummInputError, match=r"both mappings"):
    rc.dataset_rank_correlation({"a": np.ones(3)}, [np.ones((1, 3))])
