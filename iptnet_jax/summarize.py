"""Summarize videos you bring, with a trained run: importance maps, shots, the 15 % keyshot summary, a picture.

  python -m iptnet_jax.summarize --workdir=W [--split=K] --features=F [--keys=video_1,video_3] \
      [--fps=30 --n_frames=N --shots=auto|kts|uniform|FILE] --out=O

F is a `.npy` (T, D) array of step features (one row per sub-sampled frame, the width the run was trained on)
or an eccv16 h5 file (every video, or the `--keys`). The run's selected checkpoint of split K (default: its first
split) is loaded with the config the run recorded (`iptnet_jax.run_models`): the SM for SM runs; the SM, the LM's
query-free map and the propagation (PM) for iPTNet runs.

Steps and frames: an h5 video has its own `picks` and `n_frames`; for a `.npy`, `--n_frames` (default 15 T, the
eccv16 sub-sampling of one step per 15 frames) spreads the T steps evenly over the frames (step i starts at frame
floor(i N / T)), and `--fps` (default 30) turns frames into seconds. Shots (`--shots`): `auto` takes an h5 video's
change_points and runs KTS otherwise; `kts` runs the project's KTS (`vsumm.kts`, as many shots as the eccv16 files
have: ceil(n_frames / 150); in windows of 1,000 steps beyond that length, `windowed_kts_shots`); `uniform` cuts
shots of 150 frames; a FILE (.npy / .json / .txt) gives
(S, 2) inclusive [first, last] frames that tile the video.

The summary is selected exactly as the evaluation that produced the run's F1 (`sm.inference`, DSNet-AF):
scores cls * ctr normalised, boxes decoded and NMS'd into step scores, shot values int(1000 mean), a 0/1 knapsack
of at most eval.proportion (15 %) of the frames. Outputs in O: `summary.json` (per step: frame, seconds, every
map; per shot: frames, seconds, score, selected; `keyshots` in frames and seconds; F1 against the users when the
h5 has user summaries; the run and checkpoints it came from) and `importance.png` (one video) or
`importance_<key>.png` (several; `plots.importance_figure`). Bad input (a missing checkpoint, a features file of
another width, NaN rows, an empty file, an unknown h5 key, shots that do not tile the frames) stops with one line
naming the file or flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iptnet_jax import fileio, run_models
from iptnet_jax.errors import InputError

FRAMES_PER_STEP = 15  # eccv16: one step per 15 frames (2 steps per second at 30 fps)
DEFAULT_FPS = 30.0
SHOT_FRAMES = 150  # vsumm.kts.ECCV16_FRAMES_PER_SHOT: the eccv16 files' shot count rule, and --shots=uniform
SHOT_MODES = ("auto", "kts", "uniform")
KTS_WINDOW = 1000  # steps per KTS window (windowed_kts_shots)
SUMMARY_FILE = "summary.json"


class FeaturesError(InputError):
  """A features, shots or flag value that cannot be summarized; the message names the file or the flag."""


@dataclasses.dataclass
class InputVideo:
  """One video to summarize: its features and whatever the file says about its frames and users."""

  name: str  # the h5 key, or the .npy file's stem
  where: str  # the file (and key) for messages
  features: np.ndarray  # (T, D) float32, finite
  picks: np.ndarray | None = None  # (T,) frames, from an h5
  n_frames: int | None = None
  change_points: np.ndarray | None = None  # (S, 2) inclusive, from an h5
  gtscore: np.ndarray | None = None  # (T,) in [0, 1]
  user_summary: np.ndarray | None = None  # (U, N) bool

  @classmethod
  def from_summ_video(cls, video, where: str) -> "InputVideo":
    return cls(video.name.split("/")[-1], where, video.features, video.picks, video.n_frames, video.change_points,
               video.gtscore, video.user_summary)


# ------------------------------------------------------------------------------------------------ reading

def _natural_key(key: str):
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _finite_rows(features: np.ndarray, where: str) -> np.ndarray:
  bad = ~np.isfinite(features).all(axis=1)
  if bad.any():
    rows = np.flatnonzero(bad)
    raise FeaturesError(f"{where}: row {int(rows[0])} (and {len(rows) - 1} more) holds NaN/inf; expected finite "
                        "features")
  return features


def _read_npy(path: Path) -> list[InputVideo]:
  try:
    features = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as error:
    raise FeaturesError(f"{path}: not a readable NumPy .npy file ({error})") from None
  if not isinstance(features, np.ndarray) or features.dtype.kind not in "biuf":
    raise FeaturesError(f"{path}: expected a numeric (T, D) array, got dtype {getattr(features, 'dtype', '?')}")
  if features.ndim != 2 or 0 in features.shape:
    raise FeaturesError(f"{path}: expected a non-empty (T, D) array of step features, got shape {features.shape}")
  features = _finite_rows(features.astype(np.float32), str(path))
  return [InputVideo(path.stem, str(path), features)]


def _read_h5(path: Path, keys: Sequence[str] | None) -> list[InputVideo]:
  import h5py

  from iptnet_jax.datasets import eccv16

  try:
    with h5py.File(path, "r") as h5:
      available = sorted(h5.keys(), key=_natural_key)
  except OSError as error:
    raise FeaturesError(f"{path}: not a readable HDF5 file ({error})") from None
  if not available:
    raise FeaturesError(f"{path}: an HDF5 file without videos (eccv16 layout: one group per video)")
  keys = list(keys) if keys else available
  unknown = [k for k in keys if k not in available]
  if unknown:
    raise FeaturesError(f"--keys: {path} has no video {unknown[0]!r}; it has {len(available)}: "
                        f"{', '.join(available[:8])}{', ...' if len(available) > 8 else ''}")
  videos = eccv16.read_videos(path, keys, require_user_summary=False)  # validates every field (one error line)
  return [InputVideo.from_summ_video(videos[k], f"{path} video '{k}'") for k in keys]


def read_features(path: str | Path, keys: Sequence[str] | None = None) -> list[InputVideo]:
  """The videos of a `.npy` (T, D) array or an eccv16 h5 file (all videos, or `keys`)."""
  path = Path(path)
  if not path.is_file():
    raise FeaturesError(f"--features={path}: no such file")
  if path.stat().st_size == 0:
    raise FeaturesError(f"{path}: empty file; expected a .npy (T, D) array or an eccv16 .h5 file")
  suffix = path.suffix.lower()
  if suffix == ".npy":
    if keys:
      raise FeaturesError(f"--keys: {path} is a .npy file (one video); --keys selects videos of an h5 file")
    return _read_npy(path)
  if suffix in (".h5", ".hdf5"):
    return _read_h5(path, keys)
  raise FeaturesError(f"--features={path}: expected a .npy (T, D) array or an eccv16 .h5 file")


def check_width(video: InputVideo, feature_dim: int, workdir: Path) -> None:
  width = video.features.shape[1]
  if width != feature_dim:
    raise FeaturesError(f"{video.where}: features of width {width}, but the run in {workdir} was trained on width "
                        f"{feature_dim}; extract the features the run was trained on")


def timeline(video: InputVideo, n_frames: int | None) -> tuple[np.ndarray, int]:
  """(picks, n_frames): the file's, or T steps spread evenly over n_frames (default 15 T) frames."""
  steps = video.features.shape[0]
  if video.picks is not None:
    if n_frames is not None and n_frames != video.n_frames:
      raise FeaturesError(f"--n_frames={n_frames}: {video.where} has its own n_frames={video.n_frames}")
    return video.picks, int(video.n_frames)
  n_frames = FRAMES_PER_STEP * steps if n_frames is None else int(n_frames)
  if n_frames < steps:
    raise FeaturesError(f"--n_frames={n_frames}: expected at least one frame per step ({steps} steps in "
                        f"{video.where})")
  return (np.arange(steps, dtype=np.int64) * n_frames) // steps, n_frames


