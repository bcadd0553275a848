"""Highlight-detection data: TVSum (I3D video + PANN audio, UMT's domain splits), YouTube Highlights (I3D
video), generated data for tests, and the fixed-shape batches the jitted step takes.

TVSum, read straight from the shared data folder (docs/data.md), as TencentARC/UMT datasets/tvsum.py does:
  <tvsum>/video_features/{id}_rgb.npy, {id}_opt.npy   I3D RGB / flow (T, 1024) float64 -> 'video' (T, 1024|2048)
  <tvsum>/audio_features/{id}.npy                      PANN (T', 2048) float32         -> 'audio'
  <tvsum>/tvsum_anno.json                              domain, anno (T, 20) user scores 1..5
  <tvsum>/umt_domain_splits.json                       per domain 4 train + 1 val ids
Each video is truncated to the shortest of its streams and annotation (UMT: num_clips = min(...); one video,
kLxoNp-UchI, has one audio row more). Saliency targets (`target`):
  'mean_score'  (sum_u a_u - 20) / 80, UMT's get_saliency (the mean score mapped 1..5 -> 0..1)
  'vote'        fraction of users whose score is above their own (lower) median: the top-5 mAP label
                (vsumm/highlight.median_labels) averaged over users.

YouTube Highlights (UMT datasets/youtube.py), read by iptnet_jax/datasets/youtube_highlights.read_videos:
<youtube>/video_features/{id}_rgb.npy (T, 1024), youtube_anno.json ('match' per clip: 1 / 0 / -1),
umt_domain_splits.json; labels = match > 0 (UMT maps -1 to 0 as well) are both the training target and the
mAP positives. Split ids without a feature file (28 in the release) are skipped.

Paths: `root` is the shared data folder ('' = $IPTNET_SHARED_DATA, else ../shared/data beside the repository,
tvsum_i3d.default_shared_dir); a missing folder or file raises HighlightDataError, one line saying where the
files belong.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from iptnet_jax.errors import InputError
from iptnet_jax.vsumm import highlight

TVSUM_SUBDIR = "features/tvsum"
YOUTUBE_SUBDIR = "features/youtube"
TVSUM_DOMAINS = ("VT", "VU", "GA", "MS", "PK", "PR", "FM", "BK", "BT", "DS")  # UMT's table order
YOUTUBE_DOMAINS = ("dog", "gymnastics", "parkour", "skating", "skiing", "surfing")
TARGETS = ("mean_score", "vote")
VIDEO_STREAMS = {"rgb": ("rgb",), "rgb+flow": ("rgb", "opt"), "flow": ("opt",)}


class HighlightDataError(InputError):
  """A highlight-detection data file or data option that cannot be used."""


@dataclasses.dataclass(frozen=True, eq=False)
class Video:
  """One video's clip features and labels; every array has the same first dimension T."""

  video_id: str
  domain: str
  features: Mapping[str, np.ndarray]  # 'video' / 'audio' -> (T, D) float32
  user_scores: np.ndarray | None = None  # (T, U) TVSum user scores 1..5
  labels: np.ndarray | None = None  # (T,) 0/1 YouTube Highlights labels (match > 0)

  @property
  def num_clips(self) -> int:
    return int(next(iter(self.features.values())).shape[0])

  def target(self, kind: str) -> np.ndarray:
    """(T,) float32 saliency target in [0, 1] (module docstring)."""
    if self.labels is not None:
      return self.labels.astype(np.float32)
    if kind == "mean_score":
      return ((self.user_scores.sum(axis=1) - self.user_scores.shape[1]) /
              (4.0 * self.user_scores.shape[1])).astype(np.float32)
    if kind == "vote":
      return highlight.median_labels(self.user_scores).mean(axis=1).astype(np.float32)
    raise HighlightDataError(f"data.target: expected one of {TARGETS}, got {kind!r}")


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str  # 'tvsum' | 'youtube' | 'synthetic'
  videos: Mapping[str, Video]
  splits: Mapping[str, Mapping[str, tuple[str, ...]]]  # domain -> {'train': ids, 'val': ids}
  metric: str  # 'top5_map' | 'youtube_map'

  def domain_videos(self, domain: str, part: str) -> list[Video]:
    return [self.videos[v] for v in self.splits[domain][part]]


def default_root() -> Path:
  from iptnet_jax.datasets.builders.tvsum_i3d import default_shared_dir

  return default_shared_dir()


def _root(root: str | os.PathLike | None) -> Path:
  return Path(root).expanduser() if root else default_root()


