"""The eccv16 h5 layout (Zhang et al. 2016; DR-DSN / DSNet / VASNet / PGL-SUM all read it).

One top-level group per video (`video_1`, ...), holding (reference_spec.md §2.1):

  features         (T, D) float   one row per subsampled frame ("step")
  gtscore          (T,)   float   mean user importance per step
  user_summary     (U, N) 0/1     per-user keyshot summaries (evaluation only; absent in OVP/YouTube); more
                                  than N columns are accepted when the extra ones are all zero (DSNet pads so).
                                  Every user selects some but not all frames.
  change_points    (S, 2) int     shots [first, last], inclusive frame indices, tiling [0, N - 1]
  n_frame_per_seg  (S,)   int     shot lengths last - first + 1 (knapsack weights)
  n_frames         ()     int     original frame count N
  picks            (T,)   int     frame index of each step, strictly increasing; the last one within two pick
                                  gaps of N (the last step stands for the frames up to N)
  user_scores      (T, U) float   optional, not in the original files: per-user importance at each step, which
                                  top-5 mAP highlight detection needs (the TVSum-I3D builder writes it)

Reading validates every field, alone (shape, real or whole numbers, finite) and against the others (the
invariants above: a file that breaks one would train or score silently wrong), and raises one
`DatasetFormatError` that names the file, the video and the fields. Writing validates first and then writes
atomically (temporary file + rename), so a failed write never leaves a half-written h5 behind.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from iptnet_jax import fileio
from iptnet_jax.errors import InputError
from iptnet_jax.vsumm.knapsack import VsummInputError, as_int_array, as_int_scalar

REQUIRED_FIELDS = ("features", "gtscore", "change_points", "n_frame_per_seg", "n_frames", "picks")
EVAL_FIELD = "user_summary"
USER_SCORES_FIELD = "user_scores"


class DatasetFormatError(InputError):
  """A dataset file whose content does not have the expected layout."""


class DatasetNotFoundError(InputError, FileNotFoundError):
  """A dataset file that does not exist."""


@dataclasses.dataclass(frozen=True, eq=False)
class SummVideo:
  """One summarization video, validated and ready for training or evaluation.

  `gtscore` is already min-max normalised per video, as DSNet's loader does.
  """

  name: str  # "<h5 file name>/<video key>", unique across files; DSNet's metric rule reads it
  features: np.ndarray  # (T, D) float32
  gtscore: np.ndarray  # (T,) float32 in [0, 1]
  change_points: np.ndarray  # (S, 2) int64, inclusive
  n_frame_per_seg: np.ndarray  # (S,) int64
  n_frames: int
  picks: np.ndarray  # (T,) int64
  user_summary: np.ndarray | None  # (U, N) bool, None for training-only videos
  user_scores: np.ndarray | None = None  # (T, U) per-user step scores, for top-5 mAP; None when absent

  @property
  def num_steps(self) -> int:
    return int(self.features.shape[0])


def _fail(where: str, field: str, expected: str, got) -> DatasetFormatError:
  return DatasetFormatError(f"{where}: field '{field}': expected {expected}, got {got}")


def _disagree(where: str, fields: str, expected: str, got) -> DatasetFormatError:
  """Two fields that are each well-formed but inconsistent with each other."""
  return DatasetFormatError(f"{where}: fields {fields} disagree: expected {expected}, got {got}")


def _real(where: str, field: str, value) -> np.ndarray:
  """The field as an array of real numbers: strings, objects and complex values are refused (numpy would drop
  an imaginary part with only a warning, and comparisons on strings raise)."""
  array = np.asarray(value)
  if array.dtype.kind not in "biuf":
    raise _fail(where, field, "real numbers", f"dtype {array.dtype}")
  return array


def _whole(where: str, field: str, check, value, *args):
  """vsumm's integer checks (`as_int_array`, `as_int_scalar`): whole numbers only, so that a float frame index is
  never truncated; their error is re-raised naming the file and video."""
  try:
    return check(field, value, *args)
  except VsummInputError as error:
    # The message starts with the field name (knapsack.input_error); keep the rest, prefixed with where.
    raise DatasetFormatError(f"{where}: field '{field}'{str(error)[len(field):]}") from None


def check_shots(cps: np.ndarray, nfps: np.ndarray, n_frames: int, where: str) -> None:
  """Shots (S, 2) with 0 <= first <= last < n_frames must tile frames [0, n_frames - 1], each frame in exactly one
  shot, with n_frame_per_seg their lengths: the knapsack weighs a shot by n_frame_per_seg but the summary takes
  the frames of change_points, and frames in no shot can never be selected."""
  if cps[0, 0] != 0 or cps[-1, 1] != n_frames - 1:
    raise _disagree(where, "'change_points' and 'n_frames'", f"shots covering frames [0, {n_frames - 1}]",
                    f"shots covering [{cps[0, 0]}, {cps[-1, 1]}] (is n_frames right?)")
  step = cps[1:, 0] - cps[:-1, 1]  # 1 where shot k + 1 starts right after shot k
  if np.any(step != 1):
    k = int(np.flatnonzero(step != 1)[0])
    what = "overlap" if step[k] < 1 else f"leave frames [{cps[k, 1] + 1}, {cps[k + 1, 0] - 1}] in no shot"
    raise _fail(where, "change_points", "shots that tile the frames (each frame in exactly one shot)",
                f"shots {k} {cps[k].tolist()} and {k + 1} {cps[k + 1].tolist()}, which {what}")
  lengths = cps[:, 1] - cps[:, 0] + 1
  if not np.array_equal(nfps, lengths):
    k = int(np.flatnonzero(nfps != lengths)[0])
    raise _disagree(where, "'n_frame_per_seg' and 'change_points'", "the shot lengths last - first + 1",
                    f"n_frame_per_seg[{k}] = {nfps[k]} for shot {k} {cps[k].tolist()} of {lengths[k]} frames")


def _check_picks_cover(picks: np.ndarray, n_frames: int, where: str) -> None:
  """The last step stands for the frames from the last pick to n_frames (keyshots.step_to_frame_scores); more than
  two pick gaps of them means n_frames is not the video the picks were taken from."""
  if picks.shape[0] < 2:
    return
  most = int(picks[-1] + 2 * np.diff(picks).max())
  if n_frames > most:
    raise _disagree(where, "'n_frames' and 'picks'",
                    f"n_frames <= {most} (last pick {picks[-1]} + two of the largest pick gap "
                    f"{int(np.diff(picks).max())})", f"n_frames={n_frames}")


def _check_user_summary(users: np.ndarray, n_frames: int, where: str) -> None:
  """(users, frames) with one column per frame; DSNet's files may pad with extra all-zero columns."""
  if users.shape[1] < n_frames:
    hint = " (transposed? it should be (users, frames))" if users.shape[0] == n_frames else ""
    raise _disagree(where, f"'{EVAL_FIELD}' and 'n_frames'", f"shape (users, n_frames={n_frames})",
                    f"shape {users.shape}{hint}")
  padding = users[:, n_frames:]
  if padding.any():
    user, column = (int(i) for i in np.argwhere(padding)[0])
    raise _disagree(where, f"'{EVAL_FIELD}' and 'n_frames'",
                    f"only zero padding after the n_frames={n_frames} frames",
                    f"user {user} selecting frame {n_frames + column} of {users.shape[1]} columns")
  selected = np.count_nonzero(users[:, :n_frames], axis=1)
  for bad, what in ((selected == 0, "no frame"), (selected == n_frames, "every frame")):
    if bad.any():
      raise _fail(where, EVAL_FIELD, "every user to select some but not all frames",
                  f"users {np.flatnonzero(bad).tolist()} (rows, from 0) selecting {what}")


