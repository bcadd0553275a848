"""Anchor-free evaluation end to end: a hand-computed video, bit-parity with DSNet's steps, random floor."""

import types

import numpy as np
import pytest

from iptnet_jax.vsumm import evaluate, fscore
from iptnet_jax.vsumm.evaluate import VideoEvalInputs, VsummInputError
from iptnet_jax.vsumm.knapsack import knapsack

F32 = np.float32

# 40 frames, 4 steps (picks every 10 frames), 4 shots of 10 frames.
HAND_PICKS = np.array([0, 10, 20, 30])
HAND_CPS = np.array([[0, 9], [10, 19], [20, 29], [30, 39]])
HAND_NFPS = np.full(4, 10)
HAND_CLS = np.array([0.9, 0.2, 0.8, 0.1], F32)
HAND_CTR = np.array([1.0, 1.0, 0.5, 1.0], F32)
HAND_LOC = np.array([[0, 0], [1, 0], [0, 1], [0, 0]], F32)  # boxes [0,1) [0,2) [2,4) [3,4)


def test_normalized_scores_are_float32_like_the_torch_model():
  scores = evaluate.normalized_step_scores(HAND_CLS, HAND_CTR)
  assert scores.dtype == np.float32
  product = HAND_CLS * HAND_CTR
  np.testing.assert_array_equal(scores, product / (product.max() + F32(1e-8)))
  assert scores[0] == 1.0  # 1e-8 is below half an ulp of 0.9f, so the max maps to exactly 1


def test_hand_computed_video():
  # s = [1, .2/.9, .4/.9, .1/.9]. NMS at 0.4 in score order: keep [0,1) (removes [0,2), IoU 1/2), keep
  # [2,4) (removes [3,4), IoU 1/2). Step scores [1, 0, .444, .444] -> shot values [1000, 0, 444, 444].
  # Capacity int(0.5 * 40) = 20, two shots: {0, 2} and {0, 3} tie at 1444; shot 3 never strictly
  # improves capacity 20, so OR-tools' DP keeps shot 2 -> frames 0-9 and 20-29.
  summary = evaluate.predict_summary_af(HAND_CLS, HAND_LOC, HAND_CTR, HAND_CPS, 40, HAND_NFPS, HAND_PICKS,
                                        nms_thresh=0.4, proportion=0.5)
  assert summary.dtype == bool and summary.shape == (40,)
  np.testing.assert_array_equal(np.flatnonzero(summary), np.r_[0:10, 20:30])
  # With a looser threshold [0,2) survives too, but [0,1) (score 1) still dominates step 0 and step 1
  # gets .2/.9: shot 1 is worth 222 and the best pair stays {0, 2}.
  summary = evaluate.predict_summary_af(HAND_CLS, HAND_LOC, HAND_CTR, HAND_CPS, 40, HAND_NFPS, HAND_PICKS,
                                        nms_thresh=0.6, proportion=0.5)
  np.testing.assert_array_equal(np.flatnonzero(summary), np.r_[0:10, 20:30])


def test_f_score_of_the_hand_computed_video():
  users = np.zeros((2, 40), bool)
  users[0, 0:10] = True  # user 0 chose shot 0: overlap 10, |pred| 20, |user| 10 -> F1 2 (.5)(1) / 1.5 = 2/3
  users[1, 30:40] = True  # user 1 chose shot 3: no overlap -> 0
  inputs = VideoEvalInputs(HAND_CPS, 40, HAND_NFPS, HAND_PICKS, users, "avg")
  f1 = evaluate.video_fscore_af(inputs, HAND_CLS, HAND_LOC, HAND_CTR, proportion=0.5)
  assert f1 == pytest.approx((2 / 3 + 0) / 2, rel=1e-15)
  inputs = VideoEvalInputs(HAND_CPS, 40, HAND_NFPS, HAND_PICKS, users, "max")
  assert evaluate.video_fscore_af(inputs, HAND_CLS, HAND_LOC, HAND_CTR, proportion=0.5) == pytest.approx(2 / 3)


def _dsnet_af_literal(cls, loc, ctr, cps, n_frames, nfps, picks, thresh):
  """DSNet's predict -> clip/round -> nms -> bbox2summary -> get_keyshot_summ, restated step by step.

  numpy < 1.24 behaviour is emulated where numpy 2 differs: argsort order via numpy's C introsort
  (longdouble has no SIMD sort) and the float64 product in int(1000 * mean).
  """
  s = cls.astype(F32) * ctr.astype(F32)
  s = s / (s.max() + F32(1e-8))
  steps = np.arange(len(s))
  boxes = np.vstack((steps - loc[:, 0], steps + loc[:, 1] + 1)).T
  boxes = np.clip(boxes, 0, len(s)).round().astype(np.int32)
  valid = boxes[:, 0] < boxes[:, 1]
  s_valid, boxes = s[valid], boxes[valid]
  order = np.argsort(s_valid.astype(np.longdouble), kind="quicksort")[::-1]
  s_valid, boxes = s_valid[order], boxes[order]
  kept = []
  while boxes.size > 0:
    kept.append((s_valid[0], boxes[0]))
    inter = np.minimum(boxes[:, 1], boxes[0, 1]) - np.maximum(boxes[:, 0], boxes[0, 0])
    inter[inter < 0] = 0
    union = np.maximum(boxes[:, 1], boxes[0, 1]) - np.minimum(boxes[:, 0], boxes[0, 0])
    keep = inter / union < thresh
    s_valid, boxes = s_valid[keep], boxes[keep]
  step_scores = np.zeros(len(s), F32)
  for score, (lo, hi) in kept:
    step_scores[lo:hi] = np.maximum(step_scores[lo:hi], [score])
  frame_scores = np.zeros(n_frames, F32)
  for i in range(len(picks)):
    frame_scores[picks[i]:(picks[i + 1] if i + 1 < len(picks) else n_frames)] = step_scores[i]
  values = np.array([int(1000 * np.float64(frame_scores[a:b + 1].mean())) for a, b in cps], np.int32)
  summary = np.zeros(n_frames, bool)
  for k in knapsack(values, nfps, int(n_frames * 0.15)):
    summary[cps[k][0]:cps[k][1] + 1] = True
  return summary


