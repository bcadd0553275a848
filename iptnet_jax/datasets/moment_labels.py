"""VSLNet's clip resampling and training labels for moment localization (reference_spec.md §3.1).

Everything here is host-side numpy and follows 26hzhang/VSLNet `util/data_util.py` and
`util/data_loader_t7.py` bit for bit where that matters (rounding modes, float32 time grids, tie-breaking):

* `visual_feature_sampling(features, max_len)`: average-pools a (T, D) feature sequence to at most `max_len`
  clips. Chunk boundaries are `round(i / max_len * T)` for i = 0..max_len with numpy's round-half-to-even,
  computed in that order (divide, then multiply) as VSLNet does, then clipped to T - 1. Chunk i is the mean
  of `features[b_i:b_{i+1}]`, or `features[b_i]` when that range is empty. Because the last boundary is
  clipped to T - 1 (not T), **the last frame of a long video never enters any chunk** unless the last chunk is
  empty; this is VSLNet's behaviour, kept on purpose.
* `time_to_index(start, end, num_units, duration)`: unit i covers [i D/N, (i+1) D/N] (computed in float32, as
  VSLNet does); the label is the unit pair (s, e) whose span [s D/N, (e+1) D/N] has the highest IoU with the
  annotated moment. Ties go to the smallest s, then the smallest e (first maximum in row-major order).
* `highlight_labels(s, e, num_units, extension)`: the query-guided highlighting target: 1 on [s, e] widened by
  `round(extension * (e - s + 1))` units on each side (Python's round-half-to-even), clipped to
  [0, num_units - 1].
"""

from __future__ import annotations

import numpy as np

from iptnet_jax.errors import InputError


class LabelError(InputError):
  """An argument that cannot produce a well-defined label."""


def resampling_boundaries(num_frames: int, max_len: int) -> np.ndarray:
  """The max_len + 1 chunk boundaries VSLNet uses to pool `num_frames` frames into `max_len` chunks."""
  if num_frames <= 0 or max_len <= 0:
    raise LabelError(f"resampling: expected positive num_frames and max_len, got {num_frames} and {max_len}")
  # Same operation order as VSLNet (i / max_len first, then * T): it decides which values land exactly on .5.
  positions = np.arange(0, max_len + 1, 1.0) / max_len * num_frames
  boundaries = np.round(positions).astype(np.int32)  # numpy rounds half to even
  boundaries[boundaries > num_frames - 1] = num_frames - 1
  return boundaries


def visual_feature_sampling(features: np.ndarray, max_len: int = 128) -> np.ndarray:
  """Average-pools (T, D) features to (min(T, max_len), D); returns the input unchanged when T <= max_len."""
  features = np.asarray(features)
  if features.ndim != 2:
    raise LabelError(f"visual_feature_sampling: expected (T, D) features, got shape {features.shape}")
  num_frames = features.shape[0]
  if max_len <= 0:
    raise LabelError(f"visual_feature_sampling: expected a positive max_len, got {max_len}")
  if num_frames <= max_len:
    return features
  boundaries = resampling_boundaries(num_frames, max_len)
  chunks = []
  for first, stop in zip(boundaries[:-1], boundaries[1:]):
    chunks.append(features[first:stop].mean(axis=0) if first < stop else features[first])
  return np.stack(chunks).astype(features.dtype, copy=False)


def unit_times(num_units: int, duration: float) -> tuple[np.ndarray, np.ndarray]:
  """(start, end) time of every unit as VSLNet computes them: float32 arange / N * duration."""
  if num_units <= 0:
    raise LabelError(f"unit times: expected a positive number of units, got {num_units}")
  if not duration > 0:
    raise LabelError(f"unit times: expected a positive duration, got {duration}")
  # Under numpy's promotion rules the Python floats stay weak, so the whole computation runs in float32.
  starts = np.arange(0, num_units).astype(np.float32) / float(num_units) * float(duration)
  ends = np.arange(1, num_units + 1).astype(np.float32) / float(num_units) * float(duration)
  return starts, ends


def span_iou_matrix(start: float, end: float, num_units: int, duration: float) -> np.ndarray:
  """(N, N) IoU of every unit span [s_i, e_j] with [start, end]; VSLNet's `compute_overlap` (union >= 1e-12)."""
  starts, ends = unit_times(num_units, duration)
  span_start = starts.astype(np.float64)[:, None]
  span_end = ends.astype(np.float64)[None, :]
  inter = np.maximum(0.0, np.minimum(span_end, end) - np.maximum(span_start, start))
  union = np.maximum(1e-12, np.maximum(span_end, end) - np.minimum(span_start, start))
  return inter / union


def time_to_index(start: float, end: float, num_units: int, duration: float) -> tuple[int, int]:
  """The (start_index, end_index) unit pair of best IoU with the moment [start, end] seconds."""
  ious = span_iou_matrix(float(start), float(end), num_units, duration)
  best = int(np.argmax(ious))  # first maximum in row-major order, as VSLNet
  return best // num_units, best % num_units


def highlight_labels(start_index: int, end_index: int, num_units: int, extension: float = 0.1) -> np.ndarray:
  """(num_units,) float32 0/1 highlight target around [start_index, end_index] (inclusive)."""
  if not 0 <= start_index <= end_index < num_units:
    raise LabelError(f"highlight labels: expected 0 <= start_index <= end_index < num_units, got "
                     f"start_index={start_index}, end_index={end_index}, num_units={num_units}")
  labels = np.zeros(num_units, np.float32)
  # Python's round (half to even) on a float product, as VSLNet's collate function: 0.1 * 5 -> 0, 0.1 * 15 -> 2.
  widen = round(extension * float(end_index - start_index + 1))
  if widen > 0:
    labels[max(0, start_index - widen):min(end_index + widen, num_units - 1) + 1] = 1.0
  else:
    labels[start_index:end_index + 1] = 1.0
  return labels
