"""Moment localization: our LM trainer against VSLNet's PyTorch training on the same data (issue 21).

    .venv/bin/python experiments/lm_vs_upstream.py --out /tmp/lm_vs_upstream
        [--seeds 1,2,3] [--epochs 20] [--max-videos 500]
        [--ours NAME=CONFIG ...]                    rows of our trainer (default: `ours` = configs/charades.py and
                                                    `ours:upstream` = configs/charades.py:upstream); CONFIG is a
                                                    config with overrides as iptnet_jax.main takes them, e.g.
                                                    --ours "lr3=configs/charades.py --config.train.lr=1e-3"
        [--torch NAME=OPTIMIZER ...]                rows of the torch restatement (iptnet_jax/parity/reference/
                                                    vslnet_torch.py) trained by VSLNet's loop; OPTIMIZER is
                                                    `transformers` (upstream's AdamW, restated) or `torch`
                                                    (torch.optim.AdamW); default: `torch` = transformers
        [--upstream PATH]                           also upstream's own main_t7.py from a VSLNet checkout
        [--per-epoch] [--table-only]

Every (row, seed) trains in its own folder under --out and is skipped once complete, so a rerun only trains
what is missing; our rows and the torch rows also resume an interrupted run (ours through iptnet_jax.loop, the
torch rows from their last finished epoch; upstream's main_t7.py cannot resume, so an unfinished upstream seed
starts again). The folder holds results derived from the shared data: keep it outside the repository.

Data: SYNTHETIC features for the real Charades-STA annotations of the first --max-videos videos of each split
(`iptnet_jax.datasets.builders.synthetic_charades`, default recipe and seed), generated once into <out>/features.
Our rows read them through configs/charades.py; the torch rows through the same loader (same samples, labels
and vocabulary as our default); upstream gets them in its own layout under <out>/upstream_root: the annotation
lines of those videos (so it builds its vocabularies over them, as it does over whatever it is given), the
features as symlinks with feature_shapes.json, and the GloVe file of configs/charades.py.

Running upstream needs what main_t7.py imports. When `transformers` (< 4.47, which still has AdamW) is not
importable, a module with the restated optimizer (vslnet_torch.TransformersAdamW) and the linear schedule stands
in; when NLTK's Punkt data is missing (it cannot be downloaded here), `nltk.tokenize.word_tokenize` runs with
preserve_line=True (NLTK's Treebank rules without the sentence splitter: identical tokens on all 16,128
Charades-STA sentences); upstream's GloVe reader, which accepts only 300-d rows, is replaced by one of any width.
The table says which stand-ins a run used. Extra packages can come from --upstream-pythonpath.

Table: per row, over seeds, the mean ± sample std of each seed's mean over the last --last epochs (test
R1@{0.3,0.5,0.7} and mIoU, %, evaluated after every epoch), the seed range, and the exact random-span floor.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# libgomp's default spin-waiting makes torch's eager steps (the torch and upstream rows) several times slower on a
# loaded machine (benchmarks/run.py says the same); set before torch loads, inherited by upstream's process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from iptnet_jax import config_defaults, stats  # noqa: E402
from iptnet_jax.errors import InputError  # noqa: E402

METRICS = ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU")
DEFAULT_OURS = ("ours=configs/charades.py", "ours:upstream=configs/charades.py:upstream")
DEFAULT_TORCH = ("torch=transformers",)
OPTIMIZERS = ("transformers", "torch")
UPSTREAM_MODEL_SUBDIR = "vslnet_charades_new_{max_pos_len}_rnn/model"


class ExperimentError(InputError):
  """A bad argument of this experiment (row spec, path, seed list)."""


# ------------------------------------------------------------------------------------------------ configs

def load_config(spec: str):
  """'CONFIG[ --config.FIELD=VALUE...]': a config file (relative to the repository) with overrides, as
  iptnet_jax.main takes them."""
  config_file, *overrides = shlex.split(spec)
  config_args, rest = config_defaults.parse_config_flags([f"--config={config_file}", *overrides], root=REPO)
  if rest:
    raise ExperimentError(f"{spec!r}: expected CONFIG followed by --config.FIELD=VALUE overrides, got {rest}")
  return config_args.load()


def parse_row(spec: str, kind: str) -> tuple[str, str]:
  """'NAME=VALUE' -> (name, value): VALUE is a config with overrides for `--ours`, an optimizer for `--torch`."""
  name, sep, value = spec.partition("=")
  if not sep or not name.strip() or not value.strip():
    raise ExperimentError(f"--{kind} {spec!r}: expected NAME=" + ("CONFIG[ --config.FIELD=VALUE...]" if kind == "ours"
                                                                  else "OPTIMIZER"))
  if kind == "torch" and value not in OPTIMIZERS:
    raise ExperimentError(f"--torch {spec!r}: expected NAME=OPTIMIZER with OPTIMIZER one of {OPTIMIZERS}")
  return name.strip(), value.strip()


def resolve(path: str) -> Path:
  """A config path (relative to the repository root, as the configs write them) made absolute."""
  path = Path(path).expanduser()
  return path if path.is_absolute() else (REPO / path).resolve()


def outside_repo(path: str) -> Path:
  resolved = Path(path).expanduser().resolve()
  if resolved == REPO or REPO in resolved.parents:
    raise ExperimentError(f"{resolved} is inside the repository; results derived from the shared data belong "
                          "outside it (e.g. /tmp)")
  return resolved


def base_config(args):
  """configs/charades.py (default) with the experiment's data: the features under <out>, max_videos, epochs."""
  config = load_config("configs/charades.py")
  config.data.annotation_dir = str(resolve(config.data.annotation_dir))
  config.data.glove_path = str(resolve(config.data.glove_path))
  return config


