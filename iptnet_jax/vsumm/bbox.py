"""1-D boxes of the anchor-free DSNet head: decoding, IoU, NMS, step scores (reference_spec.md §2.6 steps 2-4).

Boxes are [lo, hi) in steps (half-open). The operations and dtypes follow DSNet's `offset2bbox`,
`evaluate`, `bbox_helper.iou_lr/nms` and `bbox2summary`, so every comparison sees the same numbers.

Tie order in NMS. DSNet sorts with `scores.argsort()[::-1]`, and with equal scores the kept box depends
on where the sort leaves ties. DSNet ran on numpy < 1.24 (it uses np.bool), whose default argsort is
numpy's introsort. Later numpy sends float argsort to SIMD sorts (x86-simd-sort, Highway) on capable CPUs,
which order ties differently (numpy 2.4 on an AVX-512 CPU: 389 of 400 tie-heavy float32 arrays differ).
Without ties every correct sort gives the same order and we use numpy's; with ties we run
`legacy_argsort`, a port of the introsort (`aquicksort` in numpy's npysort/quicksort).
Ties are not exotic: the attention base model has no positional encoding, so repeated feature rows
(static or black frames) score identically.
"""

from __future__ import annotations

import numpy as np

from iptnet_jax.vsumm.knapsack import VsummInputError, as_float_array, as_int_scalar, input_error

__all__ = ["VsummInputError", "offsets_to_boxes", "clip_round_boxes", "iou_lr", "nms", "boxes_to_step_scores",
           "legacy_argsort"]

_SMALL_QUICKSORT = 15  # numpy: partitions of at most 16 elements go to insertion sort


def _check_boxes(name: str, boxes, *, allow_inf: bool = False) -> np.ndarray:
  """(N, 2) boxes: signed integers kept as is, unsigned as int64 (hi - lo must not wrap), else float."""
  array = np.asarray(boxes)
  if array.dtype.kind == "u":
    array = array.astype(np.int64)
  elif array.dtype.kind != "i":
    array = as_float_array(name, array, 2, allow_inf=allow_inf)
  if array.ndim != 2 or array.shape[1] != 2:
    raise input_error(name, "an (N, 2) array of [lo, hi) boxes", f"shape {array.shape}")
  return array


def offsets_to_boxes(offsets) -> np.ndarray:
  """(T, 2) float64 boxes [t - left_t, t + right_t + 1) from (T, 2) (left, right) offsets.

  DSNet's offset2bbox: int64 step indices minus float32 offsets, which numpy computes in float64.
  """
  offsets = as_float_array("offsets", offsets, 2, allow_inf=True)
  if offsets.shape[1:] != (2,):
    raise input_error("offsets", "a (T, 2) array of (left, right) offsets", f"shape {offsets.shape}")
  steps = np.arange(offsets.shape[0])
  return np.stack([steps - offsets[:, 0], steps + offsets[:, 1] + 1], axis=1)


def clip_round_boxes(boxes, seq_len) -> np.ndarray:
  """int32 boxes clipped to [0, seq_len] and rounded half to even, as DSNet's evaluate does."""
  boxes = _check_boxes("boxes", boxes, allow_inf=True)  # exp() offsets can overflow; clipping handles inf
  seq_len = as_int_scalar("seq_len", seq_len, minimum=0)
  return np.clip(boxes, 0, seq_len).round().astype(np.int32)