def _require(path: Path, what: str) -> Path:
  if not path.exists():
    raise HighlightDataError(f"{what} not found: {path}. Put the shared data folder (docs/data.md) there, or "
                             "set data.root / $IPTNET_SHARED_DATA to it")
  return path


def _load_json(path: Path, what: str):
  try:
    return json.loads(_require(path, what).read_text())
  except json.JSONDecodeError as e:
    raise HighlightDataError(f"{path}: not valid JSON ({e})") from None


def _load_matrix(path: Path, what: str, width: int | None = None) -> np.ndarray:
  array = np.load(_require(path, what))
  if array.ndim != 2 or array.shape[0] == 0 or (width is not None and array.shape[1] != width):
    raise HighlightDataError(f"{path}: expected a non-empty (T, {width or 'D'}) array, got shape {array.shape}")
  if not np.all(np.isfinite(array)):
    raise HighlightDataError(f"{path}: NaN/inf in the features")
  return array.astype(np.float32)


def parse_modalities(modalities: str | Sequence[str]) -> tuple[str, ...]:
  names = tuple(m.strip() for m in modalities.split(",")) if isinstance(modalities, str) else tuple(modalities)
  if not names or any(m not in ("video", "audio") for m in names) or len(set(names)) != len(names):
    raise HighlightDataError(f"data.modalities: expected 'video', 'audio' or 'video,audio', got {modalities!r}")
  return names


def read_tvsum(root: str | os.PathLike | None = None, *, modalities: Sequence[str] = ("video", "audio"),
               video_streams: str = "rgb+flow") -> Dataset:
  """All 50 TVSum videos with the requested modalities and UMT's domain splits (module docstring)."""
  if video_streams not in VIDEO_STREAMS:
    raise HighlightDataError(f"data.video_streams: expected one of {sorted(VIDEO_STREAMS)}, got {video_streams!r}")
  folder = _require(_root(root) / TVSUM_SUBDIR, "TVSum feature folder")
  anno = _load_json(folder / "tvsum_anno.json", "TVSum annotation")
  try:
    splits = highlight.domain_splits(folder / "umt_domain_splits.json")
  except FileNotFoundError as e:
    raise HighlightDataError(str(e)) from None
  videos = {}
  for video_id, entry in anno.items():
    streams = {}
    if "video" in modalities:
      streams["video"] = np.concatenate([
          _load_matrix(folder / "video_features" / f"{video_id}_{s}.npy", "TVSum I3D feature file", 1024)
          for s in VIDEO_STREAMS[video_streams]], axis=1)
    if "audio" in modalities:
      streams["audio"] = _load_matrix(folder / "audio_features" / f"{video_id}.npy", "TVSum PANN audio file")
    try:
      scores = np.asarray(entry["anno"], dtype=np.float32)
      domain = str(entry["domain"])
    except (KeyError, TypeError, ValueError) as e:
      raise HighlightDataError(f"{folder / 'tvsum_anno.json'}: video {video_id}: expected anno and domain "
                               f"({e})") from None
    if scores.ndim != 2 or scores.shape[0] == 0:
      raise HighlightDataError(f"tvsum_anno.json: video {video_id}: anno must be (T, users), got {scores.shape}")
    length = min([scores.shape[0]] + [a.shape[0] for a in streams.values()])  # UMT: truncate to the shortest
    videos[video_id] = Video(video_id, domain, {k: a[:length] for k, a in streams.items()},
                             user_scores=scores[:length])
  _check_split_ids(splits, videos, "umt_domain_splits.json")
  return Dataset("tvsum", videos, splits, "top5_map")


def read_youtube(root: str | os.PathLike | None = None) -> Dataset:
  """YouTube Highlights I3D RGB clips (video only) with UMT's per-domain splits, through the project's reader
  (iptnet_jax/datasets/youtube_highlights.read_videos, which skips split ids without features or annotation
  and checks every file); labels = match > 0."""
  from iptnet_jax.datasets import youtube_highlights

  folder = _require(_root(root) / YOUTUBE_SUBDIR, "YouTube Highlights feature folder")
  videos, splits = {}, {}
  for item in youtube_highlights.read_videos(*youtube_highlights.default_paths(folder)):
    videos[item.vid] = Video(item.vid, item.domain, {"video": item.load_rgb()},
                             labels=item.highlight.astype(np.int64))
    splits.setdefault(item.domain, {"train": [], "val": []})[item.split].append(item.vid)
  for domain, parts in splits.items():
    for part, ids in parts.items():
      if not ids:
        raise HighlightDataError(f"YouTube Highlights: domain {domain!r} has no {part} video with features")
  return Dataset("youtube", videos, {d: {p: tuple(v) for p, v in parts.items()} for d, parts in splits.items()},
                 "youtube_map")


