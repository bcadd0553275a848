"""TVSum-I3D: the real TVSum I3D features + the official TVSum50 annotation as an eccv16-layout h5 file.

Sources (all under the shared data folder, docs/data.md):
  vsumm/annotations/ydata-tvsum50.mat   official annotation, MATLAB v7.3: per video nframes and the 20 users'
                                        frame-level scores user_anno (20, nframes), 1..5
  vsumm/annotations/tvsum50_info.tsv    eccv16 key video_i <-> YouTube id, in .mat order
  features/tvsum/tvsum_anno.json        UMT's annotation: fps per video; anno (T, 20) is used as a check
  features/tvsum/video_features/{ytid}_rgb.npy, _opt.npy   I3D RGB / flow, (T, 1024), one row per 2-s segment

What each video gets (reference_spec.md §2.1 layout):
  features         float32 (T, 1024) rgb, or (T, 2048) rgb ‖ flow
  picks            (T,) first frame of each 2-s segment, ceil(2 i fps) (the first frame whose time j / fps is
                   >= 2 i seconds)
  n_frames         nframes of the .mat; T = floor(nframes / (2 fps)) holds for all 50 videos, the frames after
                   the last full 2-s segment (< 2 s) belong to the last shot
  gtscore          (T,) mean over users of user_anno at each segment's midpoint frame floor((2 i + 1) fps),
                   which is exactly how tvsum_anno.json's anno was sampled (checked for every video at build)
  change_points    (S, 2) inclusive [first, last] frames tiling [0, n_frames - 1]; n_frame_per_seg (S,)
  user_summary     float32 (20, n_frames) 0/1: per user, the 15 % knapsack keyshot summary of that user's
                   frame-level scores over the shots (`keyshots.get_keyshot_summ` with picks = arange(n_frames),
                   so a shot's value is the mean of the user's scores over all its frames)
  user_scores      float32 (T, 20): each user's 1..5 score at each segment's midpoint (= tvsum_anno.json's
                   anno), the labels of top-5 mAP highlight detection (vsumm/highlight.py)
  n_steps, video_name (YouTube id, bytes)   informational, as in the eccv16 files

Shots (`--shots`):
  kts       KTS (vsumm/kts.py) on the stored features with the eccv16 files' shot count ceil(n_frames / 150)
            (~5 s per shot), boundaries at picks. Default.
  kts-auto  KTS with the penalised choice of the number of shots (cpd_auto, ncp_max = T - 1, --vmax), DSNet's
            make_shots rule. On these features it is degenerate (vmax = 1: 20 of 50 videos get one shot and
            then no 15 % summary exists; vmax <= 0.7: many videos get one shot per step), so it is an option only.
  uniform   one shot per 2-s feature step (boundaries at picks).

The file name keeps 'tvsum' (DSNet's metric rule picks 'avg' from it):
  eccv16_dataset_tvsum_i3d_{rgb|rgbflow}_{kts|ktsauto|uniform}.h5
with a root attribute BUILD_INFO (JSON: options, videos, sha256 of every source file).

Highlight-detection splits (`--domain-splits`): umt_domain_splits.json (4 train + 1 val YouTube ids per TVSum
domain) as a DSNet-style yml next to the h5, `<h5 stem>_umt_domains.yml`: one entry per domain in
DOMAIN_ORDER (UMT's table order), train_keys = the 4 train videos, test_keys = the val video, keys
'<h5 file name>/video_N', and `domain: XX` (informational; the split loader accepts it next to the key lists).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import yaml

from iptnet_jax import fileio
from iptnet_jax.datasets import eccv16
from iptnet_jax.datasets.splits import read_utf8_text
from iptnet_jax.errors import InputError
from iptnet_jax.vsumm import highlight, keyshots, kts

SEGMENT_SECONDS = 2.0
SUMMARY_PROPORTION = 0.15
MIN_SUMMARY_FRACTION = 0.10
FEATURE_CHOICES = ("rgb", "rgb+flow")
SHOT_CHOICES = ("kts", "kts-auto", "uniform")

MAT_RELPATH = "vsumm/annotations/ydata-tvsum50.mat"
INFO_RELPATH = "vsumm/annotations/tvsum50_info.tsv"
UMT_ANNO_RELPATH = "features/tvsum/tvsum_anno.json"
DOMAIN_SPLITS_RELPATH = "features/tvsum/umt_domain_splits.json"
# The 10 TVSum categories in the column order of UMT's (and earlier highlight papers') TVSum table.
DOMAIN_ORDER = ("VT", "VU", "GA", "MS", "PK", "PR", "FM", "BK", "BT", "DS")
FEATURE_DIR_RELPATH = "features/tvsum/video_features"


class TvsumI3dError(InputError):
  """A TVSum source file or in-memory input that does not have the expected content."""


class TvsumSourceNotFoundError(TvsumI3dError, FileNotFoundError):
  """A TVSum source file or the shared data folder that does not exist."""


@dataclasses.dataclass(frozen=True, eq=False)
class TvsumVideo:
  """One video's raw inputs, before any derivation."""

  h5_key: str  # eccv16 key, video_i
  video_id: str  # YouTube id
  fps: float
  n_frames: int
  user_anno: np.ndarray  # (U, n_frames) frame-level user scores
  rgb: np.ndarray  # (T, 1024)
  flow: np.ndarray | None = None  # (T, 1024), needed for features='rgb+flow'
  umt_anno: np.ndarray | None = None  # (T, U), tvsum_anno.json's anno; when given, gtscore's sampling is checked