def iou_lr(boxes, box) -> np.ndarray:
  """(N,) IoU of half-open [lo, hi) boxes with `box` ((1, 2), broadcast) or pairwise with (N, 2) boxes.

  Negative intersections count as 0; a union <= 0 becomes 1e-6. For integer boxes the ratio is float64
  (int / int); float boxes keep their float dtype, like DSNet's. (DSNet writes 1e-6 into the union array,
  which truncates to 0 for integer boxes and gives NaN; that cannot happen in NMS, which drops lo >= hi
  boxes first, so we keep 1e-6 for every dtype.)
  """
  boxes = _check_boxes("boxes", boxes)
  box = _check_boxes("box", box)
  if box.shape[0] not in (1, boxes.shape[0]):
    raise input_error("box", f"shape (1, 2) or ({boxes.shape[0]}, 2)", f"shape {box.shape}")
  intersection = np.minimum(boxes[:, 1], box[:, 1]) - np.maximum(boxes[:, 0], box[:, 0])
  intersection = np.where(intersection < 0, 0, intersection).astype(intersection.dtype)
  union = np.maximum(boxes[:, 1], box[:, 1]) - np.minimum(boxes[:, 0], box[:, 0])
  if union.dtype.kind == "f":
    union = np.where(union <= 0, union.dtype.type(1e-6), union)
    return intersection / union
  return intersection / np.where(union <= 0, 1e-6, union)


def _heapsort_indices(values: list, order: list, start: int, count: int) -> None:
  """numpy's aheapsort on order[start : start + count] (1-based heap, max-heap on `<`)."""
  def at(k):  # 1-based heap position -> index into order
    return start + k - 1

  def sift(tmp, i, n):
    j = 2 * i
    while j <= n:
      if j < n and values[order[at(j)]] < values[order[at(j + 1)]]:
        j += 1
      if values[tmp] < values[order[at(j)]]:
        order[at(i)] = order[at(j)]
        i = j
        j += j
      else:
        break
    order[at(i)] = tmp

  n = count
  for root in range(n >> 1, 0, -1):
    sift(order[at(root)], root, n)
  while n > 1:
    tmp = order[at(n)]
    order[at(n)] = order[at(1)]
    n -= 1
    sift(tmp, 1, n)


def legacy_argsort(values) -> np.ndarray:
  """int64 `np.argsort(values)` exactly as numpy's introsort orders it, ties included.

  Port of numpy's `aquicksort`: median-of-3 quicksort that pushes the larger partition, insertion sort
  for partitions of <= 16 elements, heapsort once a partition is 2 * floor(log2 n) levels deep. It is the
  default argsort of numpy < 1.25 and still numpy's argsort for dtypes without a SIMD sort (longdouble).
  No NaN (callers reject them).
  """
  values = np.asarray(values)
  if values.ndim != 1:
    raise input_error("values", "a 1-D array", f"shape {values.shape}")
  v = values.tolist()  # exact Python numbers; comparisons are unchanged
  num = len(v)
  order = list(range(num))
  lo, hi = 0, num - 1
  depth = 2 * (num.bit_length() - 1) if num > 0 else 0
  pending: list[tuple[int, int, int]] = []
  while True:
    if depth < 0:
      _heapsort_indices(v, order, lo, hi - lo + 1)
    else:
      while hi - lo > _SMALL_QUICKSORT:
        mid = lo + ((hi - lo) >> 1)
        if v[order[mid]] < v[order[lo]]:
          order[mid], order[lo] = order[lo], order[mid]
        if v[order[hi]] < v[order[mid]]:
          order[hi], order[mid] = order[mid], order[hi]
        if v[order[mid]] < v[order[lo]]:
          order[mid], order[lo] = order[lo], order[mid]
        pivot = v[order[mid]]
        i, j = lo, hi - 1
        order[mid], order[j] = order[j], order[mid]
        while True:
          i += 1
          while v[order[i]] < pivot:
            i += 1
          j -= 1
          while pivot < v[order[j]]:
            j -= 1
          if i >= j:
            break
          order[i], order[j] = order[j], order[i]
        order[i], order[hi - 1] = order[hi - 1], order[i]
        depth -= 1
        if i - lo < hi - i:  # keep sorting the smaller side, push the larger
          pending.append((i + 1, hi, depth))
          hi = i - 1
        else:
          pending.append((lo, i - 1, depth))
          lo = i + 1
      for i in range(lo + 1, hi + 1):  # insertion sort
        moving = order[i]
        key = v[moving]
        j = i
        while j > lo and key < v[order[j - 1]]:
          order[j] = order[j - 1]
          j -= 1
        order[j] = moving
    if not pending:
      break
    lo, hi, depth = pending.pop()
  return np.array(order, dtype=np.int64)


