"""Keyshot F-score: DSNet's worked example, padding, avg/max, the metric rule, bit-equality, errors."""

import numpy as np
import pytest

from iptnet_jax.vsumm import fscore
from iptnet_jax.vsumm.fscore import VsummInputError


def test_dsnet_golden_f1_is_four_sevenths():
  # DSNet tests/helpers/test_vsumm_helper.py::test_f1_score. overlap 2, |pred| 3, |user| 4:
  # P = 2/3, R = 1/2, F1 = 2 (1/3) / (7/6) = 4/7.
  f1 = fscore.f1_per_user(np.array([0, 1, 1, 0, 1]), np.array([[1, 1, 0, 1, 1]]))
  assert f1.dtype == np.float64 and f1.shape == (1,)
  assert f1[0] == pytest.approx(4 / 7, rel=1e-15)
  assert fscore.summary_fscore([0, 1, 1, 0, 1], [[1, 1, 0, 1, 1]], "avg") == pytest.approx(4 / 7, rel=1e-15)


def test_no_overlap_and_empty_summaries_score_zero():
  users = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]], bool)
  np.testing.assert_array_equal(fscore.f1_per_user([0, 0, 1, 1], users), [0, 0, 1])
  np.testing.assert_array_equal(fscore.f1_per_user([0, 0, 0, 0], users), [0, 0, 0])


def test_prediction_is_padded_or_truncated_to_the_user_length():
  users = np.array([[1, 1, 0, 0, 0]])
  # Shorter: zero-padded -> [1, 1, 0, 0, 0], a perfect match.
  np.testing.assert_array_equal(fscore.f1_per_user([1, 1], users), [1])
  # Longer: the ones past frame 5 are cut off, so they do not lower the precision.
  np.testing.assert_array_equal(fscore.f1_per_user([1, 1, 0, 0, 0, 1, 1, 1], users), [1])


def test_avg_and_max_over_users():
  pred = np.array([1, 1, 0, 0])
  users = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1]])
  # per user: 1, 2 (1/2)(1) / (3/2) = 2/3, 0
  np.testing.assert_allclose(fscore.f1_per_user(pred, users), [1, 2 / 3, 0], rtol=1e-15)
  assert fscore.summary_fscore(pred, users, "avg") == pytest.approx(5 / 9, rel=1e-15)
  assert fscore.summary_fscore(pred, users, "max") == 1.0
  assert isinstance(fscore.summary_fscore(pred, users, "max"), float)


def test_eval_metric_rule_reads_the_key():
  assert fscore.eval_metric_for_key("../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_35") == "avg"
  assert fscore.eval_metric_for_key("../datasets/eccv16_dataset_summe_google_pool5.h5/video_1") == "max"
  assert fscore.eval_metric_for_key("eccv16_dataset_TVSUM/video_1") == "max"  # DSNet's rule is case-sensitive


def _dsnet_f1_literal(pred, user_summary, metric):
  """DSNet's get_summ_f1score restated user by user (note its argument order: f1_score(user, pred))."""
  n = user_summary.shape[1]
  pred = np.pad(pred, (0, max(0, n - pred.size)))[:n].astype(bool)
  f1s = []
  for user in user_summary.astype(bool):
    overlap = (user & pred).sum()
    if overlap == 0:
      f1s.append(0.0)
      continue
    precision = overlap / user.sum()
    recall = overlap / pred.sum()
    f1s.append(float(2 * precision * recall / (precision + recall)))
  return float(np.mean(f1s) if metric == "avg" else np.max(f1s))


def test_bit_identical_to_the_per_user_loop():
  rng = np.random.default_rng(3)
  for _ in range(40):
    num_frames = int(rng.integers(50, 3000))
    users = rng.random((int(rng.integers(1, 25)), num_frames)) < rng.uniform(0.05, 0.3)
    pred = rng.random(num_frames + int(rng.integers(-20, 20))) < 0.15
    for metric in ("avg", "max"):
      assert fscore.summary_fscore(pred, users, metric) == _dsnet_f1_literal(pred, users, metric)


@pytest.mark.parametrize("call, needle", [
    (lambda: fscore.summary_fscore([1, 0], [[1, 0]], "mean"), "eval_metric"),
    (lambda: fscore.f1_per_user([1, 0], [1, 0]), "user_summary"),
    (lambda: fscore.f1_per_user([[1, 0]], [[1, 0]]), "pred_summary"),
    (lambda: fscore.f1_per_user([1, 2], [[1, 0]]), "pred_summary"),
    (lambda: fscore.f1_per_user([1, np.nan], [[1, 0]]), "pred_summary"),
    (lambda: fscore.f1_per_user([1, 0], np.zeros((0, 2))), "user_summary"),
    (lambda: fscore.eval_metric_for_key(3), "key"),
])
def test_bad_input_raises_a_named_error(call, needle):
  with pytest.raises(VsummInputError, match=needle):
    call()
