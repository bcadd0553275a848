"""Time DSNet's evaluation protocol (predict_summary_af + F-score) on a TVSum-sized test split.

    .venv/bin/python experiments/bench_eval.py [--videos 10] [--repeats 15] [--seed 0]

The split is built in memory: n_frames uniform in [4000, 20000], picks every 15 frames, KTS-like shots of
2-4 s at 30 fps, 20 users with 15% keyshot summaries, and random anchor-free head outputs (float32).
Prints the median wall time to score the whole split over the repeats, and the split's mean F-score.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from iptnet_jax.vsumm import evaluate, keyshots

FPS = 30
FRAMES_PER_STEP = 15
NUM_USERS = 20


def make_video(rng: np.random.Generator) -> tuple[evaluate.VideoEvalInputs, tuple[np.ndarray, ...]]:
  """One TVSum-like video (its eval inputs) and random model outputs for it."""
  n_frames = int(rng.integers(4000, 20001))
  picks = np.arange(0, n_frames, FRAMES_PER_STEP)
  shot_lengths = rng.integers(2 * FPS, 4 * FPS + 1, n_frames // (2 * FPS))
  bounds = np.cumsum(np.r_[0, shot_lengths])
  bounds = np.r_[bounds[bounds < n_frames], n_frames]
  change_points = np.stack([bounds[:-1], bounds[1:] - 1], axis=1)
  n_frame_per_seg = change_points[:, 1] - change_points[:, 0] + 1
  user_summary = np.stack([
      keyshots.get_keyshot_summ(rng.random(len(picks)), change_points, n_frames, n_frame_per_seg, picks)
      for _ in range(NUM_USERS)])
  inputs = evaluate.VideoEvalInputs(change_points, n_frames, n_frame_per_seg, picks, user_summary, "avg")
  num_steps = len(picks)
  outputs = (rng.random(num_steps, dtype=np.float32),
             np.exp(rng.normal(1.0, 1.0, (num_steps, 2))).astype(np.float32),
             rng.random(num_steps, dtype=np.float32))
  return inputs, outputs


def score_split(videos) -> float:
  return float(np.mean([evaluate.video_fscore_af(inputs, cls, loc, ctr, nms_thresh=0.4)
                        for inputs, (cls, loc, ctr) in videos]))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--videos", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  rng = np.random.default_rng(args.seed)
  videos = [make_video(rng) for _ in range(args.videos)]
  frames = [inputs.n_frames for inputs, _ in videos]
  shots = [len(inputs.change_points) for inputs, _ in videos]
  print(f"split: {args.videos} videos, n_frames {min(frames)}-{max(frames)} (total {sum(frames)}), "
        f"{min(shots)}-{max(shots)} shots, {NUM_USERS} users")

  f_score = score_split(videos)  # warm-up
  seconds, cpu_seconds = [], []
  for _ in range(args.repeats):
    start, cpu_start = time.perf_counter(), time.process_time()
    score_split(videos)
    seconds.append(time.perf_counter() - start)
    cpu_seconds.append(time.process_time() - cpu_start)
  print(f"F-score {f_score:.4f}; median {statistics.median(seconds):.4f} s per split "
        f"(min {min(seconds):.4f}, max {max(seconds):.4f}, {args.repeats} runs; "
        f"median CPU time {statistics.median(cpu_seconds):.4f} s)")


if __name__ == "__main__":
  main()
