"""TVSum-I3D builder: a hand-checked tiny video, generated videos and source files, and (when the shared data
folder is present) a build of three real videos."""

import csv
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from iptnet_jax.datasets import eccv16, splits
from iptnet_jax.datasets.builders import tvsum_i3d
from iptnet_jax.errors import InputError

N_USERS = 20


def _segment_of_frame(n_frames, fps, n_steps):
  return np.minimum((np.arange(n_frames) / (2 * fps)).astype(int), n_steps - 1)


def _fake_video(rng, index, n_steps=36, fps=5.0, tail=7, dim=12):
  """A video whose user scores are constant per 2-s segment (as TVSum's) and whose features change in blocks."""
  n_frames = int(2 * fps * n_steps) + tail
  segment_scores = rng.integers(1, 6, size=(N_USERS, n_steps)).astype(float)
  user_anno = segment_scores[:, _segment_of_frame(n_frames, fps, n_steps)]
  block = np.repeat(rng.random((n_steps // 3 + 1, dim)), 3, axis=0)[:n_steps]
  rgb = block + 0.05 * rng.random((n_steps, dim))
  flow = rng.random((n_steps, dim))
  return tvsum_i3d.TvsumVideo(f"video_{index}", f"yt{index:09d}", fps, n_frames, user_anno, rgb, flow,
                              umt_anno=segment_scores.T.copy())


def _fake_videos(n=3):
  rng = np.random.default_rng(0)
  return [_fake_video(rng, i + 1, n_steps=30 + 4 * i, tail=3 * i) for i in range(n)]


def test_hand_checked_video_with_uniform_shots():
  # fps 1: 2 frames per segment, 20 segments, 40 frames. Uniform shots = the 20 segments (2 frames each);
  # knapsack capacity int(0.15 * 40) = 6 frames = the 3 best segments of each user.
  n_steps, n_frames = 20, 40
  segment_scores = np.ones((3, n_steps))
  segment_scores[0, [1, 7, 12]] = 5
  segment_scores[1, [0, 1, 2]] = 4
  segment_scores[2, [17, 18, 19]] = 3
  user_anno = np.repeat(segment_scores, 2, axis=1)
  rgb = np.random.default_rng(1).random((n_steps, 4))
  video = tvsum_i3d.TvsumVideo("video_1", "abc", 1.0, n_frames, user_anno, rgb)
  fields, stats = tvsum_i3d.build_video_fields(video, shots="uniform")

  np.testing.assert_array_equal(fields["picks"], np.arange(0, 40, 2))
  np.testing.assert_array_equal(fields["change_points"], np.stack([np.arange(0, 40, 2), np.arange(1, 40, 2)], 1))
  np.testing.assert_allclose(fields["gtscore"], segment_scores.mean(axis=0))
  expected = np.zeros((3, n_frames))
  expected[0, [2, 3, 14, 15, 24, 25]] = 1
  expected[1, 0:6] = 1
  expected[2, 34:40] = 1
  np.testing.assert_array_equal(fields["user_summary"], expected)
  np.testing.assert_allclose(stats.summary_fraction, 0.15)
  # Per-user step scores for top-5 mAP: each user's score at each segment (constant within a segment here).
  assert fields["user_scores"].dtype == np.float32
  np.testing.assert_array_equal(fields["user_scores"], segment_scores.T)
  assert fields["features"].dtype == np.float32 and fields["features"].shape == (20, 4)
  assert fields["video_name"] == b"abc" and int(fields["n_steps"]) == 20


def test_sampling_helpers_match_tvsum_frame_rates():
  fps = 30000 / 1001  # 29.97
  np.testing.assert_array_equal(tvsum_i3d.segment_start_frames(3, fps), [0, 60, 120])  # ceil(59.94), ceil(119.88)
  np.testing.assert_array_equal(tvsum_i3d.segment_mid_frames(3, fps), [29, 89, 149])  # floor(29.97), ...
  np.testing.assert_array_equal(tvsum_i3d.segment_start_frames(3, 25.0), [0, 50, 100])
  assert tvsum_i3d.num_segments(10597, fps) == 176  # official video_1
  assert tvsum_i3d.num_segments(100, 25.0) == 2 and tvsum_i3d.num_segments(99, 25.0) == 1


@pytest.mark.parametrize("features,dim", [("rgb", 12), ("rgb+flow", 24)])
def test_build_from_arrays_on_generated_videos(features, dim):
  videos = _fake_videos()
  fields, stats = tvsum_i3d.build_from_arrays(videos, features=features, shots="kts", frames_per_shot=20)
  assert list(fields) == ["video_1", "video_2", "video_3"]
  for video, stat in zip(videos, stats):
    f = fields[video.h5_key]
    n_steps = tvsum_i3d.num_segments(video.n_frames, video.fps)
    assert f["features"].shape == (n_steps, dim)
    assert f["user_summary"].shape == (N_USERS, video.n_frames)
    cps = f["change_points"]
    assert len(cps) == -(-video.n_frames // 20)
    coverage = np.zeros(video.n_frames, dtype=int)
    for first, last in cps:
      coverage[first:last + 1] += 1
    np.testing.assert_array_equal(coverage, 1)
    assert set(cps[1:, 0]) <= set(f["picks"])
    assert np.all((0.10 <= stat.summary_fraction) & (stat.summary_fraction <= 0.15))
    np.testing.assert_allclose(f["gtscore"], video.umt_anno.mean(axis=1), rtol=1e-6)
    eccv16.validate_video_fields(f, video.h5_key, require_user_summary=True)


def test_uniform_and_penalised_kts_shots():
  videos = _fake_videos(1)
  fields, _ = tvsum_i3d.build_from_arrays(videos, shots="uniform")
  f = fields["video_1"]
  assert len(f["change_points"]) == len(f["picks"])
  fields, _ = tvsum_i3d.build_from_arrays(videos, shots="kts-auto", vmax=0.05)
  assert len(fields["video_1"]["change_points"]) > 1


def test_builder_rejects_inconsistent_inputs():
  rng = np.random.default_rng(2)
  good = _fake_video(rng, 1)
  short = tvsum_i3d.TvsumVideo(good.h5_key, good.video_id, good.fps, good.n_frames, good.user_anno, good.rgb[:-1])
  with pytest.raises(tvsum_i3d.TvsumI3dError, match=r"video_1 .*rgb features: expected 36 rows"):
    tvsum_i3d.build_video_fields(short)
  shifted = tvsum_i3d.TvsumVideo(good.h5_key, good.video_id, good.fps, good.n_frames, good.user_anno, good.rgb,
                                 umt_anno=np.roll(good.umt_anno, 1, axis=0))
  with pytest.raises(tvsum_i3d.TvsumI3dError, match="midpoints"):
    tvsum_i3d.build_video_fields(shifted, frames_per_shot=20)
  no_flow = tvsum_i3d.TvsumVideo(good.h5_key, good.video_id, good.fps, good.n_frames, good.user_anno, good.rgb)
  with pytest.raises(tvsum_i3d.TvsumI3dError, match="flow stream"):
    tvsum_i3d.build_video_fields(no_flow, features="rgb+flow")
  with pytest.raises(tvsum_i3d.TvsumI3dError, match="user_anno"):
    tvsum_i3d.build_video_fields(tvsum_i3d.TvsumVideo("video_1", "x", good.fps, good.n_frames + 1, good.user_anno,
                                                      good.rgb))
  # One shot for the whole video: nothing fits in 15 %, so the user summaries would be empty.
  with pytest.raises(tvsum_i3d.TvsumI3dError, match="10-15 %"):
    tvsum_i3d.build_video_fields(good, frames_per_shot=10**6)
  with pytest.raises(tvsum_i3d.TvsumI3dError, match="duplicate"):
    tvsum_i3d.build_from_arrays([good, good], frames_per_shot=20)


# ------------------------------------------------------------------------------ generated source files


def _write_mat(path, videos):
  """A MATLAB v7.3-like file: struct fields as (N, 1) object references, strings as uint16 code units."""
  ref_dtype = h5py.special_dtype(ref=h5py.Reference)
  with h5py.File(path, "w") as h5:
    refs = h5.create_group("#refs#")
    table = h5.create_group("tvsum50")
    columns = {
        "video": [np.array([ord(c) for c in v.video_id], dtype=np.uint16)[:, None] for v in videos],
        "nframes": [np.array([[float(v.n_frames)]]) for v in videos],
        "user_anno": [v.user_anno for v in videos],
    }
    for name, values in columns.items():
      column = table.create_dataset(name, (len(videos), 1), dtype=ref_dtype)
      for i, value in enumerate(values):
        column[i, 0] = refs.create_dataset(f"{name}_{i}", data=value).ref


def _write_shared(root: Path, videos, domains=None):
  """The shared folder's TVSum files for `videos`; domains: {video_id: TVSum category}, default all 'VT'.

  umt_domain_splits.json gets one entry per domain (in order of first appearance): its last video is val."""
  domains = domains or {v.video_id: "VT" for v in videos}
  ann = root / "vsumm" / "annotations"
  feat = root / "features" / "tvsum" / "video_features"
  ann.mkdir(parents=True)
  feat.mkdir(parents=True)
  _write_mat(ann / "ydata-tvsum50.mat", videos)
  with open(ann / "tvsum50_info.tsv", "w", newline="") as f:
    writer = csv.writer(f, delimiter="\t")
    writer.writerow(["h5_key", "video_id", "category", "title", "length_sec", "nframes"])
    for v in videos:
      writer.writerow([v.h5_key, v.video_id, domains[v.video_id], "a title", v.n_frames / v.fps, v.n_frames])
  anno = {v.video_id: {"fps": v.fps, "frames": str(v.n_frames), "domain": domains[v.video_id],
                       "anno": v.umt_anno.tolist()} for v in videos}
  (root / "features" / "tvsum" / "tvsum_anno.json").write_text(json.dumps(anno))
  by_domain = {}
  for v in videos:
    by_domain.setdefault(domains[v.video_id], []).append(v.video_id)
  umt_splits = {d: {"train": ids[:-1], "val": ids[-1:]} for d, ids in by_domain.items()}
  (root / tvsum_i3d.DOMAIN_SPLITS_RELPATH).write_text(json.dumps(umt_splits))
  for v in videos:
    np.save(feat / f"{v.video_id}_rgb.npy", v.rgb)
    np.save(feat / f"{v.video_id}_opt.npy", v.flow)


def test_build_dataset_from_generated_source_files(tmp_path):
  videos = _fake_videos()
  _write_shared(tmp_path / "shared", videos)
  out_path, stats = tvsum_i3d.build_dataset(tmp_path / "shared", tmp_path / "out", features="rgb+flow",
                                            frames_per_shot=20, log=None)
  assert out_path.name == "eccv16_dataset_tvsum_i3d_rgbflow_kts.h5"
  read = eccv16.read_videos(out_path, ["video_1", "video_2", "video_3"], require_user_summary=True)
  expected, _ = tvsum_i3d.build_from_arrays(videos, features="rgb+flow", frames_per_shot=20)
  for key, video in read.items():
    np.testing.assert_array_equal(video.features, expected[key]["features"])
    np.testing.assert_array_equal(video.user_summary, expected[key]["user_summary"].astype(bool))
    np.testing.assert_array_equal(video.change_points, expected[key]["change_points"])
  for video in videos:  # user_scores = the UMT anno (T, 20), read back for top-5 mAP
    np.testing.assert_array_equal(read[video.h5_key].user_scores, video.umt_anno)
  with h5py.File(out_path, "r") as h5:
    info = json.loads(h5.attrs["BUILD_INFO"])
  assert info["features"] == "rgb+flow" and info["frames_per_shot"] == 20
  assert info["videos"] == ["video_1", "video_2", "video_3"]
  assert len(info["sources_sha256"]) == 3 + 2 * 3
  assert sorted(p.name for p in out_path.parent.iterdir()) == [out_path.name]  # no staging file left
  with pytest.raises(FileExistsError, match="overwrite"):
    tvsum_i3d.build_dataset(tmp_path / "shared", tmp_path / "out", features="rgb+flow", log=None)


def test_cli_builds_a_subset_and_reports_errors(tmp_path, capsys):
  videos = _fake_videos()
  _write_shared(tmp_path / "shared", videos)
  argv = ["--shared", str(tmp_path / "shared"), "--out", str(tmp_path / "out"), "--shots", "uniform",
          "--videos", "video_3,video_1"]
  assert tvsum_i3d.main(argv) == 0
  printed = capsys.readouterr().out
  assert "video_3" in printed and "2 videos ->" in printed
  with h5py.File(tmp_path / "out" / "eccv16_dataset_tvsum_i3d_rgb_uniform.h5", "r") as h5:
    assert sorted(h5.keys()) == ["video_1", "video_3"]
  assert tvsum_i3d.main(argv) == 1  # exists, no --overwrite
  assert "exists" in capsys.readouterr().err
  assert tvsum_i3d.main(argv[:4] + ["--videos", "video_9"]) == 1
  assert "unknown video keys" in capsys.readouterr().err


# ------------------------------------------------------------------------------ domain splits


def test_domain_split_entries_follow_the_fixed_domain_order():
  key_of_id = {f"id{i}": f"video_{i}" for i in range(1, 11)}
  umt = {"BK": {"train": ("id1", "id2"), "val": ("id3",)},
         "VT": {"train": ("id4", "id5", "id6"), "val": ("id7",)},
         "DS": {"train": ("id8", "id9"), "val": ("id10",)}}
  entries = tvsum_i3d.domain_split_entries(umt, key_of_id, "f.h5")
  assert [e["domain"] for e in entries] == ["VT", "BK", "DS"]  # DOMAIN_ORDER, not the file's order
  assert entries[0] == {"domain": "VT", "train_keys": ["f.h5/video_4", "f.h5/video_5", "f.h5/video_6"],
                        "test_keys": ["f.h5/video_7"]}
  assert entries[1]["test_keys"] == ["f.h5/video_3"]
  assert tvsum_i3d.DOMAIN_ORDER == ("VT", "VU", "GA", "MS", "PK", "PR", "FM", "BK", "BT", "DS")


@pytest.mark.parametrize("umt,categories,match", [
    ({"XX": {"train": ("id1",), "val": ("id2",)}}, None, "unknown domains"),
    ({"VT": {"train": ("id1",), "val": ("nope",)}}, None, "nope is not in"),
    ({"VT": {"train": ("id1",), "val": ("id2",)}, "BK": {"train": ("id2",), "val": ("id3",)}}, None,
     "id2 is in both VT and BK"),
    ({"VT": {"train": ("id1",), "val": ("id2",)}}, {"id1": "VT", "id2": "GA"}, "category GA"),
])
def test_domain_split_entries_reject_inconsistent_splits(umt, categories, match):
  key_of_id = {f"id{i}": f"video_{i}" for i in range(1, 4)}
  with pytest.raises(tvsum_i3d.TvsumI3dError, match=match):
    tvsum_i3d.domain_split_entries(umt, key_of_id, "f.h5", categories)


def test_cli_writes_domain_splits_that_the_split_loader_reads(tmp_path):
  videos = [_fake_video(np.random.default_rng(i), i + 1, n_steps=30) for i in range(6)]
  domains = {v.video_id: ("BK" if i < 3 else "GA") for i, v in enumerate(videos)}
  _write_shared(tmp_path / "shared", videos, domains)
  out = tmp_path / "out"
  argv = ["--shared", str(tmp_path / "shared"), "--out", str(out), "--shots", "uniform", "--domain-splits"]
  assert tvsum_i3d.main(argv) == 0
  h5_name = "eccv16_dataset_tvsum_i3d_rgb_uniform.h5"
  yml = out / "eccv16_dataset_tvsum_i3d_rgb_uniform_umt_domains.yml"
  assert tvsum_i3d.domain_splits_name(h5_name) == yml.name
  raw = yaml.safe_load(yml.read_text())
  assert [e["domain"] for e in raw] == ["GA", "BK"]
  loaded = splits.load_splits(yml, out)
  assert [r.video_key for r in loaded[0].train] == ["video_4", "video_5"]
  assert [r.video_key for r in loaded[0].test] == ["video_6"]
  assert [r.video_key for r in loaded[1].test] == ["video_3"]
  assert all(r.h5_path == out / h5_name for s in loaded for r in (*s.train, *s.test))
  # The listed videos are in the h5, with user scores.
  read = eccv16.read_videos(out / h5_name, ["video_6"], require_user_summary=True)
  assert read["video_6"].user_scores.shape == (30, N_USERS)


def test_readers_cross_check_sources(tmp_path):
  videos = _fake_videos(2)
  _write_shared(tmp_path, videos)
  info = tmp_path / "vsumm" / "annotations" / "tvsum50_info.tsv"
  info.write_text(info.read_text().replace(videos[1].video_id, "someoneelse"))
  with pytest.raises(tvsum_i3d.TvsumI3dError, match="video_2: .*someoneelse"):
    tvsum_i3d.load_videos(tmp_path)
  with pytest.raises(FileNotFoundError, match="shared data folder"):
    tvsum_i3d.load_videos(tmp_path / "nowhere")


@pytest.mark.parametrize("relative, line", [(tvsum_i3d.INFO_RELPATH, 3), (tvsum_i3d.UMT_ANNO_RELPATH, 1)])
def test_non_utf8_source_file_names_file_and_line(tmp_path, relative, line):
  _write_shared(tmp_path, _fake_videos(2))
  path = tmp_path / relative
  text = path.read_bytes().split(b"\n")
  text[line - 1] = text[line - 1].replace(b"yt", b"y\xfft", 1)
  path.write_bytes(b"\n".join(text))
  with pytest.raises(tvsum_i3d.TvsumI3dError, match=rf"{path.name}:{line}: expected UTF-8 text"):
    tvsum_i3d.load_videos(tmp_path)


def test_unreadable_feature_file_is_named(tmp_path):
  videos = _fake_videos(2)
  _write_shared(tmp_path, videos)
  path = tmp_path / tvsum_i3d.FEATURE_DIR_RELPATH / f"{videos[1].video_id}_rgb.npy"
  path.write_bytes(b"not an npy file")
  with pytest.raises(tvsum_i3d.TvsumI3dError, match=rf"{path.name}: video_2: not a readable .npy array"):
    tvsum_i3d.load_videos(tmp_path)


def test_unwritable_output_folder_is_one_error_and_leaves_nothing(tmp_path):
  _write_shared(tmp_path / "shared", _fake_videos(2))
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  with pytest.raises(InputError, match=rf"cannot write {blocker}"):
    tvsum_i3d.write_domain_splits(tmp_path / "shared", blocker / "out", "x.h5")
  fields, _ = tvsum_i3d.build_from_arrays(_fake_videos(1), shots="uniform")
  (tmp_path / "out.h5").mkdir()  # the final rename onto a folder fails, after the staging file was written
  with pytest.raises(InputError, match=r"cannot write .*out.h5: \[Errno"):
    tvsum_i3d.write_dataset(tmp_path / "out.h5", fields, {}, overwrite=True)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "out.h5", "shared"]


# ------------------------------------------------------------------------------ real data


def _shared_data_dir() -> Path:
  env = os.environ.get("IPTNET_SHARED_DATA")
  return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


SHARED = _shared_data_dir()


def test_default_shared_dir_is_next_to_the_repository(monkeypatch):
  monkeypatch.delenv("IPTNET_SHARED_DATA", raising=False)
  assert tvsum_i3d.default_shared_dir() == Path(__file__).resolve().parents[1].parent / "shared" / "data"
  monkeypatch.setenv("IPTNET_SHARED_DATA", "/somewhere/data")
  assert tvsum_i3d.default_shared_dir() == Path("/somewhere/data")


needs_shared = pytest.mark.skipif(not (SHARED / tvsum_i3d.MAT_RELPATH).is_file(),
                                  reason=f"shared TVSum data not found at {SHARED} (set IPTNET_SHARED_DATA)")


@needs_shared
def test_real_videos_build_with_kts(tmp_path):
  keys = ["video_1", "video_21", "video_38"]  # T = 176, 323 (longest), 49 (shortest)
  out_path, stats = tvsum_i3d.build_dataset(SHARED, tmp_path, keys=keys, log=None)
  assert [s.n_steps for s in stats] == [176, 323, 49]
  read = eccv16.read_videos(out_path, keys, require_user_summary=True)
  for key, stat in zip(keys, stats):
    video = read[key]
    assert video.features.shape == (stat.n_steps, 1024)
    assert video.user_summary.shape == (20, stat.n_frames)
    assert len(video.change_points) == -(-stat.n_frames // 150)
    assert video.change_points[0, 0] == 0 and video.change_points[-1, 1] == stat.n_frames - 1
    np.testing.assert_array_equal(video.change_points[1:, 0], video.change_points[:-1, 1] + 1)
    fraction = video.user_summary.mean(axis=1)
    assert np.all((fraction >= 0.10) & (fraction <= 0.15)), (key, fraction)
  assert read["video_1"].n_frames == 10597
  assert read["video_1"].user_scores.shape == (176, 20)
  assert set(np.unique(read["video_1"].user_scores)) <= {1, 2, 3, 4, 5}


@needs_shared
def test_real_domain_splits_cover_the_50_videos_once(tmp_path):
  path = tvsum_i3d.write_domain_splits(SHARED, tmp_path, "eccv16_dataset_tvsum_i3d_rgb_kts.h5")
  entries = yaml.safe_load(path.read_text())
  assert [e["domain"] for e in entries] == list(tvsum_i3d.DOMAIN_ORDER)
  assert all(len(e["train_keys"]) == 4 and len(e["test_keys"]) == 1 for e in entries)
  keys = [k for e in entries for k in e["train_keys"] + e["test_keys"]]
  assert sorted(keys) == sorted(f"eccv16_dataset_tvsum_i3d_rgb_kts.h5/video_{i}" for i in range(1, 51))
  assert entries[0]["test_keys"] == ["eccv16_dataset_tvsum_i3d_rgb_kts.h5/video_3"]  # VT val: J0nA4VgnoCo
