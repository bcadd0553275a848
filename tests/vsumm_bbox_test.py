"""1-D boxes: decoding, clipping, IoU, NMS (thresholds and tie order), step scores."""

import numpy as np
import pytest

from iptnet_jax.vsumm import bbox
from iptnet_jax.vsumm.bbox import VsummInputError


def test_offsets_to_boxes_dsnet_golden_case():
  # DSNet tests/anchor_free/test_anchor_free_helper.py::test_offset2bbox.
  boxes = bbox.offsets_to_boxes(np.array([[1, 2], [3, 4]], dtype=np.float32))
  np.testing.assert_array_equal(boxes, [[-1, 3], [-2, 6]])
  assert boxes.dtype == np.float64  # int64 steps minus float32 offsets, as numpy computes it in DSNet


def test_clip_round_boxes_rounds_half_to_even_and_casts_int32():
  boxes = bbox.clip_round_boxes([[-0.6, 2.5], [3.5, 10.2], [0.5, 1.5], [-np.inf, np.inf]], 8)
  np.testing.assert_array_equal(boxes, [[0, 2], [4, 8], [0, 2], [0, 8]])
  assert boxes.dtype == np.int32


def test_iou_lr_dsnet_golden_case():
  # DSNet tests/helpers/test_bbox_helper.py::TestIou::test_iou_lr.
  anchors = np.array([[1, 5]] * 5, dtype=np.float32)
  targets = np.array([[1, 5], [0, 6], [2, 4], [3, 8], [8, 9]], dtype=np.float32)
  np.testing.assert_allclose(bbox.iou_lr(anchors, targets), [1, 4 / 6, 2 / 4, 2 / 7, 0], rtol=1e-6)


def test_iou_lr_broadcasts_one_box_and_handles_degenerate_unions():
  iou = bbox.iou_lr(np.array([[0, 5], [0, 2], [5, 7], [3, 3]]), np.array([[0, 5]]))
  np.testing.assert_array_equal(iou, [1, 0.4, 0, 0])
  assert iou.dtype == np.float64
  # Union <= 0 (two empty boxes at the same place) is replaced by 1e-6, never a division by zero.
  np.testing.assert_array_equal(bbox.iou_lr(np.array([[2., 2.]]), np.array([[2., 2.]])), [0])


def test_nms_dsnet_golden_case():
  # DSNet tests/helpers/test_bbox_helper.py::test_nms.
  scores, boxes = bbox.nms(np.array([0.9, 0.8, 0.7, 0.6]), np.array([[1, 5], [2, 4], [4, 8], [5, 9]]), 0.5)
  np.testing.assert_allclose(scores, [0.9, 0.7])
  np.testing.assert_array_equal(boxes, [[1, 5], [4, 8]])


def test_nms_removes_iou_exactly_at_the_threshold():
  # IoU([0, 5), [0, 2)) = 2 / 5 = 0.4: removed at thresh 0.4 (kept only if IoU < thresh), kept at 0.41.
  scores = np.array([0.9, 0.8], np.float32)
  boxes = np.array([[0, 5], [0, 2]], np.int32)
  kept_scores, kept_boxes = bbox.nms(scores, boxes, 0.4)
  np.testing.assert_array_equal(kept_boxes, [[0, 5]])
  assert kept_scores.dtype == np.float32 and kept_boxes.dtype == np.int32
  np.testing.assert_array_equal(bbox.nms(scores, boxes, 0.41)[1], [[0, 5], [0, 2]])


def test_nms_drops_empty_boxes_first():
  kept_scores, kept_boxes = bbox.nms(np.array([0.9, 0.5, 0.4]), np.array([[3, 3], [4, 2], [0, 2]]), 0.4)
  np.testing.assert_array_equal(kept_boxes, [[0, 2]])
  np.testing.assert_array_equal(kept_scores, [0.4])
  kept_scores, kept_boxes = bbox.nms(np.array([0.9]), np.array([[3, 3]]), 0.4)
  assert kept_scores.shape == (0,) and kept_boxes.shape == (0, 2)


def test_nms_tie_order_small_case():
  # Below 17 elements numpy's introsort is an insertion sort, which keeps ties in index order; DSNet's
  # [::-1] then visits the later index first. So [1, 4) is kept and [0, 4) (IoU 3/4) is removed.
  kept_scores, kept_boxes = bbox.nms(np.array([0.5, 0.5], np.float32), np.array([[0, 4], [1, 4]]), 0.4)
  np.testing.assert_array_equal(kept_boxes, [[1, 4]])


def _nms_with_oracle_order(scores, boxes, thresh):
  """DSNet's NMS, with the introsort order taken from numpy's own C sort (longdouble has no SIMD sort)."""
  valid = boxes[:, 0] < boxes[:, 1]
  scores, boxes = scores[valid], boxes[valid]
  order = np.argsort(scores.astype(np.longdouble), kind="quicksort")[::-1]
  scores, boxes = scores[order], boxes[order]
  kept = []
  while boxes.size > 0:
    kept.append(boxes[0])
    inter = np.minimum(boxes[:, 1], boxes[0, 1]) - np.maximum(boxes[:, 0], boxes[0, 0])
    inter[inter < 0] = 0
    union = np.maximum(boxes[:, 1], boxes[0, 1]) - np.minimum(boxes[:, 0], boxes[0, 0])
    keep = inter / union < thresh
    scores, boxes = scores[keep], boxes[keep]
  return np.array(kept).reshape(-1, 2)


