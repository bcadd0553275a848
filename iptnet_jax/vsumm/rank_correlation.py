"""Rank correlation of predicted importance with the users' scores (Otani et al., CVPR 2019).

"Rethinking the Evaluation of Video Summaries" replaces (or complements) the keyshot F-score, which random
scores nearly match on TVSum, by the rank correlation of the predicted importance with each user's
annotation. This module follows the authors' released code (mayu-ot/rethinking-evs, notebook "rank order
statistics"):

* Kendall's tau: `scipy.stats.kendalltau(rankdata(-user), rankdata(-pred))`, scipy's default tau-b, which
  corrects for ties on either side (TVSum's 1..5 user scores have many). Ranking first with average ranks
  changes nothing for tau-b (it only reads the order and the ties), and is kept to be the authors' call.
* Spearman's rho: `scipy.stats.spearmanr(user, pred)`: the Pearson correlation of the average ranks.
* Per video: the mean over users of the per-user coefficient; over a data set: the mean over videos (each
  video counts once, whatever its number of users).

Scores are compared at whatever level both are given: frame-level (Otani: `user_anno` (20, n_frames) with
frame-level predictions) or step-level (TVSum-I3D: the users' scores at each 2-s step, the model's step
scores). `user_scores` is (users, N); the TVSum-I3D `user_scores` field is (N, users): pass its transpose.

Check on the real TVSum annotation (ydata-tvsum50.mat, frame level): each user taken as the prediction against
the other 19, averaged the same way, gives tau 0.177 and rho 0.204, the human figures of the authors' notebook.

A constant prediction (or a constant user) has no rank correlation: scipy gives NaN and so does every mean
that includes it, as in the authors' code; `num_undefined` counts such (video, user) pairs.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from iptnet_jax.vsumm.knapsack import VsummInputError, as_float_array, input_error

__all__ = ["VsummInputError", "RankCorrelation", "user_rank_correlations", "video_rank_correlation",
           "dataset_rank_correlation", "random_rank_correlation"]

METRICS = ("kendall_tau", "spearman_rho")


@dataclasses.dataclass(frozen=True)
class RankCorrelation:
  """Mean over videos of the per-video mean over users; `per_video` keeps each video's two means."""

  kendall_tau: float
  spearman_rho: float
  num_videos: int
  num_undefined: int  # (video, user) pairs with a constant side (NaN coefficient)
  per_video: dict = dataclasses.field(default_factory=dict, repr=False)

  def to_dict(self, *, with_per_video: bool = False) -> dict:
    out = {"kendall_tau": self.kendall_tau, "spearman_rho": self.spearman_rho, "num_videos": self.num_videos,
           "num_undefined": self.num_undefined}
    if with_per_video:
      out["per_video"] = {str(k): dict(v) for k, v in self.per_video.items()}
    return out


def _check(pred, user_scores, where: str) -> tuple[np.ndarray, np.ndarray]:
  pred = as_float_array(f"{where}pred", pred, 1)
  user_scores = as_float_array(f"{where}user_scores", user_scores, 2)
  if pred.shape[0] < 2:
    raise input_error(f"{where}pred", "at least 2 scores (a rank correlation needs two items)",
                      f"shape {pred.shape}")
  if user_scores.shape[0] == 0 or user_scores.shape[1] != pred.shape[0]:
    hint = " (transposed? user_scores is (users, N))" if user_scores.shape[0] == pred.shape[0] else ""
    raise input_error(f"{where}user_scores", f"(users >= 1, N={pred.shape[0]}) like pred",
                      f"shape {user_scores.shape}{hint}")
  return pred, user_scores


def user_rank_correlations(pred, user_scores, *, where: str = "") -> tuple[np.ndarray, np.ndarray]:
  """((U,) Kendall tau-b, (U,) Spearman rho) of pred (N,) with each row of user_scores (U, N)."""
  pred, user_scores = _check(pred, user_scores, where)
  taus, rhos = [], []
  with warnings.catch_warnings():
    # A constant side is reported as NaN (counted by the callers); scipy's warning would only repeat it.
    warnings.simplefilter("ignore", stats.ConstantInputWarning)
    for user in user_scores:
      taus.append(stats.kendalltau(stats.rankdata(-user), stats.rankdata(-pred)).statistic)
      rhos.append(stats.spearmanr(user, pred).statistic)
  return np.asarray(taus, np.float64), np.asarray(rhos, np.float64)


def video_rank_correlation(pred, user_scores, *, where: str = "") -> dict:
  """{"kendall_tau", "spearman_rho"}: means over users; "num_undefined": users with a NaN coefficient."""
  taus, rhos = user_rank_correlations(pred, user_scores, where=where)
  return {"kendall_tau": float(np.mean(taus)), "spearman_rho": float(np.mean(rhos)),
          "num_undefined": int(np.count_nonzero(np.isnan(taus) | np.isnan(rhos)))}


def dataset_rank_correlation(preds: Mapping | Sequence, user_scores: Mapping | Sequence) -> RankCorrelation:
  """Mean over videos of `video_rank_correlation`.

  preds and user_scores: both mappings with the same keys (e.g. video names) or both sequences of the same
  length, one (N_v,) prediction and one (U_v, N_v) score array per video.
  """
  if isinstance(preds, Mapping) != isinstance(user_scores, Mapping):
    raise input_error("preds / user_scores", "both mappings (video -> scores) or both sequences",
                      f"{type(preds).__name__} and {type(user_scores).__name__}")
  if isinstance(preds, Mapping):
    if set(preds) != set(user_scores):
      missing, extra = sorted(map(str, set(user_scores) - set(preds))), sorted(map(str, set(preds) - set(user_scores)))
      raise input_error("preds", "the same videos as user_scores",
                        f"missing {missing[:5]}, not in user_scores {extra[:5]}")
    keys = list(preds)
  else:
    if len(preds) != len(user_scores):
      raise input_error("preds", f"{len(user_scores)} videos like user_scores", f"{len(preds)}")
    keys = list(range(len(preds)))
  if not keys:
    raise input_error("preds", "at least one video", "none")
  per_video = {key: video_rank_correlation(preds[key], user_scores[key], where=f"video {key}: ") for key in keys}
  return RankCorrelation(
      kendall_tau=float(np.mean([v["kendall_tau"] for v in per_video.values()])),
      spearman_rho=float(np.mean([v["spearman_rho"] for v in per_video.values()])),
      num_videos=len(keys), num_undefined=sum(v["num_undefined"] for v in per_video.values()),
      per_video=per_video)


def random_rank_correlation(user_scores: Mapping | Sequence, rng, *, trials: int = 10) -> dict:
  """The random floor: `dataset_rank_correlation` of uniform random scores, mean (and std) over trials.

  rng: a numpy Generator or a seed. Its expectation is 0 for both coefficients; the measured value and its
  spread show how far from 0 a method must be to differ from chance on these videos.
  """
  rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
  if trials < 1:
    raise input_error("trials", "a positive count", trials)
  items = user_scores.items() if isinstance(user_scores, Mapping) else enumerate(user_scores)
  scores = {key: as_float_array(f"video {key}: user_scores", value, 2) for key, value in items}
  results = []
  for _ in range(trials):
    preds = {key: rng.random(value.shape[1]) for key, value in scores.items()}  # one uniform score per item
    results.append(dataset_rank_correlation(preds, scores))
  out = {"trials": trials}
  for metric in METRICS:
    values = np.asarray([getattr(r, metric) for r in results])
    out[metric], out[f"{metric}_std"] = float(values.mean()), float(values.std())
  return out
