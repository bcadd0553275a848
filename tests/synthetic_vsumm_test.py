"""The synthetic eccv16 generator: valid layout, the DSNet pipeline accepts it, and a learnable signal."""

import dataclasses
import json

import numpy as np
import pytest
import yaml

from iptnet_jax.datasets import eccv16, splits, summarization
from iptnet_jax.datasets.builders import synthetic_vsumm

SPEC = synthetic_vsumm.SyntheticSpec(num_videos=8, feature_dim=16, min_steps=40, max_steps=70, num_users=4,
                                     num_splits=3)


def test_generated_dataset_is_valid_and_splits_resolve(tmp_path):
  h5_path, split_path = synthetic_vsumm.write_synthetic_dataset(tmp_path, SPEC)
  loaded = splits.load_splits(split_path, tmp_path)
  assert len(loaded) == 3
  for split in loaded:
    assert len(split.test) == 2 and len(split.train) == 6 and not set(split.train) & set(split.test)
  videos = summarization.load_split_videos(loaded)
  assert len(videos) == 8
  for video in videos.values():
    covered = np.zeros(video.n_frames, int)
    for first, last in video.change_points:
      covered[first:last + 1] += 1
    assert (covered == 1).all()
    fractions = video.user_summary.mean(axis=1)
    assert (fractions > 0).all() and (fractions <= 0.15 + 1e-9).all()


def test_importance_is_carried_by_the_features(tmp_path):
  # Steps of the same concept share a feature direction, and users rate concepts consistently, so the
  # gtscore is a function of the (denoised) features: nearest neighbours agree on it.
  h5_path, _ = synthetic_vsumm.write_synthetic_dataset(tmp_path, dataclasses.replace(SPEC, feature_noise=0.3))
  videos = eccv16.read_videos(h5_path, [f"video_{i}" for i in range(1, 9)], require_user_summary=True)
  feats = np.concatenate([v.features for v in videos.values()])
  raw = np.concatenate([v.gtscore for v in videos.values()])
  distances = ((feats[:, None] - feats[None]) ** 2).sum(-1)
  np.fill_diagonal(distances, np.inf)
  neighbour = distances.argmin(1)
  assert np.corrcoef(raw, raw[neighbour])[0, 1] > 0.8
  assert np.corrcoef(raw, np.random.default_rng(0).permutation(raw))[0, 1] < 0.3


def test_same_spec_is_reused_and_a_new_spec_regenerates(tmp_path):
  h5_path, _ = synthetic_vsumm.ensure_synthetic_dataset(tmp_path, SPEC)
  first = h5_path.stat().st_mtime_ns
  synthetic_vsumm.ensure_synthetic_dataset(tmp_path, SPEC)
  assert h5_path.stat().st_mtime_ns == first
  old_splits = yaml.safe_load((tmp_path / synthetic_vsumm.SPLIT_NAME).read_text())
  synthetic_vsumm.ensure_synthetic_dataset(tmp_path, dataclasses.replace(SPEC, seed=1))
  assert json.loads((tmp_path / synthetic_vsumm.MARKER_NAME).read_text())["seed"] == 1
  assert yaml.safe_load((tmp_path / synthetic_vsumm.SPLIT_NAME).read_text()) != old_splits


def test_bad_spec_names_the_field():
  with pytest.raises(ValueError, match="num_users"):
    synthetic_vsumm.SyntheticSpec(num_users=0)
