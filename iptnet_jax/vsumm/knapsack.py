"""0/1 knapsack exactly as DSNet's keyshot selection solves it (reference_spec.md §2.6 step 5).

DSNet calls OR-tools' `KnapsackSolver(KNAPSACK_DYNAMIC_PROGRAMMING_SOLVER)` with integer shot values,
integer shot lengths as weights and capacity int(0.15 N). Several optimal packings usually exist, so the
F-score depends on which one OR-tools returns. This module reproduces OR-tools' choice, read from
google/or-tools `ortools/algorithms/knapsack_solver.cc` (identical in a 2017 and a 2020 snapshot, around
the ortools 8.0 that DSNet pins) and checked against ortools 9.15 by tests/vsumm_knapsack_test.py:

* `KnapsackSolver::Init` first runs `ReduceCapacities`: when the total weight fits the capacity, every
  item is packed and the DP solver never runs. Items with zero or negative value are then packed too.
* `KnapsackDynamicProgrammingSolver::SolveSubProblem(c, n)` fills profit[0..c] = 0, selected[0..c] = 0;
  for item i = 0..n-1 and u = c down to w_i: if profit[u - w_i] + p_i > profit[u] (strict), it sets
  profit[u] and selected[u] = i. It returns selected[c], the last item that improved capacity c.
* `Solve` backtracks by re-solving: remaining = C, n = all items; while remaining > 0 and n > 0:
  i = SolveSubProblem(remaining, n); remaining -= w_i; n = i; the item is packed if remaining >= 0.
* Quirk: when no item improves capacity `remaining` (all that fit have value <= 0), selected[] still
  holds its initial 0, so item 0 is packed whenever it fits, whatever its value. All-zero scores, for
  example, pack shot 0 rather than nothing.
* `ReduceProblem` asks the solver for bounds, but the DP solver inherits the base class's (0, +inf), so
  no item is ever fixed there.

Instead of re-running the DP per backtracking step we run it once and record which item improved
which capacity. That is exact: SolveSubProblem(c, n) only reads and writes entries <= c, all starting at
0, so its entries equal the first-n-items stage of a single run over capacity C restricted to [0, c];
and "last improving item below n at capacity r" is read off the recorded bits.

The inner loop over capacities is a numpy shift-compare: the descending C loop reads profit[u - w]
before anything at index < u is updated for this item, i.e. it always reads the previous item's row.

This module is the dependency root of `iptnet_jax.vsumm`, so it also holds the shared input error and
the small input checks the other vsumm modules use.
"""

from __future__ import annotations

import numbers

import numpy as np

from iptnet_jax.errors import InputError


class VsummInputError(InputError):
  """Bad input to the summarization evaluation protocol; the message names the argument."""


def input_error(name: str, expected: str, got) -> VsummInputError:
  return VsummInputError(f"{name}: expected {expected}, got {got}")


def _check_ndim(name: str, array: np.ndarray, ndim: int) -> None:
  if array.ndim != ndim:
    raise input_error(name, f"a {ndim}-D array", f"shape {array.shape}")


def as_int_array(name: str, x, ndim: int) -> np.ndarray:
  """int64 array of the given rank; floats are accepted only when they hold whole numbers."""
  array = np.asarray(x)
  _check_ndim(name, array, ndim)
  if array.dtype.kind in "biu":
    return array.astype(np.int64)
  if array.dtype.kind == "f":
    if not np.isfinite(array).all():
      raise input_error(name, "finite whole numbers", "NaN/inf")
    if not (array == np.round(array)).all():
      raise input_error(name, "whole numbers", "fractional values")
    return array.astype(np.int64)
  raise input_error(name, "an integer array", f"dtype {array.dtype}")


def as_float_array(name: str, x, ndim: int, *, allow_inf: bool = False) -> np.ndarray:
  """Real array of the given rank, keeping a float dtype (integers become float64); never NaN."""
  array = np.asarray(x)
  _check_ndim(name, array, ndim)
  if array.dtype.kind in "biu":
    array = array.astype(np.float64)
  elif array.dtype.kind != "f":
    raise input_error(name, "a real-valued array", f"dtype {array.dtype}")
  if np.isnan(array).any() or (not allow_inf and np.isinf(array).any()):
    raise input_error(name, "finite values" if not allow_inf else "no NaN", "NaN/inf")
  return array


