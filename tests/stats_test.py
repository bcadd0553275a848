"""Paired mean difference with Student-t and percentile-bootstrap intervals; expectations from tables and by
hand, not from scipy (Welch's unpaired interval: against scipy.stats.ttest_ind, a separate implementation)."""

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from iptnet_jax import stats
from iptnet_jax.errors import InputError

T_975 = {4: 2.7764451052, 9: 2.2621571628}  # two-sided 95 % Student-t critical values (tables)


def test_t_interval_by_hand():
  result = stats.paired_difference([11.0, 12, 13, 14, 15], [10.0, 10, 10, 10, 10])
  # Differences 1..5: mean 3, sd sqrt(2.5), half width t_{.975,4} sqrt(2.5) / sqrt(5).
  half = T_975[4] * math.sqrt(2.5) / math.sqrt(5)
  assert result.mean == pytest.approx(3.0)
  assert (result.ci_low, result.ci_high) == pytest.approx((3 - half, 3 + half), abs=1e-9)
  assert result.n == 5 and result.method == "t" and result.confidence == 0.95
  assert result.differences == (1.0, 2.0, 3.0, 4.0, 5.0)


def test_t_interval_other_level_and_sign():
  a = np.array([0.50, 0.52, 0.47, 0.55, 0.49, 0.51, 0.53, 0.48, 0.50, 0.52])
  b = a + np.array([0.02, 0.01, 0.03, -0.01, 0.02, 0.00, 0.01, 0.02, 0.03, 0.01])
  d = a - b
  result = stats.paired_difference(a, b)
  half = T_975[9] * d.std(ddof=1) / math.sqrt(10)
  assert result.mean == pytest.approx(d.mean())
  assert result.ci_high == pytest.approx(d.mean() + half) and result.ci_high < 0  # b is better throughout
  # A 50 % interval is narrower and still centred on the mean.
  narrow = stats.paired_difference(a, b, confidence=0.5)
  assert result.ci_low < narrow.ci_low < narrow.mean < narrow.ci_high < result.ci_high
  assert narrow.mean - narrow.ci_low == pytest.approx(narrow.ci_high - narrow.mean)


