"""VSLNet's clip resampling, time->index labels and highlight labels, on hand-worked cases."""

import numpy as np
import pytest

from iptnet_jax.datasets import moment_labels as labels


def _ramp(num_frames, dim=1):
  # Row t holds the value t, so every pooled chunk reads as the mean of its frame indices.
  return np.repeat(np.arange(num_frames, dtype=np.float32)[:, None], dim, axis=1)


def test_short_video_is_returned_unchanged():
  features = _ramp(128, 3)
  assert labels.visual_feature_sampling(features, 128) is features
  assert labels.visual_feature_sampling(_ramp(5), 128).shape == (5, 1)


def test_resampling_rounds_half_to_even_and_drops_the_last_frame():
  # T=10 -> 4: positions i/4*10 = 0, 2.5, 5, 7.5, 10 -> round half even 0, 2, 5, 8, 10 -> clipped to T-1 = 9.
  np.testing.assert_array_equal(labels.resampling_boundaries(10, 4), [0, 2, 5, 8, 9])
  pooled = labels.visual_feature_sampling(_ramp(10, 2), 4)
  # Chunks [0:2], [2:5], [5:8], [8:9]: frame 9 is in none of them (VSLNet's clip to T-1).
  np.testing.assert_allclose(pooled[:, 0], [0.5, 3.0, 6.0, 8.0])
  assert pooled.shape == (4, 2) and pooled.dtype == np.float32


def test_empty_chunk_takes_the_boundary_frame():
  # T=5 -> 4: 0, 1.25, 2.5, 3.75, 5 -> 0, 1, 2, 4, 5 -> clipped 0, 1, 2, 4, 4; the last chunk [4:4] is empty.
  np.testing.assert_array_equal(labels.resampling_boundaries(5, 4), [0, 1, 2, 4, 4])
  np.testing.assert_allclose(labels.visual_feature_sampling(_ramp(5), 4)[:, 0], [0.0, 1.0, 2.5, 4.0])


def test_boundaries_follow_vslnets_operation_order_at_exact_halves():
  # 64/128*129 = 64.5 exactly -> 64 (even); 63.49 -> 63; 65.51 -> 66.
  boundaries = labels.resampling_boundaries(129, 128)
  np.testing.assert_array_equal(boundaries[63:66], [63, 64, 66])
  pooled = labels.visual_feature_sampling(_ramp(129), 128)
  assert pooled.shape == (128, 1)
  assert pooled[63, 0] == 63.0 and pooled[64, 0] == 64.5


def test_long_video_pools_to_max_len_in_order():
  pooled = labels.visual_feature_sampling(_ramp(1000, 4), 128)
  assert pooled.shape == (128, 4)
  assert np.all(np.diff(pooled[:, 0]) > 0)
  assert pooled[0, 0] == pytest.approx(np.mean(np.arange(8)))  # round(1/128*1000) = round(7.8125) = 8


def test_resampling_rejects_bad_shapes():
  with pytest.raises(labels.LabelError, match="expected \\(T, D\\)"):
    labels.visual_feature_sampling(np.zeros(10), 4)
  with pytest.raises(labels.LabelError, match="max_len"):
    labels.visual_feature_sampling(np.zeros((10, 2)), 0)


def test_time_to_index_picks_the_best_iou_unit_span():
  # 10 units of 2 s. GT [3, 7]: [2, 8] scores 4/6, better than [4, 8] and [2, 6] (3/5) or [4, 6] (2/4).
  assert labels.time_to_index(3.0, 7.0, 10, 20.0) == (1, 3)
  # A moment on unit boundaries maps onto exactly those units.
  assert labels.time_to_index(4.0, 10.0, 10, 20.0) == (2, 4)
  assert labels.time_to_index(0.0, 20.0, 10, 20.0) == (0, 9)


def test_time_to_index_breaks_ties_by_smallest_start_then_smallest_end():
  # 3 units of 1 s. GT [0.6, 2.1]: [0, 2] and [1, 2] both score exactly 2/3 -> the smaller start wins.
  ious = labels.span_iou_matrix(0.6, 2.1, 3, 3.0)
  assert ious[0, 1] == ious[1, 1] == ious.max()
  assert labels.time_to_index(0.6, 2.1, 3, 3.0) == (0, 1)
  # GT [0.9, 2.4]: [1, 2] and [1, 3] both score 2/3 -> same start, the smaller end wins.
  ious = labels.span_iou_matrix(0.9, 2.4, 3, 3.0)
  assert ious[1, 1] == ious[1, 2] == ious.max()
  assert labels.time_to_index(0.9, 2.4, 3, 3.0) == (1, 1)


def test_unit_times_are_vslnets_float32_grid():
  starts, ends = labels.unit_times(31, 30.54)
  assert starts.dtype == ends.dtype == np.float32
  assert float(ends[-1]) != 30.54  # float32, not the float64 duration
  # 21 units of 0.7 s, GT [7.4, 9.5]: [7.0, 9.8] and [7.7, 9.8] tie at IoU 0.75 in exact arithmetic; the float32
  # grid VSLNet builds resolves it to (10, 13) where a float64 grid would give (11, 13).
  assert labels.time_to_index(7.4, 9.5, 21, 14.7) == (10, 13)


def test_time_to_index_rejects_bad_grids():
  with pytest.raises(labels.LabelError, match="units"):
    labels.time_to_index(0.0, 1.0, 0, 10.0)
  with pytest.raises(labels.LabelError, match="duration"):
    labels.time_to_index(0.0, 1.0, 4, 0.0)


@pytest.mark.parametrize(
    "start, end, num_units, expected_on",
    [
        (3, 7, 20, (3, 7)),  # 5 units: round(0.5) = 0 (half to even) -> no widening
        (0, 14, 20, (0, 16)),  # 15 units: round(1.5000000000000002) = 2; start clipped at 0
        (10, 34, 40, (8, 36)),  # 25 units: round(2.5) = 2 (half to even)
        (30, 39, 40, (29, 39)),  # 10 units: widen 1, end clipped at num_units - 1
        (5, 5, 8, (5, 5)),  # 1 unit: round(0.1) = 0
    ],
)
def test_highlight_labels_worked_examples(start, end, num_units, expected_on):
  got = labels.highlight_labels(start, end, num_units, 0.1)
  expected = np.zeros(num_units, np.float32)
  expected[expected_on[0]:expected_on[1] + 1] = 1
  np.testing.assert_array_equal(got, expected)
  assert got.dtype == np.float32


def test_highlight_labels_reject_invalid_spans():
  with pytest.raises(labels.LabelError, match="start_index <= end_index"):
    labels.highlight_labels(5, 4, 10)
  with pytest.raises(labels.LabelError, match="num_units"):
    labels.highlight_labels(2, 10, 10)