def _check_split_ids(splits, videos, where: str) -> None:
  missing = sorted({v for parts in splits.values() for ids in parts.values() for v in ids} - set(videos))
  if missing:
    raise HighlightDataError(f"{where}: ids without annotation or features: {missing[:5]}")


# ---------------------------------------------------------------------------------------------- generated


def synthetic_dataset(*, num_domains: int = 3, train_per_domain: int = 4, val_per_domain: int = 1,
                      min_clips: int = 20, max_clips: int = 70, video_dim: int = 16, audio_dim: int = 8,
                      num_users: int = 5, kind: str = "tvsum", seed: int = 0) -> Dataset:
  """Generated videos with a learnable saliency: per domain a hidden direction in feature space; a clip's
  saliency is a smoothed projection of its features on it (audio carries part of the signal), and a per-domain
  offset of the features makes the topic (the weak regime's video label) recognisable; TVSum-like
  user scores 1..5 are that saliency plus per-user noise, YouTube-like labels are saliency > its median."""
  rng = np.random.default_rng(seed)
  videos, splits = {}, {}
  for d in range(num_domains):
    domain = f"D{d}"
    direction_v = rng.normal(size=video_dim)
    direction_a = rng.normal(size=audio_dim)
    offset_v, offset_a = rng.normal(size=video_dim), rng.normal(size=audio_dim)  # the topic, for video labels
    splits[domain] = {"train": [], "val": []}
    for i in range(train_per_domain + val_per_domain):
      length = int(rng.integers(min_clips, max_clips + 1))
      latent = np.convolve(rng.normal(size=length + 4), np.ones(5) / 5, mode="valid")
      video = (rng.normal(size=(length, video_dim)) + offset_v +
               np.outer(latent, direction_v) / np.linalg.norm(direction_v))
      audio = (rng.normal(size=(length, audio_dim)) + offset_a +
               np.outer(latent, direction_a) / np.linalg.norm(direction_a))
      video_id = f"{domain}_v{i}"
      features = {"video": video.astype(np.float32), "audio": audio.astype(np.float32)}
      if kind == "tvsum":
        noisy = latent[:, None] + 0.5 * rng.normal(size=(length, num_users))
        scores = np.clip(np.round(3 + 1.5 * noisy / latent.std()), 1, 5).astype(np.float32)
        videos[video_id] = Video(video_id, domain, features, user_scores=scores)
      else:
        videos[video_id] = Video(video_id, domain, features, labels=(latent > np.median(latent)).astype(np.int64))
      splits[domain]["train" if i < train_per_domain else "val"].append(video_id)
  splits = {d: {p: tuple(v) for p, v in parts.items()} for d, parts in splits.items()}
  return Dataset("synthetic", videos, splits, "top5_map" if kind == "tvsum" else "youtube_map")


# ---------------------------------------------------------------------------------------------- batches


def bucket_length(length: int, bucket: int) -> int:
  return int(math.ceil(length / bucket) * bucket)


def make_batch(videos: Sequence[Video], modalities: Sequence[str], length: int, *, target: str | None,
               video_labels: Sequence[float] | None = None, starts: Sequence[int] | None = None) -> dict:
  """Fixed-shape batch: features {m: (B, L, D)}, mask (B, L), targets (B, L), video_labels (B,).

  Video b is cut to clips [starts[b], starts[b] + L) (default 0) and zero-padded to L.
  """
  batch = len(videos)
  out = {"features": {}, "mask": np.zeros((batch, length), bool), "targets": np.zeros((batch, length), np.float32),
         "video_labels": np.asarray(video_labels if video_labels is not None else np.ones(batch), np.float32)}
  for m in modalities:
    out["features"][m] = np.zeros((batch, length, videos[0].features[m].shape[1]), np.float32)
  for b, video in enumerate(videos):
    start = 0 if starts is None else int(starts[b])
    stop = min(video.num_clips, start + length)
    n = stop - start
    for m in modalities:
      out["features"][m][b, :n] = video.features[m][start:stop]
    out["mask"][b, :n] = True
    if target is not None:  # None: scoring only, targets stay 0
      out["targets"][b, :n] = video.target(target)[start:stop]
  return out


def random_starts(videos: Sequence[Video], clip_len: int, rng: np.random.Generator) -> list[int]:
  """tau consecutive clips per video (Ye et al.: tau = 60): a uniform start; shorter videos start at 0."""
  return [int(rng.integers(0, v.num_clips - clip_len + 1)) if v.num_clips > clip_len else 0 for v in videos]
