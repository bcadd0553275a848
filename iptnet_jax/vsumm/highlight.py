"""Top-5 mAP highlight detection on TVSum, the protocol of UMT (Liu et al., CVPR 2022) and the papers it
follows (TencentARC/UMT datasets/tvsum.py `TVSum.evaluate`, splits in datasets/utils/static.py).

Per video, with predicted step scores s (T,) and the 20 users' 1..5 scores a (T, 20) at the 2-s segments:

1. rank the steps by s, descending;
2. for each user u, label_u[t] = a[t, u] > median_t(a[:, u]) (UMT uses torch's median, which for an even T
   is the lower of the two middle values; see `median_labels` for why that gives the same labels as the
   midpoint median);
3. take the labels of the top k = 5 ranked steps, g_1..g_k;
4. AP_u = 0 if no g_j is 1; otherwise, with hits_j = g_1 + .. + g_j, recall_j = hits_j / hits_k (the
   positives *within the top k*, not all positives of the video) and precision_j = hits_j / j,
   AP_u = sum_j (recall_j - recall_{j-1}) * (precision_{j-1} + precision_j) / 2, from recall_0 = 0 and
   precision_0 = 1 (a trapezoid under the precision-recall steps of the top k);
5. the video's score is the mean of AP_u over users.

UMT averages over the videos of a domain's val split per user and then over users, which for equal user
counts is the mean over videos of step 5; `mean_top5_map` does that, and the published TVSum figure is the
mean over the 10 domains of that number (one val video per domain).

Where this may differ from UMT:
* ties in the predicted scores: UMT uses torch.argsort(descending=True), whose order among equal scores is
  unspecified; here equal scores keep step order (earlier step ranked first, a stable sort);
* UMT truncates predictions and labels to the shorter of the two; here they must have the same length;
* floating point: UMT accumulates the AP in a Python loop; the vectorised sum here can differ in the last bit.

Consequences of the definition worth knowing when reading numbers: one positive at rank 1 gives AP 1.0 even
when the other 4 are negative, and one positive at rank 5 gives 0.1; only positives inside the top 5 count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from iptnet_jax.vsumm.knapsack import VsummInputError


class DomainSplitsNotFoundError(VsummInputError, FileNotFoundError):
  """The UMT domain split file is missing (a user-supplied path)."""


class HighlightInputError(VsummInputError):
  """Scores, annotations or split files for highlight detection that do not have the expected form."""


def lower_median(values) -> np.ndarray:
  """Median along axis 0 as torch.median: for an even count, the lower of the two middle values."""
  values = np.asarray(values)
  return np.sort(values, axis=0)[(values.shape[0] - 1) // 2]


def median_labels(user_scores) -> np.ndarray:
  """(T, U) bool: step t is a highlight for user u iff user_scores[t, u] > that user's median over t.

  The lower median (torch's) and the midpoint median (numpy's) give the same labels: no value lies strictly
  between the two middle order statistics, so `x > lower` and `x > midpoint` agree on every x present.
  """
  user_scores = _check_user_scores(user_scores)
  return user_scores > lower_median(user_scores)[None, :]


def top_k_average_precision(ranked_labels) -> np.ndarray:
  """UMT's AP of the top-k labels, per column: ranked_labels (k, U) 0/1 in rank order -> (U,) AP."""
  labels = np.asarray(ranked_labels, dtype=np.float64)
  if labels.ndim == 1:
    labels = labels[:, None]
  if labels.ndim != 2 or labels.shape[0] == 0:
    raise HighlightInputError(f"ranked_labels: expected a non-empty (k, U) array, got shape {labels.shape}")
  hits = np.cumsum(labels, axis=0)
  n_pos = hits[-1]
  has_pos = n_pos > 0
  recall = hits / np.where(has_pos, n_pos, 1.0)
  precision = hits / np.arange(1, labels.shape[0] + 1)[:, None]
  prev_recall = np.vstack((np.zeros((1, labels.shape[1])), recall[:-1]))
  prev_precision = np.vstack((np.ones((1, labels.shape[1])), precision[:-1]))
  ap = np.sum((recall - prev_recall) * (prev_precision + precision) / 2.0, axis=0)
  return np.where(has_pos, ap, 0.0)


def _check_user_scores(user_scores) -> np.ndarray:
  user_scores = np.asarray(user_scores)
  if user_scores.ndim != 2 or 0 in user_scores.shape or not np.issubdtype(user_scores.dtype, np.number):
    raise HighlightInputError(f"user_scores: expected a non-empty numeric (T steps, U users) array, "
                              f"got shape {user_scores.shape} dtype {user_scores.dtype}")
  if not np.all(np.isfinite(user_scores)):
    raise HighlightInputError("user_scores: expected finite values, got NaN/inf")
  return user_scores