def prepare_features(args, config) -> Path:
  """The synthetic features of the first max_videos videos per split, generated once into <out>/features."""
  from iptnet_jax.datasets import clip_features
  from iptnet_jax.datasets.builders import synthetic_charades

  out = Path(args.out) / "features"
  spec = synthetic_charades.SyntheticCharadesSpec(**config.data.synthetic.to_dict())
  marker = clip_features.read_synthetic_marker(out) if out.is_dir() else None
  if not (marker and marker.get("complete") and marker.get("max_videos") == args.max_videos):
    print(f"generating SYNTHETIC features for the first {args.max_videos} videos per split into {out}", flush=True)
    synthetic_charades.generate(config.data.annotation_dir, out, spec, max_videos=args.max_videos)
  return out


def experiment_config(spec: str, args, feature_dir: Path, seed: int):
  config = load_config(spec)
  config.data.annotation_dir = str(resolve(config.data.annotation_dir))
  config.data.glove_path = str(resolve(config.data.glove_path))
  config.data.feature_dir = str(feature_dir)
  config.data.max_videos = args.max_videos
  config.train.epochs = args.epochs
  config.seed = seed
  return config


# ------------------------------------------------------------------------------------------- metric files

def read_jsonl(path: Path) -> list[dict]:
  if not path.is_file():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ours_curve(workdir: Path) -> dict[int, dict[str, float]]:
  """{epoch: metrics} from our run's metrics.jsonl (a resumed run may repeat an epoch: the last row wins)."""
  curve = {}
  for row in read_jsonl(workdir / "metrics.jsonl"):
    if "epoch" in row and f"test_{METRICS[0]}" in row and row["epoch"] >= 1:
      curve[int(row["epoch"])] = {k: float(row[f"test_{k}"]) for k in METRICS}
  return curve


