"""plots (iptnet_jax.plots): the PNGs a run writes after training, and that a failing plot is a warning."""

import json

import numpy as np

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


def _orange_pixels(image) -> int:
  """Pixels of the keyshot shade over a white background (red high, blue low)."""
  return int(((image[..., 0] > 0.9) & (image[..., 2] < 0.8) & (image[..., 1] > 0.6)).sum())


def test_importance_figure_is_a_png_of_one_row_per_map_with_the_keyshots_shaded(tmp_path):
  import matplotlib.image

  seconds = np.arange(20) * 0.5
  rows = [("SM importance", np.linspace(0, 1, 20)), ("LM", np.full(20, 0.3)), ("ground truth", np.zeros(20))]
  shaded = plots.importance_figure(tmp_path / "a" / "maps.png", seconds, rows, [(2.0, 4.0)], 10.0, "video")
  plain = plots.importance_figure(tmp_path / "plain.png", seconds, rows[:1], [], 10.0, "video")
  assert shaded.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  image = matplotlib.image.imread(shaded)
  assert image.shape[:2] == (round(100 * (1.35 * 3 + 0.8)), 1000)  # 10 in wide, 1.35 in per row, at 100 dpi
  assert matplotlib.image.imread(plain).shape[:2] == (round(100 * (1.35 + 0.8)), 1000)
  assert _orange_pixels(image) > 1000 and _orange_pixels(matplotlib.image.imread(plain)) == 0


def test_highlight_figure_is_a_png_with_a_bar_per_span(tmp_path):
  import matplotlib.image

  spans = [{"seconds": [1.0, 3.0], "score": 0.9}, {"seconds": [5.0, 6.0], "score": 0.4}]
  path = plots.highlight_figure(tmp_path / "h.png", np.arange(10.0), np.linspace(0, 1, 10), spans, 10.0, "q")
  image = matplotlib.image.imread(path)
  assert image.shape[:2] == (320, 1000)
  reds = lambda im: int(((im[..., 0] > 0.5) & (im[..., 1] < 0.3) & (im[..., 2] < 0.3)).sum())
  assert reds(image) > 100  # the span bars
  none = plots.highlight_figure(tmp_path / "none.png", np.arange(10.0), np.linspace(0, 1, 10), [], 10.0, "q")
  assert reds(matplotlib.image.imread(none)) == 0