@dataclasses.dataclass(frozen=True)
class VideoStats:
  h5_key: str
  video_id: str
  n_steps: int
  n_frames: int
  fps: float
  n_shots: int
  summary_fraction: np.ndarray  # (U,) fraction of frames in each user's summary
  seconds: float  # time to build this video (KTS + knapsacks)

  def line(self) -> str:
    frac = self.summary_fraction
    mean_shot_s = self.n_frames / self.fps / self.n_shots
    return (f"{self.h5_key:>8} {self.video_id}  T={self.n_steps:3d}  frames={self.n_frames:5d}  fps={self.fps:6.3f}  "
            f"shots={self.n_shots:3d} (mean {mean_shot_s:4.1f} s)  summary {100 * frac.mean():4.1f} % "
            f"[{100 * frac.min():4.1f}, {100 * frac.max():4.1f}]  {self.seconds:5.2f} s")


# ---------------------------------------------------------------------------------------------- sampling


def num_segments(n_frames: int, fps: float) -> int:
  """Full 2-s segments in a video: floor(n_frames / (2 fps)) (UMT's feature rows and anno rows)."""
  # The tolerance keeps an exact multiple (e.g. 100 frames at 25 fps) from rounding down.
  return int(math.floor(n_frames / (SEGMENT_SECONDS * fps) + 1e-9))


def segment_start_frames(n_steps: int, fps: float) -> np.ndarray:
  """picks: the first frame of each 2-s segment, ceil(2 i fps)."""
  return np.ceil(np.arange(n_steps) * SEGMENT_SECONDS * fps - 1e-6).astype(np.int64)


def segment_mid_frames(n_steps: int, fps: float) -> np.ndarray:
  """The frame at each 2-s segment's midpoint, floor((2 i + 1) fps): where tvsum_anno.json sampled user_anno."""
  return np.floor((np.arange(n_steps) * SEGMENT_SECONDS + SEGMENT_SECONDS / 2) * fps + 1e-6).astype(np.int64)


# ---------------------------------------------------------------------------------------------- one video


