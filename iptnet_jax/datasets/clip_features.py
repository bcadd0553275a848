"""Per-video clip features of the moment-localization data: `{feature_dir}/{vid}.npy` (T, D) arrays, read lazily,
checked, resampled to at most max_len clips (`moment_labels.visual_feature_sampling`, as VSLNet) and cached.

`VideoFeatureStore(feature_dir, max_len)`: `num_units(vid)` reads only the .npy header, `load(vid)` the values.
A folder of synthetic features holds SYNTHETIC.json (`read_synthetic_marker`). Every malformed feature file
raises `FeatureDataError` (an `errors.InputError`) naming the file and video.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

from iptnet_jax.datasets import moment_labels
from iptnet_jax.errors import InputError

SYNTHETIC_MARKER = "SYNTHETIC.json"


class FeatureDataError(InputError):
  """A feature folder, file or marker that does not have the expected form."""


class FeatureFileNotFoundError(FeatureDataError, FileNotFoundError):
  """A required feature folder or file that does not exist."""


def read_synthetic_marker(feature_dir: str | Path) -> dict | None:
  """The content of {feature_dir}/SYNTHETIC.json, or None when the folder holds no marker."""
  marker = Path(feature_dir) / SYNTHETIC_MARKER
  if not marker.is_file():
    return None
  try:
    info = json.loads(marker.read_text(encoding="utf-8"))
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise FeatureDataError(f"{marker}: expected a JSON object describing the synthetic features: {error}") from None
  if not isinstance(info, dict):
    raise FeatureDataError(f"{marker}: expected a JSON object describing the synthetic features")
  return info


class VideoFeatureStore:
  """Reads `{feature_dir}/{vid}.npy` (T, D) features, checks them and resamples to <= max_len clips.

  `num_units(vid)` reads only the .npy header; `load(vid)` reads the values, rejects NaN/inf and returns
  float32 (min(T, max_len), D), cached per video when `cache` is set (the whole Charades-STA I3D set is about
  0.8 GB in float32, which VSLNet also keeps in memory).
  """

  def __init__(self, feature_dir: str | Path, max_len: int = 128, *, cache: bool = True):
    self.feature_dir = Path(feature_dir)
    if not self.feature_dir.is_dir():
      raise FeatureFileNotFoundError(f"{self.feature_dir}: feature folder not found (expected {{vid}}.npy files "
                                      "of shape (T, 1024): Charades I3D features in VSLNet's layout, or ones made "
                                      "by `python -m iptnet_jax.datasets.synthetic_charades`)")
    if max_len <= 0:
      raise FeatureDataError(f"max_len: expected a positive clip count, got {max_len}")
    self.max_len = max_len
    self.cache = cache
    self._widths: dict[str, int] = {}  # of every file opened
    self._settled_dim: int | None = None
    self._lengths: dict[str, int] = {}
    self._features: dict[str, np.ndarray] = {}

  def path(self, vid: str) -> Path:
    return self.feature_dir / f"{vid}.npy"

  def _open(self, vid: str, mmap: bool) -> np.ndarray:
    path = self.path(vid)
    if not path.is_file():
      raise FeatureFileNotFoundError(f"{path}: feature file of video {vid} not found (expected {{vid}}.npy of "
                                      f"shape (T, {self.feature_dim or 1024}) in {self.feature_dir})")
    try:
      array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
      raise FeatureDataError(f"{path}: video {vid}: not a readable .npy array: {error}") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
      raise FeatureDataError(f"{path}: video {vid}: expected features of shape (T, D), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
      raise FeatureDataError(f"{path}: video {vid}: expected float features, got dtype {array.dtype}")
    self._widths[vid] = int(array.shape[1])
    if self._settled_dim is not None and array.shape[1] != self._settled_dim:
      raise FeatureDataError(f"{path}: video {vid}: expected features of shape (T, {self._settled_dim}) like the "
                              f"other videos, got shape {array.shape}")
    return array

  @property
  def feature_dim(self) -> int | None:
    """D: the settled width, else the most common one among the files opened so far (None before any)."""
    if self._settled_dim is not None or not self._widths:
      return self._settled_dim
    return collections.Counter(self._widths.values()).most_common(1)[0][0]

  def settle_feature_dim(self) -> int:
    """Fixes D to the width most of the files opened so far have, naming a file of another width; later files
    must have it too.

    Called once the headers of every needed file have been read (load_charades_sta; else the first `load`):
    the first file read may be the odd one, and checking the others against it would blame good files.
    """
    if not self._widths:
      raise FeatureDataError(f"{self.feature_dir}: no feature file was read")
    common, count = collections.Counter(self._widths.values()).most_common(1)[0]
    example = next(vid for vid, width in self._widths.items() if width == common)
    for vid, width in self._widths.items():
      if width != common:
        raise FeatureDataError(f"{self.path(vid)}: video {vid}: expected features of shape (T, {common}) like the "
                                f"other videos ({count} of them, e.g. {self.path(example).name}), got shape "
                                f"({self._lengths.get(vid, 'T')}, {width})")
    self._settled_dim = common
    return common

  def raw_length(self, vid: str) -> int:
    """T, the number of stored feature rows."""
    if vid not in self._lengths:
      self._lengths[vid] = int(self._open(vid, mmap=True).shape[0])
    return self._lengths[vid]

  def num_units(self, vid: str) -> int:
    """min(T, max_len): the clip count the model sees and the labels are made on."""
    return min(self.raw_length(vid), self.max_len)

  def load(self, vid: str) -> np.ndarray:
    """(num_units, D) float32 resampled features."""
    if vid in self._features:
      return self._features[vid]
    if self._settled_dim is None and self._widths:
      self.settle_feature_dim()  # the samples were made, so every needed header has been read
    raw = np.asarray(self._open(vid, mmap=False))
    finite = np.isfinite(raw).all(axis=1)
    if not finite.all():
      raise FeatureDataError(f"{self.path(vid)}: video {vid}: expected finite features, got NaN/inf "
                              f"(first at row {int(np.argmin(finite))})")
    self._lengths[vid] = raw.shape[0]
    features = moment_labels.visual_feature_sampling(raw.astype(np.float32, copy=False), self.max_len)
    features = np.ascontiguousarray(features, np.float32)
    if self.cache:
      self._features[vid] = features
    return features
