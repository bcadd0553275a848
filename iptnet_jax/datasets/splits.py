"""Split files in the three published formats, resolved to (h5 file, video key) references.

* DSNet yml: a list of {train_keys, test_keys}; keys name their file,
  `../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_35`.
* VASNet json: a list of {train_keys, test_keys}; canonical keys are bare (`video_3`), augmented keys name
  the file without extension, `eccv16_dataset_ovp_google_pool5/video_16`.
* PGL-SUM json: a list of {train_keys, test_keys} with bare keys.

A key that names a file is looked up in `dataset_dir` by the file's base name, so one split can draw videos
from several h5 files (canonical, augmented and transfer settings). Bare keys need `default_h5`. An optional
`val_keys` list (used by the released iPTNet code) is carried through; without it there is no validation set.

Refused, naming the file, split and key: a key listed twice in one list (the video would be trained twice per
epoch), a video in both train_keys and test_keys or in both val_keys and test_keys (a score selected or trained
on the test videos), and a section other than train_keys / val_keys / test_keys (a misspelled `tset_keys`
would otherwise be ignored; the informational `domain` of the TVSum-I3D domain splits is accepted).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml

from iptnet_jax.errors import InputError

_KEY_LISTS = ("train_keys", "val_keys", "test_keys")
_INFO_FIELDS = ("domain",)  # written by datasets.builders.tvsum_i3d next to the key lists; not read
# Lists that must not share a video: training or selecting on a test video would inflate the test score.
_DISJOINT = (("train_keys", "test_keys"), ("val_keys", "test_keys"))


class SplitFormatError(InputError):
  """A split file that cannot be read as one of the published formats."""


class SplitFileNotFoundError(SplitFormatError, FileNotFoundError):
  """A split file that does not exist."""


@dataclasses.dataclass(frozen=True, order=True)
class VideoRef:
  """Where one video lives: an h5 file and the video's group key inside it."""

  h5_path: Path
  video_key: str

  @property
  def name(self) -> str:
    """'<h5 file name>/<video key>': unique across files, and DSNet's metric rule reads it."""
    return f"{self.h5_path.name}/{self.video_key}"


@dataclasses.dataclass(frozen=True)
class Split:
  index: int
  train: tuple[VideoRef, ...]
  val: tuple[VideoRef, ...]
  test: tuple[VideoRef, ...]


def parse_h5_renames(spec: str) -> dict[str, str]:
  """'a.h5=b.h5,c.h5=d.h5' -> {'a.h5': 'b.h5', ...}: run a published split on another file of the same videos."""
  renames = {}
  for item in filter(None, (part.strip() for part in str(spec or "").split(","))):
    old, sep, new = item.partition("=")
    if not sep or not old.strip() or not new.strip():
      raise SplitFormatError(f"config.data.h5_renames={spec!r}: expected 'old.h5=new.h5[,old2.h5=new2.h5]'")
    renames[old.strip()] = new.strip()
  return renames


def _resolve_key(key, dataset_dir: Path, default_h5: str | None, where: str,
                 h5_renames: Mapping[str, str]) -> VideoRef:
  if not isinstance(key, str) or not key.strip():
    raise SplitFormatError(f"{where}: expected a video key string, got {key!r}")
  head, sep, video_key = key.strip().rpartition("/")
  if not sep:
    if not default_h5:
      raise SplitFormatError(f"{where}: key '{key}' names no h5 file; set the config field data.default_h5 "
                             "to the file these bare keys refer to")
    return VideoRef(dataset_dir / h5_renames.get(default_h5, default_h5), video_key)
  file_name = os.path.basename(head)
  if not file_name.endswith((".h5", ".hdf5")):
    file_name += ".h5"  # VASNet's augmented keys drop the extension
  return VideoRef(dataset_dir / h5_renames.get(file_name, file_name), video_key)


def read_utf8_text(path: str | os.PathLike, error_type: type[InputError] = SplitFormatError) -> str:
  """The text of a (small) UTF-8 file; an unreadable file or byte raises `error_type` naming the file and line."""
  path = Path(path)
  try:
    data = path.read_bytes()
  except OSError as error:
    raise error_type(f"{path}: cannot read the file: {error.strerror or error}") from None
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as error:
    line = data[:error.start].count(b"\n") + 1
    raise error_type(f"{path}:{line}: expected UTF-8 text: {error}") from None


