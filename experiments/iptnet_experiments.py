"""Cross-task transfer, measured: iPTNet vs its ablations over splits x seeds, paired, with a negative control.

The paper's claim: samples of an abundant, differently annotated task (moment localization) make a data-scarce
summarizer better. This runs every (LM data, method, seed) of the protocol through `train_and_evaluate`, each
in its own workdir, and tabulates them:

  .venv/bin/python experiments/iptnet_experiments.py --workdir=/tmp/transfer          # the protocol below
  .venv/bin/python experiments/iptnet_experiments.py --workdir=/tmp/transfer --report_only   # tables so far
  .venv/bin/python experiments/iptnet_experiments.py --config=configs/iptnet_demo.py:smoke \\
      --lm_data=default --seeds=0 --workdir=/tmp/demo_transfer                       # synthetic, minutes

The config is given as for iptnet_jax.main: --config=FILE.py[:VARIANTS] (relative to the repository; the file must
take comma-separated variants: each run adds its LM data's and its method's) and --config.FIELD=VALUE overrides
for every run (e.g. --config.train.lr=1e-4).

Protocol (defaults; configs/tvsum_i3d_iptnet.py, variant `protocol`): SM on TVSum-I3D rgb over DSNet's 5 splits;
6 SM epochs (2 SM-only warm-up) at DSNet's SM lr 5e-5; model selection on a validation subset of 20 % of each split's training videos
(fixed per split: the same videos for every method and seed), reported beside DSNet's convention (best epoch on
test, optimistic); F1, Kendall's tau and Spearman's rho of the step importance (Otani et al. 2019), and the
random floor of each on the same test videos and shots.
  * LM data `youtube`: YouTube Highlights (real I3D features of the same extractor; UMT's train ids), the
    transfer under test; `charades`: Charades-STA with SYNTHETIC features (no real ones here), the negative
    control: its features carry nothing about real videos, so a "gain" there is noise or tuning.
  * methods: iPTNet and iPTNet-L (SM alone through the same step; reads no LM data, so one set of -L runs
    serves both LM data) with every seed; iPTNet-P and iPTNet-T with the first seed; `lm_alone` (paper Fig. 5's
    baseline: the LM alone with the same LM passes) with every seed on the main LM data.
  * paired: per (split, seed), iPTNet - iPTNet-L (and - P, - T where run) with a Student-t 95 % interval
    (iptnet_jax.stats); the (split, seed) pairs of one split share its videos, so the interval treats them as
    independent and is, if anything, too narrow.

Rerunning the same command resumes: a finished run is read back, a partial one resumes inside its workdir
(exact resume, iptnet_jax.loop). Several copies of the command can share the plan (more cores or machines on
one file system): a run another copy is training is skipped (its workdir is locked) and read at the end.
Tables go to stdout and <workdir>/experiments.json. Workdirs hold results of the shared data: keep them outside
the repository.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags, logging

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from iptnet_jax import config_defaults, fileio, run_log, stats, train  # noqa: E402
from iptnet_jax import run_dir as run_dir_lib  # noqa: E402

DEFAULT_CONFIG = "configs/tvsum_i3d_iptnet.py:protocol"  # --config (parse_config_flags): file and base variants
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the runs (one subfolder per run).")
_LM_DATA = flags.DEFINE_list("lm_data", ["youtube", "charades"],
                             "LM data variants; the first is the transfer under test, the others negative controls. "
                             "'charades' / 'default' = the config's own LM data (no variant).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1"], "config.seed of each run (paired across methods).")
_METHODS = flags.DEFINE_list("methods", ["iptnet", "L"], "Methods run with every seed on the main LM data.")
_ONE_SEED = flags.DEFINE_list("one_seed_methods", ["P", "T"], "Methods run with the first seed only.")
_CONTROL = flags.DEFINE_list("control_methods", ["iptnet"], "Methods run with every seed on each control LM data.")
_FIG5 = flags.DEFINE_bool("fig5", True, "Also run the LM alone (lm_alone) with every seed on the main LM data.")
_SPLITS = flags.DEFINE_string("splits", "", "Split indices, e.g. '0,1' (default: the config's).")
_EPOCHS = flags.DEFINE_integer("epochs", 0, "SM epochs (default: the config's).")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Train nothing: tabulate the runs finished so far.")
_CACHE = flags.DEFINE_string("compilation_cache", None, "JAX's persistent compilation cache folder, as for "
                              "iptnet_jax.main ('none' turns it off).")

METHOD_VARIANTS = {"iptnet": "", "L": "L", "P": "P", "T": "T", "lm_alone": "lm_alone"}
NAIVE_LM = ("charades", "default")  # the config's own LM data: no variant


def load_config(config_args: config_defaults.ConfigArgs, lm_data: str, method: str, seed: int):
  """The command line's config with the run's variants added to its own (and its overrides), seed, splits, epochs."""
  variants = [config_args.variants, "" if lm_data in NAIVE_LM else lm_data, METHOD_VARIANTS[method]]
  config = config_args.load(",".join(v for v in variants if v))
  config.seed = seed
  if _SPLITS.value:
    config.data.splits = _SPLITS.value
  if _EPOCHS.value:
    config.train.epochs = _EPOCHS.value
  return config


def plan() -> list[tuple[str, str, int]]:
  """(lm_data, method, seed) in the order that fills the paired comparison first. iPTNet-L reads no LM data:
  its runs are filed under the main LM data and serve every comparison."""
  main, controls = _LM_DATA.value[0], _LM_DATA.value[1:]
  seeds = [int(s) for s in _SEEDS.value]
  runs = []
  for seed in seeds:
    runs += [(main, m, seed) for m in _METHODS.value]
    runs += [(lm, m, seed) for lm in controls for m in _CONTROL.value if m != "L"]
  runs += [(main, m, seeds[0]) for m in _ONE_SEED.value]
  if _FIG5.value:
    runs += [(main, "lm_alone", seed) for seed in seeds]
  return list(dict.fromkeys(runs))


def run_dir(lm_data: str, method: str, seed: int) -> Path:
  return Path(_WORKDIR.value) / lm_data / method / f"seed_{seed}"


def run_one(config_args: config_defaults.ConfigArgs, lm_data: str, method: str, seed: int) -> dict | None:
  workdir = run_dir(lm_data, method, seed)
  finished = workdir / "results.json"
  if finished.exists():
    return json.loads(finished.read_text())
  if _REPORT_ONLY.value:
    return None
  print(f"\n=== LM data {lm_data}, {method}, seed {seed} -> {workdir} ===", flush=True)
  start = time.perf_counter()
  try:
    result = train.train_and_evaluate(load_config(config_args, lm_data, method, seed), workdir)
  except run_dir_lib.WorkdirBusyError:
    print(f"=== {lm_data} {method} seed {seed}: running in another process; skipped ===", flush=True)
    return None
  print(f"=== {lm_data} {method} seed {seed}: {time.perf_counter() - start:.0f} s ===", flush=True)
  return result


# ---------------------------------------------------------------------------------------------- tables

METRICS = (("test_score", "F1 (val-selected)", 100), ("dsnet_test_score", "F1 (DSNet conv.)", 100),
           ("last_test_score", "F1 (last epoch)", 100), ("test_tau", "tau (val-sel.)", 1),
           ("test_rho", "rho (val-sel.)", 1),
           # the selection signal itself (the selected epoch's F1 on the validation videos): what a sweep compares
           ("val_score", "F1 val (selection)", 100))
PAIRED_KEYS = ("test_score", "dsnet_test_score", "test_tau", "test_rho")
FLOORS = (("random_score", "F1", 100), ("random_tau", "tau", 1), ("random_rho", "rho", 1))


def per_run(result: dict, key: str, seed: int) -> dict[tuple[int, int], float]:
  """{(split, seed): value}; a value the run recorded as None (val_score without a validation subset) is NaN, a
  missing key stays a KeyError."""
  return {(s["index"], seed): float("nan") if s[key] is None else float(s[key]) for s in result["splits"]}


def mean_std(values) -> str:
  """Over the finite values ('n/a' when there are none, e.g. the val column of runs without a validation subset)."""
  values = np.asarray(list(values), np.float64)
  values = values[np.isfinite(values)]
  if values.size == 0:
    return "n/a"
  return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}" if values.size > 1 else f"{values.mean():.2f}"


def method_table(results: dict) -> tuple[str, dict]:
  """One row per (LM data, method): mean ± sample std over its (split, seed) runs."""
  if not any(method != "lm_alone" for _, method in results):
    return "no summarization run has finished yet", {}
  rows, summary = [], {}
  for (lm_data, method), by_seed in results.items():
    if method == "lm_alone":
      continue
    entry = {"n": sum(len(r["splits"]) for r in by_seed.values()), "seeds": sorted(by_seed)}
    cells = []
    for key, _, scale in METRICS:
      values = [v * scale for seed, r in by_seed.items() for v in per_run(r, key, seed).values()]
      finite = [v for v in values if np.isfinite(v)]
      entry[key] = {"mean": float(np.mean(finite)) if finite else None,
                    "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else None}
      cells.append(mean_std(values))
    name = next(iter(by_seed.values()))["method"]
    rows.append([lm_data if method != "L" else "(none)", name, entry["n"], *cells])
    summary[f"{lm_data}/{method}"] = entry
  floors = next((r for by_seed in results.values() for r in by_seed.values() if r["method"] != "LM alone (no joint "
                 "training)"), None)
  if floors is not None:
    cells = []
    for key, _, scale in FLOORS:
      values = [s[key] * scale for s in floors["splits"]]
      cells.append(mean_std(values))
      summary.setdefault("random", {})[key] = float(np.mean(values))
    rows.append(["", "random scores", len(floors["splits"]), cells[0], cells[0], cells[0], cells[1], cells[2], ""])
  headers = ["LM data", "method", "runs", *(label for _, label, _ in METRICS)]
  text = ("Summarization on the test videos, mean ± std over (split, seed) runs; F1 in %; tau / rho: Kendall / "
          "Spearman of the step importance with each user, mean over users then videos\n"
          + run_log.format_table(headers, rows))
  return text, summary


def paired_table(results: dict) -> tuple[str, dict]:
  main = _LM_DATA.value[0]
  baseline = results.get((main, "L"))
  rows, paired, control = [], {}, {}
  if not baseline:
    return "no iPTNet-L runs yet: no paired comparison", {}
  comparisons = [(main, m) for m in ("iptnet", "P", "T") if (main, m) in results]
  comparisons += [(lm, "iptnet") for lm in _LM_DATA.value[1:] if (lm, "iptnet") in results]
  for lm_data, method in comparisons:
    runs = results[(lm_data, method)]
    for key, label, scale in (m for m in METRICS if m[0] in PAIRED_KEYS):
      a = {k: v * scale for seed, r in runs.items() for k, v in per_run(r, key, seed).items()}
      b = {k: v * scale for seed, r in baseline.items() for k, v in per_run(r, key, seed).items()}
      # tau / rho are undefined (NaN) on data without per-user scores: such metrics get no paired row.
      common = [k for k in a if k in b and np.isfinite(a[k]) and np.isfinite(b[k])]
      if not common:
        continue
      diff = stats.paired_difference({k: a[k] for k in common}, {k: b[k] for k in common})
      name = f"iptnet{'' if method == 'iptnet' else '_' + method}_minus_iptnet_L"
      suffix = {"test_score": "", "dsnet_test_score": "_dsnet", "test_tau": "_tau", "test_rho": "_rho"}[key]
      target = paired if lm_data == main else control.setdefault(lm_data, {})
      target[name + suffix] = diff.to_dict()
      ci = "n/a" if diff.ci_low is None else f"[{diff.ci_low:+.2f}, {diff.ci_high:+.2f}]"
      rows.append([lm_data, f"{results[(lm_data, method)][next(iter(runs))]['method']} - iPTNet-L", label,
                   f"{diff.mean:+.3f}", ci, diff.n])
  text = ("Paired differences per (split, seed) against iPTNet-L, mean with a Student-t 95 % interval\n"
          + run_log.format_table(["LM data", "difference", "metric", "mean", "95 % CI", "pairs"], rows))
  return text, {"paired": paired, "negative_control": control}


def fig5_table(results: dict) -> tuple[str, dict]:
  main = _LM_DATA.value[0]
  joint, alone = results.get((main, "iptnet")), results.get((main, "lm_alone"))
  if not joint or not alone:
    return "", {}
  out, rows = {}, []
  for name, runs in (("LM in iPTNet (joint)", joint), ("LM alone, same LM passes", alone)):
    splits = [s for r in runs.values() for s in r["splits"]]
    entry = {k: float(np.mean([s["lm_test"][k] for s in splits])) for k in splits[0]["lm_test"]}
    if splits[0].get("lm_highlight"):
      domains = splits[0]["lm_highlight"]["per_domain"]
      per_domain = {d: [s["lm_highlight"]["per_domain"][d] * 100 for s in splits] for d in domains}
      entry["highlight_map"] = {d: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else None}
                                for d, v in per_domain.items()}
      means = [np.mean([s["lm_highlight"]["per_domain"][d] for d in domains]) * 100 for s in splits]
      entry["highlight_mean_map"] = {"mean": float(np.mean(means)), "std": float(np.std(means, ddof=1))
                                     if len(means) > 1 else None}
      rows.append([name, len(splits), *(mean_std(v) for v in per_domain.values()), mean_std(means),
                   *(f"{entry[k]:.2f}" for k in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU"))])
      headers = ["", "runs", *domains, "mean mAP", "R1@0.3", "R1@0.5", "R1@0.7", "mIoU"]
    else:
      rows.append([name, len(splits), *(f"{entry[k]:.2f}" for k in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU"))])
      headers = ["", "runs", "R1@0.3", "R1@0.5", "R1@0.7", "mIoU"]
    out[name] = entry
  text = ("LM on its own test data (paper Fig. 5): UMT's YouTube Highlights mAP (%) per domain of the LM's highlight "
          "scores (title as query) and moment R1 / mIoU; mean ± std over (split, seed) runs\n"
          + run_log.format_table(headers, rows))
  return text, out


def main(config_args: config_defaults.ConfigArgs, argv):
  del argv
  if not _WORKDIR.value.strip():
    raise app.UsageError("--workdir: expected a folder for the runs, got an empty path")
  try:  # a bad config file, variant or override fails here, before any run
    for lm_data, method, seed in plan():
      load_config(config_args, lm_data, method, seed)
  except config_defaults.ConfigError as error:
    sys.exit(f"error: {error}")
  logging.set_verbosity(logging.WARNING)
  train.enable_compilation_cache(_CACHE.value)
  results: dict[tuple[str, str], dict[int, dict]] = {}
  missing = []
  for lm_data, method, seed in plan():
    result = run_one(config_args, lm_data, method, seed)
    if result is None:
      missing.append(f"{lm_data}/{method}/seed_{seed}")
      continue
    results.setdefault((lm_data, method), {})[seed] = result
  tables, out = {}, {"plan": [list(p) for p in plan()], "missing": missing}
  for name, build in (("methods", method_table), ("paired", paired_table), ("fig5", fig5_table)):
    text, data = build(results)
    if text:
      print("\n" + text)
    tables[name] = text
    out.update(data if name == "paired" else {name: data})
  if missing:
    print(f"\nnot finished yet ({len(missing)}): {', '.join(missing)}")
  lm_data = {lm: next(r for (l, m), by in results.items() if l == lm and m != "L" for r in by.values())["lm_data"]
             for lm in _LM_DATA.value if any(l == lm and m != "L" for l, m in results)}
  out.update(tables=tables, lm_data=lm_data,
             runs={f"{lm}/{m}/seed_{s}": r for (lm, m), by in results.items() for s, r in by.items()})
  fileio.write_json(Path(_WORKDIR.value) / "experiments.json", out)


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  try:
    _config_args, _argv = config_defaults.parse_config_flags(sys.argv, default=DEFAULT_CONFIG, root=REPO)
  except config_defaults.ConfigError as error:
    sys.exit(f"error: {error}")
  sys.exit(app.run(functools.partial(main, _config_args), argv=_argv))