def upstream_curve(model_dir: Path) -> dict[int, dict[str, float]]:
  """{epoch: metrics} of the end-of-epoch evaluations in upstream's eval_results.txt (it also evaluates at
  mid-epoch; the later step of each epoch is its end)."""
  path = model_dir / "eval_results.txt"
  if not path.is_file():
    return {}
  lines = path.read_text().splitlines()
  by_epoch: dict[int, tuple[int, dict[str, float]]] = {}
  for header, scores in zip(lines[0::2], lines[1::2]):
    epoch_text, step_text = header.rstrip(":").split(",")
    epoch, step = int(epoch_text.split()[1]), int(step_text.split()[1])
    values = [float(field.rsplit(":", 1)[1]) for field in scores.strip().split("\t")]
    if epoch not in by_epoch or step > by_epoch[epoch][0]:
      by_epoch[epoch] = (step, dict(zip(METRICS, values)))
  return {epoch: metrics for epoch, (_, metrics) in sorted(by_epoch.items())}


# ------------------------------------------------------------------------------------------------- ours

def run_ours(config, workdir: Path) -> dict[int, dict[str, float]]:
  from iptnet_jax import train

  curve = ours_curve(workdir)
  if len(curve) >= config.train.epochs and (workdir / "results.json").is_file():
    return curve
  train.enable_compilation_cache()
  train.train_and_evaluate(config, workdir, plots=False)
  return ours_curve(workdir)


# ---------------------------------------------------------------------------------------- torch restatement

def torch_batches(samples, batch_size: int, order):
  for first in range(0, len(order), batch_size):
    yield [samples[i] for i in order[first:first + batch_size]]


def torch_evaluate(model, samples, batch_size: int) -> dict[str, float]:
  """Our metrics (lm.span) of the torch model on `samples`, in upstream's test batches (padded to the batch
  maxima, as upstream evaluates)."""
  import torch

  from benchmarks import torch_refs
  from iptnet_jax.lm import span

  model.eval()
  ious = []
  with torch.no_grad():
    for chunk in torch_batches(samples, batch_size, range(len(samples))):
      batch = torch_refs.collate(chunk)
      _, start_logits, end_logits = torch_refs.lm_forward(model, batch)
      start, end = span.predict_spans(start_logits.numpy(), end_logits.numpy(), batch["video_mask"].numpy())
      start_time, end_time = span.index_to_time(start, end, [s.num_units for s in chunk], [s.duration for s in chunk])
      ious.append(span.temporal_iou(np.stack([start_time, end_time], 1), [[s.start, s.end] for s in chunk]))
  model.train()
  return span.moment_metrics(np.concatenate(ious))