def read_shots_file(path: str | Path, n_frames: int, where: str) -> np.ndarray:
  """(S, 2) inclusive [first, last] frames from a .npy / .json / .txt file; they must tile [0, n_frames - 1]."""
  from iptnet_jax.datasets import eccv16

  path = Path(path)
  if not path.is_file():
    raise FeaturesError(f"--shots={path}: no such file (expected auto, kts, uniform or a file of shots)")
  try:
    if path.suffix.lower() == ".npy":
      shots = np.load(path, allow_pickle=False)
    elif path.suffix.lower() == ".json":
      shots = np.asarray(json.loads(path.read_text()))
    else:
      shots = np.loadtxt(path, ndmin=2)
  except (ValueError, OSError, EOFError) as error:
    raise FeaturesError(f"--shots={path}: unreadable ({error})") from None
  shots = np.asarray(shots)
  if shots.ndim != 2 or shots.shape[1] != 2 or shots.shape[0] == 0 or shots.dtype.kind not in "iuf" or (
      shots.dtype.kind == "f" and not np.all(np.isfinite(shots) & (shots == np.round(shots)))):
    raise FeaturesError(f"--shots={path}: expected a non-empty (S, 2) array of whole [first, last] frames, got "
                        f"shape {shots.shape}")
  shots = shots.astype(np.int64)
  try:
    eccv16.check_shots(shots, shots[:, 1] - shots[:, 0] + 1, n_frames, f"--shots={path} for {where}")
  except eccv16.DatasetFormatError as error:
    raise FeaturesError(str(error)) from None
  return shots


