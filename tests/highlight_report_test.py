"""experiments/highlight_report.py's table (no training): rows beside the published anchors and the floors."""

import importlib
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
report = importlib.import_module("highlight_report")
sys.path.remove(str(REPO / "experiments"))

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
