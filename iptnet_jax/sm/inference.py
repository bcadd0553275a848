"""SM inference on padded batches and the F-score of a set of videos.

The network runs jitted on padded batches; each video's outputs are then cut back to its own length and
scored on the host with the exact DSNet protocol (iptnet_jax.vsumm).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

from iptnet_jax.datasets import eccv16, input_pipeline
from iptnet_jax.sm import model as sm_model
from iptnet_jax.vsumm import evaluate as vsumm_eval
from iptnet_jax.vsumm import fscore, highlight

PredictFn = Callable[[object, jax.Array, jax.Array], dict]


def make_predict_fn(model: sm_model.DSNetAF) -> PredictFn:
  """jitted (params, features, mask) -> {cls_prob, offsets, ctr_prob}, dropout off."""

  def predict(params, features, mask):
    outputs = model.apply({"params": params}, features, mask, deterministic=True)
    return sm_model.predictions(outputs)

  return jax.jit(predict)


def predict_videos(predict_fn: PredictFn, params, videos: Sequence[eccv16.SummVideo], batch_size: int,
                   buckets: Sequence[int]) -> dict[str, dict[str, np.ndarray]]:
  """Per-video host arrays {cls_prob (T,), offsets (T, 2), ctr_prob (T,)} keyed by video name."""
  results = {}
  for batch in input_pipeline.iterate_sm_batches(videos, batch_size, buckets, with_labels=False):
    outputs = jax.device_get(predict_fn(params, batch["features"], batch["mask"]))
    for row, name in enumerate(batch["names"]):
      length = int(batch["mask"][row].sum())
      results[name] = {k: np.asarray(v[row, :length]) for k, v in outputs.items()}
  return results


def resolve_eval_metric(video: eccv16.SummVideo, metric: str) -> str:
  """'avg' / 'max' as configured, or DSNet's rule on the video name for 'auto'."""
  return fscore.eval_metric_for_key(video.name) if metric == "auto" else metric


def video_fscores(videos: Sequence[eccv16.SummVideo], preds: dict[str, dict[str, np.ndarray]], *,
                  nms_thresh: float, proportion: float, metric: str) -> dict[str, float]:
  scores = {}
  for video in videos:
    p = preds[video.name]
    summary = vsumm_eval.predict_summary_af(
        p["cls_prob"], p["offsets"], p["ctr_prob"], video.change_points, video.n_frames,
        video.n_frame_per_seg, video.picks, nms_thresh=nms_thresh, proportion=proportion)
    scores[video.name] = fscore.summary_fscore(summary, video.user_summary, resolve_eval_metric(video, metric))
  return scores


def video_top5_maps(videos: Sequence[eccv16.SummVideo], preds: dict[str, dict[str, np.ndarray]]
                    ) -> dict[str, float]:
  """Top-5 mAP per video, ranking steps by DSNet's step score cls * ctr (before box decoding)."""
  scores = {}
  for video in videos:
    if video.user_scores is None:
      raise eccv16.DatasetFormatError(f"{video.name}: top-5 mAP needs per-user step scores ('user_scores'), which "
                                      "this file lacks; build it with `python -m iptnet_jax.datasets.tvsum_i3d` or use "
                                      "eval.protocol='fscore'")
    p = preds[video.name]
    scores[video.name] = highlight.top5_map(vsumm_eval.normalized_step_scores(p["cls_prob"], p["ctr_prob"]),
                                            video.user_scores)
  return scores


def split_score(videos: Sequence[eccv16.SummVideo], preds: dict[str, dict[str, np.ndarray]], *, protocol: str,
                nms_thresh: float, proportion: float, metric: str) -> float:
  """The split's mean over videos of F1 ('fscore') or top-5 mAP ('top5_map')."""
  if protocol == "top5_map":
    per_video = video_top5_maps(videos, preds)
  else:
    per_video = video_fscores(videos, preds, nms_thresh=nms_thresh, proportion=proportion, metric=metric)
  return float(np.mean(list(per_video.values())))


def random_floor_per_seed(videos: Sequence[eccv16.SummVideo], *, num_seeds: int, metric: str,
                          protocol: str = "fscore", seed: int = 0) -> np.ndarray:
  """(num_seeds,) split scores of uniform random step scores (F1: through the same shots and knapsack)."""
  rng = np.random.default_rng(seed)
  per_seed = []
  for _ in range(num_seeds):
    if protocol == "top5_map":
      per_seed.append(np.mean([highlight.top5_map(rng.random(v.num_steps, dtype=np.float32), v.user_scores)
                               for v in videos]))
    else:
      per_seed.append(np.mean([
          vsumm_eval.random_score_fscore(v.change_points, v.n_frames, v.n_frame_per_seg, v.picks, v.user_summary,
                                         resolve_eval_metric(v, metric), rng)
          for v in videos]))
  return np.asarray(per_seed, dtype=np.float64)


def random_floor(videos: Sequence[eccv16.SummVideo], *, num_seeds: int, metric: str, protocol: str = "fscore",
                 seed: int = 0) -> tuple[float, float]:
  """(mean, std over seeds) of `random_floor_per_seed`."""
  per_seed = random_floor_per_seed(videos, num_seeds=num_seeds, metric=metric, protocol=protocol, seed=seed)
  return float(np.mean(per_seed)), float(np.std(per_seed))