def _shots(features: np.ndarray, picks: np.ndarray, n_frames: int, shots: str, vmax: float,
           frames_per_shot: int) -> tuple[np.ndarray, np.ndarray]:
  if shots == "kts":
    return kts.kts_shots(features, picks, n_frames, n_shots=min(kts.eccv16_shot_count(n_frames, frames_per_shot),
                                                                len(picks)))
  if shots == "kts-auto":
    return kts.kts_shots(features, picks, n_frames, vmax=vmax)
  if shots == "uniform":
    return kts.shots_from_boundaries(picks[1:], n_frames)
  raise TvsumI3dError(f"shots: expected one of {SHOT_CHOICES}, got {shots!r}")


def build_video_fields(video: TvsumVideo, *, features: str = "rgb", shots: str = "kts", vmax: float = 1.0,
                       frames_per_shot: int = kts.ECCV16_FRAMES_PER_SHOT,
                       min_summary_fraction: float = MIN_SUMMARY_FRACTION) -> tuple[dict, VideoStats]:
  """Derives and validates one video's eccv16 fields (module docstring) from its raw inputs."""
  start = time.perf_counter()
  where = f"video {video.h5_key} ({video.video_id})"
  if features not in FEATURE_CHOICES:
    raise TvsumI3dError(f"features: expected one of {FEATURE_CHOICES}, got {features!r}")
  n_frames = int(video.n_frames)
  if n_frames <= 0 or not (math.isfinite(video.fps) and video.fps > 0):
    raise TvsumI3dError(f"{where}: expected a positive frame count and fps, got {n_frames}, {video.fps}")
  user_anno = np.asarray(video.user_anno, dtype=np.float64)
  if user_anno.ndim != 2 or user_anno.shape[1] != n_frames or user_anno.shape[0] == 0:
    raise TvsumI3dError(f"{where}: user_anno: expected (users, n_frames={n_frames}), got shape {user_anno.shape}")
  if not np.all(np.isfinite(user_anno)):
    raise TvsumI3dError(f"{where}: user_anno: expected finite scores, got NaN/inf")

  n_steps = num_segments(n_frames, video.fps)
  streams = [("rgb", video.rgb)] + ([("flow", video.flow)] if features == "rgb+flow" else [])
  for name, array in streams:
    if array is None:
      raise TvsumI3dError(f"{where}: features='{features}' needs the {name} stream, which is missing")
    shape = np.shape(array)
    if len(shape) != 2 or shape[0] != n_steps:
      raise TvsumI3dError(f"{where}: {name} features: expected {n_steps} rows = floor(n_frames / (2 fps)) = "
                          f"floor({n_frames} / (2 x {video.fps:.4f})), got shape {shape}")
    if not np.all(np.isfinite(array)):
      raise TvsumI3dError(f"{where}: {name} features: expected finite values, got NaN/inf")
  step_features = np.concatenate([np.asarray(a, dtype=np.float32) for _, a in streams], axis=1)

  picks = segment_start_frames(n_steps, video.fps)
  mid_frames = segment_mid_frames(n_steps, video.fps)
  step_user_scores = user_anno[:, mid_frames].T  # (T, U)
  if video.umt_anno is not None:
    umt_anno = np.asarray(video.umt_anno)
    if umt_anno.shape != step_user_scores.shape or not np.array_equal(umt_anno, step_user_scores):
      raise TvsumI3dError(f"{where}: tvsum_anno.json's anno {umt_anno.shape} is not user_anno sampled at the "
                          f"2-s segment midpoints {step_user_scores.shape}; the sources disagree")
  gtscore = step_user_scores.mean(axis=1)

  change_points, n_frame_per_seg = _shots(step_features, picks, n_frames, shots, vmax, frames_per_shot)
  eccv16.check_shots(change_points, n_frame_per_seg, n_frames, where)  # before the knapsacks rely on them

  frame_picks = np.arange(n_frames)
  user_summary = np.stack([
      keyshots.get_keyshot_summ(user_anno[u], change_points, n_frames, n_frame_per_seg, frame_picks,
                                proportion=SUMMARY_PROPORTION) for u in range(user_anno.shape[0])
  ]).astype(np.float32)
  fraction = user_summary.mean(axis=1, dtype=np.float64)
  # The knapsack capacity is int(0.15 N) frames, so a summary never exceeds 15 %; far below means shots too
  # long to pack (e.g. a single shot), which makes the F-score meaningless.
  low = np.flatnonzero(fraction < min_summary_fraction)
  if low.size or np.any(user_summary.sum(axis=1) > int(SUMMARY_PROPORTION * n_frames)):
    raise TvsumI3dError(f"{where}: user summaries must cover {100 * min_summary_fraction:.0f}-15 % of the frames; "
                        f"users {low.tolist()} cover {np.round(100 * fraction[low], 1).tolist()} % with "
                        f"{len(change_points)} shots (longest {n_frame_per_seg.max()} frames); use other --shots")

  fields = {
      "features": step_features,
      "gtscore": gtscore.astype(np.float32),
      "user_summary": user_summary,
      "change_points": change_points.astype(np.int64),
      "n_frame_per_seg": n_frame_per_seg.astype(np.int64),
      "n_frames": np.int64(n_frames),
      "picks": picks,
      "user_scores": step_user_scores.astype(np.float32),
      "n_steps": np.int64(n_steps),
      "video_name": np.bytes_(video.video_id),
  }
  stats = VideoStats(video.h5_key, video.video_id, n_steps, n_frames, float(video.fps), len(change_points),
                     fraction, time.perf_counter() - start)
  return fields, stats