def _descending_order(scores: np.ndarray) -> np.ndarray:
  """DSNet's `scores.argsort()[::-1]`, with numpy < 1.25's tie order."""
  if np.unique(scores).size == scores.size:  # no ties: the order is unique
    return scores.argsort()[::-1]
  return legacy_argsort(scores)[::-1]


def nms(scores, boxes, thresh) -> tuple[np.ndarray, np.ndarray]:
  """Greedy 1-D NMS: (kept scores, kept boxes) in descending score order.

  Drops boxes with lo >= hi, sorts as DSNet (`scores.argsort()[::-1]`, ties as numpy's introsort), keeps
  the best remaining box and removes every remaining box with IoU >= thresh (IoU exactly at the threshold
  is removed), until none remain. Output dtypes are the inputs'.
  """
  scores = as_float_array("scores", scores, 1)
  boxes = _check_boxes("boxes", boxes)
  if boxes.shape[0] != scores.shape[0]:
    raise input_error("boxes", f"one box per score ({scores.shape[0]})", f"{boxes.shape[0]}")
  # Above 1 the kept box survives its own IoU of 1 and DSNet's loop would never end.
  if not isinstance(thresh, (int, float, np.integer, np.floating)) or not thresh <= 1:
    raise input_error("thresh", "an IoU threshold <= 1", repr(thresh))
  thresh = float(thresh)

  valid = boxes[:, 0] < boxes[:, 1]
  scores, boxes = scores[valid], boxes[valid]
  order = _descending_order(scores)
  sorted_scores, sorted_boxes = scores[order], boxes[order]
  # DSNet's loop with iou_lr inlined on contiguous lo/hi columns (the per-call checks dominated the time).
  # All boxes are non-empty here, so union >= hi - lo > 0 and iou_lr's 1e-6 guard never applies.
  lo, hi = sorted_boxes[:, 0].copy(), sorted_boxes[:, 1].copy()
  position = np.arange(len(order))
  kept = []
  while position.size > 0:
    kept.append(position[0])
    kept_lo, kept_hi = lo[0], hi[0]
    intersection = np.minimum(hi, kept_hi) - np.maximum(lo, kept_lo)
    union = np.maximum(hi, kept_hi) - np.minimum(lo, kept_lo)
    survivors = np.where(intersection < 0, 0, intersection) / union < thresh  # the kept box has IoU 1
    lo, hi, position = lo[survivors], hi[survivors], position[survivors]
  kept = np.array(kept, dtype=np.int64)
  return sorted_scores[kept], sorted_boxes[kept].reshape(-1, 2)


def boxes_to_step_scores(scores, boxes, seq_len) -> np.ndarray:
  """(seq_len,) float32: each step's highest score among the boxes covering it, 0 where none does.

  DSNet's bbox2summary (np.maximum into a float32 array). Boxes must lie in [0, seq_len] (clipped, as
  evaluate makes them); empty boxes (lo >= hi) cover nothing.
  """
  seq_len = as_int_scalar("seq_len", seq_len, minimum=0)
  scores = as_float_array("scores", scores, 1)
  boxes = _check_boxes("boxes", boxes)
  if boxes.shape[0] != scores.shape[0]:
    raise input_error("boxes", f"one box per score ({scores.shape[0]})", f"{boxes.shape[0]}")
  if boxes.size and (boxes.min() < 0 or boxes.max() > seq_len or (boxes != np.round(boxes)).any()):
    raise input_error("boxes", f"whole-step boxes inside [0, {seq_len}]",
                      f"values from {boxes.min()} to {boxes.max()}")
  step_scores = np.zeros(seq_len, np.float32)
  for score, (lo, hi) in zip(scores.astype(np.float32), boxes.astype(np.int64).tolist()):
    np.maximum(step_scores[lo:hi], score, out=step_scores[lo:hi])
  return step_scores
