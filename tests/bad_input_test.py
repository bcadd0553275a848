"""Bad input that used to be accepted (and silently changed the result) or ended in a traceback: each case is
built from files generated here and must stop with one `InputError` naming the file, the video key / line and
the fields; the good variants next to them (DSNet's padded user summaries, generated eccv16 files) still load.

One end-to-end case runs `python -m iptnet_jax.main` on a bad file: one `error:` line and a non-zero exit.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from iptnet_jax.datasets import charades_sta, eccv16, splits, summarization
from iptnet_jax.datasets.builders import synthetic_vsumm
from iptnet_jax.errors import InputError
from iptnet_jax.vsumm import fscore

REPO = Path(__file__).resolve().parents[1]
N_FRAMES = 150


def _video(seed=0, dim=8):
  """A consistent eccv16 video: 10 steps every 15 frames, three shots tiling the 150 frames, three users."""
  rng = np.random.default_rng(seed)
  user_summary = np.zeros((3, N_FRAMES), np.uint8)
  user_summary[0, 0:20] = user_summary[1, 60:80] = user_summary[2, 120:140] = 1
  return {
      "features": rng.normal(size=(10, dim)).astype(np.float32),
      "gtscore": rng.uniform(1, 5, size=10).astype(np.float32),
      "user_summary": user_summary,
      "change_points": np.array([[0, 59], [60, 119], [120, 149]]),
      "n_frame_per_seg": np.array([60, 60, 30]),
      "n_frames": np.int64(N_FRAMES),
      "picks": np.arange(10) * 15,
  }


def _write_raw(path, videos):
  """Writes fields as given (no validation), as a hand-made or foreign file would be."""
  with h5py.File(path, "w") as h5:
    for key, fields in videos.items():
      group = h5.create_group(key)
      for name, value in fields.items():
        if isinstance(value, dict):  # a subgroup where a dataset belongs
          group.create_group(name)
        else:
          group.create_dataset(name, data=value)
  return path


def _read(path, key="video_7"):
  return eccv16.read_videos(path, [key], require_user_summary=True)[key]


def _set(**fields):
  return lambda video: video.update(fields)


def _transpose_users(video):
  video["user_summary"] = video["user_summary"].T


def _set_user(row, value):
  return lambda video: video["user_summary"].__setitem__(row, value)


def _pad_users(columns, selected=None):
  def mutate(video):
    video["user_summary"] = np.pad(video["user_summary"], ((0, 0), (0, columns)))
    if selected is not None:
      video["user_summary"][0, selected] = 1
  return mutate


ECCV16_CASES = {
    "user_summary transposed": (
        _transpose_users, r"fields 'user_summary' and 'n_frames' disagree: expected shape \(users, n_frames=150\), "
                          r"got shape \(150, 3\) \(transposed\?"),
    "user_summary cut short": (
        lambda v: v.update(user_summary=v["user_summary"][:, :140]),
        r"fields 'user_summary' and 'n_frames' disagree: expected shape \(users, n_frames=150\), got shape \(3, 140\)"),
    "user_summary padding selects frames": (
        _pad_users(4, selected=152), r"expected only zero padding after the n_frames=150 frames, got user 0 selecting "
                                     r"frame 152 of 154 columns"),
    "a user selects nothing": (_set_user(1, 0), r"field 'user_summary': .*users \[1\] \(rows, from 0\) selecting no frame"),
    "a user selects every frame": (_set_user(2, 1), r"users \[2\] \(rows, from 0\) selecting every frame"),
    "n_frame_per_seg does not match the shots": (
        _set(n_frame_per_seg=np.array([60, 59, 31])),
        r"fields 'n_frame_per_seg' and 'change_points' disagree: expected the shot lengths last - first \+ 1, got "
        r"n_frame_per_seg\[1\] = 59 for shot 1 \[60, 119\] of 60 frames"),
    "shots end before n_frames": (
        _set(n_frames=np.int64(160)),
        r"fields 'change_points' and 'n_frames' disagree: expected shots covering frames \[0, 159\], got shots "
        r"covering \[0, 149\]"),
    "n_frames far beyond the picks": (
        _set(n_frames=np.int64(400)),
        r"fields 'n_frames' and 'picks' disagree: expected n_frames <= 165 \(last pick 135 \+ two of the largest pick "
        r"gap 15\), got n_frames=400"),
    "shots overlap": (
        _set(change_points=np.array([[0, 59], [50, 119], [120, 149]]), n_frame_per_seg=np.array([60, 70, 30])),
        r"field 'change_points': expected shots that tile the frames .*shots 0 \[0, 59\] and 1 \[50, 119\], which "
        r"overlap"),
    "shots leave a gap": (
        _set(change_points=np.array([[0, 59], [62, 119], [120, 149]]), n_frame_per_seg=np.array([60, 58, 30])),
        r"which leave frames \[60, 61\] in no shot"),
    "complex features": (
        lambda v: v.update(features=v["features"] + 1j), r"field 'features': expected real numbers, got dtype complex"),
    "float picks": (
        _set(picks=np.arange(10) * 15 + 0.5), r"field 'picks': expected whole numbers, got fractional values"),
    "float n_frames": (_set(n_frames=np.float64(150.5)), r"field 'n_frames': expected an integer, got 150.5"),
    "float change_points": (
        lambda v: v.update(change_points=v["change_points"] + 0.25), r"field 'change_points': expected whole numbers"),
    "gtscore as strings": (
        lambda v: v.update(gtscore=np.array([b"%.1f" % g for g in v["gtscore"]])),
        r"field 'gtscore': expected real numbers, got dtype \|S3"),
    "user_summary as strings": (
        lambda v: v.update(user_summary=v["user_summary"].astype("S1")), r"field 'user_summary': expected real numbers"),
    "a field that is a group": (_set(gtscore={}), r"field 'gtscore': expected a dataset, got a group"),
    "user_scores for other users": (
        _set(user_scores=np.ones((10, 4), np.float32)),
        r"fields 'user_scores' and 'user_summary' disagree: expected the same 3 users, got 4 users in user_scores"),
}


@pytest.mark.parametrize("mutate, message", ECCV16_CASES.values(), ids=ECCV16_CASES.keys())
def test_inconsistent_eccv16_video_names_file_video_and_fields(tmp_path, mutate, message):
  video = _video()
  mutate(video)
  path = _write_raw(tmp_path / "bad.h5", {"video_7": video})
  with pytest.raises(eccv16.DatasetFormatError, match=message) as error:
    _read(path)
  assert str(error.value).startswith(f"{path} video 'video_7': field")
  assert isinstance(error.value, InputError)


@pytest.mark.parametrize("case", ["user_summary transposed", "n_frame_per_seg does not match the shots", "float picks"])
def test_the_writer_refuses_what_the_reader_refuses(tmp_path, case):
  # One validation for both: the TVSum-I3D builder and the synthetic generator cannot write such a file.
  video = _video()
  ECCV16_CASES[case][0](video)
  with pytest.raises(eccv16.DatasetFormatError, match="video 'video_7'"):
    eccv16.write_eccv16_h5(tmp_path / "out.h5", {"video_7": video})
  assert list(tmp_path.iterdir()) == []


def test_consistent_video_and_its_tolerated_variants_load(tmp_path):
  good = _video()
  # DSNet's files pad user summaries with all-zero columns past n_frames; eccv16 files store some integers as
  # whole floats. Neither changes a score.
  padded = _video()
  _pad_users(3)(padded)
  padded.update(picks=padded["picks"].astype(np.float64), n_frames=np.float64(N_FRAMES),
                n_frame_per_seg=padded["n_frame_per_seg"].astype(np.float64))
  path = _write_raw(tmp_path / "good.h5", {"video_1": good, "video_2": padded})
  videos = eccv16.read_videos(path, ["video_1", "video_2"], require_user_summary=True)
  assert videos["video_2"].user_summary.shape == (3, N_FRAMES + 3)
  np.testing.assert_array_equal(videos["video_2"].picks, videos["video_1"].picks)
  prediction = np.zeros(N_FRAMES, bool)
  prediction[10:70] = True
  assert (fscore.summary_fscore(prediction, videos["video_2"].user_summary, "avg")
          == fscore.summary_fscore(prediction, videos["video_1"].user_summary, "avg") > 0)


def test_generated_synthetic_dataset_loads(tmp_path):
  spec = synthetic_vsumm.SyntheticSpec(num_videos=6, feature_dim=8, min_steps=40, max_steps=60, num_users=4,
                                       num_splits=1)
  h5_path, split_path = synthetic_vsumm.write_synthetic_dataset(tmp_path, spec)
  loaded = summarization.load_split_videos(splits.load_splits(split_path, tmp_path))
  assert len(loaded) == 6 and all(v.user_summary is not None for v in loaded.values())


def test_odd_feature_width_names_its_file_and_video(tmp_path):
  # The first file read has the odd width: the message must blame it, not the majority.
  _write_raw(tmp_path / "a.h5", {"video_1": _video(dim=6)})
  _write_raw(tmp_path / "b.h5", {f"video_{i}": _video(seed=i) for i in (1, 2)})
  split = tmp_path / "s.yml"
  split.write_text(yaml.safe_dump([{"train_keys": ["a.h5/video_1", "b.h5/video_1"], "test_keys": ["b.h5/video_2"]}]))
  with pytest.raises(eccv16.DatasetFormatError) as error:
    summarization.load_split_videos(splits.load_splits(split, tmp_path))
  assert str(error.value) == (
      f"{tmp_path / 'a.h5'}: video 'video_1': field 'features': expected width 8 like 2 other video(s) of the run "
      "(e.g. b.h5/video_1), got shape (10, 6); a run needs one width")


# ------------------------------------------------------------------------------------------------ split files

SPLIT_CASES = {
    "a key listed twice": (
        '[{"train_keys": ["video_1", "video_2", "video_1"], "test_keys": ["video_3"]}]',
        r"s.json split 0 train_keys: video 'video_1' is listed twice \(entries 0 and 2, both x.h5/video_1\)"),
    "a key listed twice under two spellings": (
        '[{"train_keys": ["video_1", "x/video_1"], "test_keys": ["video_3"]}]',
        r"split 0 train_keys: video 'x/video_1' is listed twice \(entries 0 and 1"),
    "misspelled section": (
        '[{"train_keys": ["video_1"], "tset_keys": ["video_2"]}]',
        r"s.json split 0: unknown section 'tset_keys' \(did you mean 'test_keys'\?\); expected train_keys, val_keys, "
        r"test_keys"),
    "misspelled section next to the right one": (
        '[{"train_keys": ["video_1"], "test_keys": ["video_2"], "vla_keys": ["video_3"]}]',
        r"unknown section 'vla_keys' \(did you mean 'val_keys'\?\)"),
    "val_keys equal to test_keys": (
        '[{"train_keys": ["video_1"], "val_keys": ["video_2"], "test_keys": ["video_2"]}]',
        r"s.json split 0: videos in both val_keys and test_keys: \['x.h5/video_2'\] \(1 in all\)"),
    "train and test share a video in the second split": (
        '[{"train_keys": ["video_1"], "test_keys": ["video_2"]}, {"train_keys": ["video_1", "video_2"], '
        '"test_keys": ["video_2"]}]', r"s.json split 1: videos in both train_keys and test_keys"),
}


@pytest.mark.parametrize("content, message", SPLIT_CASES.values(), ids=SPLIT_CASES.keys())
def test_bad_split_file_names_file_split_and_key(tmp_path, content, message):
  path = tmp_path / "s.json"
  path.write_text(content)
  with pytest.raises(splits.SplitFormatError, match=message):
    splits.load_splits(path, tmp_path, default_h5="x.h5")


def test_split_file_with_non_utf8_bytes_names_the_line(tmp_path):
  path = tmp_path / "s.yml"
  path.write_bytes(b"- train_keys: [video_1]\n  test_keys: [vid\xe9o_2]\n")
  with pytest.raises(splits.SplitFormatError, match=r"s.yml:2: expected UTF-8 text"):
    splits.load_splits(path, tmp_path, default_h5="x.h5")


# -------------------------------------------------------------------------------------------- Charades-STA text

DURATIONS = {"VIDA": 30.0, "VIDB": 20.0, "VIDT": 20.0}
TRAIN = ["VIDA 0.0 6.9##a person opens the door.", "VIDB 1.0 5.0##the person holds a book."]
TEST = ["VIDT 1.0 4.0##a person opens a book."]
GLOVE = {"a": 1, "person": 2, "opens": 3, "the": 4, "door": 5, "holds": 6, "book": 7}


def _glove_lines(words=GLOVE, dim=3):
  return [f"{word} {' '.join(str(index + k / 10) for k in range(dim))}" for word, index in words.items()]


def _charades(root: Path, *, train=TRAIN, test=TEST, glove=None, widths=None):
  annotations, features = root / "charades_sta", root / "features"
  annotations.mkdir(parents=True, exist_ok=True)
  features.mkdir(exist_ok=True)
  (annotations / "charades.json").write_text(json.dumps({v: {"duration": d} for v, d in DURATIONS.items()}))
  for split, lines in (("train", train), ("test", test)):
    path = annotations / f"charades_sta_{split}.txt"
    path.write_bytes(lines) if isinstance(lines, bytes) else path.write_text("".join(f"{x}\n" for x in lines))
  glove_path = root / "glove.txt"
  glove_path.write_text("\n".join(_glove_lines() if glove is None else glove) + "\n")
  for vid in DURATIONS:
    np.save(features / f"{vid}.npy", np.ones((20, (widths or {}).get(vid, 4)), np.float32))
  return annotations, glove_path, features


def test_good_charades_files_load(tmp_path):
  dataset = charades_sta.load_charades_sta(*_charades(tmp_path))
  assert dataset.num_words == 2 + len(GLOVE) and dataset.feature_dim == 4


CHARADES_CASES = {
    "GloVe first row narrower": (
        dict(glove=_glove_lines(dim=3)[:1] + _glove_lines(dim=4)[1:]),
        r"glove.txt:2: expected a word and 3 numbers, got 4 numbers \(line 1 has 3: every row of a GloVe file has "
        r"the same width\)"),
    "GloVe first row wider": (
        dict(glove=_glove_lines(dim=4)[:1] + _glove_lines(dim=3)[1:]), r"glove.txt:2: expected a word and 4 numbers, "
                                                                        r"got 3 numbers"),
    "GloVe with no matching words": (
        dict(glove=_glove_lines({"zebra": 1, "quartz": 2})),
        r"glove.txt: only 0 of the 8 distinct query words of .*charades_sta have a vector \(0.0 % of the 18 query "
        r"tokens\); expected at least 25 %"),
    "GloVe with almost no matching words": (
        dict(glove=_glove_lines({"door": 1, "holds": 2})), r"only 2 of the 8 distinct query words .*\(11.1 % of the 18"),
    "non-UTF-8 annotation line": (
        dict(train=b"VIDA 0.0 6.9##a person opens the door.\nVIDB 1.0 5.0##the caf\xe9\n"),
        r"charades_sta_train.txt:2: expected UTF-8 text"),
    "empty test file": (dict(test=[]), r"charades_sta_test.txt: no annotations \(expected lines 'VID start end##"),
    "the first feature file read has another width": (
        dict(widths={"VIDA": 5}), r"VIDA.npy: video VIDA: expected features of shape \(T, 4\) like the other videos "
                                  r"\(2 of them, e.g. VIDB.npy\), got shape \(20, 5\)"),
}


@pytest.mark.parametrize("files, message", CHARADES_CASES.values(), ids=CHARADES_CASES.keys())
def test_bad_charades_input_names_file_and_line(tmp_path, files, message):
  # One InputError of the part that read the bad file: CharadesDataError (annotations), text.TextDataError (GloVe,
  # UTF-8) or clip_features.FeatureDataError (features).
  with pytest.raises(InputError, match=message):
    charades_sta.load_charades_sta(*_charades(tmp_path, **files))


# ---------------------------------------------------------------------------------------------------- end to end

@pytest.mark.slow  # a subprocess
def test_command_line_stops_with_one_line_naming_the_bad_file(tmp_path):
  spec = synthetic_vsumm.SyntheticSpec(num_videos=5, feature_dim=8, min_steps=40, max_steps=48, num_users=3,
                                       num_splits=1)
  h5_path, split_path = synthetic_vsumm.write_synthetic_dataset(tmp_path / "data", spec)
  with h5py.File(h5_path, "r+") as h5:  # the silent case of the report: user summaries stored transposed
    users = h5["video_2/user_summary"][()]
    del h5["video_2/user_summary"]
    h5["video_2/user_summary"] = users.T
  workdir = tmp_path / "run"
  command = [sys.executable, "-m", "iptnet_jax.main", "--config=configs/demo.py:smoke", f"--workdir={workdir}",
             "--config.data.source=h5", f"--config.data.dataset_dir={h5_path.parent}",
             f"--config.data.split_file={split_path}", f"--config.data.default_h5={h5_path.name}"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  last_line = result.stderr.strip().splitlines()[-1]
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  assert last_line.startswith(f"error: {h5_path} video 'video_2': fields 'user_summary' and 'n_frames' disagree")
  assert not workdir.exists() or not any(workdir.iterdir())  # the data is checked before the run writes anything
