"""Evaluation speed: seconds to score a TVSum-sized test split with DSNet's protocol (box decoding, NMS,
knapsack keyshots, F1 against 20 users), using experiments/bench_eval.py's split builder and scorer."""

from __future__ import annotations

import time

import numpy as np

from benchmarks import common
from experiments import bench_eval as bench


def run(args) -> tuple[list[common.Row], dict]:
  rng = np.random.default_rng(args.seed)
  videos = [bench.make_video(rng) for _ in range(args.eval_videos)]
  frames = [inputs.n_frames for inputs, _ in videos]
  holder = {}

  def score():
    holder["f"] = bench.score_split(videos)

  with common.PeakMemory() as mem:
    timings = common.interleaved({"eval": score}, repeats=max(args.repeats * 3, 5), warmup=1)
  t = timings["eval"]
  rows = [
      common.Row("eval", f"score a split of {len(videos)} videos", t.median, "s/split", "",
                 f"n_frames {min(frames)}-{max(frames)}, {bench.NUM_USERS} users, NMS 0.4 + knapsack + F1 "
                 f"(F1 {holder['f']:.3f}); {t.spread()}"),
      common.Row("eval", "peak memory, eval", mem.peak_rss / 2**20, "MiB RSS", "", mem.describe(),
                 extra=mem.to_json()),
  ]
  return rows, {"timings": t.to_json(), "n_frames": frames, "f_score": holder["f"], "memory": mem.to_json()}