def validate_video_fields(fields: Mapping[str, np.ndarray], where: str, *, require_user_summary: bool) -> None:
  """Checks one video's raw fields, each alone and against the others; raises DatasetFormatError naming `where`
  and the fields."""
  for field in REQUIRED_FIELDS + ((EVAL_FIELD,) if require_user_summary else ()):
    if field not in fields:
      raise DatasetFormatError(f"{where}: missing field '{field}' (eccv16 layout needs {', '.join(REQUIRED_FIELDS)}"
                               f"{' and user_summary' if require_user_summary else ''})")
  features = _real(where, "features", fields["features"])
  if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
    raise _fail(where, "features", "a non-empty (T, D) array", f"shape {features.shape}")
  if not np.all(np.isfinite(features)):
    bad = int(np.argmax(~np.isfinite(features).all(axis=1)))
    raise _fail(where, "features", "finite values", f"NaN/inf (first at step {bad})")
  num_steps = features.shape[0]

  gtscore = _real(where, "gtscore", fields["gtscore"])
  if gtscore.shape != (num_steps,):
    raise _fail(where, "gtscore", f"shape ({num_steps},) to match features", f"shape {gtscore.shape}")
  if not np.all(np.isfinite(gtscore)):
    raise _fail(where, "gtscore", "finite values", "NaN/inf")

  n_frames = np.asarray(fields["n_frames"])
  n_frames = _whole(where, "n_frames", as_int_scalar, n_frames.reshape(()) if n_frames.size == 1 else n_frames, 1)

  picks = _whole(where, "picks", as_int_array, fields["picks"], 1)
  if picks.shape != (num_steps,):
    raise _fail(where, "picks", f"shape ({num_steps},) to match features", f"shape {picks.shape}")
  if picks[0] < 0 or picks[-1] >= n_frames or np.any(np.diff(picks) <= 0):
    raise _fail(where, "picks", f"strictly increasing frame indices in [0, {n_frames})",
                f"range [{picks.min()}, {picks.max()}]")
  _check_picks_cover(picks, n_frames, where)

  cps = _whole(where, "change_points", as_int_array, fields["change_points"], 2)
  if cps.shape[1] != 2 or cps.shape[0] == 0:
    raise _fail(where, "change_points", "a non-empty (S, 2) array of [first, last] frames", f"shape {cps.shape}")
  if np.any(cps[:, 0] > cps[:, 1]) or cps.min() < 0 or cps.max() >= n_frames:
    raise _fail(where, "change_points", f"shots with 0 <= first <= last < n_frames={n_frames}",
                f"range [{cps.min()}, {cps.max()}]")
  nfps = _whole(where, "n_frame_per_seg", as_int_array, fields["n_frame_per_seg"], 1)
  if nfps.shape != (cps.shape[0],):
    raise _fail(where, "n_frame_per_seg", f"shape ({cps.shape[0]},) to match change_points", f"shape {nfps.shape}")
  if np.any(nfps <= 0):
    raise _fail(where, "n_frame_per_seg", "positive shot lengths", f"min {nfps.min()}")
  check_shots(cps, nfps, n_frames, where)

  num_users = None
  if EVAL_FIELD in fields:
    user_summary = _real(where, EVAL_FIELD, fields[EVAL_FIELD])
    if user_summary.ndim != 2 or user_summary.shape[0] == 0 or user_summary.shape[1] == 0:
      raise _fail(where, EVAL_FIELD, "a non-empty (users, frames) array", f"shape {user_summary.shape}")
    if not np.all(np.isin(user_summary, (0, 1))):
      raise _fail(where, EVAL_FIELD, "0/1 entries", "other values")
    _check_user_summary(user_summary.astype(bool), n_frames, where)
    num_users = user_summary.shape[0]

  if USER_SCORES_FIELD in fields:
    user_scores = _real(where, USER_SCORES_FIELD, fields[USER_SCORES_FIELD])
    if user_scores.ndim != 2 or user_scores.shape[0] != num_steps or user_scores.shape[1] == 0:
      raise _fail(where, USER_SCORES_FIELD, f"shape ({num_steps}, users)", f"shape {user_scores.shape}")
    if not np.all(np.isfinite(user_scores)):
      raise _fail(where, USER_SCORES_FIELD, "finite values", "NaN/inf")
    if num_users is not None and user_scores.shape[1] != num_users:
      raise _disagree(where, f"'{USER_SCORES_FIELD}' and '{EVAL_FIELD}'", f"the same {num_users} users",
                      f"{user_scores.shape[1]} users in {USER_SCORES_FIELD}")


