"""Pictures of what a run learned and predicts: matplotlib with the Agg backend (files only, no display).

* `importance_figure`: one video's importance maps stacked on one time axis, the layout of the iPTNet paper's
  supplement (Fig. 3) as the issue describes it: the SM importance, the LM's query-free map, the propagated map
  (PM), the ground truth when the data has it, and the selected keyshots shaded across every row.
* `highlight_figure`: the LM's query-conditioned highlight curve with the top spans (`iptnet_jax.localize`).
* `training_curves`: the loss and score curves of every unit from metrics.jsonl.
* `after_training`: what `iptnet_jax.train.train_and_evaluate` calls at the end of a run (process 0 only):
  the training curves and the importance maps of the first three test videos of every split in
  <workdir>/plots/. A failure there is reported as one line and never loses the run's results.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

PLOTS_DIR = "plots"
CURVES_FILE = "training_curves.png"
VIDEOS_PER_SPLIT = 3
# Row fields of metrics.jsonl that are bookkeeping, not curves.
_NOT_CURVES = {"run_id", "resume", "split", "epoch", "phase", "source", "step", "steps", "train_seconds",
               "eval_seconds", "synthetic"}
_SHADE = "#f4a259"  # keyshots


def pyplot():
  """matplotlib.pyplot on the Agg backend (works without a display, in threads and subprocesses)."""
  import matplotlib

  matplotlib.use("Agg", force=True)
  import matplotlib.pyplot as plt

  return plt


def _save(fig, path: Path) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=100)  # the figures are laid out by "constrained" layout (no second draw for a tight box)
  pyplot().close(fig)
  return path


def _spans_in_seconds(spans: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
  return [(float(a), float(b)) for a, b in spans]


def importance_figure(path: str | Path, seconds: np.ndarray, rows: Sequence[tuple[str, np.ndarray]],
                      keyshots: Sequence[Sequence[float]], duration: float, title: str) -> Path:
  """Stacked step maps on one time axis; each row scaled to [0, 1] by its own max (the maps have different
  ranges: probabilities, the released PM's s + 0.5 sum cos s), keyshots shaded in every row.

  seconds: (T,) start time of each step; rows: (label, (T,) values); keyshots: [(start, end)] seconds."""
  plt = pyplot()
  fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.35 * len(rows) + 0.8), sharex=True, squeeze=False,
                           layout="constrained")
  edges = np.append(np.asarray(seconds, np.float64), duration)
  for ax, (label, values) in zip(axes[:, 0], rows):
    values = np.asarray(values, np.float64)
    top = np.max(np.abs(values)) if values.size else 0.0
    scaled = values / top if top > 0 else values
    ax.stairs(scaled, edges, fill=True, color="#3d5a80", alpha=0.8)
    for start, end in _spans_in_seconds(keyshots):  # over the maps, so the selection reads on every row
      ax.axvspan(start, end, color=_SHADE, alpha=0.45, lw=0, zorder=3)
    ax.set_ylim(min(0.0, float(scaled.min()) if scaled.size else 0.0), 1.05)
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    ax.set_xlim(0, duration)
  axes[-1, 0].set_xlabel("time (s); shaded: selected keyshots")
  axes[0, 0].set_title(title, fontsize=10)
  return _save(fig, Path(path))


def highlight_figure(path: str | Path, seconds: np.ndarray, curve: np.ndarray, spans: Sequence[Mapping],
                     duration: float, title: str) -> Path:
  """The highlight curve (per clip, in [0, 1]) with the ranked spans drawn as bars above it, the best darkest."""
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(10, 3.2), layout="constrained")
  edges = np.append(np.asarray(seconds, np.float64), duration)
  ax.stairs(np.asarray(curve, np.float64), edges, fill=True, color="#98c1d9", label="highlight (query-conditioned)")
  for rank, span in enumerate(spans):
    start, end = span["seconds"]
    y = 1.08 + 0.09 * (len(spans) - 1 - rank)
    ax.plot([start, end], [y, y], lw=5, solid_capstyle="butt", color=plt.cm.Reds(0.95 - 0.13 * rank))
    ax.text(end, y, f" {rank + 1}: {start:.1f}-{end:.1f} s ({span['score']:.2f})", va="center", fontsize=8)
  ax.set_xlim(0, duration)
  ax.set_ylim(0, 1.12 + 0.09 * len(spans))
  ax.set_yticks([0, 0.5, 1])  # the curve's range; the bars above it are the ranked spans
  ax.set_xlabel("time (s)")
  ax.set_ylabel("highlight")
  ax.set_title(title, fontsize=10)
  return _save(fig, Path(path))


def read_metric_rows(path: str | Path) -> list[dict]:
  rows = []
  for line in Path(path).read_text().splitlines():
    line = line.strip()
    if line:
      rows.append(json.loads(line))
  return rows


def _is_curve_value(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def training_curves(workdir: str | Path, out: str | Path | None = None) -> Path | None:
  """One row per unit (split, or the LM): its losses (left, mean per phase, one line per data source and term that
  is not all zero: iPTNet's LM and SM phases have different terms) and its evaluations (right), against the
  global step, from metrics.jsonl; None when the run logged no rows."""
  workdir = Path(workdir)
  metrics = workdir / "metrics.jsonl"
  rows = read_metric_rows(metrics) if metrics.is_file() else []
  if not rows:
    return None
  units: dict[str, list[dict]] = {}
  for row in rows:
    units.setdefault(f"split {row['split']}" if "split" in row else "LM", []).append(row)
  plt = pyplot()
  fig, axes = plt.subplots(len(units), 2, figsize=(12, 2.8 * len(units) + 0.6), squeeze=False, layout="constrained")
  colours = plt.cm.tab10(np.arange(10))
  for (unit, unit_rows), (loss_ax, score_ax) in zip(units.items(), axes):
    keys = sorted({k for r in unit_rows for k, v in r.items() if k not in _NOT_CURVES and _is_curve_value(v)})
    lines = 0
    for source in sorted({r.get("source", "") for r in unit_rows}):
      source_rows = [r for r in unit_rows if r.get("source", "") == source]
      for name in keys:
        points = [(r["step"], r[name]) for r in source_rows if _is_curve_value(r.get(name))]
        if not points or not any(y for _, y in points):
          continue
        x, y = zip(*points)
        ax = loss_ax if name.startswith("loss") else score_ax
        label = f"{source}: {name}" if source and name.startswith("loss") else name
        ax.plot(x, y, "-", color=colours[lines % 10], marker=".", ms=4, label=label)
        lines += 1
    loss_ax.set_title(f"{unit}: training losses (mean per phase)", fontsize=9)
    score_ax.set_title(f"{unit}: evaluations", fontsize=9)
    for ax in (loss_ax, score_ax):
      ax.set_xlabel("step")
      if ax.lines:
        ax.legend(fontsize=7, ncol=1 + len(ax.lines) // 6, loc="upper right")  # "best" costs seconds per panel
  fig.suptitle(f"{workdir.name}: metrics.jsonl", fontsize=10)
  return _save(fig, Path(out) if out is not None else workdir / PLOTS_DIR / CURVES_FILE)


def test_video_maps(workdir: str | Path, videos_per_split: int = VIDEOS_PER_SPLIT) -> list[Path]:
  """The importance figure of the first `videos_per_split` test videos of every split with a checkpoint, in
  <workdir>/plots/split_N/<video>.png (SM and iPTNet runs)."""
  from iptnet_jax import run_models, summarize
  from iptnet_jax.datasets import splits as splits_lib
  from iptnet_jax.datasets import summarization
  from iptnet_jax.sm import train as sm_train

  workdir = Path(workdir)
  config = run_models.read_config(workdir)
  if config.task not in ("sm", "iptnet"):
    return []
  dataset_dir, split_file = sm_train.resolve_data(config, workdir)
  all_splits = splits_lib.load_splits(split_file, dataset_dir, config.data.default_h5 or None,
                                      splits_lib.parse_h5_renames(config.data.h5_renames))
  written = []
  for index in run_models.split_indices(workdir):
    if index >= len(all_splits):
      continue
    refs = list(all_splits[index].test[:videos_per_split])
    loaded = summarization.load_videos(refs, refs)
    run = run_models.load_run(workdir, index)
    inputs = [summarize.InputVideo.from_summ_video(loaded[ref], f"{ref.h5_path} video '{ref.video_key}'")
              for ref in refs]
    for video, result in zip(inputs, summarize.summarize_videos(run, inputs)):
      name = video.name.replace("/", "_")
      written.append(summarize.plot_result(run, result, workdir / PLOTS_DIR / f"split_{index}" / f"{name}.png"))
  return written


def after_training(workdir: str | Path) -> list[Path]:
  """Training curves and test-video importance maps of a finished run; any failure is one printed line (the
  run's results are already written) and an empty list."""
  workdir = Path(workdir)
  written = []
  try:
    curves = training_curves(workdir)
    written += [curves] if curves is not None else []
    written += test_video_maps(workdir)
  except Exception as error:  # noqa: BLE001 - plotting must never lose a finished run
    print(f"warning: plots of {workdir} not written ({type(error).__name__}: {error})", file=sys.stderr)
    return written
  if written:
    maps = [p for p in written if p.name != CURVES_FILE]
    print(f"plots: {workdir / PLOTS_DIR}/ ({CURVES_FILE}" + (f", importance maps of {len(maps)} test videos, e.g. "
                                                             f"{maps[0]}" if maps else "") + ")", flush=True)
  return written
