"""plots (iptnet_jax.plots): the PNGs a run writes after training, and that a failing plot is a warning."""

import json

from iptnet_jax import plots


def test_training_curves_and_a_failing_plot_never_raise(tmp_path, capsys):
  rows = [{"run_id": "r", "resume": 0, "split": s, "step": 2 * e + s, "phase": e, "epoch": e, "source": src,
           "steps": 2, "loss_total": 1.0 / (e + 1), "loss_teach_sm": 0.0 if src == "sm_data" else 0.1,
           **({"student_test_score": 0.5 + 0.01 * e} if src == "sm_data" else {})}
          for s in (0, 1) for e in range(1, 4) for src in ("lm_data", "sm_data")]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  path = plots.training_curves(tmp_path)
  assert path == tmp_path / "plots" / "training_curves.png" and path.stat().st_size > 0
  import matplotlib.image

  assert matplotlib.image.imread(path).shape[0] > 400  # one row of panels per split
  (tmp_path / "metrics.jsonl").write_text("{not json\n")
  assert plots.after_training(tmp_path) == []
  assert "warning: plots of" in capsys.readouterr().err
