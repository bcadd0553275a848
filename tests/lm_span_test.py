"""Span inference (VSLNet extract_index), index->time, IoU and R1@IoU / mIoU metrics."""

import itertools

import numpy as np
import pytest

from iptnet_jax.lm import span


def _logits(*rows):
  return np.asarray(rows, np.float32)


def test_predict_spans_clear_peaks():
  s, e = span.predict_spans(_logits([0, 5, 0, 0]), _logits([0, 0, 0, 5]), np.ones((1, 4)))
  assert (s.tolist(), e.tolist()) == ([1], [3])
  assert s.dtype == e.dtype == np.int32


def test_predict_spans_never_returns_an_end_before_the_start():
  # Independent argmaxes would give (3, 0). Over s <= e the best product is P_s[1] P_e[2] ∝ e^4 e^4.
  s, e = span.predict_spans(_logits([0, 4, 0, 6]), _logits([6, 0, 4, 0]), np.ones((1, 4)))
  assert (s.tolist(), e.tolist()) == ([1], [2])


def test_predict_spans_ignores_masked_positions():
  mask = np.array([[1, 1, 1, 0]], np.float32)
  s, e = span.predict_spans(_logits([0, 5, 0, 100]), _logits([0, 0, 5, 100]), mask)
  assert (s.tolist(), e.tolist()) == ([1], [2])


def test_predict_spans_uniform_logits_pick_the_first_cell():
  s, e = span.predict_spans(np.zeros((1, 5)), np.zeros((1, 5)), np.ones((1, 5)))
  assert (s.tolist(), e.tolist()) == ([0], [0])


def test_predict_spans_matches_brute_force_over_valid_pairs():
  rng = np.random.default_rng(0)
  start, end = rng.normal(0, 2, (64, 12)), rng.normal(0, 2, (64, 12))
  lengths = rng.integers(1, 13, 64)
  mask = (np.arange(12)[None] < lengths[:, None]).astype(np.float32)
  s, e = span.predict_spans(start, end, mask)
  for b in range(64):
    n = lengths[b]
    p_s = np.exp(start[b, :n]) / np.exp(start[b, :n]).sum()
    p_e = np.exp(end[b, :n]) / np.exp(end[b, :n]).sum()
    valid_pairs = [(i, j) for i, j in itertools.product(range(n), range(n)) if i <= j]
    best = max(valid_pairs, key=lambda ij: p_s[ij[0]] * p_e[ij[1]])
    assert (s[b], e[b]) == best


def test_predict_spans_errors():
  with pytest.raises(span.SpanError, match="no valid position"):
    span.predict_spans(np.zeros((2, 3)), np.zeros((2, 3)), np.array([[1, 1, 0], [0, 0, 0]]))
  with pytest.raises(span.SpanError, match="one \\(B, L\\) shape"):
    span.predict_spans(np.zeros((2, 3)), np.zeros((2, 4)), np.ones((2, 3)))


def test_index_to_time_worked_example():
  # 10 clips over 30 s: clip 2 starts at 6 s, clip 4 ends at (4+1)*3 = 15 s.
  start, end = span.index_to_time(np.array([2, 0]), np.array([4, 9]), np.array([10, 10]), np.array([30.0, 30.0]))
  np.testing.assert_array_equal(start, [6.0, 0.0])
  np.testing.assert_array_equal(end, [15.0, 30.0])


def test_index_to_time_equals_vslnets_float32_grid():
  rng = np.random.default_rng(1)
  num_units = rng.integers(1, 129, 200)
  duration = np.round(rng.uniform(3, 190, 200), 2)
  s = np.array([rng.integers(0, n) for n in num_units])
  e = np.array([rng.integers(a, n) for a, n in zip(s, num_units)])
  start, end = span.index_to_time(s, e, num_units, duration)
  for i in range(200):
    n, d = int(num_units[i]), float(duration[i])
    # VSLNet util/data_util.py index_to_time, verbatim arithmetic.
    s_times = np.arange(0, n).astype(np.float32) * d / float(n)
    e_times = np.arange(1, n + 1).astype(np.float32) * d / float(n)
    assert start[i] == float(s_times[s[i]]) and end[i] == float(e_times[e[i]])


