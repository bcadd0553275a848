"""summarize (iptnet_jax.summarize) on generated runs (tests/workdir_fixtures.py): keyshots, shots from an h5 file,
KTS or a uniform grid, the plots' rows, and bad input. The trained end-to-end path (main -> plots -> the three
commands) is tests/usage_e2e_test.py (slow)."""

import json
import math

import h5py
import numpy as np
import pytest

from iptnet_jax import run_models, summarize
from iptnet_jax.datasets import eccv16
from iptnet_jax.vsumm import evaluate as vsumm_eval
from workdir_fixtures import DIM, error_line, features_file


def test_summarize_npy_picks_the_keyshots_the_evaluation_would(finished_runs, tmp_path):
  """summary.json's keyshots are DSNet-AF's summary of the SM's own predictions (sm.inference + predict_summary_af),
  within 15 % of the frames, and every step/shot field lines up with the video."""
  from iptnet_jax.sm import inference

  features = features_file(tmp_path / "clip.npy", steps=50)
  out = tmp_path / "out"
  assert summarize.main([f"--workdir={finished_runs['iptnet']}", f"--features={features}", f"--out={out}", "--split=1",
                         "--shots=uniform", "--n_frames=1500", "--fps=25"]) == 0
  summary = json.loads((out / "summary.json").read_text())
  assert summary["source"]["split"] == 1 and summary["source"]["sm_checkpoint"]["model"] == "teacher"
  (video,) = summary["videos"]
  steps = video["steps"]
  assert video["n_frames"] == 1500 and steps["frame"] == [i * 30 for i in range(50)]
  assert steps["seconds"][1] == pytest.approx(30 / 25)
  assert {"sm_importance", "lm_importance", "propagated", "summary_score"} <= set(steps)
  assert all(len(v) == 50 for v in steps.values())

  run = run_models.load_run(finished_runs["iptnet"], 1)
  preds = inference.predict_videos(inference.make_predict_fn(run.sm.model), run.sm.params,
                                   [eccv16.SummVideo("clip", np.load(features), np.zeros(50, np.float32),
                                                     np.zeros((1, 2), np.int64), np.ones(1, np.int64), 1500,
                                                     np.arange(50) * 30, None)], 1, (64,))["clip"]
  cps = np.array([s["frames"] for s in video["shots"]])
  assert len(cps) == 10 and cps[0].tolist() == [0, 149]  # --shots=uniform: 150 frames each
  expected = vsumm_eval.predict_summary_af(preds["cls_prob"], preds["offsets"], preds["ctr_prob"], cps, 1500,
                                           cps[:, 1] - cps[:, 0] + 1, np.arange(50) * 30)
  selected = np.zeros(1500, bool)
  for first, last in video["keyshots"]["frames"]:
    selected[first:last + 1] = True
  np.testing.assert_array_equal(selected, expected)
  assert 0 < selected.sum() <= 0.15 * 1500
  assert [s["selected"] for s in video["shots"]] == [bool(expected[a]) for a, _ in cps]
  np.testing.assert_allclose(steps["sm_importance"], preds["cls_prob"], atol=1e-5)
  assert (out / "importance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summarize_h5_keeps_its_shots_scores_users_and_draws_one_row_per_map(finished_runs, tmp_path):
  from iptnet_jax.datasets.builders import synthetic_vsumm

  h5_path, _ = synthetic_vsumm.write_synthetic_dataset(tmp_path / "syn", synthetic_vsumm.SyntheticSpec(
      num_videos=5, feature_dim=DIM, min_steps=30, max_steps=40, num_users=3, num_splits=1))
  with h5py.File(h5_path) as h5:
    keys = sorted(h5.keys())[:2]
    change_points = h5[keys[0]]["change_points"][()]
  for task in ("iptnet", "sm"):
    out = tmp_path / task
    assert summarize.main([f"--workdir={finished_runs[task]}", f"--features={h5_path}", f"--keys={','.join(keys)}",
                           f"--out={out}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [v["video"] for v in summary["videos"]] == keys
    first = summary["videos"][0]
    assert first["shots_from"] == "the h5 file's change_points"
    assert [s["frames"] for s in first["shots"]] == change_points.tolist()
    assert 0 <= first["fscore"]["value"] <= 1 and first["fscore"]["users"] == 3
    assert "gtscore" in first["steps"]
    assert ("lm_importance" in first["steps"]) == (task == "iptnet")
    assert [label for label, _ in summarize.plot_rows(first)] == (
        ["SM importance", "LM (query-free)", "propagated (PM)", "ground truth"] if task == "iptnet" else
        ["SM importance", "ground truth"])
  import matplotlib.image

  tall = matplotlib.image.imread(tmp_path / "iptnet" / f"importance_{keys[0]}.png").shape[0]
  short = matplotlib.image.imread(tmp_path / "sm" / f"importance_{keys[0]}.png").shape[0]
  assert tall > 1.4 * short  # four rows against two


def test_summarize_kts_shots_follow_the_eccv16_count(finished_runs, tmp_path):
  features = features_file(tmp_path / "v.npy", steps=60)
  out = tmp_path / "out"
  assert summarize.main([f"--workdir={finished_runs['sm']}", f"--features={features}", f"--out={out}"]) == 0
  (video,) = json.loads((out / "summary.json").read_text())["videos"]
  assert video["n_frames"] == 15 * 60 and video["shots_from"].startswith("KTS")
  assert len(video["shots"]) == math.ceil(900 / 150)
  frames = np.array([s["frames"] for s in video["shots"]])
  assert frames[0, 0] == 0 and frames[-1, 1] == 899 and np.all(frames[1:, 0] == frames[:-1, 1] + 1)


def test_windowed_kts_tiles_the_frames_and_equals_kts_on_short_videos():
  from iptnet_jax.vsumm import kts

  features = np.random.default_rng(1).normal(size=(90, 8))
  picks = np.arange(90) * 15
  np.testing.assert_array_equal(summarize.windowed_kts_shots(features, picks, 1350, 9, window=100),
                                kts.kts_shots(features, picks, 1350, n_shots=9)[0])
  shots = summarize.windowed_kts_shots(features, picks, 1350, 9, window=40)  # 3 windows of 30 steps
  assert shots[0, 0] == 0 and shots[-1, 1] == 1349 and np.all(shots[1:, 0] == shots[:-1, 1] + 1)
  assert len(shots) == 9 and {450, 900} <= set(shots[:, 0].tolist())  # the windows start shots


def test_summarize_bad_input_is_one_line_naming_the_file_or_flag(finished_runs, tmp_path, capsys):
  run = f"--workdir={finished_runs['iptnet']}"
  out = f"--out={tmp_path / 'out'}"
  nan = features_file(tmp_path / "nan.npy")
  array = np.load(nan)
  array[7, 3] = np.nan
  np.save(nan, array)
  (tmp_path / "empty.npy").write_bytes(b"")
  wide = features_file(tmp_path / "wide.npy", dim=DIM + 4)
  ok = features_file(tmp_path / "ok.npy")
  h5_path = tmp_path / "one.h5"
  with h5py.File(h5_path, "w") as h5:
    h5.create_group("video_1")
  shots = tmp_path / "shots.json"
  shots.write_text(json.dumps([[0, 100], [200, 749]]))  # frames 101-199 in no shot
  cases = [
      ([run, f"--features={nan}", out], rf"{nan}: row 7 \(and 0 more\) holds NaN/inf"),
      ([run, f"--features={tmp_path / 'empty.npy'}", out], r"empty.npy: empty file"),
      ([run, f"--features={wide}", out], rf"{wide}: features of width {DIM + 4}, but the run .* width {DIM}"),
      ([run, f"--features={h5_path}", "--keys=video_9", out], r"--keys: .*one.h5 has no video 'video_9'; it has 1: video_1"),
      ([run, f"--features={ok}", "--split=4", out], r"--split=4: no checkpoint .*split_4; this run has split\(s\) 0, 1"),
      ([f"--workdir={tmp_path}", f"--features={ok}", out], rf"--workdir={tmp_path}: no config.json"),
      ([run, f"--features={ok}", f"--shots={shots}", out], r"--shots=.*shots.json.*change_points"),
      ([run, f"--features={ok}", "--n_frames=20", out], r"--n_frames=20: expected at least one frame per step"),
  ]
  for argv, pattern in cases:
    import re

    assert re.search(pattern, error_line(capsys, summarize.main, argv)), (argv, pattern)
  assert not (tmp_path / "out").exists()
