"""DSNet's anchor-free evaluation of one video, from model outputs to F-score (reference_spec.md §2.6).

predict_summary_af reproduces DSNetAF.predict + evaluate() + bbox2summary:
1. s = cls * ctr, then s /= max(s) + 1e-8, in float32 like the torch model outputs;
2. boxes [t - l_t, t + r_t + 1), clipped to [0, T], rounded half to even, int32;
3. NMS (drop empty boxes, sort by s descending, remove IoU >= nms_thresh; AF uses 0.4);
4. step score = max score of the kept boxes covering the step, 0 elsewhere;
5. keyshots (knapsack over shots, proportion 0.15 of the frames).
The F-score then compares the summary with the users' (fscore.summary_fscore).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from iptnet_jax.vsumm import bbox, fscore, keyshots
from iptnet_jax.vsumm.knapsack import (VsummInputError, as_binary_array, as_float_array, as_int_array,
                                       as_int_scalar, input_error)

__all__ = ["VsummInputError", "VideoEvalInputs", "normalized_step_scores", "predict_summary_af",
           "random_score_fscore", "video_fscore_af"]

_SCORE_EPS = np.float32(1e-8)  # torch adds the Python float to a float32 tensor in float32


def normalized_step_scores(cls_prob, ctr_prob) -> np.ndarray:
  """(T,) float32 s = cls * ctr / (max(cls * ctr) + 1e-8), every operation in float32 as DSNetAF.predict."""
  cls_prob = as_float_array("cls_prob", cls_prob, 1).astype(np.float32)
  ctr_prob = as_float_array("ctr_prob", ctr_prob, 1).astype(np.float32)
  if cls_prob.shape != ctr_prob.shape or cls_prob.size == 0:
    raise input_error("ctr_prob", f"a non-empty array shaped like cls_prob {cls_prob.shape}",
                      f"shape {ctr_prob.shape}")
  scores = cls_prob * ctr_prob
  return scores / (scores.max() + _SCORE_EPS)


def predict_summary_af(cls_prob, loc_offsets, ctr_prob, change_points, n_frames, n_frame_per_seg, picks,
                       nms_thresh: float = 0.4, proportion: float = 0.15) -> np.ndarray:
  """(n_frames,) bool summary DSNet-AF predicts from one video's head outputs.

  cls_prob, ctr_prob: (T,) probabilities; loc_offsets: (T, 2) positive (left, right) offsets in steps.
  They are cast to float32 first: DSNet's torch outputs are float32 and the arithmetic must match.
  """
  scores = normalized_step_scores(cls_prob, ctr_prob)
  seq_len = scores.shape[0]
  offsets = as_float_array("loc_offsets", loc_offsets, 2, allow_inf=True).astype(np.float32)
  if offsets.shape != (seq_len, 2):
    raise input_error("loc_offsets", f"shape ({seq_len}, 2) to match cls_prob", f"shape {offsets.shape}")
  n_frames = as_int_scalar("n_frames", n_frames, minimum=1)
  picks = keyshots.check_picks(picks, n_frames)
  if picks.shape[0] != seq_len:
    raise input_error("picks", f"one pick per step ({seq_len})", f"{picks.shape[0]}")

  boxes = bbox.clip_round_boxes(bbox.offsets_to_boxes(offsets), seq_len)
  kept_scores, kept_boxes = bbox.nms(scores, boxes, nms_thresh)
  step_scores = bbox.boxes_to_step_scores(kept_scores, kept_boxes, seq_len)
  return keyshots.get_keyshot_summ(step_scores, change_points, n_frames, n_frame_per_seg, picks, proportion)


def random_score_fscore(change_points, n_frames, n_frame_per_seg, picks, user_summary, eval_metric,
                        rng) -> float:
  """F-score of uniform random step scores through the same keyshot pipeline: the random-score floor.

  rng: a numpy Generator (or a seed for one). The scores are float32 in [0, 1), one per pick.
  """
  rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
  picks = as_int_array("picks", picks, 1)
  step_scores = rng.random(picks.shape[0], dtype=np.float32)
  summary = keyshots.get_keyshot_summ(step_scores, change_points, n_frames, n_frame_per_seg, picks)
  return fscore.summary_fscore(summary, user_summary, eval_metric)


@dataclasses.dataclass(frozen=True, eq=False)
class VideoEvalInputs:
  """What evaluating one video needs besides the model outputs; validated once at construction."""

  change_points: np.ndarray  # (S, 2) int64 inclusive [first, last]
  n_frames: int
  n_frame_per_seg: np.ndarray  # (S,) int64
  picks: np.ndarray  # (T,) int64
  user_summary: np.ndarray  # (U, N) bool
  eval_metric: str  # 'avg' or 'max'

  def __post_init__(self):
    n_frames = as_int_scalar("n_frames", self.n_frames, minimum=1)
    cps = keyshots.check_change_points(self.change_points, n_frames)
    nfps = as_int_array("n_frame_per_seg", self.n_frame_per_seg, 1)
    if nfps.shape[0] != cps.shape[0]:
      raise input_error("n_frame_per_seg", f"one length per shot ({cps.shape[0]})", f"{nfps.shape[0]}")
    users = as_binary_array("user_summary", self.user_summary, 2)
    if users.shape[0] == 0:
      raise input_error("user_summary", "at least one user", f"shape {users.shape}")
    if self.eval_metric not in fscore.EVAL_METRICS:
      raise input_error("eval_metric", f"one of {fscore.EVAL_METRICS}", repr(self.eval_metric))
    object.__setattr__(self, "n_frames", n_frames)
    object.__setattr__(self, "change_points", cps)
    object.__setattr__(self, "n_frame_per_seg", nfps)
    object.__setattr__(self, "picks", keyshots.check_picks(self.picks, n_frames))
    object.__setattr__(self, "user_summary", users)

  @classmethod
  def from_video(cls, video, eval_metric: str | None = None) -> "VideoEvalInputs":
    """From any object with the eccv16 fields and a `name` (e.g. datasets.eccv16.SummVideo).

    eval_metric defaults to DSNet's rule on the name ('avg' iff it contains 'tvsum').
    """
    if getattr(video, "user_summary", None) is None:
      raise input_error("video", "a video with user summaries (evaluation needs them)",
                        f"{getattr(video, 'name', video)!r} without")
    metric = fscore.eval_metric_for_key(video.name) if eval_metric is None else eval_metric
    return cls(video.change_points, video.n_frames, video.n_frame_per_seg, video.picks, video.user_summary,
               metric)

  @property
  def num_steps(self) -> int:
    return int(self.picks.shape[0])


def video_fscore_af(inputs: VideoEvalInputs, cls_prob, loc_offsets, ctr_prob, nms_thresh: float = 0.4,
                    proportion: float = 0.15) -> float:
  """DSNet's F-score of one video from the anchor-free head outputs."""
  summary = predict_summary_af(cls_prob, loc_offsets, ctr_prob, inputs.change_points, inputs.n_frames,
                               inputs.n_frame_per_seg, inputs.picks, nms_thresh, proportion)
  return fscore.summary_fscore(summary, inputs.user_summary, inputs.eval_metric)