def test_index_to_time_rejects_invalid_indices():
  with pytest.raises(span.SpanError, match="start_index <= end_index < num_units"):
    span.index_to_time(np.array([3]), np.array([2]), np.array([5]), np.array([10.0]))
  with pytest.raises(span.SpanError, match="start_index <= end_index < num_units"):
    span.index_to_time(np.array([0]), np.array([5]), np.array([5]), np.array([10.0]))


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        ([2, 6], [4, 10], 2 / 8),  # overlap 2, convex hull 8
        ([0, 10], [2, 4], 2 / 10),  # containment
        ([3, 7], [3, 7], 1.0),
        ([0, 2], [2, 4], 0.0),  # touching
        ([0, 2], [5, 9], 0.0),  # disjoint: (2-5)/9 < 0 is clipped to 0
    ],
)
def test_temporal_iou_worked_examples(pred, gt, expected):
  assert span.temporal_iou(np.array([pred], float), np.array([gt], float))[0] == pytest.approx(expected)


def test_temporal_iou_shape_error():
  with pytest.raises(span.SpanError, match="\\(N, 2\\)"):
    span.temporal_iou(np.zeros((3, 2)), np.zeros((2, 2)))


def test_moment_metrics_thresholds_are_inclusive():
  metrics = span.moment_metrics([0.2, 0.3, 0.5, 0.69, 0.7, 1.0])
  assert metrics == pytest.approx({"R1@0.3": 500 / 6, "R1@0.5": 400 / 6, "R1@0.7": 200 / 6,
                                   "mIoU": 339 / 6})


def test_moment_metrics_errors():
  with pytest.raises(span.SpanError, match="non-empty"):
    span.moment_metrics([])
  with pytest.raises(span.SpanError, match="\\[0, 1\\]"):
    span.moment_metrics([0.5, 1.5])


def test_random_spans_are_uniform_over_valid_pairs():
  rng = np.random.default_rng(0)
  s, e = span.random_spans(np.full(60000, 3), rng)
  assert np.all((0 <= s) & (s <= e) & (e < 3))
  pairs, counts = np.unique(np.stack([s, e], 1), axis=0, return_counts=True)
  assert pairs.tolist() == [[0, 0], [0, 1], [0, 2], [1, 1], [1, 2], [2, 2]]
  np.testing.assert_allclose(counts / 60000, 1 / 6, atol=0.01)
  big_s, big_e = span.random_spans(np.full(5000, 128), rng)
  assert np.all((0 <= big_s) & (big_s <= big_e) & (big_e < 128))


def test_expected_random_metrics_worked_example():
  # 2 clips over 2 s, gt [0, 1]: [0,1] IoU 1, [0,2] IoU 0.5, [1,2] IoU 0.
  metrics = span.expected_random_span_metrics([2], [2.0], [[0.0, 1.0]])
  assert metrics == pytest.approx({"R1@0.3": 200 / 3, "R1@0.5": 200 / 3, "R1@0.7": 100 / 3, "mIoU": 50.0})


def test_random_baseline_agrees_with_its_expectation():
  rng = np.random.default_rng(3)
  num_units = np.full(4000, 30)
  durations = np.full(4000, 30.0)
  gt = np.tile([[5.0, 13.0]], (4000, 1))
  sampled = span.moment_metrics(span.random_span_baseline(num_units, durations, gt, rng))
  expected = span.expected_random_span_metrics(num_units[:1], durations[:1], gt[:1])
  for key in expected:
    assert sampled[key] == pytest.approx(expected[key], abs=2.0)


def test_span_ious_combines_index_to_time_and_iou():
  # 10 clips over 20 s: clips 1..3 = [2, 8] s against [3, 7] s -> 4 / 6.
  got = span.span_ious([1, 0], [3, 9], [10, 10], [20.0, 20.0], [[3.0, 7.0], [0.0, 20.0]])
  np.testing.assert_allclose(got, [4 / 6, 1.0])
