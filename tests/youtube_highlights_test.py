"""YouTube Highlights reader (UMT layout) and its LM moment samples, on generated files and on the real release."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from iptnet_jax.datasets import youtube_highlights as yh
from iptnet_jax.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IPTNET_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
REAL_YOUTUBE = SHARED_DATA / "features" / "youtube"


def _clips(num_clips, num_frames, first=0):
  """UMT's clip grid: 100-frame clips every 50 frames, the last one cut at the video's end."""
  clips = [[float(max(first, 50 * k)), float(min(50 * k + 100, num_frames))] for k in range(num_clips)]
  return clips


# vid: (domain, split, fps, frames, match, title); clip count = len(match), frames chosen so the grid fits.
VIDEOS = {
    "dogA": ("dog", "train", 25.0, 300, [-1, 0, 1, 1, 0], "My dog jumps"),
    "dogB": ("dog", "train", 30.0, 450, [1, 1, -1, 1, 0, 0, 1, 1], "Dog's first swim!"),
    "dogV": ("dog", "val", 10.0, 250, [0, 1, 1, 1], "puppy fetches"),
    "surfA": ("surfing", "train", 24.0, 200, [0, 0, 1], " "),  # a blank title, as one real video has
    "surfV": ("surfing", "val", 20.0, 200, [1, 0, -1], "big wave zzqx"),
    "noFeat": ("surfing", "train", 30.0, 200, [1, 0, 0], "missing features"),
}
EXTRA_SPLIT_IDS = {"ghost": ("dog", "val")}  # listed in the split file, neither annotated nor extracted


def _features(vid, num_clips):
  seed = sum(map(ord, vid))
  return np.random.default_rng(seed).normal(size=(num_clips, yh.FEATURE_DIM)).astype(np.float32)


def _write(root: Path, videos=VIDEOS, *, edit=None):
  root.mkdir(parents=True, exist_ok=True)
  (root / yh.FEATURE_FOLDER).mkdir(exist_ok=True)
  anno, splits = {}, {}
  for vid, (domain, split, fps, frames, match, title) in videos.items():
    anno[vid] = {"fps": fps, "frames": str(frames), "domain": domain,
                 "info": [f'{domain}"x"relevance', None, [], 1, "channel", title, "description", None],
                 "clip": _clips(len(match), frames), "match": list(match)}
    splits.setdefault(domain, {"train": [], "val": []})[split].append(vid)
    if vid != "noFeat":
      np.save(root / yh.FEATURE_FOLDER / f"{vid}{yh.FEATURE_SUFFIX}", _features(vid, len(match)))
  for vid, (domain, split) in EXTRA_SPLIT_IDS.items():
    splits[domain][split].append(vid)
  anno["notInSplits"] = dict(anno["dogA"])  # annotated, in no split: never read
  if edit is not None:
    edit(anno, splits)
  (root / yh.ANNOTATION_FILE).write_text(json.dumps(anno))
  (root / yh.SPLITS_FILE).write_text(json.dumps(splits))
  return yh.default_paths(root)


# ------------------------------------------------------------------------------------------------- reader

def test_read_videos_fields_order_and_skips(tmp_path):
  videos, skipped = yh.read_videos_and_skipped(*_write(tmp_path))
  assert [v.vid for v in videos] == ["dogA", "dogB", "dogV", "surfA", "surfV"]  # split-file order
  assert {(s.vid, s.reason) for s in skipped} == {("noFeat", "no feature file"),
                                                  ("ghost", "no annotation and no feature file")}
  for video in videos:
    domain, split, fps, frames, match, title = VIDEOS[video.vid]
    assert (video.domain, video.split, video.fps, video.num_frames, video.title) == (domain, split, fps, frames,
                                                                                    title)
    assert video.fps_from_annotation
    np.testing.assert_array_equal(video.match, match)
    np.testing.assert_array_equal(video.clips, np.asarray(_clips(len(match), frames)))
    assert video.rgb.dtype == np.float32
    np.testing.assert_array_equal(video.rgb, _features(video.vid, len(match)))
    np.testing.assert_array_equal(video.highlight, np.asarray(match) > 0)
    assert video.duration == pytest.approx(frames / fps)


def test_read_videos_filters_and_lazy_features(tmp_path):
  paths = _write(tmp_path)
  videos = yh.read_videos(*paths, domains=["surfing"], splits=["val"], load_features=False)
  assert [v.vid for v in videos] == ["surfV"]
  assert videos[0].rgb is None
  np.testing.assert_array_equal(videos[0].load_rgb(), _features("surfV", 3))


def test_clip_seconds_use_the_video_fps_and_clip_to_duration(tmp_path):
  def longer_last_clip(anno, splits):
    anno["dogA"]["clip"][-1][1] = 303.0  # 3 frames past `frames`, as in some real videos
  video = yh.read_videos(*_write(tmp_path, edit=longer_last_clip))[0]
  seconds = video.clip_seconds()
  np.testing.assert_allclose(seconds[:-1], np.asarray(_clips(5, 300))[:-1] / 25.0)
  np.testing.assert_allclose(seconds[-1], [200 / 25.0, 300 / 25.0])  # end clipped to frames / fps


def test_highlight_runs():
  assert yh.highlight_runs([-1, 0, 1, 1, 0]) == [(2, 3)]
  assert yh.highlight_runs([1, 1, -1, 1, 0, 0, 1, 1]) == [(0, 1), (3, 3), (6, 7)]
  assert yh.highlight_runs([0, -1, 0]) == []
  assert yh.highlight_runs([1]) == [(0, 0)]


def test_default_fps_only_for_videos_without_fps(tmp_path):
  def drop_fps(anno, splits):
    del anno["dogA"]["fps"]
  paths = _write(tmp_path, edit=drop_fps)
  with pytest.raises(yh.YouTubeHighlightsError, match=r"video dogA: field 'fps' is missing"):
    yh.read_videos(*paths)
  videos = yh.read_videos(*paths, default_fps=12.5)
  assert (videos[0].fps, videos[0].fps_from_annotation) == (12.5, False)
  assert videos[1].fps == 30.0 and videos[1].fps_from_annotation


@pytest.mark.parametrize("edit, message", [
    (lambda a, s: a["dogA"].update(match=[1, 0]), r"video dogA: field 'match': expected 5 labels"),
    (lambda a, s: a["dogA"].update(match=[1, 0, 2, 0, 0]), r"video dogA: field 'match': expected 1, 0 or -1"),
    (lambda a, s: a["dogA"].update(domain="surfing"), r"video dogA: field 'domain': expected 'dog'"),
    (lambda a, s: a["dogA"].update(info=["x"]), r"video dogA: field 'info': expected a list with the title"),
    (lambda a, s: a["dogA"].update(frames="many"), r"video dogA: fields 'fps' / 'frames'"),
    (lambda a, s: a["dogA"]["clip"].__setitem__(1, [90.0, 80.0]), r"video dogA: field 'clip': expected 0 <="),
    (lambda a, s: s["surfing"]["val"].append("dogA"), r"video dogA: listed twice"),
    (lambda a, s: s["dog"].update(test=[]), r"domain 'dog': expected keys \['train', 'val'\]"),
])
def test_bad_annotations_raise_one_clear_error(tmp_path, edit, message):
  with pytest.raises(yh.YouTubeHighlightsError, match=message) as error:
    yh.read_videos(*_write(tmp_path, edit=edit))
  assert isinstance(error.value, InputError)
  assert "\n" not in str(error.value)


def test_bad_feature_files(tmp_path):
  paths = _write(tmp_path)
  np.save(paths[2] / f"dogB{yh.FEATURE_SUFFIX}", np.zeros((7, yh.FEATURE_DIM), np.float32))
  with pytest.raises(yh.YouTubeHighlightsError, match=r"dogB_rgb.npy: video dogB: expected features of shape "
                                                      r"\(8, 1024\).*got shape \(7, 1024\)"):
    yh.read_videos(*paths, load_features=False)  # the header alone shows the mismatch
  nan = _features("dogB", 8)
  nan[3, 5] = np.nan
  np.save(paths[2] / f"dogB{yh.FEATURE_SUFFIX}", nan)
  with pytest.raises(yh.YouTubeHighlightsError, match=r"video dogB: expected finite features.*row 3"):
    yh.read_videos(*paths)


def test_missing_files(tmp_path):
  anno, splits, features = _write(tmp_path)
  with pytest.raises(yh.YouTubeHighlightsFileNotFoundError, match="feature folder not found"):
    yh.read_videos(anno, splits, tmp_path / "nowhere")
  anno.unlink()
  with pytest.raises(yh.YouTubeHighlightsFileNotFoundError, match="annotation file not found"):
    yh.read_videos(anno, splits, features)


# ------------------------------------------------------------------------------------------------ real data

real_data = pytest.mark.skipif(not REAL_YOUTUBE.is_dir(), reason=f"real YouTube Highlights features not found at "
                               f"{REAL_YOUTUBE} (docs/data.md; set IPTNET_SHARED_DATA to the shared data folder)")


@real_data
def test_real_release_counts_spans_and_labels():
  anno_path, splits_path, feature_dir = yh.default_paths(REAL_YOUTUBE)
  # Only headers are read here; a few feature files are read in full below.
  videos, skipped = yh.read_videos_and_skipped(anno_path, splits_path, feature_dir, load_features=False)
  splits = json.loads(splits_path.read_text())
  anno = json.loads(anno_path.read_text())
  split_ids = [(vid, d, s) for d in splits for s in ("train", "val") for vid in splits[d][s]]
  assert len(videos) + len(skipped) == len(split_ids)
  # docs/data.md: 420 feature files, 28 split ids without features.
  assert len(skipped) == 28
  assert all(not (feature_dir / f"{s.vid}_rgb.npy").exists() for s in skipped)
  assert {v.domain for v in videos} == set(yh.DOMAINS)
  for video in videos:
    entry = anno[video.vid]
    assert video.title == entry["info"][5] and video.domain == entry["domain"]
    assert video.vid in splits[video.domain][video.split]
    assert video.num_clips == len(entry["clip"]) == len(entry["match"])
    seconds = video.clip_seconds()
    assert (seconds[:, 0] >= 0).all() and (seconds[:, 1] <= video.duration + 1e-9).all()
    assert (seconds[:, 1] > seconds[:, 0]).all()
    assert set(np.unique(video.match)) <= {-1, 0, 1}
  for video in videos[::100]:
    rgb = video.load_rgb()
    assert rgb.shape == (video.num_clips, 1024) and rgb.dtype == np.float32
