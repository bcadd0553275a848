"""The LM scored as a highlight detector on YouTube Highlights (UMT's per-domain mAP), on generated files."""

import numpy as np
import pytest

import youtube_highlights_test as yht
from iptnet_jax.datasets import moment_labels
from iptnet_jax.datasets import youtube_highlights as yh
from iptnet_jax.lm import highlight_map
from iptnet_jax.vsumm import highlight


@pytest.mark.parametrize("num_clips,max_len", [(5, 8), (8, 8), (9, 8), (37, 8), (300, 128), (476, 128)])
def test_each_clip_takes_the_unit_its_features_were_pooled_into(num_clips, max_len):
  # One-hot clip features: the pooled row of unit i is non-zero exactly at the clips averaged into it.
  pooled = moment_labels.visual_feature_sampling(np.eye(num_clips, dtype=np.float64), max_len)
  units = highlight_map.clip_scores_from_units(np.arange(pooled.shape[0], dtype=np.float64), num_clips, max_len)
  assert units.shape == (num_clips,)
  for clip, unit in enumerate(units.astype(int)):
    if pooled[:, clip].any():
      assert pooled[unit, clip] > 0, f"clip {clip} given unit {unit}, whose features do not include it"
    else:  # VSLNet's pooling never reads the last clip of a long video: it takes the last unit's score
      assert clip == num_clips - 1 and unit == pooled.shape[0] - 1


def _first_feature_scores(variables, batch):
  """A stand-in LM: the highlight score of a unit is its first feature (masked rows are never read)."""
  del variables
  return np.asarray(batch["video"])[..., 0]


def test_domain_map_is_umt_ap_of_the_scores_mean_per_domain(tmp_path):
  data = yht._load(tmp_path)
  result = highlight_map.youtube_domain_map(_first_feature_scores, {}, data, "test",
                                            dict(video_buckets=(8,), query_buckets=(8,), char_buckets=(8,),
                                                 highlight_extension=0.25), batch_size=1)
  # Expected by hand from the generated files: each val video's clips ranked by their first feature.
  expected = {}
  for video in data.videos["val"]:
    labels = (np.asarray(video.match) > 0).astype(int)
    ap = highlight.clip_ranking_ap(yht._features(video.vid, len(video.match))[:, 0], labels)
    expected.setdefault(video.domain, []).append(ap)
  assert set(result["per_domain"]) == set(expected)
  for domain, aps in expected.items():
    assert result["per_domain"][domain] == pytest.approx(np.mean(aps))
  assert result["mean"] == pytest.approx(np.mean([np.mean(v) for v in expected.values()]))
  assert result["num_videos"] == len(data.videos["val"]) and result["num_pooled"] == 0


def test_a_val_video_without_highlight_scores_zero(tmp_path):
  def no_positive(anno, splits):
    anno["surfV"]["match"] = [0, 0, -1]

  paths = yht._write(tmp_path / "youtube", edit=no_positive)
  data = yh.load_youtube_highlights(*paths, yht._write_glove(tmp_path))
  result = highlight_map.youtube_domain_map(_first_feature_scores, {}, data, "test",
                                            dict(video_buckets=(8,), query_buckets=(8,), char_buckets=(8,),
                                                 highlight_extension=0.25))
  assert result["per_domain"]["surfing"] == 0.0 and result["num_without_positive"] == 1