def _check_sections(entry: Mapping, where: str) -> None:
  known = _KEY_LISTS + _INFO_FIELDS
  for name in entry:
    if name not in known:
      close = difflib.get_close_matches(str(name), _KEY_LISTS, n=1)
      hint = f" (did you mean '{close[0]}'?)" if close else ""
      raise SplitFormatError(f"{where}: unknown section '{name}'{hint}; expected {', '.join(_KEY_LISTS)}")


def _check_no_repeats(keys: list, refs: tuple[VideoRef, ...], where: str) -> None:
  first_at: dict[VideoRef, int] = {}
  for position, ref in enumerate(refs):
    if ref in first_at:
      raise SplitFormatError(f"{where}: video '{keys[position]}' is listed twice (entries {first_at[ref]} and "
                             f"{position}, both {ref.name}); a split lists each video once")
    first_at[ref] = position


def load_splits(split_path: str | os.PathLike, dataset_dir: str | os.PathLike, default_h5: str | None = None,
                h5_renames: Mapping[str, str] | None = None) -> list[Split]:
  """Reads a DSNet yml, VASNet json or PGL-SUM json split file.

  `h5_renames` maps file names used by the split file to the files to read instead (e.g. DSNet's TVSum
  splits on the TVSum-I3D file, which has the same videos under the same keys).
  """
  h5_renames = dict(h5_renames or {})
  split_path = Path(split_path)
  dataset_dir = Path(dataset_dir)
  if not split_path.is_file():
    raise SplitFileNotFoundError(f"split file not found: {split_path}")
  text = read_utf8_text(split_path)
  try:
    if split_path.suffix in (".yml", ".yaml"):
      raw = yaml.safe_load(text)
    elif split_path.suffix == ".json":
      raw = json.loads(text)
    else:
      raise SplitFormatError(f"{split_path}: expected a .yml, .yaml or .json split file")
  except (yaml.YAMLError, json.JSONDecodeError) as e:
    raise SplitFormatError(f"{split_path}: cannot parse ({e})") from None
  if not isinstance(raw, list) or not raw:
    raise SplitFormatError(f"{split_path}: expected a non-empty list of splits, got {type(raw).__name__}")

  splits = []
  for index, entry in enumerate(raw):
    where = f"{split_path} split {index}"
    if not isinstance(entry, dict):
      raise SplitFormatError(f"{where}: expected a mapping with train_keys and test_keys")
    _check_sections(entry, where)
    for required in ("train_keys", "test_keys"):
      if not isinstance(entry.get(required), list) or not entry[required]:
        raise SplitFormatError(f"{where}: expected a non-empty list '{required}'")
    lists = {}
    for name in _KEY_LISTS:
      keys = entry.get(name) or []
      if not isinstance(keys, list):
        raise SplitFormatError(f"{where}: '{name}' must be a list")
      lists[name] = tuple(_resolve_key(k, dataset_dir, default_h5, f"{where} {name}", h5_renames) for k in keys)
      _check_no_repeats(keys, lists[name], f"{where} {name}")
    for first, second in _DISJOINT:
      overlap = set(lists[first]) & set(lists[second])
      if overlap:
        raise SplitFormatError(f"{where}: videos in both {first} and {second}: "
                               f"{sorted(r.name for r in overlap)[:3]} ({len(overlap)} in all)")
    splits.append(Split(index, lists["train_keys"], lists["val_keys"], lists["test_keys"]))
  return splits


def carve_validation(split: Split, fraction: float, seed: int) -> Split:
  """The split with a validation subset of `fraction` of its training videos moved out of training.

  Model selection on the test videos (DSNet's convention) is optimistic; a validation subset carved from the
  training videos gives a selection that never reads test. The subset depends only on (seed, split index,
  the training videos), not on the run's seed or method, so every method of a comparison is selected on the
  same videos and trained on the same others. At least one video goes to each side.
  """
  if fraction <= 0:
    return split
  if split.val:
    raise SplitFormatError(f"split {split.index} already has val_keys ({len(split.val)} videos); "
                           "config.data.val_fraction must be 0 for such split files")
  if len(split.train) < 2:
    raise SplitFormatError(f"split {split.index}: {len(split.train)} training video(s); carving a validation "
                           "subset needs at least 2")
  count = min(max(1, round(fraction * len(split.train))), len(split.train) - 1)
  order = sorted(split.train)  # independent of the split file's order
  chosen = np.random.default_rng([seed, split.index]).choice(len(order), size=count, replace=False)
  val = {order[i] for i in chosen}
  return Split(split.index, tuple(r for r in split.train if r not in val), tuple(r for r in order if r in val),
               split.test)