def test_constant_differences_give_a_point_interval():
  result = stats.paired_difference([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
  assert (result.mean, result.ci_low, result.ci_high) == pytest.approx((2.0, 2.0, 2.0))
  boot = stats.paired_difference([3.0, 4.0, 5.0], [1.0, 2.0, 3.0], method="bootstrap", num_resamples=100)
  assert (boot.ci_low, boot.ci_high) == pytest.approx((2.0, 2.0))


def test_single_pair_has_no_interval_and_stays_json():
  result = stats.paired_difference({("split0", 1): 0.6}, {("split0", 1): 0.5})
  assert result.mean == pytest.approx(0.1) and result.ci_low is None and result.ci_high is None
  out = json.loads(json.dumps(result.to_dict(), allow_nan=False))
  assert out["ci_low"] is None and out["n"] == 1


def test_mappings_pair_by_key_and_report_runs():
  a = {("split0", 0): 0.60, ("split1", 0): 0.55, ("split0", 1): 0.58}
  b = {("split1", 0): 0.50, ("split0", 1): 0.57, ("split0", 0): 0.52}  # another order: paired by key
  result = stats.paired_difference(a, b)
  assert result.differences == pytest.approx((0.08, 0.05, 0.01))
  runs = result.to_dict()["runs"]
  assert runs[0] == {"run": ["split0", 0], "a": 0.60, "b": 0.52, "difference": pytest.approx(0.08)}
  assert [r["run"] for r in runs] == [["split0", 0], ["split1", 0], ["split0", 1]]
  assert set(result.to_dict(with_runs=False)) == {"mean", "ci_low", "ci_high", "n", "confidence", "method"}


def test_bootstrap_percentiles_match_the_exact_resampling_distribution():
  d = np.array([0.0, 1.0, 10.0])
  # The 27 equally likely resamples: P(mean = 0) = P(mean = 10) = 1/27 (3.7 %) > 2.5 %, so the exact 2.5 % and
  # 97.5 % quantiles of the resampled mean are 0 and 10.
  means = sorted(np.mean(c) for c in itertools.product(d, repeat=3))
  assert means[0] == 0 and means[-1] == 10 and means[1] > 0
  result = stats.paired_difference(d, np.zeros(3), method="bootstrap", num_resamples=20000, seed=3)
  assert (result.ci_low, result.ci_high) == pytest.approx((0.0, 10.0))
  # A 50 % interval: the exact quartiles are the 7th and 21st of the 27 sorted means (2/3 and 20/3); the exact
  # CDF passes 0.25 and 0.75 about 0.009 away from a jump, far beyond the sampling noise of 200,000 resamples.
  middle = stats.paired_difference(d, np.zeros(3), method="bootstrap", confidence=0.5, num_resamples=200000, seed=3)
  assert (middle.ci_low, middle.ci_high) == pytest.approx((means[6], means[20]), abs=1e-9)
  assert (means[6], means[20]) == pytest.approx((2 / 3, 20 / 3))


def test_bootstrap_is_seeded():
  rng = np.random.default_rng(0)
  a, b = rng.random(8), rng.random(8)
  first = stats.paired_difference(a, b, method="bootstrap", seed=5)
  assert first == stats.paired_difference(a, b, method="bootstrap", seed=5)
  other = stats.paired_difference(a, b, method="bootstrap", seed=6)
  assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
  assert first.ci_low < first.mean < first.ci_high
  assert min(a - b) <= first.ci_low and first.ci_high <= max(a - b)  # percentile intervals stay in the range


@pytest.mark.parametrize("a, b, kwargs, message", [
    ([1.0, 2.0], [1.0], {}, r"b: expected 2 values"),
    ([1.0, float("nan")], [1.0, 2.0], {}, r"a: expected finite numbers"),
    ({"x": 1.0}, {"y": 1.0}, {}, r"expected the same runs on both sides"),
    ({"x": 1.0}, [1.0], {}, r"both mappings"),
    ([], [], {}, r"at least one pair"),
    ([1.0, 2.0], [1.0, 2.0], {"method": "z"}, r"method: expected one of"),
    ([1.0, 2.0], [1.0, 2.0], {"confidence": 95}, r"confidence: expected a level in \(0, 1\)"),
    ([[1.0]], [[1.0]], {}, r"a: expected a 1-D sequence"),
])
def test_bad_inputs(a, b, kwargs, message):
  with pytest.raises(stats.StatsInputError, match=message) as error:
    stats.paired_difference(a, b, **kwargs)
  assert isinstance(error.value, InputError)


def test_welch_difference_matches_scipy_ttest_ind():
  rng = np.random.default_rng(3)
  a, b = rng.normal(1.0, 2.0, 5), rng.normal(0.0, 0.5, 4)
  result = stats.welch_difference(a, b)
  reference = scipy_stats.ttest_ind(a, b, equal_var=False)
  low, high = reference.confidence_interval(0.95)
  assert result.mean == pytest.approx(a.mean() - b.mean())
  assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))
  assert result.p_value == pytest.approx(reference.pvalue)
  assert result.dof == pytest.approx(reference.df)


def test_welch_difference_without_spread_or_pairs_has_no_interval():
  assert stats.welch_difference([1.0], [0.0, 2.0]).ci_low is None
  constant = stats.welch_difference([1.0, 1.0], [2.0, 2.0])
  assert constant.mean == -1.0 and constant.ci_high is None and constant.p_value is None


def test_welch_difference_rejects_bad_input_in_one_line():
  with pytest.raises(stats.StatsInputError, match="a: expected finite numbers"):
    stats.welch_difference([1.0, float("nan")], [1.0, 2.0])
  with pytest.raises(stats.StatsInputError, match="at least one value on each side"):
    stats.welch_difference([], [1.0])