def build_from_arrays(videos: Sequence[TvsumVideo], *, features: str = "rgb", shots: str = "kts",
                      vmax: float = 1.0, frames_per_shot: int = kts.ECCV16_FRAMES_PER_SHOT,
                      min_summary_fraction: float = MIN_SUMMARY_FRACTION,
                      log: Callable[[str], None] | None = None) -> tuple[dict[str, dict], list[VideoStats]]:
  """In-memory build: {h5_key: eccv16 fields} and per-video stats, in the order given."""
  if not videos:
    raise TvsumI3dError("no videos to build")
  keys = [v.h5_key for v in videos]
  if len(set(keys)) != len(keys):
    raise TvsumI3dError(f"duplicate video keys: {sorted({k for k in keys if keys.count(k) > 1})}")
  all_fields, all_stats = {}, []
  for video in videos:
    fields, stats = build_video_fields(video, features=features, shots=shots, vmax=vmax,
                                       frames_per_shot=frames_per_shot, min_summary_fraction=min_summary_fraction)
    all_fields[video.h5_key] = fields
    all_stats.append(stats)
    if log:
      log(stats.line())
  return all_fields, all_stats


# ---------------------------------------------------------------------------------------------- readers


def default_shared_dir() -> Path:
  """$IPTNET_SHARED_DATA, else ../shared/data next to the repository root."""
  env = os.environ.get("IPTNET_SHARED_DATA")
  repo = Path(__file__).resolve().parents[3]  # iptnet_jax/datasets/builders/tvsum_i3d.py -> the repository root
  return Path(env) if env else repo.parent / "shared" / "data"


def _require_file(path: Path) -> Path:
  if not path.is_file():
    raise TvsumSourceNotFoundError(f"TVSum source file not found: {path}. Put the shared data folder "
                                   "(docs/data.md) there or pass --shared / set IPTNET_SHARED_DATA")
  return path


def _tsv_reader(path: Path) -> csv.DictReader:
  return csv.DictReader(io.StringIO(read_utf8_text(path, TvsumI3dError), newline=""), delimiter="\t")


def read_info_tsv(path: str | os.PathLike) -> list[tuple[str, str, int]]:
  """tvsum50_info.tsv -> [(h5_key, YouTube id, nframes)] in file order (= .mat order)."""
  path = _require_file(Path(path))
  reader = _tsv_reader(path)
  missing = {"h5_key", "video_id", "nframes"} - set(reader.fieldnames or ())
  if missing:
    raise TvsumI3dError(f"{path}: missing columns {sorted(missing)} (has {reader.fieldnames})")
  rows = []
  for line_no, row in enumerate(reader, start=2):
    try:
      rows.append((row["h5_key"], row["video_id"], int(row["nframes"])))
    except (TypeError, ValueError):
      raise TvsumI3dError(f"{path}: line {line_no}: nframes {row['nframes']!r} is not an integer") from None
  expected = [f"video_{i}" for i in range(1, len(rows) + 1)]
  if [r[0] for r in rows] != expected:
    raise TvsumI3dError(f"{path}: h5_key column must be video_1..video_{len(rows)} in order")
  return rows


