"""The TVSum-I3D report command end to end on generated source files (no shared data needed): it builds the
h5 and domain yml, trains the tiny SM for 1 epoch on 2 DSNet-style splits and 2 domains, and prints and
saves the floor, F1 and top-5 mAP tables."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from experiments import tvsum_i3d_report as report
from iptnet_jax import config_defaults
from iptnet_jax.datasets import eccv16
from iptnet_jax.datasets.builders import tvsum_i3d
from iptnet_jax.sm import inference
from tvsum_i3d_test import _fake_video, _write_shared

REPO = Path(__file__).resolve().parents[1]

H5_NAME = "eccv16_dataset_tvsum_i3d_rgb_kts.h5"
TINY = ["--config.model.attention_dim=16", "--config.model.num_heads=2", "--config.model.num_hidden=16",
        "--config.data.buckets=(48,)", "--config.eval.batch_size=4", "--no-compile-cache"]


def _generated_shared(root: Path):
  """6 videos of 30 fps, 36..41 steps (KTS at 150 frames per shot gives ~2-s-step shots that 15 % can pack),
  domains VT (videos 1-3) and BK (4-6), and a DSNet-style yml naming the google_pool5 file, as DSNet's does."""
  rng = np.random.default_rng(7)
  videos = [_fake_video(rng, i + 1, n_steps=36 + i, fps=30.0, tail=11) for i in range(6)]
  _write_shared(root, videos, {v.video_id: ("VT" if i < 3 else "BK") for i, v in enumerate(videos)})
  key = "../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_{}".format
  dsnet = [{"train_keys": [key(i) for i in (1, 2, 3, 4)], "test_keys": [key(5), key(6)]},
           {"train_keys": [key(i) for i in (3, 4, 5, 6)], "test_keys": [key(1), key(2)]}]
  split_dir = root / "vsumm" / "splits" / "dsnet"
  split_dir.mkdir(parents=True)
  (split_dir / "tvsum.yml").write_text(yaml.safe_dump(dsnet))
  return videos


@pytest.mark.slow
def test_report_builds_trains_and_prints_both_benchmarks(tmp_path, capsys):
  videos = _generated_shared(tmp_path / "shared")
  data, runs = tmp_path / "data", tmp_path / "runs"
  argv = ["--shared", str(tmp_path / "shared"), "--data", str(data), "--workdir", str(runs), "--epochs", "1",
          "--seeds", "3", "--splits", "1", *TINY]
  assert report.main(argv) == 0
  out = capsys.readouterr().out

  # The data folder holds the built h5 (with per-user step scores) and the domain yml, nothing else.
  assert sorted(p.name for p in data.iterdir()) == [H5_NAME, tvsum_i3d.domain_splits_name(H5_NAME)]
  read = eccv16.read_videos(data / H5_NAME, ["video_4"], require_user_summary=True)
  np.testing.assert_array_equal(read["video_4"].user_scores, videos[3].umt_anno)

  saved = json.loads((runs / "report.json").read_text())
  fscore, hl = saved["reports"]
  assert fscore["benchmark"] == "fscore" and fscore["labels"] == ["1"]
  assert hl["benchmark"] == "highlight" and hl["labels"] == ["VT", "BK"]  # DOMAIN_ORDER
  for r in (fscore, hl):
    assert r["epochs"] == 1 and r["seeds"] == 3 and set(r["selected_epochs"]) == {1}
    assert r["test"] == r["last"]  # one epoch: selected = last
    assert r["mean_test"] == pytest.approx(np.mean(r["test"]))
    assert r["mean_floor"] == pytest.approx(np.mean(r["floor"]))
    assert all(0 <= v <= 1 for v in r["test"] + r["floor"])
    assert r["mean_floor_std"] >= 0 and all(s >= 0 for s in r["floor_std"])
  # The per-split results are the trainer's own (results.json in each benchmark's workdir).
  trainer = json.loads((runs / "fscore" / "results.json").read_text())
  assert [s["test_score"] for s in trainer["splits"]] == fscore["test"]
  assert json.loads((runs / "highlight" / "results.json").read_text())["protocol"] == "top5_map"

  assert "SM-only keyshot F1 (%), DSNet's 5 canonical TVSum splits, 1 epochs" in out
  assert "top-5 mAP (%) per domain" in out and "UMT 83.1" in out
  hl_table = out[out.index("highlight detection"):].splitlines()
  assert [line.split()[0] for line in hl_table[3:6]] == ["VT", "BK", "mean"]
  assert f"{100 * hl['mean_test']:.2f}" in hl_table[5]

  # Existing data is reused, not rebuilt; --domains picks the yml's entries by name.
  mtime = (data / H5_NAME).stat().st_mtime_ns
  assert report.ensure_data(tmp_path / "shared", data, "rgb", domain_splits=True, log=None) == data / H5_NAME
  assert (data / H5_NAME).stat().st_mtime_ns == mtime
  args = report.parse_args(argv[:-len(TINY)] + ["--domains", "bk"])
  config, domains = report.highlight_config(args, config_defaults.ConfigArgs(None))
  assert domains == ["VT", "BK"] and config.data.splits == "1"


def test_overrides_and_refusals(tmp_path, capsys):
  overrides, rest = config_defaults.parse_config_flags(["--epochs", "3", "--config.data.buckets=(64, 128)",
                                                        "--config.train.lr=1", "--config.train.epochs=7"])
  args = report.parse_args(rest + ["--data", str(tmp_path / "d")])
  config = report.fscore_config(args, overrides)
  assert config.data.buckets == (64, 128) and config.train.lr == 1.0 and isinstance(config.train.lr, float)
  assert config.train.epochs == 7  # the overrides come after --epochs
  # The report builds its own configs: a config file, or an override of a field they lack, is one error line.
  assert report.main(["--config=configs/demo.py", "--data", str(tmp_path / "d")]) == 1
  assert "this report runs configs/tvsum_i3d.py" in capsys.readouterr().err
  with pytest.raises(config_defaults.ConfigError, match=r"^--config\.train\.nope: the config has no such field"):
    report.fscore_config(args, config_defaults.parse_config_flags(["--config.train.nope=1"])[0])

  # Data derived from the shared folder never goes into the repository.
  assert report.main(["--data", str(REPO / "datasets" / "x"), "--no-compile-cache"]) == 1
  assert "inside the repository" in capsys.readouterr().err
  # A missing shared folder is one clear error.
  assert report.main(["--shared", str(tmp_path / "none"), "--data", str(tmp_path / "d"), "--no-compile-cache"]) == 1
  assert "shared data folder not found" in capsys.readouterr().err
  assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_unknown_domain_is_refused(tmp_path, capsys):
  _generated_shared(tmp_path / "shared")
  argv = ["--shared", str(tmp_path / "shared"), "--data", str(tmp_path / "data"), "--workdir",
          str(tmp_path / "runs"), "--only", "highlight", "--domains", "VT,XX", *TINY]
  assert report.main(argv) == 1
  assert "['XX'] not in" in capsys.readouterr().err
  with h5py.File(tmp_path / "data" / H5_NAME, "r") as h5:  # the data was built before the check
    assert "user_scores" in h5["video_1"]
