"""Data-parallel scaling of the SM train step over 1, 2, 4, 8 simulated CPU devices.

Each device count runs in its own subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=N (the
flag is read once, when the CPU client starts). The step is the trainer's own `make_train_step`, unchanged:
jit follows the shardings of its inputs, so the batch is placed with NamedSharding(mesh, P('data')) on a
jax.make_mesh((N,), ('data',)) mesh and the train state with NamedSharding(mesh, P()) (replicated); XLA
partitions the step and inserts the all-reduce of the gradients. The global batch (8 videos, one bucket
length) and every input are the same for all N, so the results must agree up to float32 summation order:
the parent compares each run's losses and parameters after the timed steps with the 1-device run.

On a machine with C cores, N simulated devices share those C cores: this shows the partitioned step's
overhead and that results stay equal, not a speed-up beyond C. On a multi-GPU host the same code shards over
real devices (drop the flag).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common

GLOBAL_BATCH = 8
BUCKET = 256
STEPS_PER_REPEAT = 3
# "Equal": losses within 1e-5 relative, parameters within 1 % of how far training moved them (float32
# summation order differs once the batch is split; see iptnet_jax/parity/ for the same Adam argument).
LOSS_RTOL = 1e-5
PARAM_RTOL = 1e-2


def _flat_params(params) -> dict[str, np.ndarray]:
  import jax

  return {"/".join(str(getattr(k, "key", k)) for k in path): np.array(v)
          for path, v in jax.tree_util.tree_leaves_with_path(params)}


def worker(num_devices: int, repeats: int, out_dir: Path, seed: int, matmul_precision: str) -> dict:
  import jax
  import jax.numpy as jnp
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  jax.config.update("jax_default_matmul_precision", matmul_precision)
  from benchmarks import sm
  from iptnet_jax import cpu_threefry
  from iptnet_jax.datasets import input_pipeline

  cpu_threefry.use_unrolled_threefry_on_cpu()

  if jax.device_count() != num_devices:
    raise RuntimeError(f"expected {num_devices} devices, got {jax.device_count()} ({jax.devices()}); "
                       "XLA_FLAGS must be set before jax starts")
  examples = sm.tvsum_like_examples(GLOBAL_BATCH, seed=seed, min_len=BUCKET // 2 + 1, max_len=BUCKET)
  ours = sm.OursSM(examples, batch_size=GLOBAL_BATCH, buckets=(BUCKET,), seed=seed)
  # Auto axes: XLA propagates the input shardings (Explicit, the default of make_mesh, would make sharding
  # part of every type and reject flax dropout's select between a sharded and an unsharded operand).
  mesh = jax.make_mesh((num_devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  batch = input_pipeline.sm_device_fields(input_pipeline.sm_batch(examples, GLOBAL_BATCH, (BUCKET,), with_labels=True))
  batch = jax.device_put(batch, NamedSharding(mesh, P("data")))
  state = jax.device_put(ours.state, NamedSharding(mesh, P()))
  initial = _flat_params(state.params)

  start = time.perf_counter()
  compiled = ours.step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  losses_log = []

  def run_steps(n):
    nonlocal state
    t0 = time.perf_counter()
    for _ in range(n):
      state, losses = ours.step(state, batch)
      losses_log.append(losses)
    jax.block_until_ready(state)
    return time.perf_counter() - t0

  with common.PeakMemory() as mem:
    run_steps(1)  # warm-up
    seconds = [run_steps(STEPS_PER_REPEAT) for _ in range(repeats)]
  np.savez(out_dir / f"params_{num_devices}.npz", **_flat_params(state.params))
  np.savez(out_dir / f"initial_{num_devices}.npz", **initial)
  batch_sharding = str(batch["features"].sharding.spec)
  return {
      "num_devices": num_devices, "compile_s": compile_s, "seconds": seconds,
      "losses": [float(l["total"]) for l in losses_log], "steps": len(losses_log),
      "batch_sharding": batch_sharding, "param_sharding": str(jax.tree.leaves(state.params)[0].sharding.spec),
      "memory": mem.to_json(), "hlo_all_reduce": "all-reduce" in compiled.as_text(),
  }


def run(args) -> tuple[list[common.Row], dict]:
  counts = [int(n) for n in str(args.devices).split(",") if n]
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    for n in counts:
      env = dict(os.environ)
      env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()
      env["JAX_PLATFORMS"] = "cpu"
      cmd = [sys.executable, "-m", "benchmarks.scaling", "--worker", "--num-devices", str(n), "--repeats",
             str(args.repeats), "--out-dir", tmp, "--seed", str(args.seed), "--matmul-precision",
             args.matmul_precision]
      proc = subprocess.run(cmd, env=env, cwd=common.REPO_ROOT, capture_output=True, text=True)
      if proc.returncode != 0:
        raise RuntimeError(f"scaling worker with {n} devices failed:\n{proc.stderr[-4000:]}")
      results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = np.load(Path(tmp) / f"params_{counts[0]}.npz")
    base_initial = np.load(Path(tmp) / f"initial_{counts[0]}.npz")
    # How far training moved the parameters: the scale against which a sharded run's difference is judged
    # (Adam divides each gradient element by its own RMS, so summation-order rounding reaches the update).
    moved = max(float(np.max(np.abs(base[k] - base_initial[k]))) for k in base.files)
    for n in counts:
      other = np.load(Path(tmp) / f"params_{n}.npz")
      initial = np.load(Path(tmp) / f"initial_{n}.npz")
      loss_base, loss_n = np.asarray(results[counts[0]]["losses"]), np.asarray(results[n]["losses"])
      results[n]["same_initial_params"] = all(np.array_equal(initial[k], base_initial[k]) for k in base.files)
      results[n]["max_abs_param_diff"] = max(float(np.max(np.abs(other[k] - base[k]))) for k in base.files)
      results[n]["max_param_displacement"] = moved
      results[n]["max_rel_loss_diff"] = float(np.max(np.abs(loss_n - loss_base) / np.abs(loss_base)))

  rows = []
  base_rate = None
  for n in counts:
    r = results[n]
    rate = GLOBAL_BATCH * STEPS_PER_REPEAT / float(np.median(r["seconds"]))
    base_rate = base_rate or rate
    equal = (r["same_initial_params"] and r["max_rel_loss_diff"] < LOSS_RTOL
             and r["max_abs_param_diff"] < PARAM_RTOL * r["max_param_displacement"])
    rows.append(common.Row(
        "scaling", f"SM step, {n} simulated device{'s' if n > 1 else ''}", rate, "videos/s",
        f"{rate / base_rate:.2f}x 1 device",
        f"batch {GLOBAL_BATCH}x{BUCKET} on {r['batch_sharding']}, params {r['param_sharding']}; "
        f"{'equal' if equal else 'DIFFERENT'} to 1 device after {r['steps']} steps (losses rel "
        f"{r['max_rel_loss_diff']:.1e}; params abs {r['max_abs_param_diff']:.1e} = "
        f"{r['max_abs_param_diff'] / r['max_param_displacement']:.1e} of the training displacement "
        f"{r['max_param_displacement']:.1e}); compile {r['compile_s']:.1f} s; "
        f"RSS peak {r['memory']['host_rss_peak_bytes'] / 2**20:.0f} MiB",
        extra=r))
  return rows, {"results": {str(k): v for k, v in results.items()}, "global_batch": GLOBAL_BATCH, "bucket": BUCKET,
                "steps_per_repeat": STEPS_PER_REPEAT}


def main(argv=None):
  parser = argparse.ArgumentParser(description="scaling worker (run by benchmarks.run)")
  parser.add_argument("--worker", action="store_true", required=True)
  parser.add_argument("--num-devices", type=int, required=True)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out-dir", required=True)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--matmul-precision", default="float32")
  args = parser.parse_args(argv)
  result = worker(args.num_devices, args.repeats, Path(args.out_dir), args.seed, args.matmul_precision)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