def _mat_string(h5: h5py.File, ref) -> str:
  # MATLAB v7.3 stores a char array as uint16 code units behind an object reference.
  return "".join(chr(c) for c in np.asarray(h5[ref]).ravel())


def read_tvsum_mat(path: str | os.PathLike) -> list[tuple[str, int, np.ndarray]]:
  """ydata-tvsum50.mat -> [(YouTube id, nframes, user_anno (20, nframes))] in file order."""
  path = _require_file(Path(path))
  try:
    h5 = h5py.File(path, "r")
  except OSError as e:
    raise TvsumI3dError(f"{path}: not a MATLAB v7.3 (HDF5) file ({e})") from None
  with h5:
    if "tvsum50" not in h5 or not all(k in h5["tvsum50"] for k in ("video", "nframes", "user_anno")):
      raise TvsumI3dError(f"{path}: expected a struct tvsum50 with fields video, nframes, user_anno")
    table = h5["tvsum50"]
    refs = {k: np.asarray(table[k]).ravel() for k in ("video", "nframes", "user_anno")}
    if len({len(v) for v in refs.values()}) != 1:
      raise TvsumI3dError(f"{path}: tvsum50 fields have different lengths")
    videos = []
    for i in range(len(refs["video"])):
      video_id = _mat_string(h5, refs["video"][i])
      n_frames = int(np.asarray(h5[refs["nframes"][i]]).reshape(()))
      user_anno = np.asarray(h5[refs["user_anno"][i]], dtype=np.float64)
      if user_anno.ndim != 2 or user_anno.shape[1] != n_frames:
        raise TvsumI3dError(f"{path}: video {i + 1} ({video_id}): user_anno shape {user_anno.shape}, expected "
                            f"(users, nframes={n_frames})")
      videos.append((video_id, n_frames, user_anno))
  return videos


def read_umt_anno(path: str | os.PathLike) -> dict[str, dict]:
  """tvsum_anno.json -> {YouTube id: {'fps': float, 'anno': (T, U) array, 'domain': str}}."""
  path = _require_file(Path(path))
  try:
    raw = json.loads(read_utf8_text(path, TvsumI3dError))
  except json.JSONDecodeError as e:
    raise TvsumI3dError(f"{path}: not valid JSON ({e})") from None
  if not isinstance(raw, dict):
    raise TvsumI3dError(f"{path}: expected a JSON object {{YouTube id: {{fps, anno, domain}}}}, got "
                        f"{type(raw).__name__}")
  out = {}
  for video_id, entry in raw.items():
    try:
      out[video_id] = {"fps": float(entry["fps"]), "anno": np.asarray(entry["anno"], dtype=np.float64),
                       "domain": str(entry["domain"])}
    except (KeyError, TypeError, ValueError) as e:
      raise TvsumI3dError(f"{path}: video {video_id}: expected fps, anno (T x users) and domain ({e})") from None
  return out


def _load_npy(path: Path, key: str) -> np.ndarray:
  try:
    return np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise TvsumI3dError(f"{path}: {key}: not a readable .npy array ({e})") from None


