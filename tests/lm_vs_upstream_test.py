"""experiments/lm_vs_upstream.py: reading upstream's eval file, row specs and the seed summary (no training)."""

import math
from pathlib import Path

import pytest

from experiments import lm_vs_upstream as experiment
from iptnet_jax.config_defaults import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_upstream_curve_keeps_each_epochs_last_evaluation(tmp_path):
  # main_t7.py evaluates at mid-epoch and at the epoch's end; score_str is two lines per evaluation.
  rows = [(1, 37, (30.0, 13.0, 4.0, 20.0)), (1, 74, (31.5, 14.25, 5.0, 21.0)), (2, 111, (40.0, 20.0, 8.0, 28.0)),
          (2, 148, (41.0, 21.0, 9.5, 29.75))]
  (tmp_path / "eval_results.txt").write_text("".join(
      f"Epoch {e}, Step {s}:\nRank@1, IoU=0.3: {a:.2f}\tRank@1, IoU=0.5: {b:.2f}\tRank@1, IoU=0.7: {c:.2f}\t"
      f"mean IoU: {d:.2f}\n" for e, s, (a, b, c, d) in rows))
  curve = experiment.upstream_curve(tmp_path)
  assert curve == {1: dict(zip(experiment.METRICS, (31.5, 14.25, 5.0, 21.0))),
                   2: dict(zip(experiment.METRICS, (41.0, 21.0, 9.5, 29.75)))}
  assert experiment.upstream_curve(tmp_path / "missing") == {}


def test_summary_averages_the_last_epochs_then_the_seeds():
  def curve(offset):
    return {e: {k: float(e + offset) for k in experiment.METRICS} for e in range(1, 5)}

  summary = experiment.summarize({1: curve(0), 2: curve(2), 3: {1: curve(9)[1]}}, last=2, epochs=4)
  assert summary["seeds"] == [1, 2]  # seed 3 has not finished: left out
  assert summary["per_seed"][1]["mIoU"] == 3.5 and summary["per_seed"][2]["mIoU"] == 5.5
  stats = summary["R1@0.3"]
  assert (stats["mean"], stats["min"], stats["max"]) == (4.5, 3.5, 5.5)
  assert math.isclose(stats["std"], math.sqrt(2.0))  # sample std (ddof 1)


def test_row_specs():
  row = "nomask=configs/charades.py:smoke --config.model.mask_conv_padding=False --config.data.max_videos=7"
  name, spec = experiment.parse_row(row, "ours")
  assert name == "nomask"
  config = experiment.load_config(spec)  # a config with overrides, as iptnet_jax.main takes them
  assert config.model.mask_conv_padding is False and config.data.max_videos == 7 and config.model.dim == 32
  assert experiment.load_config("configs/charades.py").model.mask_conv_padding is True
  assert experiment.parse_row("t=torch", "torch") == ("t", "torch")
  with pytest.raises(experiment.ExperimentError, match="OPTIMIZER one of"):
    experiment.parse_row("t=sgd", "torch")
  with pytest.raises(experiment.ExperimentError, match="expected NAME=CONFIG"):
    experiment.parse_row("configs/charades.py", "ours")
  with pytest.raises(ConfigError, match=r"^--config\.model\.mask_conv_padingg: the config has no such field"):
    experiment.load_config("configs/charades.py --config.model.mask_conv_padingg=False")
  with pytest.raises(experiment.ExperimentError, match="followed by --config.FIELD=VALUE overrides"):
    experiment.load_config("configs/charades.py model.dim=3")


def test_out_folder_must_be_outside_the_repository():
  with pytest.raises(experiment.ExperimentError, match="inside the repository"):
    experiment.outside_repo(str(REPO / "runs" / "x"))


def test_table_gives_each_row_minus_upstream_with_welchs_interval():
  def curves(offsets):
    return {seed: {e: {k: float(10 * e + off) for k in experiment.METRICS} for e in range(1, 3)}
            for seed, off in enumerate(offsets)}

  rows = {"ours": experiment.summarize(curves([1.0, 3.0, 2.0]), last=1, epochs=2),
          "upstream": experiment.summarize(curves([0.0, 1.0, 0.5]), last=1, epochs=2)}
  floor = {k: 0.0 for k in experiment.METRICS}
  lines = experiment.format_table(rows, floor, last=1).splitlines()
  difference = next(line for line in lines if line.startswith("| ours − upstream"))
  # means 22.0 and 20.5 at epoch 2: +1.50; Welch's interval from the stats module (tested against scipy there)
  expected = experiment.stats.welch_difference([21.0, 23.0, 22.0], [20.0, 21.0, 20.5])
  assert f"+1.50 [{expected.ci_low:+.2f}, {expected.ci_high:+.2f}]; p {expected.p_value:.2f}" in difference
  assert difference.count("+1.50") == len(experiment.METRICS)
  assert not any(line.startswith("| upstream − upstream") for line in lines)
  no_upstream = experiment.format_table({"ours": rows["ours"]}, floor, last=1)
  assert "−" not in no_upstream.replace("random span", "")