def top5_map(step_scores, user_scores, top_k: int = 5) -> float:
  """One video's top-k mAP: mean over users of UMT's AP of the k highest-scored steps (module docstring)."""
  user_scores = _check_user_scores(user_scores)
  step_scores = np.asarray(step_scores, dtype=np.float64)
  if step_scores.shape != (user_scores.shape[0],):
    raise HighlightInputError(f"step_scores: expected shape ({user_scores.shape[0]},) to match user_scores "
                              f"(T, U) = {user_scores.shape}, got {step_scores.shape}")
  if not np.all(np.isfinite(step_scores)):
    raise HighlightInputError("step_scores: expected finite values, got NaN/inf")
  if int(top_k) < 1:
    raise HighlightInputError(f"top_k: expected >= 1, got {top_k}")
  order = np.argsort(-step_scores, kind="stable")[:int(top_k)]
  return float(np.mean(top_k_average_precision(median_labels(user_scores)[order])))


def mean_top5_map(step_scores_by_video: Mapping[str, np.ndarray], user_scores_by_video: Mapping[str, np.ndarray],
                  top_k: int = 5) -> float:
  """Mean of `top5_map` over the videos of `step_scores_by_video` (each must have user scores)."""
  if not step_scores_by_video:
    raise HighlightInputError("step_scores_by_video: expected at least one video")
  missing = sorted(set(step_scores_by_video) - set(user_scores_by_video))
  if missing:
    raise HighlightInputError(f"user_scores_by_video: no annotation for {missing[:5]}")
  return float(np.mean([top5_map(scores, user_scores_by_video[video], top_k)
                        for video, scores in step_scores_by_video.items()]))


def domain_splits(path: str | os.PathLike) -> dict[str, dict[str, tuple[str, ...]]]:
  """Reads umt_domain_splits.json: {domain: {'train': (YouTube ids), 'val': (YouTube ids)}}."""
  path = Path(path)
  if not path.is_file():
    raise DomainSplitsNotFoundError(f"domain split file not found: {path} (umt_domain_splits.json lives in "
                            "<shared data>/features/tvsum/)")
  try:
    raw = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise HighlightInputError(f"{path}: not valid JSON ({e})") from None
  if not isinstance(raw, dict) or not raw:
    raise HighlightInputError(f"{path}: expected an object {{domain: {{train: [...], val: [...]}}}}")
  splits = {}
  for domain, parts in raw.items():
    if not isinstance(parts, dict) or set(parts) != {"train", "val"}:
      raise HighlightInputError(f"{path}: domain '{domain}': expected exactly the keys 'train' and 'val', "
                                f"got {sorted(parts) if isinstance(parts, dict) else type(parts).__name__}")
    entry = {}
    for part in ("train", "val"):
      ids = parts[part]
      if not isinstance(ids, list) or not ids or not all(isinstance(v, str) and v for v in ids):
        raise HighlightInputError(f"{path}: domain '{domain}' '{part}': expected a non-empty list of video ids")
      entry[part] = tuple(ids)
    overlap = set(entry["train"]) & set(entry["val"])
    if overlap:
      raise HighlightInputError(f"{path}: domain '{domain}': videos in both train and val: {sorted(overlap)}")
    splits[domain] = entry
  return splits


# ---------------------------------------------------------------------------------------------- YouTube


def clip_ranking_ap(clip_scores, labels) -> float:
  """UMT's YouTube Highlights AP of one video (TencentARC/UMT datasets/youtube.py `evaluate`): rank all clips
  by score, descending, and take the same trapezoid AP as `top_k_average_precision` over the whole ranking
  with labels = match > 0 (the caller passes 0/1; UMT counts -1 'unlabelled' clips as negatives); a video
  without a positive scores 0. Ties keep clip order (stable sort; UMT's torch.argsort leaves them unspecified).
  """
  labels = np.asarray(labels)
  clip_scores = np.asarray(clip_scores, dtype=np.float64)
  if labels.ndim != 1 or labels.size == 0 or clip_scores.shape != labels.shape:
    raise HighlightInputError(f"clip_scores {clip_scores.shape} and labels {labels.shape}: expected two "
                              "non-empty (T,) arrays of the same length")
  if not np.all(np.isin(labels, (0, 1))):
    raise HighlightInputError("labels: expected 0/1 (match > 0)")
  if not np.all(np.isfinite(clip_scores)):
    raise HighlightInputError("clip_scores: expected finite values, got NaN/inf")
  order = np.argsort(-clip_scores, kind="stable")
  return float(top_k_average_precision(labels[order])[0])


def mean_clip_ranking_ap(clip_scores_by_video: Mapping[str, np.ndarray],
                         labels_by_video: Mapping[str, np.ndarray]) -> float:
  """UMT's YouTube Highlights mAP of a domain: mean of `clip_ranking_ap` over its val videos."""
  if not clip_scores_by_video:
    raise HighlightInputError("clip_scores_by_video: expected at least one video")
  missing = sorted(set(clip_scores_by_video) - set(labels_by_video))
  if missing:
    raise HighlightInputError(f"labels_by_video: no labels for {missing[:5]}")
  return float(np.mean([clip_ranking_ap(s, labels_by_video[v]) for v, s in clip_scores_by_video.items()]))