def load_videos(shared_dir: str | os.PathLike, *, features: str = "rgb",
                keys: Sequence[str] | None = None) -> list[TvsumVideo]:
  """Reads and cross-checks the sources for `keys` (default: all, in the official order)."""
  shared = Path(shared_dir)
  if not shared.is_dir():
    raise TvsumSourceNotFoundError(f"shared data folder not found: {shared} (docs/data.md; pass --shared or set "
                                   "IPTNET_SHARED_DATA)")
  info = read_info_tsv(shared / INFO_RELPATH)
  mat = read_tvsum_mat(shared / MAT_RELPATH)
  umt = read_umt_anno(shared / UMT_ANNO_RELPATH)
  if len(info) != len(mat):
    raise TvsumI3dError(f"{INFO_RELPATH} has {len(info)} videos, {MAT_RELPATH} has {len(mat)}")
  wanted = list(keys) if keys is not None else [row[0] for row in info]
  by_key = {row[0]: (row, mat_row) for row, mat_row in zip(info, mat)}
  unknown = [k for k in wanted if k not in by_key]
  if unknown:
    raise TvsumI3dError(f"unknown video keys {unknown[:5]} (the info table has video_1..video_{len(info)})")
  videos = []
  for key in wanted:
    (h5_key, video_id, info_frames), (mat_id, mat_frames, user_anno) = by_key[key]
    if (video_id, info_frames) != (mat_id, mat_frames):
      raise TvsumI3dError(f"{key}: {INFO_RELPATH} says {video_id} with {info_frames} frames, {MAT_RELPATH} "
                          f"says {mat_id} with {mat_frames}")
    if video_id not in umt:
      raise TvsumI3dError(f"{UMT_ANNO_RELPATH}: no entry for {key} ({video_id})")
    streams = {}
    for name, suffix in (("rgb", "rgb"), ("flow", "opt")):
      if name == "flow" and features != "rgb+flow":
        continue
      streams[name] = _load_npy(_require_file(shared / FEATURE_DIR_RELPATH / f"{video_id}_{suffix}.npy"), key)
    videos.append(TvsumVideo(h5_key, video_id, umt[video_id]["fps"], mat_frames, user_anno, streams["rgb"],
                             streams.get("flow"), umt_anno=umt[video_id]["anno"]))
  return videos


# ---------------------------------------------------------------------------------------------- writing


def output_name(features: str, shots: str) -> str:
  return f"eccv16_dataset_tvsum_i3d_{features.replace('+', '')}_{shots.replace('-', '')}.h5"


