"""TVSum-I3D benchmark report: random-score floor, SM-only F1 per split, and per-domain top-5 mAP.

    .venv/bin/python experiments/tvsum_i3d_report.py [--epochs N] [--only fscore|highlight] [--splits 0,1]
        [--domains VT,BK] [--data DIR] [--shared DIR] [--workdir DIR] [--features rgb|rgb+flow] [--seeds N]
        [--config.FIELD=VALUE ...]

1. Data: builds eccv16_dataset_tvsum_i3d_<features>_kts.h5 (and, for highlight detection, its UMT domain
   split yml) into the data folder if missing (default $IPTNET_TVSUM_I3D_DIR or ~/.cache/iptnet_jax/tvsum_i3d;
   never inside the repository), from the shared data folder (--shared, $IPTNET_SHARED_DATA or ../shared/data).
2. F1 (configs/tvsum_i3d.py): the SM alone on DSNet's 5 canonical TVSum splits; prints per split the selected
   and last-epoch F1 and the random-score floor (mean ± std over --seeds seeds of uniform random step scores,
   same shots), and their means; the overall floor's ± is the std over seeds of the 5-split mean.
3. Highlight (configs/tvsum_i3d_highlight.py): the SM trained per TVSum domain (4 videos), top-5 mAP on the
   domain's val video; prints the 10 domain figures, their mean and the random floor.

Every config field can be changed as for iptnet_jax.main, --config.FIELD=VALUE (e.g. --config.train.lr=1e-4
--config.model.num_hidden=64), applied to both configs after --epochs. Runs (metrics.jsonl, checkpoints,
report.json) go to --workdir, default <data>/runs/<time>. JAX's persistent compilation cache
(<data>/../jax_cache) spares recompiling the same shapes for every split; --no-compile-cache turns it off.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
  sys.path.insert(0, str(REPO))

from configs import common, tvsum_i3d_highlight  # noqa: E402
from configs import tvsum_i3d as tvsum_i3d_config  # noqa: E402
from iptnet_jax import config_defaults, run_log  # noqa: E402
from iptnet_jax import train as train_lib  # noqa: E402
from iptnet_jax.datasets import splits as splits_lib  # noqa: E402
from iptnet_jax.datasets import summarization  # noqa: E402
from iptnet_jax.datasets.builders import tvsum_i3d  # noqa: E402
from iptnet_jax.sm import inference  # noqa: E402

UMT_PUBLISHED_TOP5_MAP = 83.1  # UMT (Liu et al., CVPR 2022) on these I3D features, with audio; mean of 10 domains
BENCHMARKS = ("fscore", "highlight")
FEATURE_VARIANTS = {"rgb": "rgb", "rgb+flow": "rgbflow"}


class ReportError(ValueError):
  """A report option or data folder that cannot be used."""


def _outside_repo(path: Path, what: str) -> Path:
  path = path.expanduser().resolve()
  if path == REPO or REPO in path.parents:
    raise ReportError(f"{what} {path} is inside the repository; data and runs derived from the shared data "
                      "must live outside it (e.g. ~/.cache/iptnet_jax or /tmp)")
  return path


# ---------------------------------------------------------------------------------------------- data


def ensure_data(shared: Path, data_dir: Path, features: str, *, domain_splits: bool, rebuild: bool = False,
                log=print) -> Path:
  """The TVSum-I3D h5 (KTS shots) in data_dir, built if missing; its domain yml too when asked."""
  log = log or (lambda line: None)
  h5_path = data_dir / tvsum_i3d.output_name(features, "kts")
  if rebuild or not h5_path.is_file():
    log(f"building {h5_path.name} from {shared} ...")
    tvsum_i3d.build_dataset(shared, data_dir, features=features, shots="kts", overwrite=True,
                            log=lambda line: None)
  else:
    with h5py.File(h5_path, "r") as h5:
      first = next(iter(h5.values()))
      if domain_splits and "user_scores" not in first:
        raise ReportError(f"{h5_path} has no per-user step scores (built by an older builder); rerun with "
                          "--rebuild")
  yml_path = data_dir / tvsum_i3d.domain_splits_name(h5_path.name)
  if domain_splits and (rebuild or not yml_path.is_file()):
    tvsum_i3d.write_domain_splits(shared, data_dir, h5_path.name, overwrite=True)
    log(f"wrote {yml_path.name}")
  return h5_path


# ---------------------------------------------------------------------------------------------- config


def fscore_config(args, overrides: config_defaults.ConfigArgs):
  config = tvsum_i3d_config.get_config(FEATURE_VARIANTS[args.features])
  config.data.dataset_dir = str(args.data)
  config.data.split_file = str(args.split_file or args.shared / "vsumm/splits/dsnet/tvsum.yml")
  config.data.splits = args.splits
  if args.seeds is not None:
    config.eval.random_seeds = args.seeds
  if args.epochs is not None:
    config.train.epochs = args.epochs
  return overrides.apply(config)


def highlight_config(args, overrides: config_defaults.ConfigArgs):
  config = tvsum_i3d_highlight.get_config(FEATURE_VARIANTS[args.features])
  config.data.dataset_dir = str(args.data)  # the split file follows (a reference in the config)
  if args.seeds is not None:
    config.eval.random_seeds = args.seeds
  if args.epochs is not None:
    config.train.epochs = args.epochs
  config = overrides.apply(config)
  domains = split_domains(Path(config.data.split_file))
  if args.domains:
    wanted = [d.strip().upper() for d in args.domains.split(",") if d.strip()]
    unknown = [d for d in wanted if d not in domains]
    if unknown:
      raise ReportError(f"--domains: {unknown} not in {config.data.split_file} (has {domains})")
    config.data.splits = ",".join(str(domains.index(d)) for d in wanted)
  return config, domains


def split_domains(split_file: Path) -> list[str]:
  """The `domain` of each entry of a domain split yml, in file order."""
  entries = yaml.safe_load(split_file.read_text())
  if not isinstance(entries, list) or not all(isinstance(e, dict) and "domain" in e for e in entries):
    raise ReportError(f"{split_file}: expected a list of split entries each with a 'domain'")
  return [str(e["domain"]) for e in entries]


# ---------------------------------------------------------------------------------------------- floor


def floor_matrix(config) -> np.ndarray:
  """(seeds, splits) random-score floor of the config's selected splits' test videos."""
  from iptnet_jax import config_defaults
  all_splits = splits_lib.load_splits(config.data.split_file, config.data.dataset_dir,
                                      config.data.default_h5 or None,
                                      splits_lib.parse_h5_renames(config.data.h5_renames))
  chosen = [all_splits[i] for i in config_defaults.parse_split_selection(config.data.splits, len(all_splits))]
  videos = summarization.load_split_videos(chosen)
  return np.stack([inference.random_floor_per_seed([videos[r] for r in split.test], num_seeds=config.eval.random_seeds,
                                         metric=config.eval.metric, protocol=config.eval.protocol,
                                         seed=config.seed) for split in chosen], axis=1)


# ---------------------------------------------------------------------------------------------- tables


@dataclasses.dataclass
class BenchmarkReport:
  benchmark: str
  labels: list[str]  # split indices or domains
  selected_epochs: list[int]
  test: list[float]  # at the selected epoch, fraction
  last: list[float]  # at the last epoch
  floor: list[float]  # per split: mean over seeds
  floor_std: list[float]  # per split: std over seeds
  mean_test: float
  mean_last: float
  mean_floor: float
  mean_floor_std: float  # std over seeds of the mean over splits
  epochs: int
  seeds: int
  selection: str
  wall_seconds: float
  workdir: str

  def table(self) -> str:
    metric = "F1" if self.benchmark == "fscore" else "top-5 mAP"
    first = "split" if self.benchmark == "fscore" else "domain"
    pm = lambda m, s: f"{100 * m:.2f} ± {100 * s:.2f}"
    rows = [[label, epoch, 100 * t, 100 * l, pm(f, s)]
            for label, epoch, t, l, f, s in zip(self.labels, self.selected_epochs, self.test, self.last,
                                                self.floor, self.floor_std)]
    rows.append(["mean", "", 100 * self.mean_test, 100 * self.mean_last, pm(self.mean_floor, self.mean_floor_std)])
    return run_log.format_table([first, "epoch", f"{metric} (selected)", f"{metric} (last epoch)",
                                 f"random {metric} (mean ± std over {self.seeds} seeds)"], rows)


def summarize(benchmark: str, result: dict, labels: list[str], floors: np.ndarray, epochs: int,
              wall_seconds: float, workdir: Path) -> BenchmarkReport:
  splits = result["splits"]
  per_split_floor = floors.mean(axis=0)
  # The trainer's own floor uses the same draws: the two must agree.
  trainer_floor = np.array([s["random_score"] for s in splits])
  if not np.allclose(per_split_floor, trainer_floor, rtol=0, atol=1e-9):
    raise AssertionError(f"random floor mismatch: report {per_split_floor} vs trainer {trainer_floor}")
  split_mean_per_seed = floors.mean(axis=1)
  return BenchmarkReport(
      benchmark=benchmark, labels=labels, selected_epochs=[s["selected_epoch"] for s in splits],
      test=[s["test_score"] for s in splits], last=[s["last_test_score"] for s in splits],
      floor=per_split_floor.tolist(), floor_std=floors.std(axis=0).tolist(),
      mean_test=float(np.mean([s["test_score"] for s in splits])),
      mean_last=float(np.mean([s["last_test_score"] for s in splits])),
      mean_floor=float(split_mean_per_seed.mean()), mean_floor_std=float(split_mean_per_seed.std()),
      epochs=epochs, seeds=floors.shape[0], selection=splits[0]["selection"], wall_seconds=wall_seconds,
      workdir=str(workdir))


def run_fscore(args, overrides, workdir: Path) -> BenchmarkReport:
  config = fscore_config(args, overrides)
  start = time.perf_counter()
  result = train_lib.train_and_evaluate(config, workdir)
  floors = floor_matrix(config)
  labels = [str(s["index"]) for s in result["splits"]]
  return summarize("fscore", result, labels, floors, config.train.epochs, time.perf_counter() - start, workdir)


def run_highlight(args, overrides, workdir: Path) -> BenchmarkReport:
  config, domains = highlight_config(args, overrides)
  start = time.perf_counter()
  result = train_lib.train_and_evaluate(config, workdir)
  floors = floor_matrix(config)
  labels = [domains[s["index"]] for s in result["splits"]]
  return summarize("highlight", result, labels, floors, config.train.epochs, time.perf_counter() - start, workdir)


def print_report(report: BenchmarkReport, features: str) -> None:
  minutes = report.wall_seconds / 60
  if report.benchmark == "fscore":
    print(f"\n=== TVSum-I3D ({features}, KTS shots): SM-only keyshot F1 (%), DSNet's 5 canonical TVSum splits, "
          f"{report.epochs} epochs, model selection: {report.selection}; {minutes:.1f} min ===")
  else:
    print(f"\n=== TVSum-I3D ({features}): highlight detection, top-5 mAP (%) per domain (UMT splits: 4 train + "
          f"1 val video), SM alone, {report.epochs} epochs, selection: {report.selection}; {minutes:.1f} min ===")
  print(report.table())
  if report.benchmark == "highlight":
    print(f"published on these features: UMT {UMT_PUBLISHED_TOP5_MAP} mean top-5 mAP (rgb+flow+audio)")
  print(f"runs: {report.workdir}")


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="experiments/tvsum_i3d_report.py", description=__doc__.split("\n")[0],
                                   epilog="--config.FIELD=VALUE (repeatable): a config override applied to both "
                                          "benchmarks, as iptnet_jax.main takes it, e.g. --config.train.lr=1e-4")
  parser.add_argument("--shared", type=Path, default=None,
                      help="shared data folder (default: $IPTNET_SHARED_DATA or ../shared/data)")
  parser.add_argument("--data", type=Path, default=None,
                      help="folder for the built h5 and split yml (default: $IPTNET_TVSUM_I3D_DIR or "
                           "~/.cache/iptnet_jax/tvsum_i3d)")
  parser.add_argument("--workdir", type=Path, default=None, help="run outputs (default: <data>/runs/<time>)")
  parser.add_argument("--features", choices=sorted(FEATURE_VARIANTS), default="rgb")
  parser.add_argument("--only", choices=BENCHMARKS, default=None, help="run one benchmark (default: both)")
  parser.add_argument("--epochs", type=int, default=None, help="training epochs per split / domain "
                                                               "(default: the config's, 300)")
  parser.add_argument("--splits", default="all", help="F1 benchmark: 'all' or split indices, e.g. 0,3")
  parser.add_argument("--domains", default="", help="highlight benchmark: e.g. VT,BK (default: all 10)")
  parser.add_argument("--seeds", type=int, default=None,
                      help="random-score floor draws per split (default: the config's, 20 for F1, 100 for "
                           "highlight; use 20 or more for reported numbers)")
  parser.add_argument("--split-file", type=Path, default=None,
                      help="F1 benchmark split file (default: <shared>/vsumm/splits/dsnet/tvsum.yml)")
  parser.add_argument("--rebuild", action="store_true", help="rebuild the h5 and domain yml")
  parser.add_argument("--no-compile-cache", action="store_true")
  args = parser.parse_args(argv)
  args.shared = (args.shared or tvsum_i3d.default_shared_dir()).expanduser().resolve()
  args.data = _outside_repo(args.data or Path(common.tvsum_i3d_dir()), "--data")
  args.workdir = _outside_repo(args.workdir or args.data / "runs" / time.strftime("%Y%m%d-%H%M%S"), "--workdir")
  if args.seeds is not None and args.seeds < 1:
    raise ReportError(f"--seeds {args.seeds}: expected at least 1 (20 or more for the reported floor)")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  try:
    overrides, argv = config_defaults.parse_config_flags(sys.argv[1:] if argv is None else argv)
    if overrides.spec:
      raise ReportError(f"--config={overrides.spec}: this report runs configs/tvsum_i3d.py and "
                        "configs/tvsum_i3d_highlight.py; change their fields with --config.FIELD=VALUE")
    args = parse_args(argv)
    benchmarks = [args.only] if args.only else list(BENCHMARKS)
    if not args.no_compile_cache:
      import jax
      jax.config.update("jax_compilation_cache_dir", str(args.data.parent / "jax_cache"))
    ensure_data(args.shared, args.data, args.features, domain_splits="highlight" in benchmarks,
                rebuild=args.rebuild)
    reports = []
    for benchmark in benchmarks:
      run = run_fscore if benchmark == "fscore" else run_highlight
      reports.append(run(args, overrides, args.workdir / benchmark))
  except (ReportError, ValueError, FileNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for report in reports:
    print_report(report, args.features)
  out = args.workdir / "report.json"
  out.write_text(json.dumps({"features": args.features, "overrides": list(overrides.overrides),
                             "reports": [dataclasses.asdict(r) for r in reports]}, indent=1, default=float))
  print(f"numbers: {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
