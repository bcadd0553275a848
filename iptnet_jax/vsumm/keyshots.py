"""Keyshot summaries from step scores, as DSNet's `get_keyshot_summ` (reference_spec.md §2.3, §2.6 step 5).

1. Frame scores: frames picks[i] .. picks[i+1]-1 take step i's score (float32); the last step fills up to
   n_frames. Frames before picks[0] keep 0.
2. Shot values: v_k = int(1000 * mean(frame_scores[first_k : last_k + 1])), see `shot_values`.
3. Knapsack over the shots, weights n_frame_per_seg, capacity int(proportion * n_frames).
4. The summary is the union of the packed shots' frames [first, last] (inclusive).

The same function makes DSNet's training target from gtscore (summary[picks]) and the predicted summary
at evaluation.
"""

from __future__ import annotations

import numpy as np

from iptnet_jax.vsumm.knapsack import (VsummInputError, as_binary_array, as_float_array, as_int_array,
                                       as_int_scalar, input_error, knapsack)

__all__ = ["VsummInputError", "step_to_frame_scores", "shot_values", "get_keyshot_summ", "downsample_summ",
           "check_picks", "check_change_points"]

_INT32_MAX = np.iinfo(np.int32).max


def check_picks(picks, n_frames: int, name: str = "picks") -> np.ndarray:
  """int64 picks, strictly increasing frame indices in [0, n_frames)."""
  picks = as_int_array(name, picks, 1)
  if picks.size == 0:
    raise input_error(name, "at least one step", "an empty array")
  if picks[0] < 0 or picks[-1] >= n_frames or (np.diff(picks) <= 0).any():
    raise input_error(name, f"strictly increasing frame indices in [0, {n_frames})",
                      f"values from {picks.min()} to {picks.max()}")
  return picks


def check_change_points(change_points, n_frames: int) -> np.ndarray:
  """int64 (S, 2) shots [first, last] (inclusive) with 0 <= first <= last < n_frames."""
  cps = as_int_array("change_points", change_points, 2)
  if cps.shape[1:] != (2,) or cps.shape[0] == 0:
    raise input_error("change_points", "a non-empty (S, 2) array of [first, last] frames", f"shape {cps.shape}")
  first, last = cps[:, 0], cps[:, 1]
  if (first < 0).any() or (first > last).any() or (last >= n_frames).any():
    raise input_error("change_points", f"shots with 0 <= first <= last < n_frames={n_frames}",
                      f"first shot breaking it: {cps[(first < 0) | (first > last) | (last >= n_frames)][0]}")
  return cps


def step_to_frame_scores(step_scores, picks, n_frames) -> np.ndarray:
  """(n_frames,) float32: frames picks[i] .. picks[i+1]-1 get step_scores[i], the last step fills to the end."""
  n_frames = as_int_scalar("n_frames", n_frames, minimum=1)
  picks = check_picks(picks, n_frames)
  step_scores = as_float_array("step_scores", step_scores, 1)
  if step_scores.shape != picks.shape:
    raise input_error("step_scores", f"one score per pick, shape {picks.shape}", f"shape {step_scores.shape}")
  frame_scores = np.zeros(n_frames, np.float32)
  run_lengths = np.diff(np.append(picks, n_frames))
  # DSNet assigns each step's score into a float32 array; astype(float32) rounds identically.
  frame_scores[picks[0]:] = np.repeat(step_scores.astype(np.float32), run_lengths)
  return frame_scores


def shot_values(frame_scores, change_points) -> np.ndarray:
  """(S,) int32 shot values int(1000 * mean), bit-exact with DSNet.

  The mean is numpy's float32 `.mean()` of the float32 slice (pairwise float32 sum; its float32 result),
  computed shot by shot because the summation order is part of the result.

  The product is taken in float64, which is what DSNet computed: it needs numpy < 1.24 (it uses np.bool),
  where `1000 * np.float32(m)` promotes the Python int as int64 and so returns float64 (NEP 50 table:
  "np.result_type(np.int8(1), 1) == np.int64" before 2.0). That product is exact (24 + 10 bits), so
  truncation sees the true 1000 m. Under numpy >= 2 the same expression is a float32 product, rounded:
  m = float32(0.7) = 0.69999999 gives 699 here (as DSNet did) but 700 with a float32 product.
  """
  frame_scores = np.ascontiguousarray(as_float_array("frame_scores", frame_scores, 1), dtype=np.float32)
  cps = check_change_points(change_points, frame_scores.shape[0])
  values = np.empty(len(cps), np.int32)
  for shot, (first, last) in enumerate(cps.tolist()):
    mean = frame_scores[first:last + 1].mean()  # np.float32
    value = int(1000 * float(mean))  # float64 product, truncation toward zero, as int() in DSNet
    if abs(value) > _INT32_MAX:
      raise input_error("frame_scores", "scores whose shot means fit int32 after x1000", f"{float(mean)}")
    values[shot] = value
  return values


def get_keyshot_summ(step_scores, change_points, n_frames, n_frame_per_seg, picks,
                     proportion: float = 0.15) -> np.ndarray:
  """(n_frames,) bool keyshot summary of at most int(proportion * n_frames) frames."""
  n_frames = as_int_scalar("n_frames", n_frames, minimum=1)
  frame_scores = step_to_frame_scores(step_scores, picks, n_frames)
  cps = check_change_points(change_points, n_frames)
  weights = as_int_array("n_frame_per_seg", n_frame_per_seg, 1)
  if weights.shape[0] != cps.shape[0]:
    raise input_error("n_frame_per_seg", f"one length per shot ({cps.shape[0]})", f"{weights.shape[0]}")
  if (weights < 0).any():
    raise input_error("n_frame_per_seg", "non-negative shot lengths", f"min {weights.min()}")
  if not isinstance(proportion, (int, float, np.floating, np.integer)) or not 0 <= proportion <= 1:
    raise input_error("proportion", "a number in [0, 1]", repr(proportion))

  values = shot_values(frame_scores, cps)
  capacity = int(n_frames * float(proportion))  # float64 product then truncation, as DSNet
  packed = knapsack(values, weights, capacity)

  # Union of the packed shots' inclusive ranges via +1/-1 edges (shots may overlap in odd data).
  edges = np.zeros(n_frames + 1, np.int64)
  np.add.at(edges, cps[packed, 0], 1)
  np.add.at(edges, cps[packed, 1] + 1, -1)
  return np.cumsum(edges[:-1]) > 0


def downsample_summ(summary, picks) -> np.ndarray:
  """summary[picks]: the binary training target at the steps (DSNet's summ[::15] equals this for picks 15 i)."""
  summary = as_binary_array("summary", summary, 1)
  picks = check_picks(picks, summary.shape[0])
  return summary[picks]
