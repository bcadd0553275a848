"""Highlight data (iptnet_jax/highlight/data.py) on generated files in the UMT release layout, batches, and
UMT's YouTube Highlights mAP (iptnet_jax/vsumm/highlight.py)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from iptnet_jax.errors import InputError
from iptnet_jax.highlight import data
from iptnet_jax.vsumm import highlight


def write_tvsum(root: Path, *, extra_audio_row: str | None = None, lengths=None, seed: int = 0) -> dict:
  """Two domains x (2 train + 1 val) videos in <root>/features/tvsum, as the UMT release lays them out."""
  rng = np.random.default_rng(seed)
  folder = root / "features" / "tvsum"
  (folder / "video_features").mkdir(parents=True)
  (folder / "audio_features").mkdir()
  anno, splits = {}, {}
  ids = [f"vid{i}" for i in range(6)]
  lengths = lengths or [9, 12, 7, 10, 8, 11]
  for i, (video_id, length) in enumerate(zip(ids, lengths)):
    domain = "VT" if i < 3 else "BK"
    np.save(folder / "video_features" / f"{video_id}_rgb.npy", rng.normal(size=(length, 1024)))
    np.save(folder / "video_features" / f"{video_id}_opt.npy", rng.normal(size=(length, 1024)))
    np.save(folder / "audio_features" / f"{video_id}.npy",
            rng.normal(size=(length + (video_id == extra_audio_row), 2048)).astype(np.float32))
    anno[video_id] = {"domain": domain, "anno": rng.integers(1, 6, size=(length, 20)).tolist(), "fps": 30.0}
    splits.setdefault(domain, {"train": [], "val": []})["val" if i % 3 == 2 else "train"].append(video_id)
  (folder / "tvsum_anno.json").write_text(json.dumps(anno))
  (folder / "umt_domain_splits.json").write_text(json.dumps(splits))
  return anno


def write_youtube(root: Path, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  folder = root / "features" / "youtube"
  (folder / "video_features").mkdir(parents=True)
  anno = {}
  splits = {"dog": {"train": ["y0", "y1", "nofeat"], "val": ["y2"]}, "surfing": {"train": ["y3"], "val": ["y4"]}}
  for i in range(5):
    length = 6 + i
    np.save(folder / "video_features" / f"y{i}_rgb.npy", rng.normal(size=(length, 1024)).astype(np.float32))
    anno[f"y{i}"] = {"domain": "dog" if i < 3 else "surfing", "fps": 30.0, "frames": str(50 * length + 50),
                     "info": ["", None, [], 0, "", f"title {i}"],
                     "clip": [[50 * k, 50 * k + 100] for k in range(length)],
                     "match": rng.choice([-1, 0, 1], size=length).tolist()}
  (folder / "youtube_anno.json").write_text(json.dumps(anno))
  (folder / "umt_domain_splits.json").write_text(json.dumps(splits))
  return anno


def test_read_tvsum_concatenates_streams_truncates_to_the_shortest_and_builds_targets(tmp_path):
  anno = write_tvsum(tmp_path, extra_audio_row="vid1")
  ds = data.read_tvsum(tmp_path, modalities=("video", "audio"), video_streams="rgb+flow")
  assert ds.metric == "top5_map" and set(ds.splits) == {"VT", "BK"}
  assert ds.splits["VT"] == {"train": ("vid0", "vid1"), "val": ("vid2",)}
  v = ds.videos["vid1"]
  assert v.features["video"].shape == (12, 2048) and v.features["audio"].shape == (12, 2048)  # audio had 13
  rgb = np.load(tmp_path / "features/tvsum/video_features/vid1_rgb.npy")
  np.testing.assert_allclose(v.features["video"][:, :1024], rgb.astype(np.float32))
  scores = np.asarray(anno["vid1"]["anno"], np.float64)
  np.testing.assert_allclose(v.target("mean_score"), (scores.sum(1) - 20) / 80, rtol=1e-6)  # UMT's get_saliency
  np.testing.assert_allclose(v.target("vote"), (scores > np.sort(scores, 0)[(12 - 1) // 2]).mean(1), rtol=1e-6)
  video_only = data.read_tvsum(tmp_path, modalities=("video",), video_streams="rgb")
  assert set(video_only.videos["vid0"].features) == {"video"}
  assert video_only.videos["vid0"].features["video"].shape == (9, 1024)


def test_missing_folder_and_bad_files_are_one_line_input_errors(tmp_path):
  with pytest.raises(InputError, match="TVSum feature folder not found.*data.root"):
    data.read_tvsum(tmp_path / "nowhere")
  write_tvsum(tmp_path)
  os.remove(tmp_path / "features/tvsum/audio_features/vid3.npy")
  with pytest.raises(data.HighlightDataError, match="vid3.npy"):
    data.read_tvsum(tmp_path)
  assert data.read_tvsum(tmp_path, modalities=("video",)).videos["vid3"].num_clips == 10
  np.save(tmp_path / "features/tvsum/video_features/vid0_rgb.npy", np.zeros((9, 7)))
  with pytest.raises(data.HighlightDataError, match=r"expected a non-empty \(T, 1024\)"):
    data.read_tvsum(tmp_path, modalities=("video",))
  with pytest.raises(data.HighlightDataError, match="video_streams"):
    data.read_tvsum(tmp_path, video_streams="depth")
  with pytest.raises(data.HighlightDataError, match="modalities"):
    data.parse_modalities("video,smell")


def test_read_youtube_skips_ids_without_features_and_labels_match_above_zero(tmp_path):
  anno = write_youtube(tmp_path)
  ds = data.read_youtube(tmp_path)
  assert ds.metric == "youtube_map"
  assert ds.splits["dog"]["train"] == ("y0", "y1")
  np.testing.assert_array_equal(ds.videos["y2"].labels, np.asarray(anno["y2"]["match"]) > 0)
  np.testing.assert_array_equal(ds.videos["y2"].target("mean_score"), ds.videos["y2"].labels.astype(np.float32))


def test_make_batch_crops_pads_and_masks():
  ds = data.synthetic_dataset(num_domains=1, train_per_domain=2, min_clips=5, max_clips=9)
  videos = ds.domain_videos("D0", "train")
  batch = data.make_batch(videos, ("video", "audio"), 12, target="mean_score", starts=[1, 0])
  n0 = videos[0].num_clips - 1
  assert batch["features"]["video"].shape == (2, 12, 16) and batch["mask"][0].sum() == n0
  np.testing.assert_array_equal(batch["features"]["audio"][0, :n0], videos[0].features["audio"][1:])
  assert np.all(batch["features"]["video"][0, n0:] == 0) and np.all(batch["targets"][0, n0:] == 0)
  rng = np.random.default_rng(0)
  long = data.synthetic_dataset(num_domains=1, train_per_domain=1, min_clips=50, max_clips=50).videos["D0_v0"]
  starts = {data.random_starts([long], 20, rng)[0] for _ in range(200)}
  assert min(starts) >= 0 and max(starts) <= 30 and len(starts) > 20
  assert data.random_starts(videos, 20, rng) == [0, 0]  # shorter than tau: the whole video, padded


def _umt_youtube_ap(scores, labels):
  """UMT's YouTubeHighlights.evaluate for one video, transcribed as its loop (argsort descending)."""
  label = [labels[i] for i in np.argsort(-np.asarray(scores), kind="stable")]
  num_gt = sum(label)
  if num_gt == 0:
    return 0.0
  hits = ap = rec = 0.0
  prc = 1.0
  for i, gt in enumerate(label):
    hits += gt
    new_rec, new_prc = hits / num_gt, hits / (i + 1)
    ap += (new_rec - rec) * (prc + new_prc) / 2
    rec, prc = new_rec, new_prc
  return ap


def test_clip_ranking_ap_equals_umts_youtube_loop():
  rng = np.random.default_rng(0)
  for _ in range(50):
    length = int(rng.integers(1, 40))
    labels = rng.integers(0, 2, size=length)
    scores = rng.random(length)
    assert highlight.clip_ranking_ap(scores, labels) == pytest.approx(_umt_youtube_ap(scores, labels), abs=1e-12)
  assert highlight.clip_ranking_ap([0.9, 0.1, 0.5], [1, 0, 0]) == 1.0
  assert highlight.clip_ranking_ap([0.1, 0.9, 0.5], [1, 0, 0]) == pytest.approx((1 / 3) / 2)  # rank 3: (0 + 1/3) / 2
  assert highlight.clip_ranking_ap([0.1, 0.9], [0, 0]) == 0.0
  assert highlight.mean_clip_ranking_ap({"a": [1.0, 0.0], "b": [0.0, 1.0]}, {"a": [1, 0], "b": [1, 0]}) == \
      pytest.approx((1.0 + 0.25) / 2)
  with pytest.raises(highlight.HighlightInputError, match="0/1"):
    highlight.clip_ranking_ap([0.1, 0.2], [-1, 1])
