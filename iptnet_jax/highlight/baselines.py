"""Floors for the highlight tables, on the same data and protocol as the model.

* random: uniform random clip scores (train.random_floor).
* oracle (a ceiling, not a floor): the val video's own annotation as the clip score, the users' mean score
  ('mean_score', UMT's training target) or the fraction of users above their median ('vote'); it includes each
  scored user, so no model of the clips can be expected to beat it by much.
* ridge: per domain, a linear regression from the clip features (the modalities concatenated, standardised
  with the train clips' mean and std) to the saliency target, closed form (X^T X + lambda I)^-1 X^T y; lambda
  is chosen from `LAMBDAS` by leave-one-train-video-out top-5 mAP / mAP on the domain's train videos (never
  the val video), then refit on all train videos and scored on the val videos.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iptnet_jax.highlight import data as data_lib
from iptnet_jax.highlight import train as train_lib

LAMBDAS = (1e0, 1e1, 1e2, 1e3, 1e4, 1e5)


def _design(videos: Sequence[data_lib.Video], modalities: Sequence[str]) -> np.ndarray:
  return np.concatenate([np.concatenate([v.features[m] for m in modalities], axis=1) for v in videos]).astype(
      np.float64)


def fit_ridge(videos: Sequence[data_lib.Video], modalities: Sequence[str], target: str, lam: float):
  x = _design(videos, modalities)
  y = np.concatenate([v.target(target) for v in videos]).astype(np.float64)
  mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
  z = (x - mean) / std
  y_mean = y.mean()
  # Dual form when there are fewer clips than features: w = Z^T (Z Z^T + lambda I)^-1 (y - mean y).
  if z.shape[0] < z.shape[1]:
    w = z.T @ np.linalg.solve(z @ z.T + lam * np.eye(z.shape[0]), y - y_mean)
  else:
    w = np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ (y - y_mean))
  return lambda video: ((np.concatenate([video.features[m] for m in modalities], axis=1) - mean) / std) @ w + y_mean


def ridge_domain(dataset: data_lib.Dataset, domain: str, modalities: Sequence[str], target: str) -> dict:
  train = dataset.domain_videos(domain, "train")
  cv = {}
  for lam in LAMBDAS:
    folds = []
    for held_out in train:
      predict = fit_ridge([v for v in train if v is not held_out], modalities, target, lam)
      folds.append(train_lib.evaluate_scores(dataset.metric, {held_out.video_id: predict(held_out)}, [held_out]))
    cv[lam] = float(np.mean(folds))
  best = max(LAMBDAS, key=lambda lam: (cv[lam], -lam))
  predict = fit_ridge(train, modalities, target, best)
  val = dataset.domain_videos(domain, "val")
  score = train_lib.evaluate_scores(dataset.metric, {v.video_id: predict(v) for v in val}, val)
  return {"val": score, "lambda": best, "cv": cv[best]}


def ridge_floor(dataset: data_lib.Dataset, domains: Sequence[str], modalities: Sequence[str],
                target: str = "mean_score") -> dict:
  rows = {d: ridge_domain(dataset, d, modalities, target) for d in domains}
  return {"per_domain": {d: r["val"] for d, r in rows.items()},
          "mean": float(np.mean([r["val"] for r in rows.values()])),
          "lambda": {d: r["lambda"] for d, r in rows.items()}, "cv": {d: r["cv"] for d, r in rows.items()}}


def oracle(dataset: data_lib.Dataset, domains: Sequence[str], target: str = "mean_score") -> dict:
  """The metric of the val videos' own saliency target as the clip scores (module docstring). Ties (equal mean
  scores) are broken by clip order, as the metric does for any score."""
  per_domain = {}
  for domain in domains:
    val = dataset.domain_videos(domain, "val")
    per_domain[domain] = train_lib.evaluate_scores(dataset.metric, {v.video_id: v.target(target) for v in val}, val)
  return {"per_domain": per_domain, "mean": float(np.mean(list(per_domain.values()))), "target": target}
