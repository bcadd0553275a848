"""Anchor-free DSNet training labels from a binary keyshot target (host numpy), reference_spec.md §2.5.

Labels come from the binary keyshot target y of one video:
* offsets: for each positive run [lo, hi) (hi exclusive) and t in it, (t - lo, hi - 1 - t), the
  inclusive-end convention (left + right = run length - 1); (0, 0) on negatives.
* centerness: min(l, r) / (max(l, r) + 1e-8) on positives, 0 elsewhere.

The losses that read them are in `sm.anchor_free`.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-8


def target_runs(target: np.ndarray) -> np.ndarray:
  """(R, 2) half-open [lo, hi) runs of ones in a binary vector."""
  target = np.asarray(target).astype(bool).astype(np.int8)
  edges = np.diff(np.concatenate([[0], target, [0]]))
  return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def offset_labels(target: np.ndarray) -> np.ndarray:
  """(T, 2) float32 (left, right) distances to the run's first and last step; 0 on negatives."""
  target = np.asarray(target).astype(bool)
  steps = np.arange(target.shape[0])
  run_id = np.cumsum(np.diff(np.concatenate([[0], target.astype(np.int8)])) == 1) - 1
  runs = target_runs(target)
  offsets = np.zeros((target.shape[0], 2), np.float32)
  if len(runs):
    lo, hi = runs[run_id[target], 0], runs[run_id[target], 1]
    offsets[target, 0] = steps[target] - lo
    offsets[target, 1] = hi - 1 - steps[target]
  return offsets


def centerness_labels(target: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """(T,) float32 centerness min(l, r) / (max(l, r) + 1e-8) on positives, 0 elsewhere."""
  target = np.asarray(target).astype(bool)
  offsets = np.asarray(offsets, np.float32)
  ctr = np.zeros(target.shape, np.float32)
  left, right = offsets[target, 0], offsets[target, 1]
  ctr[target] = np.minimum(left, right) / (np.maximum(left, right) + np.float32(_EPS))
  return ctr
