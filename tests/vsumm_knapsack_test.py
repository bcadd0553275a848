"""knapsack: OR-tools' DP solver choices (DSNet golden cases, tie-breaking, quirks) and input errors."""

import itertools

import numpy as np
import pytest

from iptnet_jax.vsumm.knapsack import VsummInputError, knapsack


def _ortools_dp_solver():
  """A callable(values, weights, capacity) -> packed indices using the installed ortools, or None."""
  try:
    from ortools.algorithms.python import knapsack_solver as new_api  # ortools >= 9.8
  except ImportError:
    new_api = None
  if new_api is not None:
    def solve(values, weights, capacity):
      solver = new_api.KnapsackSolver(new_api.SolverType.KNAPSACK_DYNAMIC_PROGRAMMING_SOLVER, "dp")
      solver.init([int(v) for v in values], [[int(w) for w in weights]], [int(capacity)])
      solver.solve()
      return [i for i in range(len(values)) if solver.best_solution_contains(i)]
    return solve
  try:
    from ortools.algorithms import pywrapknapsack_solver as old_api  # what DSNet imports (ortools 8)
  except ImportError:
    return None

  def solve_old(values, weights, capacity):
    solver = old_api.KnapsackSolver(old_api.KnapsackSolver.KNAPSACK_DYNAMIC_PROGRAMMING_SOLVER, "dp")
    solver.Init([int(v) for v in values], [[int(w) for w in weights]], [int(capacity)])
    solver.Solve()
    return [i for i in range(len(values)) if solver.BestSolutionContains(i)]
  return solve_old


ORTOOLS_DP = _ortools_dp_solver()


def test_dsnet_golden_case_small():
  # DSNet tests/helpers/test_vsumm_helper.py::test_knapsack, first case (Burkardt's knapsack_01 P01).
  values = [92, 57, 49, 68, 60, 43, 67, 84, 87, 72]
  weights = [23, 31, 29, 44, 53, 38, 63, 85, 89, 82]
  packed = knapsack(values, weights, 165)
  np.testing.assert_array_equal(packed, [0, 1, 2, 3, 5])
  assert packed.dtype == np.int64


