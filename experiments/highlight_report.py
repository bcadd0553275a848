"""Highlight detection benchmarks (iptnet_jax/highlight): runs, floors, ablations and the table beside the anchors.

    .venv/bin/python experiments/highlight_report.py run --config=configs/highlight_tvsum.py:av --workdir=W
        [--config.FIELD=VALUE ...]     one config: every domain x seed, W/results.json (resumable)
    .venv/bin/python experiments/highlight_report.py floors --dataset=tvsum --out=F.json
                                       random and ridge-regression floors on the same val videos
    .venv/bin/python experiments/highlight_report.py ablate --grid=rank --root=DIR [--config=...] [--config.F=V]
                                       one workdir per grid value (DIR/<grid>=<value>), with leave-one-train-video-
                                       out cross-validation; the row marked '*' is the one CV selects
    .venv/bin/python experiments/highlight_report.py table --rows "ours AV=W1" "ours weak=W2" [--floors F.json]
                                       per-domain table (mean ± std over seeds) beside UMT's published figures

`run` is `python -m iptnet_jax.main --config=... --workdir=W` (both call `train_and_evaluate_highlight` on the
project's loop: one run per workdir, a rerun resumes) plus the summary lines. `run` and `ablate` take a config as
main does: --config=FILE.py[:VARIANT] (relative to the repository) and --config.FIELD=VALUE overrides. Workdirs hold
results derived from the shared data: keep them outside the repository (e.g. /tmp).

    .venv/bin/python experiments/highlight_report.py ablate --grid=field --field=train.lr --values=1e-4,1e-3 ...
                                       any other field the same way

Grids (the supplement's ablations; base config --config, default configs/highlight_tvsum.py:av):
  rank      model.rank in 1, 4, 8, 16, 32
  tau       train.clip_len in 20, 40, 60, 80
  beta      loss.beta in 1e-4, 1e-3, 1e-2, 1e-1 (weak regime: --config=configs/highlight_tvsum.py:weak)
  modality  data.modalities in video,audio / video / audio
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from iptnet_jax import config_defaults  # noqa: E402
from iptnet_jax.errors import InputError  # noqa: E402

# TencentARC/UMT README, UMT-S per TVSum domain (top-5 mAP, video + audio; best val epoch of 500).
UMT_TVSUM = {"VT": 87.54, "VU": 81.51, "GA": 88.22, "MS": 78.81, "PK": 81.42, "PR": 86.96, "FM": 75.96,
             "BK": 86.89, "BT": 84.42, "DS": 79.63}
# UMT-S per YouTube Highlights domain (mAP, video + audio), docs/data.md.
UMT_YOUTUBE = {"dog": 65.93, "gymnastics": 75.20, "parkour": 81.64, "skating": 71.81, "skiing": 72.27,
               "surfing": 82.71}
YE_2021 = {"tvsum": 76.8, "youtube": 63.0}  # Ye et al., ICCV 2021, mean (weakly supervised)
SM_TOP5 = 65.67  # BUILD.md: the SM alone, experiments/tvsum_i3d_report.py --only highlight --epochs 50 (best epoch)
GRIDS = {
    "rank": ("model.rank", ("1", "4", "8", "16", "32")),
    "tau": ("train.clip_len", ("20", "40", "60", "80")),
    "beta": ("loss.beta", ("1e-4", "1e-3", "1e-2", "1e-1")),
    "modality": ("data.modalities", ("video,audio", "video", "audio")),
}
DEFAULT_ABLATION_CONFIG = "configs/highlight_tvsum.py:av"


def _outside_repo(path: str) -> Path:
  resolved = Path(path).expanduser().resolve()
  if resolved == REPO or REPO in resolved.parents:
    raise InputError(f"{resolved} is inside the repository; results derived from the shared data belong outside "
                     "it (e.g. /tmp)")
  return resolved


def run(config_args: config_defaults.ConfigArgs, workdir: str) -> dict:
  from iptnet_jax import cpu_threefry
  from iptnet_jax.highlight import train

  cpu_threefry.use_unrolled_threefry_on_cpu()  # as iptnet_jax.train.train_and_evaluate does
  config = config_args.load()
  results = train.train_and_evaluate_highlight(config, _outside_repo(workdir))
  print(format_results(results))
  return results


def format_results(results: dict) -> str:
  lines = []
  if "per_domain" in results:
    lines.append(" ".join(f"{d} {100 * v:.2f}±{100 * results['per_domain_std'][d]:.2f}"
                          for d, v in results["per_domain"].items()))
    lines.append(f"mean {100 * results['mean']:.2f} ± {100 * results['mean_std']:.2f} (std over seeds "
                 f"{results['seeds']}); random floor {100 * results['random_floor']['mean']:.2f}")
  if "cv" in results:
    lines.append(f"cv (leave-one-train-video-out) mean {100 * results['cv']['mean']:.2f} ± "
                 f"{100 * results['cv']['mean_std']:.2f}" +
                 "".join(f"; at epoch {e}: {100 * v:.2f}" for e, v in results["cv"].get("at_epoch", {}).items()))
  return "\n".join(lines)


def floors(dataset: str, out: str, root: str = "") -> dict:
  from iptnet_jax.highlight import baselines, data, train

  if dataset == "tvsum":
    ds = data.read_tvsum(root or None)
    domains, modality_sets = list(data.TVSUM_DOMAINS), (("video", "audio"), ("video",), ("audio",))
  else:
    ds = data.read_youtube(root or None)
    domains, modality_sets = list(data.YOUTUBE_DOMAINS), (("video",),)
  result = {"dataset": dataset, "random": train.random_floor(ds, domains, 100), "ridge": {}, "oracle": {}}
  for target in (("mean_score", "vote") if dataset == "tvsum" else ()):
    result["oracle"][target] = baselines.oracle(ds, domains, target)
    print(f"oracle ({target} of the val video's own annotation): mean {100 * result['oracle'][target]['mean']:.2f}")
  for mods in modality_sets:
    result["ridge"][",".join(mods)] = baselines.ridge_floor(ds, domains, mods)
    print(f"ridge {','.join(mods)}: mean {100 * result['ridge'][','.join(mods)]['mean']:.2f}", flush=True)
  print(f"random: mean {100 * result['random']['mean']:.2f} ± {100 * result['random']['std']:.2f}")
  path = _outside_repo(out)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(result, indent=1))
  return result


def ablate(grid: str, root: str, config_args: config_defaults.ConfigArgs, values: Sequence[str] = (),
           field: str = "") -> list:
  """One workdir per value, each with cross-validation; the '*' row is the best CV mean (ties: the first).
  grid 'field' sweeps any config field (--field) over --values."""
  if grid == "field":
    if not field or not values:
      raise InputError("--grid=field needs --field=FIELD and --values=a,b,...")
    default_values = ()
  else:
    field, default_values = GRIDS[grid]
  rows = []
  for value in values or default_values:
    name = f"{grid}={value}" if grid != "field" else f"{field}={value}"
    workdir = Path(_outside_repo(root)) / name
    print(f"== {field}={value} -> {workdir}", flush=True)
    overrides = (*config_args.overrides, "--config.eval.cross_validate=True", f"--config.{field}={value}")
    results = run(dataclasses.replace(config_args, overrides=overrides), str(workdir))
    rows.append((value, results))
  best = max(range(len(rows)), key=lambda i: rows[i][1]["cv"]["mean"])
  print(f"\n| {field} | CV (train folds, seeds {rows[0][1]['cv']['seeds']}) | val mean ± std over seeds |\n|---|---|---|")
  for i, (value, results) in enumerate(rows):
    val = (f"{100 * results['mean']:.2f} ± {100 * results['mean_std']:.2f}" if "mean" in results else "not run")
    print(f"| {value}{' *' if i == best else ''} | {100 * results['cv']['mean']:.2f} ± "
          f"{100 * results['cv']['mean_std']:.2f} | {val} |")
  return rows


def table(rows: Sequence[str], floors_path: str | None) -> str:
  loaded = []
  for item in rows:
    # Labels ("R=8") and ablation workdirs ("model.rank=8") may both hold '=': the split is the first '=' after
    # which an existing folder follows (else the first '=', and the missing folder is reported).
    cuts = [i for i, c in enumerate(item) if c == "=" and i > 0]
    if not cuts:
      raise InputError(f"--rows {item!r}: expected LABEL=WORKDIR")
    cut = next((i for i in cuts if Path(item[i + 1:]).is_dir()), cuts[0])
    label, path = item[:cut], item[cut + 1:]
    results_path = Path(path) / "results.json"
    if not results_path.is_file():
      raise InputError(f"--rows {label}: {results_path} not found (the run has not finished or the folder is wrong)")
    loaded.append((label, json.loads(results_path.read_text())))
  dataset = loaded[0][1]["dataset"]
  umt = UMT_TVSUM if dataset == "tvsum" else UMT_YOUTUBE
  domains = loaded[0][1]["domains"]
  head = "| row | " + " | ".join(domains) + " | mean |"
  lines = [head, "|" + "---|" * (len(domains) + 2)]
  lines.append("| UMT-S (published, best val epoch) | " + " | ".join(f"{umt[d]:.2f}" for d in domains) +
               f" | {np.mean([umt[d] for d in domains]):.2f} |")
  lines.append(f"| Ye et al. 2021 (published, mean only) | " + " | ".join("–" for _ in domains) +
               f" | {YE_2021[dataset if dataset in YE_2021 else 'tvsum']:.1f} |")
  if dataset == "tvsum":
    lines.append("| SM alone (BUILD.md, best test epoch) | " + " | ".join("–" for _ in domains) +
                 f" | {SM_TOP5:.2f} |")
  if floors_path:
    f = json.loads(Path(floors_path).read_text())
    lines.append("| random floor (100 draws) | " + " | ".join(f"{100 * f['random']['per_domain'][d]:.2f}"
                                                           for d in domains) + f" | {100 * f['random']['mean']:.2f} |")
    for mods, r in f["ridge"].items():
      lines.append(f"| ridge floor ({mods}) | " + " | ".join(f"{100 * r['per_domain'][d]:.2f}" for d in domains) +
                   f" | {100 * r['mean']:.2f} |")
    for target, r in f.get("oracle", {}).items():
      lines.append(f"| oracle ceiling (val video's own {target}) | " +
                   " | ".join(f"{100 * r['per_domain'][d]:.2f}" for d in domains) + f" | {100 * r['mean']:.2f} |")
  for label, r in loaded:
    lines.append(f"| {label} | " + " | ".join(f"{100 * r['per_domain'][d]:.2f} ± {100 * r['per_domain_std'][d]:.1f}"
                                              for d in domains) +
                 f" | **{100 * r['mean']:.2f} ± {100 * r['mean_std']:.2f}** |")
  text = "\n".join(lines)
  print(text)
  return text


def main(argv: Sequence[str] | None = None) -> int:
  try:
    config_args, argv = config_defaults.parse_config_flags(sys.argv[1:] if argv is None else argv, root=REPO)
  except InputError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("run")
  p.add_argument("--workdir", required=True)
  p = sub.add_parser("floors")
  p.add_argument("--dataset", choices=("tvsum", "youtube"), default="tvsum")
  p.add_argument("--out", required=True)
  p.add_argument("--root", default="")
  p = sub.add_parser("ablate")
  p.add_argument("--grid", choices=sorted(GRIDS) + ["field"], required=True)
  p.add_argument("--field", default="", help="--grid=field: the config field to sweep, e.g. train.lr")
  p.add_argument("--root", required=True)
  p.add_argument("--values", default="", help="comma-separated subset of the grid's values")
  p = sub.add_parser("table")
  p.add_argument("--rows", nargs="+", required=True, help="LABEL=WORKDIR")
  p.add_argument("--floors")
  args = parser.parse_args(argv)
  try:
    if args.command == "run" and not config_args.spec:
      raise InputError("run: expected --config=configs/FILE.py[:VARIANT]")
    if args.command not in ("run", "ablate") and (config_args.spec or config_args.overrides):
      raise InputError(f"{args.command}: takes no --config (only run and ablate do)")
    if args.command == "run":
      run(config_args, args.workdir)
    elif args.command == "floors":
      floors(args.dataset, args.out, args.root)
    elif args.command == "ablate":
      values = [v for v in args.values.replace(" ", "").split(",") if v] if args.values else []
      if args.grid == "modality" and values:
        raise InputError("--values: the modality grid's values contain commas; run it whole")
      ablate(args.grid, args.root, dataclasses.replace(config_args, spec=config_args.spec or str(
          REPO / DEFAULT_ABLATION_CONFIG)), values, args.field)
    else:
      table(args.rows, args.floors)
  except InputError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  except Exception as error:
    from iptnet_jax.loop import RunInterrupted  # imported here: floors and table need no jax

    if not isinstance(error, RunInterrupted):
      raise
    print(error, file=sys.stderr)  # SIGTERM / SIGINT saved the state; the same command resumes
    return 128 + error.signum
  return 0


if __name__ == "__main__":
  sys.exit(main())
