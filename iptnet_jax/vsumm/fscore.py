"""Keyshot F-score against user summaries, as DSNet's `get_summ_f1score` (reference_spec.md §2.6 step 6).

Per user u: overlap = |pred AND user_u|; F1 = 0 if overlap = 0, else 2PR / (P + R) with
P = overlap / |pred| and R = overlap / |user_u|. The prediction is zero-padded or truncated to the users'
frame count first. A video's score is the mean over users ('avg', TVSum) or the max ('max', SumMe).
"""

from __future__ import annotations

import numpy as np

from iptnet_jax.vsumm.knapsack import VsummInputError, as_binary_array, input_error

__all__ = ["VsummInputError", "EVAL_METRICS", "f1_per_user", "eval_metric_for_key", "summary_fscore"]

EVAL_METRICS = ("avg", "max")


def f1_per_user(pred_summary, user_summary) -> np.ndarray:
  """(U,) float64 F1 of a binary prediction (N',) against each user's binary summary (U, N)."""
  pred = as_binary_array("pred_summary", pred_summary, 1)
  users = as_binary_array("user_summary", user_summary, 2)
  num_users, num_frames = users.shape
  if num_users == 0:
    raise input_error("user_summary", "at least one user", f"shape {users.shape}")
  if pred.size > num_frames:
    pred = pred[:num_frames]
  elif pred.size < num_frames:
    pred = np.pad(pred, (0, num_frames - pred.size))

  overlap = np.count_nonzero(users & pred, axis=1)
  user_sizes = np.count_nonzero(users, axis=1)
  pred_size = np.count_nonzero(pred)
  f1 = np.zeros(num_users, np.float64)
  hit = overlap > 0  # overlap > 0 implies both sizes > 0, so no division by zero below
  # DSNet calls f1_score(user_summ, pred_summ): its "precision" divides by the user's size. Keeping its
  # operand order keeps every float64 operation identical.
  precision = overlap[hit] / user_sizes[hit]
  recall = overlap[hit] / pred_size
  f1[hit] = 2 * precision * recall / (precision + recall)
  return f1


def eval_metric_for_key(key: str) -> str:
  """DSNet's rule: 'avg' (mean over users) iff 'tvsum' occurs in the video key, else 'max'.

  The rule reads keys like '../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_35'. It is a naming
  convention, not a property of the data: callers with other file names may pass the metric themselves.
  """
  if not isinstance(key, str):
    raise input_error("key", "a video key string", repr(key))
  return "avg" if "tvsum" in key else "max"


def summary_fscore(pred_summary, user_summary, eval_metric: str) -> float:
  """The video's F1: mean ('avg') or max ('max') over users of `f1_per_user`."""
  if eval_metric not in EVAL_METRICS:
    raise input_error("eval_metric", f"one of {EVAL_METRICS}", repr(eval_metric))
  per_user = f1_per_user(pred_summary, user_summary)
  return float(np.mean(per_user) if eval_metric == "avg" else np.max(per_user))
