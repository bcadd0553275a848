"""Paired comparison of two methods run on the same units (e.g. iPTNet vs iPTNet-L per (split, seed)).

`paired_difference(a, b)` returns the mean of the per-unit differences a_i - b_i with a confidence interval:

* method "t" (default): Student's t interval for the paired mean, mean ± t_{(1+c)/2, n-1} · sd / sqrt(n), sd
  with n - 1 degrees of freedom. It assumes the differences are roughly normal; with the handful of runs of
  an experiment it is the usual choice, and its width says how little a few runs can show.
* method "bootstrap": the percentile bootstrap: `num_resamples` resamples of the n differences with
  replacement (numpy Generator seeded by `seed`, so a rerun gives the same interval), the interval being the
  (1-c)/2 and (1+c)/2 quantiles of the resampled means. It makes no normality assumption but is too narrow
  for very small n (it cannot be wider than the range of the differences).

With fewer than two pairs there is no interval: ci_low and ci_high are None (JSON null), never NaN.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from iptnet_jax.errors import InputError

METHODS = ("t", "bootstrap")


class StatsInputError(InputError):
  """Inputs that do not form a valid paired comparison; the message names the argument."""


@dataclasses.dataclass(frozen=True)
class PairedDifference:
  mean: float
  ci_low: float | None
  ci_high: float | None
  n: int
  confidence: float
  method: str
  differences: tuple[float, ...]
  runs: tuple | None = None  # the pairs' keys (e.g. (split, seed)), when given as mappings
  a: tuple[float, ...] = ()
  b: tuple[float, ...] = ()

  def to_dict(self, *, with_runs: bool = True) -> dict:
    """{"mean", "ci_low", "ci_high", "n", "confidence", "method"} and, with_runs, the per-run numbers."""
    out = {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n,
           "confidence": self.confidence, "method": self.method}
    if with_runs:
      keys = self.runs if self.runs is not None else range(self.n)
      out["runs"] = [{"run": list(k) if isinstance(k, tuple) else k, "a": x, "b": y, "difference": d}
                     for k, x, y, d in zip(keys, self.a, self.b, self.differences)]
    return out


def _values(name: str, values) -> np.ndarray:
  try:
    array = np.asarray(values, np.float64)
  except (TypeError, ValueError):
    raise StatsInputError(f"{name}: expected a sequence of numbers, got {values!r}") from None
  if array.ndim != 1:
    raise StatsInputError(f"{name}: expected a 1-D sequence of numbers, got shape {array.shape}")
  if not np.isfinite(array).all():
    raise StatsInputError(f"{name}: expected finite numbers, got {array[~np.isfinite(array)][0]} at position "
                          f"{int(np.argmin(np.isfinite(array)))}")
  return array


def _pair(a, b) -> tuple[np.ndarray, np.ndarray, tuple | None]:
  if isinstance(a, Mapping) != isinstance(b, Mapping):
    raise StatsInputError(f"a / b: expected both mappings (run -> value) or both sequences, got "
                          f"{type(a).__name__} and {type(b).__name__}")
  if isinstance(a, Mapping):
    if set(a) != set(b):
      only_a, only_b = sorted(map(str, set(a) - set(b))), sorted(map(str, set(b) - set(a)))
      raise StatsInputError(f"a / b: expected the same runs on both sides (a comparison is paired), got runs only "
                            f"in a {only_a[:5]} and only in b {only_b[:5]}")
    keys = tuple(a)
    return _values("a", [a[k] for k in keys]), _values("b", [b[k] for k in keys]), keys
  a, b = _values("a", a), _values("b", b)
  if a.shape != b.shape:
    raise StatsInputError(f"b: expected {a.shape[0]} values, one per value of a (a comparison is paired), got "
                          f"{b.shape[0]}")
  return a, b, None


def t_interval(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
  """Student's t interval of the mean of `differences`, or None with fewer than 2 values."""
  d = np.asarray(differences, np.float64)
  if d.shape[0] < 2:
    return None
  half = scipy_stats.t.ppf((1 + confidence) / 2, d.shape[0] - 1) * d.std(ddof=1) / math.sqrt(d.shape[0])
  return float(d.mean() - half), float(d.mean() + half)