def test_dsnet_golden_case_large_capacity():
  # DSNet tests/helpers/test_vsumm_helper.py::test_knapsack, second case (capacity 6.4 million).
  values = [825594, 1677009, 1676628, 1523970, 943972, 97426, 69666, 1296457, 1679693, 1902996, 1844992,
            1049289, 1252836, 1319836, 953277, 2067538, 675367, 853655, 1826027, 65731, 901489, 577243,
            466257, 369261]
  weights = [382745, 799601, 909247, 729069, 467902, 44328, 34610, 698150, 823460, 903959, 853665, 551830,
             610856, 670702, 488960, 951111, 323046, 446298, 931161, 31385, 496951, 264724, 224916, 169684]
  expected = np.flatnonzero([1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(knapsack(values, weights, 6404180), expected)


def test_ties_prefer_the_earlier_packing():
  # values = weights = [1, 2, 3], capacity 3: {0, 1} and {2} both give 3. By hand: item 1 is the last
  # to improve capacity 3 (profit 1 -> 3); item 2 only equals it (3 > 3 is false). Backtracking takes
  # item 1, then capacity 1 over item 0 -> {0, 1}.
  np.testing.assert_array_equal(knapsack([1, 2, 3], [1, 2, 3], 3), [0, 1])
  # Two equal items, room for one: the later one never strictly improves, so item 0 is kept.
  np.testing.assert_array_equal(knapsack([3, 3], [2, 2], 2), [0])
  np.testing.assert_array_equal(knapsack([3, 3, 1], [2, 2, 5], 4), [0, 1])


def test_everything_packed_when_the_total_weight_fits():
  # ReduceCapacities in KnapsackSolver::Init: no active constraint -> every item, whatever its value.
  np.testing.assert_array_equal(knapsack([0, 5, -3], [1, 1, 1], 3), [0, 1, 2])
  np.testing.assert_array_equal(knapsack([0, 0], [0, 0], 0), [0, 1])


def test_item_zero_quirk_when_nothing_improves():
  # After packing item 1 (value 5), capacity 2 over item 0 alone: value 0 improves nothing, selected[]
  # still holds its initial 0, and item 0 fits, so it is packed.
  np.testing.assert_array_equal(knapsack([0, 5, 0], [1, 1, 5], 3), [0, 1])
  # All values zero: shot 0 is packed if it fits ...
  np.testing.assert_array_equal(knapsack([0, 0, 0], [2, 2, 2], 3), [0])
  # ... and nothing when it does not (remaining capacity goes negative, so it is not marked).
  np.testing.assert_array_equal(knapsack([0, 0], [9, 1], 5), np.zeros(0, np.int64))


def test_capacity_zero_no_items_and_heavy_items():
  assert knapsack([4, 2], [1, 2], 0).size == 0
  empty = knapsack([], [], 7)
  assert empty.size == 0 and empty.dtype == np.int64
  np.testing.assert_array_equal(knapsack([10, 1], [50, 3], 5), [1])
  assert knapsack([10, 20], [6, 7], 5).size == 0


def test_whole_floats_are_accepted_like_integers():
  # h5 files sometimes store shot lengths as floats.
  np.testing.assert_array_equal(knapsack(np.array([92., 57., 49.]), np.array([23., 31., 29.]), 60.0), [0, 1])


def _brute_force_best_value(values, weights, capacity):
  best = 0
  for mask in itertools.product((0, 1), repeat=len(values)):
    if np.dot(mask, weights) <= capacity:
      best = max(best, int(np.dot(mask, values)))
  return best


def test_packing_is_feasible_and_optimal_for_non_negative_values():
  rng = np.random.default_rng(7)
  for _ in range(150):
    n = int(rng.integers(1, 9))
    values = rng.integers(0, 12, n)
    weights = rng.integers(1, 10, n)
    capacity = int(rng.integers(0, weights.sum() + 3))
    packed = knapsack(values, weights, capacity)
    assert weights[packed].sum() <= capacity
    assert values[packed].sum() == _brute_force_best_value(values, weights, capacity)


@pytest.mark.skipif(ORTOOLS_DP is None, reason="ortools not installed (test-only parity dependency)")
def test_matches_ortools_dp_solver_on_random_cases():
  rng = np.random.default_rng(2024)
  for case in range(400):
    n = int(rng.integers(0, 16))
    high = int(rng.choice([2, 4, 1000]))  # small value ranges make ties
    values = rng.integers(-2 if case % 5 == 0 else 0, high, n)
    weights = rng.integers(0 if case % 7 == 0 else 1, 40, n)
    capacity = int(rng.integers(0, int(weights.sum()) + 5))
    expected = ORTOOLS_DP(values, weights, capacity)
    np.testing.assert_array_equal(knapsack(values, weights, capacity), expected,
                                  err_msg=f"values={values.tolist()} weights={weights.tolist()} C={capacity}")


@pytest.mark.skipif(ORTOOLS_DP is None, reason="ortools not installed (test-only parity dependency)")
def test_matches_ortools_on_keyshot_sized_problems():
  # TVSum-like: ~60-120 shots of 60-120 frames, values in 0..1000, capacity 15% of the frames.
  rng = np.random.default_rng(3)
  for _ in range(10):
    weights = rng.integers(60, 121, int(rng.integers(60, 121)))
    values = rng.integers(0, 1001, weights.size)
    values[rng.random(weights.size) < 0.2] = 0
    capacity = int(weights.sum() * 0.15)
    np.testing.assert_array_equal(knapsack(values, weights, capacity), ORTOOLS_DP(values, weights, capacity))


@pytest.mark.parametrize("values, weights, capacity, needle", [
    ([1, 2], [1], 3, "weights"),
    ([1, 2], [1, -1], 3, "weights"),
    ([1, 2], [1, 1], -1, "capacity"),
    ([1, 2], [1, 1], 2.5, "capacity"),
    ([1, 2], [1, 1], np.array([2, 3]), "capacity"),
    ([1.5, 2], [1, 1], 3, "values"),
    ([np.nan, 2], [1, 1], 3, "values"),
    ([[1, 2]], [[1, 1]], 3, "values"),
    (["a", "b"], [1, 1], 3, "values"),
])
def test_bad_input_raises_a_named_error(values, weights, capacity, needle):
  with pytest.raises(VsummInputError, match=needle):
    knapsack(values, weights, capacity)


def test_error_is_a_value_error():
  assert issubclass(VsummInputError, ValueError)