def windowed_kts_shots(features: np.ndarray, picks: np.ndarray, n_frames: int, n_shots: int,
                       window: int = KTS_WINDOW) -> np.ndarray:
  """KTS change points (S, 2) of about `n_shots` shots. Up to `window` steps, `vsumm.kts.kts_shots` on the whole
  video; a longer video is cut into equal windows of at most `window` steps, each segmented by `cpd_nonlin` into
  its share of the shots (rounded, at least 1), every window start being a shot boundary. KTS's dynamic programme
  costs shots x steps^2 (a 3,600-step video with 1,440 shots: ~2e10 operations, tens of minutes on one core);
  windows make it linear in the length."""
  from iptnet_jax.vsumm import kts

  steps = features.shape[0]
  if steps <= window:
    return kts.kts_shots(features, picks, n_frames, n_shots=n_shots)[0]
  if not np.all(np.isfinite(features)):
    raise FeaturesError("step_features: expected finite values, got NaN/inf")
  edges = np.linspace(0, steps, math.ceil(steps / window) + 1).round().astype(np.int64)
  boundaries = []
  for first, stop in zip(edges[:-1], edges[1:]):
    share = int(min(max(1, round(n_shots * (stop - first) / steps)), stop - first))
    unit = kts.l2_normalise(features[first:stop])
    change_points, _ = kts.cpd_nonlin(unit @ unit.T, share - 1)
    if first > 0:
      boundaries.append(picks[first])
    boundaries.extend(picks[first + change_points].tolist())
  return kts.shots_from_boundaries(np.asarray(boundaries, np.int64), n_frames)[0]


def make_shots(video: InputVideo, mode: str, picks: np.ndarray, n_frames: int) -> tuple[np.ndarray, str]:
  """(change_points (S, 2), what they are)."""
  from iptnet_jax.vsumm import kts

  if mode == "auto":
    mode = "file" if video.change_points is not None else "kts"
  if mode == "file":
    if video.change_points is None:
      raise FeaturesError(f"--shots=file: {video.where} has no change_points")
    return np.asarray(video.change_points, np.int64), "the h5 file's change_points"
  if mode == "kts":
    count = min(kts.eccv16_shot_count(n_frames, SHOT_FRAMES), video.features.shape[0])
    cps = windowed_kts_shots(video.features, picks, n_frames, count)
    windows = math.ceil(video.features.shape[0] / KTS_WINDOW)
    return cps, (f"KTS (vsumm.kts), {len(cps)} shots ~ ceil(n_frames / {SHOT_FRAMES}) (the eccv16 rule)"
                 + (f", in {windows} windows of <= {KTS_WINDOW} steps" if windows > 1 else ""))
  if mode == "uniform":
    cps, _ = kts.uniform_shots(n_frames, SHOT_FRAMES)
    return cps, f"uniform, {SHOT_FRAMES} frames each"
  return read_shots_file(mode, n_frames, video.where), f"from {mode}"


# ------------------------------------------------------------------------------------------------ models

@functools.lru_cache(maxsize=8)
def maps_function(sm_model, lm_model, propagation: tuple | None):
  """jitted (sm_params, lm_variables, features (1, L, D), mask (1, L)) -> the step maps, dropout off: the SM's
  probabilities and offsets, the propagated map (paper Alg. 1; `propagation` = (variant, radius, alpha, sigma),
  None without PM) and the LM's query-free importance (None without an LM). Cached per model, so the splits of
  a run share the compiled functions."""
  import jax

  from iptnet_jax.iptnet import propagation as pm
  from iptnet_jax.lm.model import VSLNet
  from iptnet_jax.sm import model as sm_model_lib

  def maps(sm_params, lm_variables, features, mask):
    outputs = sm_model.apply({"params": sm_params}, features, mask, deterministic=True)
    result = sm_model_lib.predictions(outputs)
    if propagation is not None:
      variant, radius, alpha, sigma = propagation
      result["propagated"] = pm.propagate(result["cls_prob"], outputs["hidden"], mask, outputs.get("shift"),
                                          radius=radius, variant=variant, alpha=alpha, sigma=sigma)
    if lm_model is not None:
      result["lm"] = lm_model.apply(lm_variables, features, mask, deterministic=True,
                                    method=VSLNet.query_free_importance)
    return result

  return jax.jit(maps)