def _sha256(path: Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def source_checksums(shared_dir: Path, videos: Sequence[TvsumVideo], features: str) -> dict[str, str]:
  paths = [MAT_RELPATH, INFO_RELPATH, UMT_ANNO_RELPATH]
  for video in videos:
    paths.append(f"{FEATURE_DIR_RELPATH}/{video.video_id}_rgb.npy")
    if features == "rgb+flow":
      paths.append(f"{FEATURE_DIR_RELPATH}/{video.video_id}_opt.npy")
  return {p: _sha256(shared_dir / p) for p in paths}


def write_dataset(path: str | os.PathLike, fields_by_key: Mapping[str, Mapping[str, np.ndarray]],
                  build_info: Mapping, *, overwrite: bool = False) -> Path:
  """Writes the videos (eccv16.write_eccv16_h5 validates them) plus a BUILD_INFO root attribute, atomically."""
  path = Path(path)
  if path.exists() and not overwrite:
    raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
  staging = path.with_name(path.name + ".staging")
  try:
    eccv16.write_eccv16_h5(staging, fields_by_key, require_user_summary=True, overwrite=True)
    # BUILD_INFO is added to an in-memory copy, which fileio writes: h5py writing straight to a full disk can
    # crash the process in its close, and fileio reports an OS error as one line and leaves nothing behind.
    buffer = io.BytesIO(staging.read_bytes())
    with h5py.File(buffer, "r+") as h5:
      h5.attrs["BUILD_INFO"] = json.dumps(build_info, sort_keys=True)
    fileio.atomic_write_bytes(path, buffer.getvalue())
  finally:
    staging.unlink(missing_ok=True)
  return path


def build_dataset(shared_dir: str | os.PathLike, out_dir: str | os.PathLike, *, features: str = "rgb",
                  shots: str = "kts", vmax: float = 1.0, frames_per_shot: int = kts.ECCV16_FRAMES_PER_SHOT,
                  keys: Sequence[str] | None = None, overwrite: bool = False,
                  log: Callable[[str], None] | None = print) -> tuple[Path, list[VideoStats]]:
  """Reads the shared sources, builds every video (or `keys`) and writes out_dir/<output_name>."""
  if features not in FEATURE_CHOICES:
    raise TvsumI3dError(f"features: expected one of {FEATURE_CHOICES}, got {features!r}")
  if shots not in SHOT_CHOICES:
    raise TvsumI3dError(f"shots: expected one of {SHOT_CHOICES}, got {shots!r}")
  shared = Path(shared_dir)
  out_path = Path(out_dir) / output_name(features, shots)
  if out_path.exists() and not overwrite:
    raise FileExistsError(f"{out_path} exists; pass --overwrite to replace it")
  start = time.perf_counter()
  videos = load_videos(shared, features=features, keys=keys)
  read_s = time.perf_counter() - start
  fields, stats = build_from_arrays(videos, features=features, shots=shots, vmax=vmax,
                                    frames_per_shot=frames_per_shot, log=log)
  build_info = {
      "builder": "iptnet_jax.datasets.tvsum_i3d",
      "features": features,
      "shots": shots,
      "vmax": vmax if shots == "kts-auto" else None,
      "frames_per_shot": frames_per_shot if shots == "kts" else None,
      "summary_proportion": SUMMARY_PROPORTION,
      "videos": [v.h5_key for v in videos],
      "sources_sha256": source_checksums(shared, videos, features),
  }
  write_dataset(out_path, fields, build_info, overwrite=overwrite)
  if log:
    n_shots = np.array([s.n_shots for s in stats])
    n_steps = np.array([s.n_steps for s in stats])
    seconds = np.array([s.n_frames / s.fps for s in stats])
    fraction = np.concatenate([s.summary_fraction for s in stats])
    log(f"{len(stats)} videos -> {out_path}: T {n_steps.min()}..{n_steps.max()} (sum {n_steps.sum()}), "
        f"shots/video mean {n_shots.mean():.1f} ({n_shots.min()}..{n_shots.max()}), mean shot "
        f"{seconds.sum() / n_shots.sum():.2f} s, user summary {100 * fraction.mean():.2f} % of frames "
        f"({100 * fraction.min():.1f}..{100 * fraction.max():.1f}); read {read_s:.1f} s, build "
        f"{sum(s.seconds for s in stats):.1f} s, total {time.perf_counter() - start:.1f} s")
  return out_path, stats


# ---------------------------------------------------------------------------------------------- domain splits


def domain_splits_name(h5_name: str) -> str:
  """The domain split file written for an h5: '<h5 stem>_umt_domains.yml'."""
  return f"{Path(h5_name).stem}_umt_domains.yml"


def read_info_categories(path: str | os.PathLike) -> dict[str, str]:
  """tvsum50_info.tsv -> {YouTube id: category} (empty when the table has no category column)."""
  path = _require_file(Path(path))
  reader = _tsv_reader(path)
  if "category" not in (reader.fieldnames or ()):
    return {}
  return {row["video_id"]: row["category"] for row in reader}


def domain_split_entries(splits: Mapping[str, Mapping[str, Sequence[str]]], key_of_id: Mapping[str, str],
                         h5_name: str, categories: Mapping[str, str] | None = None) -> list[dict]:
  """UMT's per-domain splits as DSNet-style entries, one per domain in DOMAIN_ORDER.

  splits: {domain: {'train': ids, 'val': ids}} (highlight.domain_splits); key_of_id: YouTube id -> video_N;
  categories (optional): YouTube id -> TVSum category, checked against each video's domain.
  """
  unknown = sorted(set(splits) - set(DOMAIN_ORDER))
  if unknown:
    raise TvsumI3dError(f"domain splits: unknown domains {unknown}; expected TVSum's {list(DOMAIN_ORDER)}")
  seen: dict[str, str] = {}
  entries = []
  for domain in (d for d in DOMAIN_ORDER if d in splits):
    entry: dict = {"domain": domain}
    for part, field in (("train", "train_keys"), ("val", "test_keys")):
      keys = []
      for video_id in splits[domain][part]:
        if video_id not in key_of_id:
          raise TvsumI3dError(f"domain splits: {domain} {part}: video {video_id} is not in {INFO_RELPATH}")
        if video_id in seen:
          raise TvsumI3dError(f"domain splits: video {video_id} is in both {seen[video_id]} and {domain}")
        if categories and categories.get(video_id, domain) != domain:
          raise TvsumI3dError(f"domain splits: video {video_id} ({key_of_id[video_id]}) is listed under {domain} "
                              f"but {INFO_RELPATH} says category {categories[video_id]}")
        seen[video_id] = domain
        keys.append(f"{h5_name}/{key_of_id[video_id]}")
      entry[field] = keys
    entries.append(entry)
  return entries


def write_domain_splits(shared_dir: str | os.PathLike, out_dir: str | os.PathLike, h5_name: str, *,
                        overwrite: bool = False) -> Path:
  """Writes out_dir/<domain_splits_name(h5_name)> from the shared umt_domain_splits.json."""
  shared = Path(shared_dir)
  out_path = Path(out_dir) / domain_splits_name(h5_name)
  if out_path.exists() and not overwrite:
    raise FileExistsError(f"{out_path} exists; pass --overwrite to replace it")
  key_of_id = {video_id: key for key, video_id, _ in read_info_tsv(shared / INFO_RELPATH)}
  entries = domain_split_entries(highlight.domain_splits(shared / DOMAIN_SPLITS_RELPATH), key_of_id, h5_name,
                                 read_info_categories(shared / INFO_RELPATH))
  header = (f"# UMT's TVSum highlight-detection splits ({DOMAIN_SPLITS_RELPATH}): per domain, train_keys = the 4 "
            f"train videos, test_keys = the val video.\n# Written by iptnet_jax.datasets.tvsum_i3d for {h5_name}.\n")
  try:
    out_path.parent.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise fileio.write_error(out_path.parent, error) from None
  fileio.atomic_write_text(out_path, header + yaml.safe_dump(entries, sort_keys=False))
  return out_path


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m iptnet_jax.datasets.tvsum_i3d", description=__doc__.split("\n")[0])
  parser.add_argument("--shared", type=Path, default=None,
                      help="shared data folder (default: $IPTNET_SHARED_DATA or ../shared/data)")
  parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repository)")
  parser.add_argument("--features", choices=FEATURE_CHOICES, default="rgb")
  parser.add_argument("--shots", choices=SHOT_CHOICES, default="kts")
  parser.add_argument("--vmax", type=float, default=1.0, help="KTS penalty weight (--shots kts-auto only)")
  parser.add_argument("--frames-per-shot", type=int, default=kts.ECCV16_FRAMES_PER_SHOT,
                      help="--shots kts: number of shots = ceil(n_frames / this) (eccv16 files: 150)")
  parser.add_argument("--videos", default=None, help="comma-separated keys (video_1,video_7); default all 50")
  parser.add_argument("--domain-splits", action="store_true",
                      help="also write UMT's per-domain highlight splits as <h5 stem>_umt_domains.yml")
  parser.add_argument("--overwrite", action="store_true")
  args = parser.parse_args(argv)
  keys = [k.strip() for k in args.videos.split(",") if k.strip()] if args.videos else None
  shared = args.shared or default_shared_dir()
  try:
    out_path, _ = build_dataset(shared, args.out, features=args.features, shots=args.shots, vmax=args.vmax,
                                frames_per_shot=args.frames_per_shot, keys=keys, overwrite=args.overwrite)
    if args.domain_splits:
      print(f"domain splits -> {write_domain_splits(shared, args.out, out_path.name, overwrite=args.overwrite)}")
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