def _random_video(rng, num_steps):
  n_frames = 15 * num_steps - int(rng.integers(1, 15))
  picks = np.arange(num_steps) * 15
  bounds = np.unique(np.r_[0, rng.choice(np.arange(1, n_frames), num_steps // 5, replace=False), n_frames])
  cps = np.stack([bounds[:-1], bounds[1:] - 1], axis=1)
  return n_frames, picks, cps, cps[:, 1] - cps[:, 0] + 1


def test_bit_parity_with_dsnets_steps_on_random_videos():
  rng = np.random.default_rng(21)
  for case in range(25):
    num_steps = int(rng.integers(40, 400))
    n_frames, picks, cps, nfps = _random_video(rng, num_steps)
    cls = rng.random(num_steps).astype(F32)
    ctr = rng.random(num_steps).astype(F32)
    loc = np.exp(rng.normal(0.5, 1.0, (num_steps, 2))).astype(F32)
    if case % 2 == 0:  # repeated feature rows give repeated outputs: tied scores, tied boxes
      template = rng.integers(0, 6, num_steps)
      cls, ctr, loc = cls[template], ctr[template], loc[template]
    expected = _dsnet_af_literal(cls, loc, ctr, cps, n_frames, nfps, picks, 0.4)
    summary = evaluate.predict_summary_af(cls, loc, ctr, cps, n_frames, nfps, picks, nms_thresh=0.4)
    np.testing.assert_array_equal(summary, expected, err_msg=f"case {case}")


def test_random_score_floor_is_the_keyshot_pipeline_on_uniform_scores():
  rng = np.random.default_rng(4)
  n_frames, picks, cps, nfps = _random_video(rng, 200)
  users = rng.random((20, n_frames)) < 0.15
  first = evaluate.random_score_fscore(cps, n_frames, nfps, picks, users, "avg", np.random.default_rng(9))
  again = evaluate.random_score_fscore(cps, n_frames, nfps, picks, users, "avg", 9)
  assert first == again and 0.0 <= first <= 1.0
  scores = np.random.default_rng(9).random(len(picks), dtype=np.float32)
  summary = evaluate.keyshots.get_keyshot_summ(scores, cps, n_frames, nfps, picks)
  assert first == fscore.summary_fscore(summary, users, "avg")


def test_video_eval_inputs_from_a_dataset_video():
  users = np.zeros((3, 40))
  video = types.SimpleNamespace(name="eccv16_dataset_tvsum_google_pool5.h5/video_1", change_points=HAND_CPS,
                                n_frames=np.array(40), n_frame_per_seg=HAND_NFPS.astype(float),
                                picks=HAND_PICKS, user_summary=users)
  inputs = VideoEvalInputs.from_video(video)
  assert inputs.eval_metric == "avg" and inputs.n_frames == 40 and inputs.num_steps == 4
  assert inputs.user_summary.dtype == bool and inputs.n_frame_per_seg.dtype == np.int64
  assert VideoEvalInputs.from_video(video, eval_metric="max").eval_metric == "max"
  with pytest.raises(VsummInputError, match="video"):
    VideoEvalInputs.from_video(types.SimpleNamespace(name="v", user_summary=None))


@pytest.mark.parametrize("kwargs, needle", [
    (dict(ctr_prob=np.ones(3)), "ctr_prob"),
    (dict(cls_prob=np.array([0.9, np.nan, 0.8, 0.1])), "cls_prob"),
    (dict(loc_offsets=np.ones((4, 3))), "loc_offsets"),
    (dict(loc_offsets=np.ones((5, 2))), "loc_offsets"),
    (dict(picks=np.array([0, 10, 20])), "picks"),
    (dict(change_points=np.array([[0, 9], [10, 45]])), "change_points"),
    (dict(nms_thresh=2.0), "thresh"),
])
def test_bad_input_raises_a_named_error(kwargs, needle):
  args = dict(cls_prob=HAND_CLS, loc_offsets=HAND_LOC, ctr_prob=HAND_CTR, change_points=HAND_CPS, n_frames=40,
              n_frame_per_seg=HAND_NFPS, picks=HAND_PICKS)
  args.update(kwargs)
  with pytest.raises(VsummInputError, match=needle):
    evaluate.predict_summary_af(**args)


@pytest.mark.parametrize("field, value, needle", [
    ("eval_metric", "mean", "eval_metric"),
    ("n_frame_per_seg", np.ones(3), "n_frame_per_seg"),
    ("user_summary", np.zeros(40), "user_summary"),
    ("picks", np.array([0, 50]), "picks"),
])
def test_video_eval_inputs_validate_at_construction(field, value, needle):
  args = dict(change_points=HAND_CPS, n_frames=40, n_frame_per_seg=HAND_NFPS, picks=HAND_PICKS,
              user_summary=np.zeros((2, 40)), eval_metric="avg")
  args[field] = value
  with pytest.raises(VsummInputError, match=needle):
    VideoEvalInputs(**args)