def bootstrap_interval(differences: Sequence[float], confidence: float = 0.95, *, num_resamples: int = 10000,
                       seed: int = 0) -> tuple[float, float] | None:
  """Percentile bootstrap interval of the mean (seeded), or None with fewer than 2 values."""
  d = np.asarray(differences, np.float64)
  if d.shape[0] < 2:
    return None
  rng = np.random.default_rng(seed)
  means = d[rng.integers(0, d.shape[0], size=(num_resamples, d.shape[0]))].mean(axis=1)
  low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
  return float(low), float(high)


def paired_difference(a: Mapping | Sequence[float], b: Mapping | Sequence[float], *, confidence: float = 0.95,
                      method: str = "t", num_resamples: int = 10000, seed: int = 0) -> PairedDifference:
  """Mean of a_i - b_i with a `confidence` interval (module docstring).

  a, b: sequences of the same length in the same order, or mappings with the same keys (e.g. (split, seed)),
  which are paired by key and reported in the mapping order of `a`.
  """
  if method not in METHODS:
    raise StatsInputError(f"method: expected one of {METHODS}, got {method!r}")
  if not 0 < confidence < 1:
    raise StatsInputError(f"confidence: expected a level in (0, 1), got {confidence}")
  if method == "bootstrap" and num_resamples < 1:
    raise StatsInputError(f"num_resamples: expected a positive count, got {num_resamples}")
  a, b, keys = _pair(a, b)
  if a.shape[0] == 0:
    raise StatsInputError("a / b: expected at least one pair, got none")
  differences = a - b
  interval = (t_interval(differences, confidence) if method == "t" else
              bootstrap_interval(differences, confidence, num_resamples=num_resamples, seed=seed))
  low, high = interval if interval is not None else (None, None)
  return PairedDifference(float(differences.mean()), low, high, int(a.shape[0]), confidence, method,
                          tuple(map(float, differences)), keys, tuple(map(float, a)), tuple(map(float, b)))


@dataclasses.dataclass(frozen=True)
class UnpairedDifference:
  """mean(a) - mean(b) of two independent samples with Welch's t interval (unequal variances)."""
  mean: float
  ci_low: float | None
  ci_high: float | None
  p_value: float | None
  dof: float | None
  n_a: int
  n_b: int
  confidence: float

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def welch_difference(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95) -> UnpairedDifference:
  """Welch's t interval and two-sided p of mean(a) - mean(b) for independent runs (e.g. seeds of two codebases
  whose random streams differ, so seed k of one is not paired with seed k of the other): half-width
  t_{(1+c)/2, dof} * sqrt(s_a^2/n_a + s_b^2/n_b), dof by Welch-Satterthwaite. Fewer than two values on a side,
  or no spread on both: no interval (None)."""
  if not 0 < confidence < 1:
    raise StatsInputError(f"confidence: expected a level in (0, 1), got {confidence}")
  a, b = _values("a", a), _values("b", b)
  if a.shape[0] == 0 or b.shape[0] == 0:
    raise StatsInputError(f"a / b: expected at least one value on each side, got {a.shape[0]} and {b.shape[0]}")
  mean = float(a.mean() - b.mean())
  if min(a.shape[0], b.shape[0]) < 2:
    return UnpairedDifference(mean, None, None, None, None, int(a.shape[0]), int(b.shape[0]), confidence)
  var_a, var_b = a.var(ddof=1) / a.shape[0], b.var(ddof=1) / b.shape[0]
  if var_a + var_b == 0:
    return UnpairedDifference(mean, None, None, None, None, int(a.shape[0]), int(b.shape[0]), confidence)
  dof = (var_a + var_b) ** 2 / (var_a ** 2 / (a.shape[0] - 1) + var_b ** 2 / (b.shape[0] - 1))
  half = scipy_stats.t.ppf((1 + confidence) / 2, dof) * math.sqrt(var_a + var_b)
  p_value = 2 * scipy_stats.t.sf(abs(mean) / math.sqrt(var_a + var_b), dof)
  return UnpairedDifference(mean, mean - half, mean + half, float(p_value), float(dof), int(a.shape[0]),
                            int(b.shape[0]), confidence)