def propagation_settings(run: run_models.TrainedRun) -> tuple | None:
  if run.task != "iptnet" or not run.config.iptnet.get("propagation", True):
    return None
  c = run.config.iptnet
  return (c.variant, int(c.radius), float(c.alpha), float(c.sigma))


def compute_maps(run: run_models.TrainedRun, features: np.ndarray) -> dict[str, np.ndarray]:
  """Host (T,)-arrays of one video's maps (offsets (T, 2)), padded to the run's bucket lengths for the model."""
  import jax

  from iptnet_jax.datasets import input_pipeline

  steps = features.shape[0]
  length = input_pipeline.bucket_length(steps, tuple(run.config.data.buckets))
  padded = input_pipeline.pad_axis(np.asarray(features, np.float32), length)[None]
  mask = input_pipeline.length_mask([steps], length)
  fn = maps_function(run.sm.model, run.lm.model if run.lm else None, propagation_settings(run))
  outputs = jax.device_get(fn(run.sm.params, run.lm.variables if run.lm else None, padded, mask))
  return {k: np.asarray(v[0, :steps]) for k, v in outputs.items()}


# ------------------------------------------------------------------------------------------------ summaries

def select_keyshots(maps: dict, change_points: np.ndarray, picks: np.ndarray, n_frames: int, *, nms_thresh: float,
                    proportion: float) -> dict:
  """DSNet-AF's summary of one video (as `vsumm.evaluate.predict_summary_af`) with its intermediate scores."""
  from iptnet_jax.vsumm import bbox, evaluate, keyshots

  steps = maps["cls_prob"].shape[0]
  step_score = evaluate.normalized_step_scores(maps["cls_prob"], maps["ctr_prob"])
  boxes = bbox.clip_round_boxes(bbox.offsets_to_boxes(np.asarray(maps["offsets"], np.float32)), steps)
  kept_scores, kept_boxes = bbox.nms(step_score, boxes, nms_thresh)
  summary_score = bbox.boxes_to_step_scores(kept_scores, kept_boxes, steps)
  nfps = change_points[:, 1] - change_points[:, 0] + 1
  summary = keyshots.get_keyshot_summ(summary_score, change_points, n_frames, nfps, picks, proportion)
  values = keyshots.shot_values(keyshots.step_to_frame_scores(summary_score, picks, n_frames), change_points)
  return {"step_score": step_score, "summary_score": summary_score, "summary": summary, "shot_values": values}


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
  """Inclusive [first, last] runs of True."""
  edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
  return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))


def _rounded(values, digits: int = 5) -> list:
  return np.round(np.asarray(values, np.float64), digits).tolist()


def summarize_videos(run: run_models.TrainedRun, videos: Sequence[InputVideo], *, shots: str = "auto",
                     fps: float = DEFAULT_FPS, n_frames: int | None = None) -> list[dict]:
  """One JSON-ready result per video (see the module docstring)."""
  from iptnet_jax.vsumm import fscore

  config = run.config
  results = []
  for video in videos:
    check_width(video, run.sm.feature_dim, run.workdir)
    picks, frames = timeline(video, n_frames)
    change_points, shots_from = make_shots(video, shots, picks, frames)
    maps = compute_maps(run, video.features)
    chosen = select_keyshots(maps, change_points, picks, frames, nms_thresh=config.eval.nms_thresh,
                             proportion=config.eval.proportion)
    seconds = lambda f: np.asarray(f, np.float64) / fps
    summary = chosen["summary"]
    steps = {"frame": picks.tolist(), "seconds": _rounded(seconds(picks), 3),
             "sm_importance": _rounded(maps["cls_prob"]), "sm_centerness": _rounded(maps["ctr_prob"]),
             "sm_step_score": _rounded(chosen["step_score"]), "summary_score": _rounded(chosen["summary_score"])}
    if "lm" in maps:
      steps["lm_importance"] = _rounded(maps["lm"])
    if "propagated" in maps:
      steps["propagated"] = _rounded(maps["propagated"])
    if video.gtscore is not None:
      steps["gtscore"] = _rounded(video.gtscore)
    shot_rows = [{"frames": [int(a), int(b)], "seconds": [round(a / fps, 3), round((b + 1) / fps, 3)],
                  "score": float(v) / 1000, "selected": bool(summary[a])}
                 for (a, b), v in zip(change_points.tolist(), chosen["shot_values"].tolist())]
    spans = _spans(summary)
    result = {
        "video": video.name, "file": video.where, "num_steps": int(video.features.shape[0]), "n_frames": frames,
        "fps": fps, "duration_seconds": round(frames / fps, 3), "shots_from": shots_from, "steps": steps,
        "shots": shot_rows,
        "keyshots": {"proportion": config.eval.proportion, "frames": [[a, b] for a, b in spans],
                     "seconds": [[round(a / fps, 3), round((b + 1) / fps, 3)] for a, b in spans],
                     "num_frames": int(summary.sum()), "fraction": round(float(summary.mean()), 5)},
    }
    if video.user_summary is not None:
      metric = config.eval.metric if config.eval.metric != "auto" else fscore.eval_metric_for_key(video.where)
      result["fscore"] = {"value": fscore.summary_fscore(summary, video.user_summary, metric), "metric": metric,
                          "users": int(video.user_summary.shape[0])}
    results.append(result)
  return results


