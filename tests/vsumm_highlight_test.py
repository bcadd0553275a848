"""Top-5 mAP (UMT's TVSum protocol): hand-computed APs, the median labelling rule, split files."""

import json

import numpy as np
import pytest

from iptnet_jax.vsumm import highlight


def _umt_loop_ap(ranked_labels):
  """UMT's AP of top-k labels, transcribed as a plain loop (datasets/tvsum.py TVSum.evaluate)."""
  num_gt = sum(ranked_labels)
  if num_gt == 0:
    return 0.0
  hits = ap = rec = 0.0
  prc = 1.0
  for j, gt in enumerate(ranked_labels):
    hits += gt
    new_rec, new_prc = hits / num_gt, hits / (j + 1)
    ap += (new_rec - rec) * (prc + new_prc) / 2
    rec, prc = new_rec, new_prc
  return ap


@pytest.mark.parametrize("labels,expected", [
    ([1, 1, 1, 1, 1], 1.0),
    ([0, 0, 0, 0, 0], 0.0),
    ([1, 0, 0, 0, 0], 1.0),  # the only positive in the top 5 is ranked first
    ([0, 0, 0, 0, 1], 0.1),  # recall 0 -> 1 at precision 0 -> 1/5: trapezoid (0 + 0.2) / 2
    ([0, 1, 0, 1, 1], 73 / 180),  # 1/3 (0 + 1/2)/2 + 1/3 (1/3 + 1/2)/2 + 1/3 (1/2 + 3/5)/2
    ([1, 1, 0, 0, 0], 1.0),
])
def test_top_k_average_precision_hand_values(labels, expected):
  assert highlight.top_k_average_precision(labels)[0] == pytest.approx(expected)
  assert _umt_loop_ap(labels) == pytest.approx(expected)


def test_vectorised_ap_equals_the_loop_on_random_labels():
  labels = np.random.default_rng(0).integers(0, 2, size=(7, 200))
  expected = [_umt_loop_ap(labels[:, u].tolist()) for u in range(200)]
  np.testing.assert_allclose(highlight.top_k_average_precision(labels), expected, rtol=0, atol=1e-12)


def test_median_labels_use_each_users_own_median():
  scores = np.array([[1, 5], [2, 5], [3, 1], [4, 1], [5, 3]])  # odd T: medians 3 and 3
  np.testing.assert_array_equal(highlight.median_labels(scores),
                                [[0, 1], [0, 1], [0, 0], [1, 0], [1, 0]])
  even = np.array([[1], [2], [4], [5]])  # lower median 2 (torch), midpoint 3: same labels
  assert highlight.lower_median(even)[0] == 2
  np.testing.assert_array_equal(highlight.median_labels(even)[:, 0], [0, 0, 1, 1])
  np.testing.assert_array_equal(highlight.median_labels(even), even > np.median(even, axis=0))
  ties = np.array([[3], [3], [3], [3], [1], [5]])  # median 3: only the 5 is above it
  np.testing.assert_array_equal(highlight.median_labels(ties)[:, 0], [0, 0, 0, 0, 0, 1])


def test_lower_and_midpoint_median_labels_agree_on_random_scores():
  rng = np.random.default_rng(1)
  for n_steps in (6, 7, 50, 51):
    scores = rng.integers(1, 6, size=(n_steps, 20)).astype(float)
    np.testing.assert_array_equal(highlight.median_labels(scores), scores > np.median(scores, axis=0))


def _agreeing_users(n_steps=12, n_users=3, highlights=(2, 5, 6, 9, 11)):
  scores = np.ones((n_steps, n_users))
  scores[list(highlights)] = 5.0
  return scores


def test_top5_map_perfect_and_worst_ranking():
  user_scores = _agreeing_users()
  perfect = user_scores[:, 0] + 0.01 * np.arange(12)
  assert highlight.top5_map(perfect, user_scores) == pytest.approx(1.0)
  assert highlight.top5_map(-perfect, user_scores) == 0.0


def test_top5_map_averages_users_and_ranks_ties_in_step_order():
  user_scores = _agreeing_users(n_users=2)
  user_scores[:, 1] = 1.0
  user_scores[[0, 1], 1] = 5.0  # user 1's highlights are steps 0 and 1
  ties = np.zeros(12)  # all equal: steps 0..4 form the top 5
  # user 0: labels of steps 0..4 = [0, 0, 1, 0, 0]: recall 0 -> 1 at rank 3, precision 0 -> 1/3: (0 + 1/3) / 2
  # user 1: [1, 1, 0, 0, 0] -> 1.0
  assert highlight.top5_map(ties, user_scores) == pytest.approx((1 / 6 + 1.0) / 2)
  assert highlight.top5_map(ties, user_scores, top_k=1) == pytest.approx(0.5)


def test_mean_top5_map_is_the_mean_over_videos():
  user_scores = _agreeing_users()
  good = user_scores[:, 0] + 0.01 * np.arange(12)
  value = highlight.mean_top5_map({"a": good, "b": -good}, {"a": user_scores, "b": user_scores, "c": None})
  assert value == pytest.approx(0.5)
  with pytest.raises(highlight.HighlightInputError, match="no annotation"):
    highlight.mean_top5_map({"x": good}, {"a": user_scores})


def test_bad_inputs_raise_highlight_input_error():
  with pytest.raises(highlight.HighlightInputError, match="step_scores"):
    highlight.top5_map(np.zeros(5), np.ones((6, 2)))
  with pytest.raises(highlight.HighlightInputError, match="user_scores"):
    highlight.top5_map(np.zeros(5), np.ones(5))
  with pytest.raises(highlight.HighlightInputError, match="finite"):
    highlight.top5_map(np.array([0, np.nan, 1]), np.ones((3, 2)))
  with pytest.raises(highlight.HighlightInputError, match="top_k"):
    highlight.top5_map(np.zeros(3), np.ones((3, 2)), top_k=0)


def test_domain_splits_reads_the_umt_layout(tmp_path):
  path = tmp_path / "splits.json"
  path.write_text(json.dumps({"BK": {"train": ["a", "b"], "val": ["c"]}, "VT": {"train": ["d"], "val": ["e"]}}))
  splits = highlight.domain_splits(path)
  assert splits == {"BK": {"train": ("a", "b"), "val": ("c",)}, "VT": {"train": ("d",), "val": ("e",)}}


@pytest.mark.parametrize("content,message", [
    ({"BK": {"train": ["a"]}}, "exactly the keys"),
    ({"BK": {"train": ["a"], "val": []}}, "non-empty list"),
    ({"BK": {"train": ["a"], "val": ["a"]}}, "both train and val"),
    ([], "expected an object"),
])
def test_domain_splits_rejects_bad_files(tmp_path, content, message):
  path = tmp_path / "splits.json"
  path.write_text(json.dumps(content))
  with pytest.raises(highlight.HighlightInputError, match=message):
    highlight.domain_splits(path)
  with pytest.raises(FileNotFoundError, match="umt_domain_splits"):
    highlight.domain_splits(tmp_path / "missing.json")
