"""experiments/highlight_report.py: the table (no training) beside the published anchors and the floors, and `run`
taking its config as iptnet_jax.main does."""

import json
from pathlib import Path

import pytest

from experiments import highlight_report as report


DOMAINS = ["VT", "VU"]


def _results(folder: Path, values: dict, std: float) -> Path:
  folder.mkdir(parents=True)
  (folder / "results.json").write_text(json.dumps({
      "dataset": "tvsum", "domains": DOMAINS, "per_domain": values, "per_domain_std": {d: std for d in DOMAINS},
      "mean": sum(values.values()) / len(values), "mean_std": std / 2}))
  return folder


def test_table_rows_with_labels_and_workdirs_holding_equals_signs_and_the_floors(tmp_path, capsys):
  run = _results(tmp_path / "model.rank=8", {"VT": 0.70, "VU": 0.60}, 0.02)  # ablate's workdir names
  floors = tmp_path / "floors.json"
  floors.write_text(json.dumps({"random": {"per_domain": {"VT": 0.4, "VU": 0.5}, "mean": 0.45},
                                "ridge": {"video": {"per_domain": {"VT": 0.6, "VU": 0.7}, "mean": 0.65}},
                                "oracle": {"vote": {"per_domain": {"VT": 0.9, "VU": 0.8}, "mean": 0.85}}}))
  text = report.table([f"ours AV (R=8)={run}"], str(floors))
  lines = text.splitlines()
  assert lines[0] == "| row | VT | VU | mean |"
  umt = next(line for line in lines if line.startswith("| UMT-S"))
  assert f"{report.UMT_TVSUM['VT']:.2f} | {report.UMT_TVSUM['VU']:.2f}" in umt
  assert "| ours AV (R=8) | 70.00 ± 2.0 | 60.00 ± 2.0 | **65.00 ± 1.00** |" in lines
  assert "| random floor (100 draws) | 40.00 | 50.00 | 45.00 |" in lines
  assert "| ridge floor (video) | 60.00 | 70.00 | 65.00 |" in lines
  assert "| oracle ceiling (val video's own vote) | 90.00 | 80.00 | 85.00 |" in lines


def test_table_names_a_missing_run_in_one_line(tmp_path, capsys):
  assert report.main(["table", "--rows", f"ours={tmp_path / 'nothing'}"]) == 1
  err = capsys.readouterr().err.strip()
  assert err.count("\n") == 0 and "ours:" in err and "results.json not found" in err
  assert report.main(["table", "--rows", "no-workdir-given"]) == 1
  assert "expected LABEL=WORKDIR" in capsys.readouterr().err


def test_run_takes_the_config_as_main_does_and_refuses_bad_ones_in_one_line(tmp_path, capsys):
  smoke = ["--config=configs/highlight_tvsum.py:smoke", "--config.seeds=0", "--config.data.domains=D1"]
  assert report.main(["run", *smoke, "--config.model.rnk=2", f"--workdir={tmp_path / 'bad'}"]) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: --config.model.rnk: the config has no such field") and "\n" not in err, err
  assert report.main(["run", f"--workdir={tmp_path / 'none'}"]) == 1
  assert "run: expected --config=configs/FILE.py" in capsys.readouterr().err
  assert report.main(["floors", "--out=x.json", "--config.model.rank=2"]) == 1
  assert "floors: takes no --config" in capsys.readouterr().err
  assert not (tmp_path / "bad").exists() and not (tmp_path / "none").exists()


@pytest.mark.slow
def test_run_trains_the_config_with_its_overrides(tmp_path):
  workdir = tmp_path / "run"
  assert report.main(["run", "--config.model.rank=2", "--config=configs/highlight_tvsum.py:smoke", "--config.seeds=0",
                      "--config.data.domains=D1", f"--workdir={workdir}"]) == 0
  recorded = json.loads((workdir / "config.json").read_text())
  assert recorded["model"]["rank"] == 2 and recorded["seeds"] == "0" and recorded["data"]["source"] == "synthetic"
  assert set(json.loads((workdir / "results.json").read_text())["per_domain"]) == {"D1"}
