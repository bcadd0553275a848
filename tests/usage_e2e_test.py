"""The user's path on a trained run, as commands: `iptnet_jax.main` with configs/quickstart.py:smoke (the full
iPTNet; the plots written after training), then `summarize`, `localize` and `export` as subprocesses on its
workdir, on features generated here. Slow: a joint-step compile and five interpreter starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IPTNET_SHARED_DATA", REPO.parent / "shared" / "data"))

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (SHARED / "charades_sta").is_dir(), reason=(
    f"the quick start reads the Charades-STA annotations under {SHARED} (set IPTNET_SHARED_DATA)"))]


def _command(*args, cwd=REPO):
  return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=1200,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_quickstart_trains_plots_and_the_commands_use_its_workdir(tmp_path):
  workdir = tmp_path / "quick"
  done = _command("iptnet_jax.main", "--config=configs/quickstart.py:smoke", f"--workdir={workdir}")
  assert done.returncode == 0, done.stderr[-3000:]
  # both tasks against their floors
  assert "random F1" in done.stdout and "random span (expected) on the same" in done.stdout
  results = json.loads((workdir / "results.json").read_text())
  assert set(results["lm_random"]) == {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU"}
  splits = [r["index"] for r in results["splits"]]
  assert (workdir / "plots" / "training_curves.png").is_file()
  for split in splits:
    maps = sorted((workdir / "plots" / f"split_{split}").glob("*.png"))
    assert 1 <= len(maps) <= 3, maps
    assert (workdir / "checkpoints" / f"split_{split}_lm").is_dir()

  features = tmp_path / "mine.npy"
  np.save(features, np.random.default_rng(0).normal(size=(70, 128)).astype(np.float32))
  done = _command("iptnet_jax.summarize", f"--workdir={workdir}", f"--features={features}", f"--out={tmp_path / 's'}")
  assert done.returncode == 0, done.stderr[-3000:]
  summary = json.loads((tmp_path / "s" / "summary.json").read_text())
  assert summary["source"]["run_id"] == json.loads((workdir / "run.json").read_text())["run_id"]
  assert summary["videos"][0]["keyshots"]["fraction"] <= 0.15
  assert (tmp_path / "s" / "importance.png").is_file()

  done = _command("iptnet_jax.localize", f"--workdir={workdir}", f"--features={features}",
                  "--query=a person opens the door", f"--out={tmp_path / 'l'}")
  assert done.returncode == 0, done.stderr[-3000:]
  assert len(json.loads((tmp_path / "l" / "spans.json").read_text())["spans"]) == 5
  assert (tmp_path / "l" / "highlight.png").is_file()

  done = _command("iptnet_jax.summarize", f"--workdir={workdir}", f"--features={tmp_path / 'none.npy'}",
                  f"--out={tmp_path / 'x'}")
  assert done.returncode == 1 and done.stderr.strip() == f"error: --features={tmp_path / 'none.npy'}: no such file"

  pytest.importorskip("torch")
  done = _command("iptnet_jax.export", f"--workdir={workdir}", "--to=torch", f"--out={tmp_path / 't'}")
  assert done.returncode == 0, done.stderr[-3000:]
  manifest = json.loads((tmp_path / "t" / "export.json").read_text())
  assert [e["split"] for e in manifest["dsnet_af"]] == splits and len(manifest["vslnet"]) == len(splits)
  assert all(e["upstream_loadable"] for e in manifest["vslnet"])  # the quick start keeps upstream's char CNN
