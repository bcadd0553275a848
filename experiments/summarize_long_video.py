"""Time and memory of `python -m iptnet_jax.summarize` on a 2-hour video: 3,600 steps of 1,024-d features (one
step per 2 s, 216,000 frames at 30 fps), with the TVSum iPTNet models (configs/tvsum.py: SM 1024/1024/128, LM dim
128, PM), on CPU.

  .venv/bin/python experiments/summarize_long_video.py [--steps=3600] [--out=runs/long_video]

The models are freshly initialised (time and memory do not depend on the weights): the script writes a workdir as
a finished run leaves it (config.json, the selected SM of split 0, its LM in split_0_lm), random features, and runs
the command once per shot mode (uniform, then kts) as a child process, printing wall time, CPU time and the child's
peak resident memory (getrusage of that child).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_untrained_run(workdir: Path, feature_dim: int = 1024) -> None:
  import jax

  from configs import tvsum
  from iptnet_jax import checkpoint, run_dir, run_models
  from iptnet_jax.lm import train as lm_train
  from iptnet_jax.lm.model import init_variables
  from iptnet_jax.sm import train as sm_train

  config = tvsum.get_config()
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / run_dir.CONFIG_FILE).write_text(json.dumps(run_dir.config_as_dict(config)))
  (workdir / run_dir.RUN_FILE).write_text(json.dumps({"run_id": "untrained", "resumes": 0}))
  sm = dataclasses.replace(sm_train.make_model(config), with_shift_head=True)
  best = checkpoint.BestCheckpoint(workdir / "checkpoints" / "split_0")
  best.save(0, jax.device_get(sm_train.init_params(sm, jax.random.key(0), feature_dim)), {"epoch": 0})
  best.close()
  word_vectors = np.random.default_rng(0).normal(size=(2000, 50)).astype(np.float32)
  lm = lm_train.make_model(config.lm, word_vectors, 60, feature_dim)
  run_models.save_lm_student(workdir / "checkpoints" / "split_0",
                             jax.device_get(init_variables(lm, jax.random.key(1), word_vectors)), {"epoch": 0})


def measure(argv: list[str]) -> tuple[float, float, float, int]:
  """(wall s, CPU s, peak RSS MiB, exit status) of one child process."""
  start = time.perf_counter()
  child = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  output = child.stdout.read()
  _, status, usage = os.wait4(child.pid, 0)
  wall = time.perf_counter() - start
  child.returncode = os.waitstatus_to_exitcode(status)
  if child.returncode:
    print(output)
  return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=3600)
  parser.add_argument("--out", default="runs/long_video")
  args = parser.parse_args()
  out = Path(args.out).absolute()
  workdir = out / "run"
  if not (workdir / "checkpoints" / "split_0_lm").is_dir():
    write_untrained_run(workdir)
  features = out / "features.npy"
  np.save(features, np.random.default_rng(0).normal(size=(args.steps, 1024)).astype(np.float32))
  n_frames = 60 * args.steps  # one step per 2 s at 30 fps
  print(f"{args.steps} steps x 1024, {n_frames} frames ({n_frames / 30 / 3600:.2f} h at 30 fps); load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
  print(f"{'shots':8s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS MiB':>13s} {'shots':>6s}")
  for shots in ("uniform", "kts"):
    result = out / shots
    wall, cpu, rss, status = measure([sys.executable, "-m", "iptnet_jax.summarize", f"--workdir={workdir}",
                                      f"--features={features}", f"--n_frames={n_frames}", "--fps=30",
                                      f"--shots={shots}", f"--out={result}"])
    count = len(json.loads((result / "summary.json").read_text())["videos"][0]["shots"]) if not status else -1
    print(f"{shots:8s} {wall:8.1f} {cpu:8.1f} {rss:13.0f} {count:6d}", flush=True)
  print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