def run_torch(dataset, config, optimizer_kind: str, workdir: Path) -> dict[int, dict[str, float]]:
  """The torch restatement trained by VSLNet's loop (main_t7.py): batches of the shuffled train queries padded to
  their maxima, CE + lambda * highlight BCE, clip 1.0, AdamW (transformers' or torch's) with VSLNet's no-decay
  groups and the linear decay to 0; test metrics after every epoch. Resumes from the last finished epoch."""
  import torch

  from benchmarks import torch_refs
  from iptnet_jax.parity.reference import vslnet_torch as reference

  workdir.mkdir(parents=True, exist_ok=True)
  epochs, batch_size, seed = config.train.epochs, config.train.batch_size, config.seed
  steps_per_epoch = math.ceil(len(dataset.train) / batch_size)
  total_steps = epochs * steps_per_epoch
  random.seed(seed)
  np.random.seed(seed)
  torch.manual_seed(seed)
  model = torch_refs.vslnet(config, dataset.word_vectors, dataset.num_chars, dataset.train[0].video().shape[1])
  no_decay = ("bias", "layer_norm", "LayerNorm")
  named = list(model.named_parameters())
  groups = [{"params": [p for n, p in named if not any(nd in n for nd in no_decay)],
             "weight_decay": config.train.weight_decay},
            {"params": [p for n, p in named if any(nd in n for nd in no_decay)], "weight_decay": 0.0}]
  if optimizer_kind == "transformers":
    optimizer = reference.TransformersAdamW(groups, lr=config.train.lr, eps=config.train.eps)
  else:
    optimizer = torch.optim.AdamW(groups, lr=config.train.lr, eps=config.train.eps)
  # transformers.get_linear_schedule_with_warmup without warm-up: factor (total - step) / total.
  scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, (total_steps - step) / total_steps))
  state_path, metrics_path = workdir / "state.pt", workdir / "metrics.jsonl"
  curve = {int(r["epoch"]): {k: r[k] for k in METRICS} for r in read_jsonl(metrics_path)}
  start_epoch = 1
  if state_path.is_file():
    state = torch.load(state_path, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    start_epoch = state["epoch"] + 1
    curve = {e: m for e, m in curve.items() if e <= state["epoch"]}
  model.train()
  for epoch in range(start_epoch, epochs + 1):
    order = torch.randperm(len(dataset.train)).tolist()  # the DataLoader's shuffle draws from the global RNG
    losses = [torch_refs.train_step(model, optimizer, scheduler, torch_refs.collate(chunk),
                                    config.train.highlight_lambda, config.train.clip_norm)
              for chunk in torch_batches(dataset.train, batch_size, order)]
    metrics = torch_evaluate(model, dataset.test, batch_size)
    curve[epoch] = metrics
    print(f"torch {optimizer_kind} seed {seed} epoch {epoch}/{epochs} loss {np.mean(losses):.4f} "
          + " ".join(f"{k} {v:.2f}" for k, v in metrics.items()), flush=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(), "epoch": epoch},
               state_path.with_suffix(".tmp"))
    os.replace(state_path.with_suffix(".tmp"), state_path)
    with metrics_path.open("a") as f:
      f.write(json.dumps({"epoch": epoch, "loss": float(np.mean(losses)), **metrics}) + "\n")
  return curve


# -------------------------------------------------------------------------------------------------- upstream

def prepare_upstream_root(args, config, feature_dir: Path) -> Path:
  """<out>/upstream_root in main_t7.py's layout (data/dataset/charades, data/features/charades/new, GloVe)."""
  from iptnet_jax.datasets import charades_sta

  root = Path(args.out) / "upstream_root"
  dataset_dir, features = root / "data" / "dataset" / "charades", root / "data" / "features" / "charades" / "new"
  dataset_dir.mkdir(parents=True, exist_ok=True)
  features.mkdir(parents=True, exist_ok=True)
  annotation_dir = Path(config.data.annotation_dir)
  annotations = charades_sta.load_split_annotations(annotation_dir)
  shapes = {}
  for split in charades_sta.SPLITS:
    # The same videos as our loader keeps (first_videos), their lines verbatim.
    kept_vids = {a.vid for a in charades_sta.first_videos(annotations[split], args.max_videos)}
    lines = charades_sta.annotation_path(annotation_dir, split).read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and line.split(" ", 1)[0] in kept_vids]
    (dataset_dir / f"charades_sta_{split}.txt").write_text("".join(kept))
    for vid in kept_vids:
      link = features / f"{vid}.npy"
      if not link.exists():
        link.symlink_to(feature_dir / f"{vid}.npy")
      shapes[vid] = int(np.load(feature_dir / f"{vid}.npy", mmap_mode="r").shape[0])
  (dataset_dir / "charades.json").write_text((annotation_dir / charades_sta.DURATIONS_FILE).read_text())
  (features / "feature_shapes.json").write_text(json.dumps(shapes))
  glove = root / "data" / "features" / "glove.840B.300d.txt"  # the name main_t7.py reads; any width (see below)
  if not glove.exists():
    glove.symlink_to(config.data.glove_path)
  return root


