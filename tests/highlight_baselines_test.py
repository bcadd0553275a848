"""Floors and ceiling of the highlight tables (iptnet_jax/highlight/baselines.py): ridge regression learns a linear
saliency and chooses its lambda on the train videos only; the oracle scores the val video's own annotation."""

import numpy as np
import pytest

from iptnet_jax.highlight import baselines
from iptnet_jax.highlight import data as data_lib
from iptnet_jax.highlight import train


def dataset():
  return data_lib.synthetic_dataset(num_domains=2, train_per_domain=4, val_per_domain=2, min_clips=40, max_clips=80,
                                    video_dim=12, audio_dim=6, seed=3)


def test_ridge_learns_the_generated_saliency_and_beats_the_random_floor():
  ds = dataset()
  ridge = baselines.ridge_floor(ds, ["D0", "D1"], ("video", "audio"))
  floor = train.random_floor(ds, ["D0", "D1"], 50)
  assert ridge["mean"] > floor["mean"] + 0.15, (ridge, floor)
  assert set(ridge["lambda"].values()) <= set(baselines.LAMBDAS)


def test_ridge_lambda_is_chosen_without_the_val_videos():
  ds = dataset()
  before = baselines.ridge_domain(ds, "D0", ("video",), "mean_score")
  val_ids = ds.splits["D0"]["val"]
  rng = np.random.default_rng(0)
  shuffled = {k: (data_lib.Video(v.video_id, v.domain, {m: rng.normal(size=a.shape).astype(np.float32)
                                                          for m, a in v.features.items()}, user_scores=v.user_scores)
                  if k in val_ids else v) for k, v in ds.videos.items()}
  after = baselines.ridge_domain(data_lib.Dataset(ds.name, shuffled, ds.splits, ds.metric), "D0", ("video",),
                                 "mean_score")
  assert after["lambda"] == before["lambda"] and after["cv"] == before["cv"]
  assert after["val"] != before["val"]  # the val videos are scored, nothing else


def test_oracle_scores_the_val_videos_own_target():
  ds = dataset()
  oracle = baselines.oracle(ds, ["D0", "D1"], "vote")
  for domain in ("D0", "D1"):
    val = ds.domain_videos(domain, "val")
    expected = train.evaluate_scores("top5_map", {v.video_id: v.target("vote") for v in val}, val)
    assert oracle["per_domain"][domain] == pytest.approx(expected)
  # Users who all agree: the vote target ranks exactly their positives first, so every user's top-5 AP is 1.
  scores = np.repeat(np.array([1, 1, 2, 5, 5, 4, 5, 5, 5, 1, 1, 2], np.float32)[:, None], 4, axis=1)
  video = data_lib.Video("v", "D", {"video": np.zeros((12, 2), np.float32)}, user_scores=scores)
  agreed = data_lib.Dataset("x", {"v": video}, {"D": {"train": (), "val": ("v",)}}, "top5_map")
  assert baselines.oracle(agreed, ["D"], "vote")["mean"] == pytest.approx(1.0)