def _normalise_gtscore(gtscore: np.ndarray, where: str) -> np.ndarray:
  # DSNet: g <- (g - min) / max(g - min). A constant score has no ranking and would divide by zero.
  shifted = gtscore.astype(np.float32) - gtscore.min()
  top = shifted.max()
  if top <= 0:
    raise _fail(where, "gtscore", "a non-constant score (it is min-max normalised)", "a constant score")
  return shifted / top


def video_from_fields(fields: Mapping[str, np.ndarray], name: str, where: str, *,
                      require_user_summary: bool) -> SummVideo:
  """Validates raw fields and builds a SummVideo."""
  validate_video_fields(fields, where, require_user_summary=require_user_summary)
  user_summary = fields.get(EVAL_FIELD)
  user_scores = fields.get(USER_SCORES_FIELD)
  return SummVideo(
      name=name,
      features=np.asarray(fields["features"], dtype=np.float32),
      gtscore=_normalise_gtscore(np.asarray(fields["gtscore"]), where),
      change_points=np.asarray(fields["change_points"], dtype=np.int64),
      n_frame_per_seg=np.asarray(fields["n_frame_per_seg"], dtype=np.int64),
      n_frames=int(np.asarray(fields["n_frames"]).reshape(())),
      picks=np.asarray(fields["picks"], dtype=np.int64),
      user_summary=None if user_summary is None else np.asarray(user_summary).astype(bool),
      user_scores=None if user_scores is None else np.asarray(user_scores, dtype=np.float32),
  )