def run_upstream(args, config, root: Path, seed: int, workdir: Path) -> dict[int, dict[str, float]]:
  """main_t7.py --seed SEED in a child process (cwd: the upstream root); skipped when its eval file has every
  epoch, restarted from scratch otherwise."""
  model_dir = workdir / UPSTREAM_MODEL_SUBDIR.format(max_pos_len=config.data.max_pos_len)
  curve = upstream_curve(model_dir)
  if len(curve) >= args.epochs:
    return curve
  import shutil

  shutil.rmtree(workdir, ignore_errors=True)
  workdir.mkdir(parents=True)
  word_dim = len(Path(config.data.glove_path).open().readline().split()) - 1
  visual_dim = int(np.load(next((root / "data" / "features" / "charades" / "new").glob("*.npy")),
                           mmap_mode="r").shape[1])
  argv = ["--seed", str(seed), "--epochs", str(args.epochs), "--word_dim", str(word_dim),
          "--video_feature_dim", str(visual_dim), "--model_dir", str(workdir), "--save_dir",
          str(root / "datasets_t7"), "--max_pos_len", str(config.data.max_pos_len), "--predictor", "rnn"]
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([str(Path(args.upstream).resolve()), str(REPO),
                                       *([args.upstream_pythonpath] if args.upstream_pythonpath else []),
                                       env.get("PYTHONPATH", "")])
  with (workdir / "log.txt").open("w") as log:
    code = subprocess.call([sys.executable, str(Path(__file__).resolve()), "_upstream_child",
                            str(Path(args.upstream).resolve()), *argv], cwd=root, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
  if code:
    raise ExperimentError(f"upstream main_t7.py (seed {seed}) exited with {code}: see {workdir / 'log.txt'}")
  return upstream_curve(model_dir)


def upstream_child(upstream: str, argv: list[str]) -> None:
  """Runs upstream main_t7.py with the stand-ins the module docstring lists (only for what is missing)."""
  import runpy
  import types

  used = []
  try:
    from transformers import AdamW, get_linear_schedule_with_warmup  # noqa: F401
  except ImportError:
    import torch

    from iptnet_jax.parity.reference import vslnet_torch

    stand_in = types.ModuleType("transformers")
    stand_in.AdamW = vslnet_torch.TransformersAdamW

    def get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps):
      def factor(step):
        if step < num_warmup_steps:
          return step / max(1, num_warmup_steps)
        return max(0.0, (num_training_steps - step) / max(1, num_training_steps - num_warmup_steps))
      return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    stand_in.get_linear_schedule_with_warmup = get_linear_schedule_with_warmup
    sys.modules["transformers"] = stand_in
    used.append("transformers: restated AdamW + linear schedule")
  try:
    import nltk.tokenize

    try:
      nltk.tokenize.word_tokenize("a test.")
    except LookupError:
      treebank = nltk.tokenize.word_tokenize
      nltk.tokenize.word_tokenize = lambda text, language="english": treebank(text, language, preserve_line=True)
      used.append("nltk: word_tokenize(preserve_line=True), no Punkt data")
  except ImportError:
    from iptnet_jax.datasets import text

    tokenize = types.ModuleType("nltk.tokenize")
    tokenize.word_tokenize = lambda sentence, language="english": text.tokenize(sentence)
    nltk = types.ModuleType("nltk")
    nltk.tokenize = tokenize
    sys.modules.update({"nltk": nltk, "nltk.tokenize": tokenize})
    used.append("nltk: iptnet_jax.datasets.text.tokenize")
  sys.path.insert(0, upstream)
  from util import data_gen  # upstream's

  from iptnet_jax.datasets import text

  def load_glove(path):  # upstream reads 300-d rows only
    return set(text.load_glove(path)[0])

  def filter_glove_embedding(word_dict, path):
    vectors, dim = text.load_glove(path, keep=set(word_dict))
    table = np.zeros((len(word_dict), dim), np.float32)
    for word, index in word_dict.items():
      table[index] = vectors[word]
    return table

  data_gen.load_glove, data_gen.filter_glove_embedding = load_glove, filter_glove_embedding
  used.append("GloVe reader of any width")
  print("stand-ins: " + "; ".join(used), flush=True)
  sys.argv = [str(Path(upstream) / "main_t7.py"), *argv]
  runpy.run_path(sys.argv[0], run_name="__main__")


# ---------------------------------------------------------------------------------------------------- table

