"""One command, one table: our training/evaluation speed vs PyTorch eager references and the matmul peak.

    .venv/bin/python -m benchmarks.run                       # every section (about 10 min on 2 CPU cores)
    .venv/bin/python -m benchmarks.run --only sm,eval --json runs/bench.json
    .venv/bin/python -m benchmarks.run --quick               # tiny sizes, a smoke run of the harness

Sections (SECTIONS below; each returns table rows and a JSON record):
  sm          SM training epoch: ours vs DSNet's eager batch-1 loop, GFLOP/s, fraction of the matmul peak
              measured in the same rounds, compile time and distinct shapes, peak memory (+ a time profile)
  sm-variants the same epoch with other bucket grids / batch sizes / dropout PRNG (what the lead could change)
  lm          LM (VSLNet) training: ours at batch 16 vs PyTorch eager at batch 1 and 16
  joint       the joint iPTNet step per data source (sm_only, lm_only, lm_data, sm_data): ours vs an eager
              batch-1 restatement of the released code's losses; compile time and shapes, peak memory
  eval        scoring a TVSum-sized test split (NMS + knapsack + F1), experiments/bench_eval.py's builder
  scaling     the data-parallel SM step on 1, 2, 4, 8 simulated CPU devices (one subprocess each)
  loop        an SM epoch and a joint sm_data pass through the training loop (iptnet_jax.loop) vs the bare
              step loop: the loop's cost per step and per epoch (state checkpoint, metric rows)
  handwritten what the hand-written low-level code buys: iptnet_jax.cpu_threefry (SM and LM epochs vs jax's
              rolled threefry) and the LSTM's hand-written backward pass (vs autodiff of its lax.scan)

Timing: warm-up runs excluded; the compared runners of a section run interleaved, round robin, `--repeats`
times; medians are reported, with the spread in the detail column. PyTorch runs with as many intra-op threads
as JAX's CPU client uses (the CPUs this process may run on). On a GPU, JAX runs on the GPU and the PyTorch
references stay on the CPU (the CPU build of torch), so ratios there compare devices as well.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

# PyTorch's OpenMP threads spin while waiting for each other (libgomp's default ACTIVE policy). On a machine
# shared with other processes a spinning thread keeps a core from the thread it waits for: measured here, the
# eager VSLNet step at batch 16 took 3-16 s with 2 threads instead of 0.4-0.6 s. PASSIVE (sleep while waiting)
# removes that pathology; set OMP_WAIT_POLICY=ACTIVE to measure the library default on an idle machine. Must be
# set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# name -> module with `run(args) -> (rows, record)`.
SECTIONS = {
    "sm": "benchmarks.sm",
    "sm-variants": "benchmarks.sm_variants",
    "lm": "benchmarks.lm",
    "joint": "benchmarks.joint",
    "eval": "benchmarks.evaluation",
    "scaling": "benchmarks.scaling",
    "loop": "benchmarks.loop",
    "handwritten": "benchmarks.handwritten",
}
SECTION_NAMES = tuple(SECTIONS)


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  parser.add_argument("--only", default=",".join(SECTION_NAMES),
                      help=f"comma-separated sections out of {', '.join(SECTION_NAMES)}")
  parser.add_argument("--json", default="", help="also write every measurement to this JSON file")
  parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per runner (median reported)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--quick", action="store_true",
                      help="tiny sizes, 2 repeats and XLA's most optimisations off: checks the harness, numbers "
                           "mean nothing")
  parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch references")
  parser.add_argument("--no-profile", dest="profile", action="store_false",
                      help="skip the SM time profile (where an epoch's time goes)")
  parser.add_argument("--matmul-precision", default="float32",
                      help="jax_default_matmul_precision for every JAX computation (float32 = no TF32 on GPUs)")
  parser.add_argument("--sm-videos", type=int, default=40)
  parser.add_argument("--sm-lengths", default="49,323", help="min,max video length in steps (TVSum: 49,323)")
  parser.add_argument("--lm-samples", type=int, default=160, help="samples per LM epoch")
  parser.add_argument("--joint-videos", type=int, default=20, help="TVSum-like videos per pass of sm_only/sm_data")
  parser.add_argument("--joint-samples", type=int, default=96,
                      help="Charades-like samples per pass of lm_only/lm_data (steps of 16)")
  parser.add_argument("--joint-sources", default="sm_only,lm_only,lm_data,sm_data",
                      help="data sources of the joint section; fewer compile a step with only those branches")
  parser.add_argument("--eval-videos", type=int, default=10)
  parser.add_argument("--devices", default="1,2,4,8", help="simulated CPU device counts of the scaling run")
  args = parser.parse_args(argv)
  args.only = [s.strip() for s in args.only.split(",") if s.strip()]
  unknown = [s for s in args.only if s not in SECTION_NAMES]
  if unknown:
    parser.error(f"--only: unknown section(s) {unknown}; choose from {', '.join(SECTION_NAMES)}")
  if args.quick:
    args.repeats = min(args.repeats, 2)
    args.sm_videos = min(args.sm_videos, 4)
    args.sm_lengths = "49,64"
    args.lm_samples = min(args.lm_samples, 8)
    args.eval_videos = min(args.eval_videos, 2)
    args.devices = "1,2"
  try:
    args.sm_min_len, args.sm_max_len = (int(x) for x in args.sm_lengths.split(","))
  except ValueError:
    parser.error(f"--sm-lengths: expected MIN,MAX, got {args.sm_lengths!r}")
  from iptnet_jax.iptnet.step import SOURCE_NAMES

  sources = [s.strip() for s in args.joint_sources.split(",") if s.strip()]
  if not sources or any(s not in SOURCE_NAMES for s in sources):
    parser.error(f"--joint-sources: expected some of {', '.join(SOURCE_NAMES)}, got {args.joint_sources!r}")
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
  import jax

  optimizations_off = jax.config.read("jax_disable_most_optimizations")
  if args.quick:  # compile time dominates tiny runs; what is measured does not matter there
    jax.config.update("jax_disable_most_optimizations", True)
  try:
    with jax.default_matmul_precision(args.matmul_precision):
      return _main(args)
  finally:
    jax.config.update("jax_disable_most_optimizations", optimizations_off)


def _main(args) -> dict:
  from benchmarks import common
  from iptnet_jax import cpu_threefry

  cpu_threefry.use_unrolled_threefry_on_cpu()  # as train_and_evaluate does; rows marked 'rolled' undo it

  if not args.no_torch:
    try:
      import torch

      torch.set_num_threads(common.cpu_threads())
    except ImportError:
      print("torch is not installed (.venv/bin/pip install -e '.[parity]'): PyTorch references skipped",
            file=sys.stderr)
      args.no_torch = True

  info = common.environment()
  print(common.describe_environment(info), flush=True)
  rows, records = [], {}
  started = time.perf_counter()
  for name in args.only:
    section_start = time.perf_counter()
    print(f"[{name}] running ...", flush=True)
    section_rows, record = importlib.import_module(SECTIONS[name]).run(args)
    record["section_seconds"] = time.perf_counter() - section_start
    rows += section_rows
    records[name] = record
    print(common.format_table(section_rows), flush=True)
  info["load_average_end"] = common.load_average()
  info["total_seconds"] = time.perf_counter() - started

  print(f"\n== benchmarks ({', '.join(args.only)}; medians of {args.repeats} runs after warm-up; "
        f"{info['total_seconds']:.0f} s in all) ==")
  print(common.describe_environment(info))
  end = info["load_average_end"]
  if end is not None:
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in end)} (other processes share these CPUs: "
          "compare the same-run ratios, not absolute numbers across runs)")
  print(common.format_table(rows))
  result = {"environment": info, "args": {k: v for k, v in vars(args).items()},
            "rows": [{k: v for k, v in r.__dict__.items()} for r in rows], "sections": records}
  if args.json:
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=_json_default))
    print(f"wrote {path}")
  return result


def _json_default(value):
  try:
    import numpy as np

    if isinstance(value, np.generic):
      return value.item()
    if isinstance(value, np.ndarray):
      return value.tolist()
  except ImportError:
    pass
  return str(value)


if __name__ == "__main__":
  main()