def plot_rows(result: dict) -> list[tuple[str, np.ndarray]]:
  steps = result["steps"]
  rows = [("SM importance", steps["sm_importance"])]
  if "lm_importance" in steps:
    rows.append(("LM (query-free)", steps["lm_importance"]))
  if "propagated" in steps:
    rows.append(("propagated (PM)", steps["propagated"]))
  if "gtscore" in steps:
    rows.append(("ground truth", steps["gtscore"]))
  return [(label, np.asarray(values)) for label, values in rows]


def plot_result(run: run_models.TrainedRun, result: dict, path: str | Path) -> Path:
  from iptnet_jax import plots

  split = f", split {run.split}" if run.split is not None else ""
  score = f"; F1 {100 * result['fscore']['value']:.1f}" if "fscore" in result else ""
  title = (f"{result['video']} ({result['num_steps']} steps, {result['duration_seconds']:.0f} s): "
           f"{run.task} run {run.workdir.name}{split}{score}")
  return plots.importance_figure(path, np.asarray(result["steps"]["seconds"]), plot_rows(result),
                                 result["keyshots"]["seconds"], result["duration_seconds"], title)


# ------------------------------------------------------------------------------------------------ command line

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m iptnet_jax.summarize", description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="a run's workdir (python -m iptnet_jax.main ... --workdir=W)")
  parser.add_argument("--split", type=int, default=None, help="which split's checkpoint (default: the first)")
  parser.add_argument("--features", required=True, help="a .npy (T, D) array or an eccv16 .h5 file")
  parser.add_argument("--keys", default="", help="comma-separated videos of the h5 file (default: all)")
  parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frames per second (default 30)")
  parser.add_argument("--n_frames", type=int, default=None, help="frames of a .npy video (default 15 x steps)")
  parser.add_argument("--shots", default="auto", help="auto, kts, uniform, or a file of (S, 2) [first, last] frames")
  parser.add_argument("--out", required=True, help="output folder for summary.json and the PNG(s)")
  args = parser.parse_args(list(argv))
  if not (args.fps > 0 and np.isfinite(args.fps)):
    raise FeaturesError(f"--fps={args.fps}: expected a positive frame rate")
  return args


def run(argv: Sequence[str]) -> dict:
  args = parse_args(argv)
  keys = [k for k in args.keys.split(",") if k]
  videos = read_features(args.features, keys)  # input errors before the models load
  trained = run_models.load_run(args.workdir, args.split, need_sm=True)
  results = summarize_videos(trained, videos, shots=args.shots, fps=args.fps, n_frames=args.n_frames)
  out = Path(args.out)
  try:
    out.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise fileio.write_error(out, error) from None
  pictures = []
  for result in results:
    name = "importance.png" if len(results) == 1 else f"importance_{result['video']}.png"
    pictures.append(str(plot_result(trained, result, out / name)))
  summary = {"source": trained.source(), "selection": "DSNet-AF keyshots from the SM (as the run's F1): cls * ctr, "
             "boxes + NMS, shot values, 0/1 knapsack of eval.proportion of the frames",
             "features": str(Path(args.features)), "videos": results, "plots": pictures}
  fileio.write_json(out / SUMMARY_FILE, summary)
  return summary


def main(argv: Sequence[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  try:
    summary = run(argv)
  except InputError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  for video in summary["videos"]:
    keyshots = video["keyshots"]
    score = f", F1 {100 * video['fscore']['value']:.1f} against {video['fscore']['users']} users" if "fscore" in video else ""
    print(f"{video['video']}: {video['num_steps']} steps, {len(video['shots'])} shots ({video['shots_from']}), "
          f"{len(keyshots['frames'])} keyshots = {100 * keyshots['fraction']:.1f} % of the frames{score}")
  print(f"wrote {Path(summary['plots'][0]).parent / SUMMARY_FILE} and {len(summary['plots'])} PNG(s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