def test_nms_with_many_ties_keeps_what_dsnets_numpy_kept():
  rng = np.random.default_rng(5)
  for _ in range(30):
    num = int(rng.integers(17, 400))
    scores = (rng.integers(0, 6, num) / 5).astype(np.float32)  # heavy ties
    starts = rng.integers(0, num, num)
    boxes = np.stack([starts, starts + rng.integers(0, 12, num)], axis=1).astype(np.int32)
    np.testing.assert_array_equal(bbox.nms(scores, boxes, 0.4)[1], _nms_with_oracle_order(scores, boxes, 0.4))


def test_legacy_argsort_matches_numpys_introsort_with_ties():
  rng = np.random.default_rng(0)
  for case in range(60):
    values = rng.integers(0, int(rng.integers(1, 40)), int(rng.integers(0, 600))).astype(np.float32)
    if case % 3 == 1:
      values = np.sort(values)
    elif case % 3 == 2:
      values = np.sort(values)[::-1].copy()
    np.testing.assert_array_equal(bbox.legacy_argsort(values),
                                  np.argsort(values.astype(np.longdouble), kind="quicksort"))


def _introsort_killer(num, max_distinct):
  """An input driving the introsort into its heapsort fallback (McIlroy's adversary, capped to make ties)."""
  gas = num
  value = [gas] * num
  state = {"frozen": 0, "candidate": None}

  class Lazy:
    __slots__ = ("i",)

    def __init__(self, i):
      self.i = i

    def __lt__(self, other):
      x, y = self.i, other.i
      if value[x] == gas and value[y] == gas and state["frozen"] < max_distinct:
        frozen = x if x == state["candidate"] else y
        value[frozen] = state["frozen"]
        state["frozen"] += 1
      if value[x] == gas:
        state["candidate"] = x
      elif value[y] == gas:
        state["candidate"] = y
      return value[x] < value[y]

  items = np.empty(num, dtype=object)
  items[:] = [Lazy(i) for i in range(num)]
  bbox.legacy_argsort(items)
  return np.array(value, dtype=np.float64)


def test_legacy_argsort_heapsort_fallback_matches_numpy(monkeypatch):
  heapsort_calls = []
  original = bbox._heapsort_indices
  monkeypatch.setattr(bbox, "_heapsort_indices", lambda *a: (heapsort_calls.append(1), original(*a)))
  for max_distinct in (40, 1000):
    values = _introsort_killer(1000, max_distinct)
    heapsort_calls.clear()
    order = bbox.legacy_argsort(values)
    assert heapsort_calls, "the adversarial input should reach the heapsort fallback"
    np.testing.assert_array_equal(order, np.argsort(values.astype(np.longdouble), kind="quicksort"))


def test_boxes_to_step_scores_takes_the_max_cover():
  scores = np.array([0.5, 0.9, 0.2, 0.7], np.float32)
  boxes = np.array([[0, 3], [2, 4], [5, 6], [6, 6]])
  step_scores = bbox.boxes_to_step_scores(scores, boxes, 7)
  np.testing.assert_array_equal(step_scores, np.float32([0.5, 0.5, 0.9, 0.9, 0, 0.2, 0]))
  assert step_scores.dtype == np.float32
  assert not bbox.boxes_to_step_scores(np.zeros(0), np.zeros((0, 2), int), 3).any()


@pytest.mark.parametrize("call, needle", [
    (lambda: bbox.offsets_to_boxes(np.ones((3, 3))), "offsets"),
    (lambda: bbox.offsets_to_boxes([[np.nan, 1]]), "offsets"),
    (lambda: bbox.clip_round_boxes([[0, np.nan]], 5), "boxes"),
    (lambda: bbox.clip_round_boxes([[0, 1]], -1), "seq_len"),
    (lambda: bbox.iou_lr(np.zeros((3, 2)), np.zeros((2, 2))), "box"),
    (lambda: bbox.nms(np.ones(2), np.zeros((3, 2)), 0.4), "boxes"),
    (lambda: bbox.nms(np.array([1, np.nan]), np.zeros((2, 2)), 0.4), "scores"),
    (lambda: bbox.nms(np.ones(2), np.zeros((2, 2)), 1.5), "thresh"),
    (lambda: bbox.nms(np.ones(2), np.zeros((2, 2)), np.nan), "thresh"),
    (lambda: bbox.boxes_to_step_scores(np.ones(1), np.array([[-1, 2]]), 5), "boxes"),
    (lambda: bbox.boxes_to_step_scores(np.ones(1), np.array([[0, 6]]), 5), "boxes"),
    (lambda: bbox.boxes_to_step_scores(np.ones(2), np.array([[0, 2]]), 5), "boxes"),
])
def test_bad_input_raises_a_named_error(call, needle):
  with pytest.raises(VsummInputError, match=needle):
    call()
