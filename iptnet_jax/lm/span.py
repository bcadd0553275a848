"""Span inference and moment-localization metrics, host-side numpy (reference_spec.md §3.4).

* `predict_spans(start_logits, end_logits, mask)`: VSLNet's `extract_index`. P_s and P_e are softmaxes over
  the valid positions; M = triu(P_s P_e^T) keeps s <= e (no length limit); s = argmax_i max_j M_ij and
  e = argmax_j max_i M_ij. Both argmaxes take the first maximum, which always yields s <= e (the first row
  holding the maximum of M is at or before the first column holding it, because M is upper-triangular).
* `index_to_time(s, e, num_units, duration)`: t_s = s D / N, t_e = (e + 1) D / N with N the unpadded
  (capped) clip count, in float32 as VSLNet's `index_to_time` (float32 grid * D / N).
* `temporal_iou(pred, gt)`: (min(e, e') - max(s, s')) / (max(e, e') - min(s, s')) clipped at 0: the union is
  the convex hull of the two spans, as in VSLNet's `calculate_iou`. A degenerate pair (empty hull) scores 0.
* `span_ious(s, e, num_units, duration, gt)`: the two above in one call, per query; `moment_ious` on samples.
* `moment_metrics(ious)`: R1@{0.3, 0.5, 0.7} (% of queries with IoU >= threshold) and mIoU (100 * mean IoU).
* `random_span_baseline(...)`: IoUs of uniformly random valid unit spans (s <= e, every pair equally likely),
  the floor any trained model must beat on the same samples; `expected_random_span_metrics` gives the
  exact expectation of those metrics (no sampling noise).
"""

from __future__ import annotations

import numpy as np

from iptnet_jax.errors import InputError

THRESHOLDS = (0.3, 0.5, 0.7)


class SpanError(InputError):
  """Span inputs with inconsistent shapes or values."""


def _masked_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
  logits = np.where(mask > 0, logits.astype(np.float64), -np.inf)
  logits = logits - logits.max(axis=1, keepdims=True)
  weights = np.exp(logits)
  return weights / weights.sum(axis=1, keepdims=True)


def predict_spans(start_logits, end_logits, mask) -> tuple[np.ndarray, np.ndarray]:
  """(start_index, end_index), each (B,) int32, from (B, L) start/end logits and a (B, L) validity mask."""
  start_logits, end_logits, mask = np.asarray(start_logits), np.asarray(end_logits), np.asarray(mask)
  if start_logits.ndim != 2 or start_logits.shape != end_logits.shape or start_logits.shape != mask.shape:
    raise SpanError(f"predict_spans: expected start_logits, end_logits and mask of one (B, L) shape, got "
                    f"{start_logits.shape}, {end_logits.shape} and {mask.shape}")
  empty = ~(mask > 0).any(axis=1)
  if empty.any():
    raise SpanError(f"predict_spans: rows {np.flatnonzero(empty).tolist()} have no valid position in mask")
  # float64 so that products of small probabilities do not underflow to exact ties.
  start_probs = _masked_softmax(start_logits, mask)
  end_probs = _masked_softmax(end_logits, mask)
  joint = np.triu(start_probs[:, :, None] * end_probs[:, None, :])
  start_index = joint.max(axis=2).argmax(axis=1)
  end_index = joint.max(axis=1).argmax(axis=1)
  return start_index.astype(np.int32), end_index.astype(np.int32)


def index_to_time(start_index, end_index, num_units, duration) -> tuple[np.ndarray, np.ndarray]:
  """(start_time, end_time) in seconds (float64 holding VSLNet's float32 values) for (B,) unit indices."""
  start_index, end_index = np.asarray(start_index), np.asarray(end_index)
  num_units, duration = np.asarray(num_units), np.asarray(duration, np.float64)
  if np.any(num_units <= 0) or np.any(~(duration > 0)):
    raise SpanError("index_to_time: expected positive num_units and durations")
  if np.any(start_index < 0) or np.any(start_index > end_index) or np.any(end_index >= num_units):
    raise SpanError("index_to_time: expected 0 <= start_index <= end_index < num_units for every query")
  # VSLNet: np.arange(..).astype(float32) * duration / float(num_units), i.e. two float32 roundings.
  duration32, num_units32 = duration.astype(np.float32), num_units.astype(np.float32)
  start_time = start_index.astype(np.float32) * duration32 / num_units32
  end_time = (end_index + 1).astype(np.float32) * duration32 / num_units32
  return start_time.astype(np.float64), end_time.astype(np.float64)


def temporal_iou(pred, gt) -> np.ndarray:
  """(N,) IoU of (N, 2) predicted spans with (N, 2) ground-truth spans; the union is the convex hull."""
  pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
  if pred.ndim != 2 or pred.shape[1] != 2 or pred.shape != gt.shape:
    raise SpanError(f"temporal_iou: expected two (N, 2) arrays of [start, end], got {pred.shape} and {gt.shape}")
  inter = np.minimum(pred[:, 1], gt[:, 1]) - np.maximum(pred[:, 0], gt[:, 0])
  hull = np.maximum(pred[:, 1], gt[:, 1]) - np.minimum(pred[:, 0], gt[:, 0])
  iou = np.divide(inter, hull, out=np.zeros_like(inter), where=hull > 0)
  return np.maximum(iou, 0.0)


