"""experiments/iptnet_experiments.py on the synthetic smoke config: the plan, the paired table, resuming."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "iptnet_experiments.py"


def _run(workdir, *extra):
  command = [sys.executable, str(SCRIPT), "--config=configs/iptnet_demo.py", "--base_variants=smoke",
             "--lm_data=default", "--seeds=0,1", "--methods=iptnet,L", "--one_seed_methods=",
             "--control_methods=", "--nofig5", "--splits=0", f"--workdir={workdir}",
             "--compilation_cache=none", *extra]
  return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_paired_difference_per_split_and_seed_and_rerun_reads_back(tmp_path):
  done = _run(tmp_path)
  assert done.returncode == 0, done.stderr[-3000:]
  out = json.loads((tmp_path / "experiments.json").read_text())
  assert out["missing"] == [] and len(out["runs"]) == 4
  # The paired entry from the per-run results.json files, computed here independently.
  a = {seed: json.loads((tmp_path / "default" / "iptnet" / f"seed_{seed}" / "results.json").read_text())
       for seed in (0, 1)}
  b = {seed: json.loads((tmp_path / "default" / "L" / f"seed_{seed}" / "results.json").read_text())
       for seed in (0, 1)}
  differences = [100 * (a[s]["splits"][0]["test_score"] - b[s]["splits"][0]["test_score"]) for s in (0, 1)]
  paired = out["paired"]["iptnet_minus_iptnet_L"]
  assert paired["n"] == 2 and paired["mean"] == pytest.approx(np.mean(differences))
  assert paired["ci_low"] <= paired["mean"] <= paired["ci_high"]
  assert [r["difference"] for r in paired["runs"]] == pytest.approx(differences)
  # Synthetic videos have no per-user scores: tau / rho are undefined and get no paired entry.
  assert set(out["paired"]) == {"iptnet_minus_iptnet_L", "iptnet_minus_iptnet_L_dsnet"}
  assert "Paired differences" in done.stdout and "random scores" in done.stdout
  # The two seeds are different runs; the -L runs read no LM data.
  assert a[0]["splits"][0] != a[1]["splits"][0] and b[0]["lm_data"] is None
  # A rerun trains nothing: every run is read back and the same tables come out.
  again = _run(tmp_path)
  assert again.returncode == 0 and "===" not in again.stdout
  assert json.loads((tmp_path / "experiments.json").read_text())["paired"] == out["paired"]


@pytest.mark.slow
def test_report_only_lists_what_is_missing(tmp_path):
  done = _run(tmp_path, "--report_only")
  assert done.returncode == 0, done.stderr[-3000:]
  out = json.loads((tmp_path / "experiments.json").read_text())
  assert len(out["missing"]) == 4 and not out["runs"]
  assert "not finished yet (4)" in done.stdout