def check_h5_exists(h5_path: str | os.PathLike) -> Path:
  path = Path(h5_path)
  if not path.is_file():
    raise DatasetNotFoundError(
        f"dataset file not found: {path}. The eccv16 *_google_pool5.h5 files are not shipped with this project; "
        "BUILD.md ('Datasets') says where to get them and where to put them, or use configs/demo.py "
        "(generated synthetic data).")
  return path


def _read_field(group: h5py.Group, name: str, where: str):
  member = group[name]
  if not isinstance(member, h5py.Dataset):
    raise _fail(where, name, "a dataset", "a group")
  try:
    return member[()]
  except (OSError, TypeError, ValueError) as e:  # a damaged chunk, or a type h5py cannot read into numpy
    raise _fail(where, name, "a readable dataset", f"{type(e).__name__}: {e}") from None


def read_videos(h5_path: str | os.PathLike, video_keys: Iterable[str], *,
                require_user_summary: bool) -> dict[str, SummVideo]:
  """Reads and validates `video_keys` from one eccv16 h5 file. Keys map to SummVideo."""
  path = check_h5_exists(h5_path)
  videos = {}
  try:
    h5 = h5py.File(path, "r")
  except OSError as e:
    raise DatasetFormatError(f"{path}: not a readable HDF5 file ({e})") from None
  with h5:
    for key in video_keys:
      where = f"{path} video '{key}'"
      if key not in h5:
        raise DatasetFormatError(f"{path}: no video '{key}' (the split file names it; the file has "
                                 f"{len(h5.keys())} videos, e.g. {sorted(h5.keys())[:3]})")
      group = h5[key]
      if not isinstance(group, h5py.Group):
        raise DatasetFormatError(f"{where}: expected a group of fields, got a dataset")
      fields = {name: _read_field(group, name, where) for name in group.keys()}
      videos[key] = video_from_fields(fields, f"{path.name}/{key}", where, require_user_summary=require_user_summary)
  return videos


def write_eccv16_h5(path: str | os.PathLike, videos: Mapping[str, Mapping[str, np.ndarray]], *,
                    require_user_summary: bool = True, overwrite: bool = False) -> Path:
  """Validates every video, then writes them atomically to `path` in the eccv16 layout."""
  path = Path(path)
  if path.exists() and not overwrite:
    raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
  if not videos:
    raise DatasetFormatError(f"{path}: nothing to write (no videos)")
  for key, fields in videos.items():
    validate_video_fields(fields, f"video '{key}' for {path}", require_user_summary=require_user_summary)
  # The file is built in memory and written by fileio.atomic_write_bytes: HDF5 writing straight to a full disk
  # crashes the process in h5py's close (a segfault, leaving the temporary file behind).
  buffer = io.BytesIO()
  with h5py.File(buffer, "w") as h5:
    for key, fields in videos.items():
      group = h5.create_group(key)
      for name, value in fields.items():
        group.create_dataset(name, data=np.asarray(value))
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise fileio.write_error(path.parent, error) from None
  fileio.atomic_write_bytes(path, buffer.getvalue())
  return path