def as_binary_array(name: str, x, ndim: int) -> np.ndarray:
  """bool array of the given rank from bool or 0/1 input."""
  array = np.asarray(x)
  _check_ndim(name, array, ndim)
  if array.dtype == bool:
    return array
  if array.dtype.kind not in "biuf":
    raise input_error(name, "a 0/1 array", f"dtype {array.dtype}")
  if not np.isin(array, (0, 1)).all():
    raise input_error(name, "only 0/1 entries", "other values (NaN or not 0/1)")
  return array.astype(bool)


def as_int_scalar(name: str, x, minimum: int | None = None) -> int:
  """Python int from an int, a numpy integer, a 0-d array (h5 scalars) or a whole float."""
  value = np.asarray(x)
  if value.ndim != 0:
    raise input_error(name, "a scalar", f"shape {value.shape}")
  value = value.item()
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise input_error(name, "an integer", repr(value))
  if isinstance(value, float):
    if not np.isfinite(value) or value != int(value):
      raise input_error(name, "an integer", repr(value))
  value = int(value)
  if minimum is not None and value < minimum:
    raise input_error(name, f"an integer >= {minimum}", value)
  return value


def _improvement_bits(values: np.ndarray, weights: np.ndarray, capacity: int) -> np.ndarray:
  """(n, ceil((C+1)/8)) uint8: bit u of row i is set iff item i strictly improved capacity u.

  One pass of OR-tools' SolveSubProblem(C, n), bit-packed so that capacities in the millions (DSNet's own
  test uses 6.4 million) stay small.
  """
  profit = np.zeros(capacity + 1, np.int64)
  improved = np.zeros(capacity + 1, bool)
  bits = np.zeros((len(values), (capacity + 8) // 8), np.uint8)
  for item, (value, weight) in enumerate(zip(values.tolist(), weights.tolist())):
    if weight > capacity:
      continue
    # The C++ loop runs u = C..w and reads profit[u - w] before it is touched for this item (u - w < u,
    # or u itself when w = 0), so comparing against the unchanged previous row is exact.
    candidate = profit[: capacity + 1 - weight] + value
    improved[:] = False
    np.greater(candidate, profit[weight:], out=improved[weight:])
    np.copyto(profit[weight:], candidate, where=improved[weight:])
    bits[item] = np.packbits(improved)
  return bits


def knapsack(values, weights, capacity) -> np.ndarray:
  """Sorted int64 indices of the items OR-tools' DP knapsack solver packs.

  values: (n,) integers (any sign), weights: (n,) non-negative integers, capacity: integer >= 0.
  """
  values = as_int_array("values", values, 1)
  weights = as_int_array("weights", weights, 1)
  if values.shape != weights.shape:
    raise input_error("weights", f"one weight per value ({values.shape[0]})", f"{weights.shape[0]}")
  capacity = as_int_scalar("capacity", capacity, minimum=0)
  if weights.size and weights.min() < 0:
    raise input_error("weights", "non-negative weights", f"min {weights.min()}")

  num_items = len(values)
  if int(weights.sum()) <= capacity:  # ReduceCapacities: no active constraint, so pack everything
    return np.arange(num_items, dtype=np.int64)

  bits = _improvement_bits(values, weights, capacity)
  packed = []
  remaining, num_candidates = capacity, num_items
  while remaining > 0 and num_candidates > 0:
    byte, shift = divmod(remaining, 8)
    improved_at_remaining = (bits[:num_candidates, byte] >> (7 - shift)) & 1
    improvers = np.flatnonzero(improved_at_remaining)
    # No improver: selected[] kept its initial 0, and item 0 is taken if it fits (the quirk above).
    item = int(improvers[-1]) if improvers.size else 0
    remaining -= int(weights[item])
    num_candidates = item
    if remaining >= 0:
      packed.append(item)
  return np.array(sorted(packed), dtype=np.int64)