def span_ious(start_index, end_index, num_units, duration, gt) -> np.ndarray:
  """(N,) IoU of predicted unit spans with the (N, 2) ground truth in seconds: index_to_time + temporal_iou.

  Pass float64 durations and gt (MomentSample fields) for VSLNet-exact scores: the batch's float32 copies
  shift a few IoUs that sit exactly on a threshold (about 1 in 10,000 for random spans on Charades-STA).
  """
  start_time, end_time = index_to_time(start_index, end_index, num_units, duration)
  return temporal_iou(np.stack([start_time, end_time], axis=1), gt)



def moment_ious(samples, start_index, end_index) -> np.ndarray:
  """(N,) IoU of predicted (start_index, end_index) with each sample's moment (MomentSample: num_units, duration,
  start, end), in VSLNet's precision."""
  return span_ious(start_index, end_index, [s.num_units for s in samples], [s.duration for s in samples],
                   [[s.start, s.end] for s in samples])

def moment_metrics(ious) -> dict[str, float]:
  """{'R1@0.3', 'R1@0.5', 'R1@0.7', 'mIoU'} in percent over the given per-query IoUs."""
  ious = np.asarray(ious, np.float64)
  if ious.ndim != 1 or ious.size == 0:
    raise SpanError(f"moment_metrics: expected a non-empty (N,) array of IoUs, got shape {ious.shape}")
  if np.any(~np.isfinite(ious)) or np.any(ious < 0) or np.any(ious > 1):
    raise SpanError("moment_metrics: expected IoUs in [0, 1]")
  metrics = {f"R1@{t}": float(np.mean(ious >= t) * 100.0) for t in THRESHOLDS}
  metrics["mIoU"] = float(np.mean(ious) * 100.0)
  return metrics


def _check_queries(num_units, durations, gt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  num_units = np.asarray(num_units, np.int64)
  durations = np.asarray(durations, np.float64)
  gt = np.asarray(gt, np.float64)
  if num_units.ndim != 1 or durations.shape != num_units.shape or gt.shape != num_units.shape + (2,):
    raise SpanError(f"random spans: expected num_units (N,), durations (N,), gt (N, 2), got "
                    f"{num_units.shape}, {durations.shape}, {gt.shape}")
  if np.any(num_units <= 0) or np.any(~(durations > 0)):
    raise SpanError("random spans: expected positive num_units and durations")
  return num_units, durations, gt


def random_spans(num_units, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """(start_index, end_index), (N,) int64: one valid pair s <= e < num_units per query, all pairs equally likely."""
  num_units = np.asarray(num_units, np.int64)
  if num_units.ndim != 1 or np.any(num_units <= 0):
    raise SpanError(f"random spans: expected a (N,) array of positive unit counts, got {num_units!r}")
  pair = rng.integers(0, num_units * (num_units + 1) // 2)
  # Pairs are numbered end by end: end e holds e + 1 starts, so pair k has e(e+1)/2 <= k < (e+1)(e+2)/2.
  end_index = ((np.sqrt(8.0 * pair + 1.0) - 1.0) // 2).astype(np.int64)
  end_index -= (end_index * (end_index + 1) // 2 > pair)  # the float sqrt may land one too high ...
  end_index += ((end_index + 1) * (end_index + 2) // 2 <= pair)  # ... or one too low
  return pair - end_index * (end_index + 1) // 2, end_index


def random_span_baseline(num_units, durations, gt, rng: np.random.Generator) -> np.ndarray:
  """(N,) IoUs of one uniformly random valid span (s <= e over N units) per query with its gt (N, 2)."""
  num_units, durations, gt = _check_queries(num_units, durations, gt)
  start_time, end_time = index_to_time(*random_spans(num_units, rng), num_units, durations)
  return temporal_iou(np.stack([start_time, end_time], axis=1), gt)


def expected_random_span_metrics(num_units, durations, gt) -> dict[str, float]:
  """The exact expectation of `moment_metrics(random_span_baseline(...))`, enumerating every valid pair."""
  num_units, durations, gt = _check_queries(num_units, durations, gt)
  hit_rates = np.empty((len(num_units), len(THRESHOLDS)), np.float64)
  mean_ious = np.empty(len(num_units), np.float64)
  for i, (units, duration, (gt_start, gt_end)) in enumerate(zip(num_units, durations, gt)):
    start_index, end_index = np.triu_indices(int(units))
    start_time, end_time = index_to_time(start_index, end_index, np.full_like(start_index, units),
                                         np.full(start_index.shape, duration))
    spans = np.stack([start_time, end_time], axis=1)
    ious = temporal_iou(spans, np.broadcast_to([gt_start, gt_end], spans.shape))
    hit_rates[i] = [np.mean(ious >= t) for t in THRESHOLDS]
    mean_ious[i] = ious.mean()
  metrics = {f"R1@{t}": float(hit_rates[:, k].mean() * 100.0) for k, t in enumerate(THRESHOLDS)}
  metrics["mIoU"] = float(mean_ious.mean() * 100.0)
  return metrics
