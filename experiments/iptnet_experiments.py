"""iPTNet vs its ablations (one table), and the LM with vs without joint training (paper Fig. 5).

  .venv/bin/python experiments/iptnet_experiments.py --config=configs/iptnet_demo.py --workdir=/tmp/ablations
  .venv/bin/python experiments/iptnet_experiments.py --config=configs/tvsum_i3d_iptnet.py --workdir=/tmp/i3d \
      --splits=0,1 --epochs=12 --set=data.buckets="(320,)"
Each method is a variant of the config (iptnet, P, T, L; lm_alone for Fig. 5) trained with the same seed,
data and budget through `train_and_evaluate`; results land in <workdir>/<method>/ and the tables are printed
and written to <workdir>/experiments.json. --base_variants passes extra variants (e.g. smoke) to every run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from iptnet_jax import config_defaults, run_log, train

_CONFIG = flags.DEFINE_string("config", "configs/iptnet_demo.py", "Config file taking comma-separated variants.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the runs.")
_BASE = flags.DEFINE_string("base_variants", "", "Variants added to every run, e.g. 'smoke'.")
_SPLITS = flags.DEFINE_string("splits", "", "Split indices, e.g. '0,1' (default: the config's).")
_EPOCHS = flags.DEFINE_integer("epochs", 0, "SM epochs (default: the config's).")
_ONLY = flags.DEFINE_enum("only", "all", ["all", "ablations", "fig5"], "Which comparison to run.")
_REUSE = flags.DEFINE_bool("reuse_finished", False, "Reuse <workdir>/<method>/results.json of a method that "
                            "already finished (e.g. to continue an interrupted comparison with the same flags).")
_CACHE = flags.DEFINE_string("compilation_cache", None, "JAX's persistent compilation cache folder, as for "
                              "iptnet_jax.main ('none' turns it off).")
_SET = flags.DEFINE_multi_string("set", [], "FIELD=VALUE config overrides for every run, e.g. train.lr=1e-4 "
                                 "or data.buckets=(160,) (Python literals; strings as written).")

ABLATIONS = ("iptnet", "P", "T", "L")


def load_config(path: str, variants: str):
  spec = importlib.util.spec_from_file_location("experiment_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(",".join(v for v in (_BASE.value, variants) if v and v != "iptnet"))
  if _SPLITS.value:
    config.data.splits = _SPLITS.value
  if _EPOCHS.value:
    config.train.epochs = _EPOCHS.value
  config_defaults.apply_overrides(config, [config_defaults.parse_override(item) for item in _SET.value])
  return config


def run(method: str) -> dict:
  config = load_config(_CONFIG.value, method)
  workdir = Path(_WORKDIR.value) / method
  finished = workdir / "results.json"
  if _REUSE.value and finished.exists():
    print(f"\n=== {method} === reusing {finished}", flush=True)
    return json.loads(finished.read_text())
  print(f"\n=== {method} ===", flush=True)
  return train.train_and_evaluate(config, workdir)


def ablation_table(results: dict[str, dict]) -> str:
  first = next(iter(results.values()))
  split_ids = [s["index"] for s in first["splits"]]
  label = "F1" if first["protocol"] == "fscore" else "top-5 mAP"
  rows = []
  for method, result in results.items():
    scores = np.array([s["test_score"] for s in result["splits"]]) * 100
    last = np.array([s["last_test_score"] for s in result["splits"]]) * 100
    rows.append([result["method"], *scores.tolist(), f"{scores.mean():.2f} ± {scores.std():.2f}",
                 f"{last.mean():.2f} ± {last.std():.2f}", result["mean_random_score"] * 100])
  headers = ["method", *(f"split {i}" for i in split_ids), f"mean {label}", f"last-epoch {label}", "random"]
  return f"{label} (%), selected epoch per split; mean ± std over splits\n" + run_log.format_table(headers, rows)


def fig5_table(joint: dict, alone: dict) -> str:
  keys = ["R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "train_loss"]
  tag = "[synthetic features] " if joint.get("lm_synthetic") else ""
  rows = [[name, *(r["lm_test"][k] for k in keys)] for name, r in (("LM in iPTNet (joint)", joint),
                                                                   ("LM alone, same LM passes", alone))]
  return f"{tag}LM on Charades-STA test (%, mean over splits); train_loss = LM supervised loss of the last LM phase\n" \
         + run_log.format_table(["", *keys], rows)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  train.enable_compilation_cache(_CACHE.value)
  results = {}
  if _ONLY.value in ("all", "ablations"):
    for method in ABLATIONS:
      results[method] = run(method)
  if _ONLY.value in ("all", "fig5"):
    results.setdefault("iptnet", None)
    if results["iptnet"] is None:
      results["iptnet"] = run("iptnet")
    results["lm_alone"] = run("lm_alone")
  print()
  tables = {}
  if _ONLY.value in ("all", "ablations"):
    tables["ablations"] = ablation_table({m: results[m] for m in ABLATIONS})
    print(tables["ablations"], "\n")
  if _ONLY.value in ("all", "fig5"):
    tables["fig5"] = fig5_table(results["iptnet"], results["lm_alone"])
    print(tables["fig5"])
  (Path(_WORKDIR.value) / "experiments.json").write_text(json.dumps({"results": results, "tables": tables},
                                                                    indent=1, default=float))


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  sys.exit(app.run(main))