def summarize(curves: dict[int, dict[int, dict[str, float]]], last: int, epochs: int) -> dict:
  """Per metric: each seed's mean over the last `last` epochs, their mean, sample std, min and max."""
  per_seed = {seed: {k: float(np.mean([curve[e][k] for e in range(epochs - last + 1, epochs + 1)]))
                     for k in METRICS} for seed, curve in curves.items()
              if all(e in curve for e in range(1, epochs + 1))}
  out = {"seeds": sorted(per_seed), "per_seed": per_seed}
  for k in METRICS:
    values = np.array([per_seed[s][k] for s in sorted(per_seed)])
    out[k] = {"mean": float(values.mean()) if len(values) else float("nan"),
              "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
              "min": float(values.min()) if len(values) else float("nan"),
              "max": float(values.max()) if len(values) else float("nan")}
  return out


def format_table(rows: dict[str, dict], floor: dict[str, float], last: int) -> str:
  lines = [f"| row (mean of the last {last} epochs; mean ± std over seeds [min, max]) | seeds | "
           + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
  for name, summary in rows.items():
    cells = [f"{summary[k]['mean']:.2f} ± {summary[k]['std']:.2f} [{summary[k]['min']:.2f}, {summary[k]['max']:.2f}]"
             for k in METRICS]
    lines.append(f"| {name} | {','.join(map(str, summary['seeds']))} | " + " | ".join(cells) + " |")
  if "upstream" in rows:  # seeds of the two codebases draw different random streams: unpaired (Welch)
    for name, summary in rows.items():
      if name == "upstream":
        continue
      cells = []
      for k in METRICS:
        diff = stats.welch_difference([summary["per_seed"][s][k] for s in summary["seeds"]],
                                      [rows["upstream"]["per_seed"][s][k] for s in rows["upstream"]["seeds"]])
        cells.append(f"{diff.mean:+.2f}" + (f" [{diff.ci_low:+.2f}, {diff.ci_high:+.2f}]; p {diff.p_value:.2f}"
                                             if diff.ci_low is not None else ""))
      lines.append(f"| {name} − upstream (Welch 95 % CI; p) | | " + " | ".join(cells) + " |")
  lines.append("| random span (expected) | | " + " | ".join(f"{floor[k]:.2f}" for k in METRICS) + " |")
  return "\n".join(lines)


def format_per_epoch(all_curves: dict[str, dict[int, dict]], epochs: int) -> str:
  lines = ["| epoch | " + " | ".join(f"{name} R1@0.3 / R1@0.5 / R1@0.7 / mIoU" for name in all_curves) + " |",
           "|---|" + "---|" * len(all_curves)]
  for epoch in range(1, epochs + 1):
    cells = []
    for curves in all_curves.values():
      done = [c[epoch] for c in curves.values() if epoch in c]
      cells.append(" / ".join(f"{np.mean([m[k] for m in done]):.2f}" for k in METRICS) if done else "")
    lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv and argv[0] == "_upstream_child":
    upstream_child(argv[1], argv[2:])
    return 0
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="folder of the runs (outside the repository)")
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--epochs", type=int, default=20)
  parser.add_argument("--last", type=int, default=5, help="epochs averaged at the end of each run")
  parser.add_argument("--max-videos", type=int, default=500)
  parser.add_argument("--ours", action="append", help="'NAME=CONFIG[ --config.FIELD=VALUE...]' (repeatable)")
  parser.add_argument("--torch", action="append", help="NAME=OPTIMIZER (transformers | torch; repeatable)")
  parser.add_argument("--no-torch", action="store_true", help="no torch-restatement row")
  parser.add_argument("--upstream", help="a checkout of 26hzhang/VSLNet: also run its main_t7.py")
  parser.add_argument("--upstream-pythonpath", help="extra import path for upstream's packages")
  parser.add_argument("--per-epoch", action="store_true", help="also print the per-epoch means")
  parser.add_argument("--table-only", action="store_true", help="train nothing; tabulate what is there")
  args = parser.parse_args(argv)
  try:
    args.out = str(outside_repo(args.out))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds or min(seeds) < 0 or args.epochs < 1 or not 1 <= args.last <= args.epochs or args.max_videos < 1:
      raise ExperimentError("expected --seeds of non-negative integers, --epochs >= 1, 1 <= --last <= --epochs "
                            "and --max-videos >= 1")
    if args.upstream and not (Path(args.upstream) / "main_t7.py").is_file():
      raise ExperimentError(f"--upstream {args.upstream}: no main_t7.py there (expected a 26hzhang/VSLNet checkout)")
    ours_rows = [parse_row(s, "ours") for s in (args.ours or DEFAULT_OURS)]
    for _, spec in ours_rows:
      load_config(spec)  # a bad config, variant or override fails here, before any run
    torch_rows = [] if args.no_torch else [parse_row(s, "torch") for s in (args.torch or DEFAULT_TORCH)]
  except (InputError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  out = Path(args.out)
  config = base_config(args)
  feature_dir = prepare_features(args, config) if not args.table_only else out / "features"
  all_curves: dict[str, dict[int, dict]] = {}
  for name, spec in ours_rows:
    all_curves[name] = {}
    for seed in seeds:
      workdir = out / "ours" / name.replace(":", "_") / f"seed{seed}"
      run_config = experiment_config(spec, args, feature_dir, seed)
      all_curves[name][seed] = ours_curve(workdir) if args.table_only else run_ours(run_config, workdir)
  dataset = None
  for name, optimizer_kind in torch_rows:
    all_curves[name] = {}
    for seed in seeds:
      workdir = out / "torch" / name.replace(":", "_") / f"seed{seed}"
      if args.table_only:
        all_curves[name][seed] = {int(r["epoch"]): {k: r[k] for k in METRICS}
                                  for r in read_jsonl(workdir / "metrics.jsonl")}
        continue
      run_config = experiment_config("configs/charades.py", args, feature_dir, seed)
      if dataset is None:
        from iptnet_jax.lm.train import load_lm_data

        dataset = load_lm_data(run_config, workdir)
      all_curves[name][seed] = run_torch(dataset, run_config, optimizer_kind, workdir)
  if args.upstream:
    all_curves["upstream"] = {}
    root = prepare_upstream_root(args, config, feature_dir) if not args.table_only else out / "upstream_root"
    for seed in seeds:
      workdir = out / "upstream" / f"seed{seed}"
      all_curves["upstream"][seed] = (
          upstream_curve(workdir / UPSTREAM_MODEL_SUBDIR.format(max_pos_len=config.data.max_pos_len))
          if args.table_only else run_upstream(args, config, root, seed, workdir))
  from iptnet_jax.datasets import charades_sta
  from iptnet_jax.lm.train import random_baseline

  if dataset is None:
    floor_config = experiment_config("configs/charades.py", args, feature_dir, seeds[0])
    dataset = charades_sta.load_charades_sta(floor_config.data.annotation_dir, floor_config.data.glove_path,
                                             feature_dir, max_pos_len=floor_config.data.max_pos_len,
                                             max_videos=args.max_videos)
  rows = {name: summarize(curves, args.last, args.epochs) for name, curves in all_curves.items()}
  floor = random_baseline(dataset.test)
  (out / "summary.json").write_text(json.dumps({"rows": rows, "curves": all_curves, "random_span": floor,
                                                "epochs": args.epochs, "last": args.last,
                                                "max_videos": args.max_videos}, indent=1))
  print(f"\nSYNTHETIC features, first {args.max_videos} videos per split: {len(dataset.train)} train / "
        f"{len(dataset.test)} test queries, {args.epochs} epochs\n")
  print(format_table(rows, floor, args.last))
  if args.per_epoch:
    print()
    print(format_per_epoch(all_curves, args.epochs))
  return 0


if __name__ == "__main__":
  sys.exit(main())
