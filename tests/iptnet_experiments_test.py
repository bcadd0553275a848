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
  command = [sys.executable, str(SCRIPT), "--config=configs/iptnet_demo.py:smoke",
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


def _fake_result(method: str, offset: float) -> dict:
  splits = [{"index": i, "test_score": 0.40 + offset + 0.01 * i, "dsnet_test_score": 0.45 + offset,
             "last_test_score": 0.39 + offset, "test_tau": 0.1, "test_rho": 0.12, "val_score": 0.50 + offset + 0.02 * i,
             "random_score": 0.43, "random_tau": 0.0, "random_rho": 0.0} for i in range(2)]
  return {"method": method, "splits": splits}


def _check_tables():
  """Run in a fresh interpreter by the test below (the script's absl flags would clash with iptnet_jax.main's)."""
  sys.path.insert(0, str(SCRIPT.parent))
  import iptnet_experiments as experiment

  experiment.flags.FLAGS(["iptnet_experiments", "--lm_data=youtube", "--workdir=/tmp/unused"])
  results = {("youtube", "iptnet"): {0: _fake_result("iPTNet", 0.02)}, ("youtube", "L"): {0: _fake_result("L", 0.0)}}
  text, summary = experiment.method_table(results)
  assert "F1 val (selection)" in text.splitlines()[1]
  assert summary["youtube/iptnet"]["val_score"]["mean"] == pytest.approx(53.0)  # val 50 + 2 (offset) + 2 i over splits i = 0, 1, in %
  random_row = next(line for line in text.splitlines() if "random scores" in line)
  assert random_row.split()[-1] == "0.00"  # tau / rho floors last; no val column for random scores
  _, paired = experiment.paired_table(results)
  assert set(paired["paired"]) == {"iptnet_minus_iptnet_L", "iptnet_minus_iptnet_L_dsnet",
                                   "iptnet_minus_iptnet_L_tau", "iptnet_minus_iptnet_L_rho"}
  assert paired["paired"]["iptnet_minus_iptnet_L"]["mean"] == pytest.approx(2.0)
  no_val = {key: {0: {"method": r[0]["method"], "splits": [dict(s, val_score=None) for s in r[0]["splits"]]}}
            for key, r in results.items()}  # a config without a validation subset (the demo smoke)
  text, summary = experiment.method_table(no_val)
  assert summary["youtube/iptnet"]["val_score"] == {"mean": None, "std": None}
  assert next(line for line in text.splitlines() if "iPTNet " in line).split()[-1] == "n/a"
  print("tables ok")


@pytest.mark.slow  # a subprocess: the script defines absl flags ("workdir") that iptnet_jax.main also defines
def test_tables_show_the_validation_score_and_pair_only_test_metrics():
  code = f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); import iptnet_experiments_test as t; t._check_tables()"
  done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.strip().endswith("tables ok")


@pytest.mark.slow
def test_a_bad_override_is_one_line_before_any_run(tmp_path):
  done = _run(tmp_path / "runs", "--config.iptnet.radiu=2")
  assert done.returncode == 1
  assert done.stderr.strip().splitlines() == [
      "error: --config.iptnet.radiu: the config has no such field ('radiu' Did you mean \"radius\" instead of "
      "\"radiu\"?)"], done.stderr
  assert not (tmp_path / "runs").exists()
