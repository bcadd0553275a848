"""The LM as a highlight detector on YouTube Highlights: UMT's per-domain mAP of its highlight scores.

Paper Fig. 5 asks whether joint training helps the LM's own task. With YouTube Highlights as the LM data, the
LM's own task is both the moment spans (R1@IoU, `lm.train.evaluate`) and the clip ranking the benchmark scores:
UMT's protocol ranks every clip of a val video by its highlight score and takes the AP against `match > 0`
(`vsumm.highlight.clip_ranking_ap`), the mean over the domain's val videos being the domain's mAP.

The LM reads a video with its title as the query (the query the LM data was trained with) and scores its
`min(T, max_pos_len)` units with the highlighting head (VSLNet's `highlight_prob`). A video longer than
`max_pos_len` clips is pooled into units as in training (`moment_labels.resampling_boundaries`); each clip then
takes its unit's score, so the AP is still over the video's own clips and UMT's labels (tied clips of one
unit keep their order, as `clip_ranking_ap` does for any tie). A val video without a highlight clip has no
moment sample to read it with and scores 0, as in UMT.
"""

from __future__ import annotations

import collections

import jax
import numpy as np

from iptnet_jax.datasets import input_pipeline, moment_labels
from iptnet_jax.lm.model import VSLNet
from iptnet_jax.vsumm import highlight


def make_highlight_fn(model: VSLNet):
  """Jitted (variables, batch) -> (B, Lv) highlight probabilities, without dropout."""
  inputs = ("video", "video_mask", "word_ids", "char_ids", "query_mask")

  def scores(variables, batch):
    return model.apply(variables, *(batch[k] for k in inputs), deterministic=True)["highlight_prob"]

  return jax.jit(scores)


def clip_scores_from_units(unit_scores: np.ndarray, num_clips: int, max_len: int) -> np.ndarray:
  """(num_clips,) scores: each clip takes the score of the pooled unit its features were averaged into."""
  unit_scores = np.asarray(unit_scores, np.float64)
  if num_clips <= max_len:
    return unit_scores[:num_clips].copy()
  boundaries = moment_labels.resampling_boundaries(num_clips, max_len)
  # Unit i averages clips [b_i, b_{i+1}) (clip b_i alone when that range is empty): clip j -> the last unit
  # starting at or before j. The boundaries stop at T - 1, so VSLNet never reads the last clip: it takes the
  # last unit's score.
  unit_of_clip = np.searchsorted(boundaries[:-1], np.arange(num_clips), side="right") - 1
  return unit_scores[np.clip(unit_of_clip, 0, len(unit_scores) - 1)]


def youtube_domain_map(score_fn, variables: dict, dataset, split: str, batch_options: dict,
                       batch_size: int = 16) -> dict:
  """{"per_domain": {domain: mAP}, "mean": mean over domains, "num_videos", "num_pooled", "num_without_positive"}.

  dataset: a `datasets.youtube_highlights.YouTubeHighlightsLM`; split: "test" (UMT val) or "train".
  """
  videos = dataset.videos["train" if split == "train" else "val"]
  first_sample = {}
  for sample in dataset.split(split):
    first_sample.setdefault(sample.vid, sample)
  samples = [first_sample[v.vid] for v in videos if v.vid in first_sample]
  max_len = samples[0].feature_store.max_len if samples else 1
  unit_scores = {}
  for batch in input_pipeline.iterate_lm_batches(samples, batch_size, shuffle=False, **batch_options):
    probs = np.asarray(jax.device_get(score_fn(variables, {k: batch[k] for k in
                                                            ("video", "video_mask", "word_ids", "char_ids",
                                                             "query_mask")})))
    for row, sample_id in enumerate(batch["sample_id"]):
      if sample_id < 0:
        continue  # filler row
      sample = dataset.lookup([sample_id])[0]
      unit_scores[sample.vid] = probs[row, :sample.num_units]
  per_domain = collections.defaultdict(list)
  pooled = without_positive = 0
  for video in videos:
    labels = (np.asarray(video.match) > 0).astype(np.int64)
    if video.vid not in unit_scores:
      without_positive += 1
      per_domain[video.domain].append(0.0)
      continue
    num_clips = labels.shape[0]
    pooled += num_clips > max_len
    clip_scores = clip_scores_from_units(unit_scores[video.vid], num_clips, max_len)
    per_domain[video.domain].append(highlight.clip_ranking_ap(clip_scores, labels))
  maps = {domain: float(np.mean(aps)) for domain, aps in sorted(per_domain.items())}
  return {"per_domain": maps, "mean": float(np.mean(list(maps.values()))), "num_videos": len(videos),
          "num_pooled": pooled, "num_without_positive": without_positive}
