"""Charades-STA for the LM (VSLNet moment localizer): annotations -> moment samples with vocabularies and labels.

Layout read (reference_spec.md §3.1; VSLNet `util/data_gen.py`):

  {annotation_dir}/charades_sta_train.txt, charades_sta_test.txt   one `VID start end##sentence` per line
  {annotation_dir}/charades.json                                   {vid: {"duration": seconds, ...}}
  {glove_path}                                                     GloVe text format: `word v_1 ... v_d`
  {feature_dir}/{vid}.npy                                          (T, D) float features, ~1 row per second
  {feature_dir}/SYNTHETIC.json                                     present only for synthetic features

Processing, as VSLNet does it:
* start is clipped to >= 0 and end to <= the video's duration; a moment that is empty after clipping is an
  error. Sentences are lower-cased and tokenised by `text.tokenize` (`nltk.word_tokenize`'s rules).
* Vocabularies and word vectors (`datasets.text`): words 0 = PAD, 1 = UNK, then every token present in GloVe,
  most frequent first, counted over the splits in `vocab_splits`. VSLNet counts over **train and test** (its
  `vocab_emb_gen(data_list=[train, test])`), which is the default here; pass `vocab_splits=("train",)` to
  count the training set only. With `max_videos`, `vocab_scope` says whether the whole files ("files", the
  default) or only the kept videos' lines ("used", as VSLNet counts the files it is given) are counted.
  `word_vectors` is (V, word_dim) float32 with rows 0 (PAD) and 1 (UNK) zero: the model owns the trainable
  UNK vector and keeps the GloVe rows frozen. GloVe rows must all have one width, and the vectors must cover
  at least a quarter of the counted query tokens (text.MIN_KNOWN_TOKEN_FRACTION). Chars: 0 = PAD, 1 = UNK, then
  the characters occurring >= 5 times in the same splits' tokens, most frequent first.
* Queries keep their first `max_pos_len` tokens. Videos longer than `max_pos_len` clips are average-pooled to
  `max_pos_len` by `moment_labels.visual_feature_sampling`; `num_units = min(T, max_pos_len)`.
* Labels: (start_index, end_index) = `moment_labels.time_to_index(start, end, num_units, duration)`; the
  highlight target is made per batch by `moment_labels.highlight_labels` (extension 0.1).

Dataset object: `load_charades_sta(annotation_dir, glove_path, feature_dir, *, max_pos_len=128, ...)` returns
a `CharadesSTA` with

  train, test       list[MomentSample]  one per annotation line (fields below)
  word_vocab        dict[str, int]      token -> id (0 PAD, 1 UNK)
  char_vocab        dict[str, int]      character -> id (0 PAD, 1 UNK)
  word_vectors      (V, word_dim) float32, rows 0 and 1 zero
  num_words, num_chars, word_dim, feature_dim   ints
  max_pos_len       int
  feature_dir       Path
  features          VideoFeatureStore   (datasets.clip_features) reads, validates, resamples, caches `{vid}.npy`
  synthetic         bool                True when feature_dir holds SYNTHETIC.json
  synthetic_info    dict | None         the content of that marker (seed, recipe, ...)
  describe_features() -> str            "SYNTHETIC features (...)" or "features from DIR", for every report
  lookup(sample_ids) -> list[MomentSample]   e.g. a batch's real rows, for evaluation
  batches(split, batch_size, *, shuffle, rng, **kw)  -> input_pipeline.iterate_lm_batches over that split

MomentSample: sample_id, vid, start, end, duration (seconds), words (all tokens), word_ids (int32, truncated),
char_ids (tuple of int32 arrays, one per kept word), num_units, start_index, end_index, feature_store.
`lm.span.moment_ious(samples, start_index, end_index)` scores predictions against them (float64 ground truth).

Batches: `input_pipeline.iterate_lm_batches` (the LM batch contract is in its docstring).

Every malformed input raises one `errors.InputError` naming the file, line, video id or field: a
`CharadesDataError` for annotations (also a file without annotations), `text.TextDataError` for GloVe and
non-UTF-8 text, `clip_features.FeatureDataError` for features (also a file whose width differs from most
others': the odd file is named, whichever was read first).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from iptnet_jax.datasets import clip_features, input_pipeline, moment_labels, text
from iptnet_jax.errors import InputError

SPLITS = ("train", "test")
DURATIONS_FILE = "charades.json"
VOCAB_SCOPES = ("files", "used")  # which annotation lines the vocabularies count (load_charades_sta)


class CharadesDataError(InputError):
  """Charades-STA input (annotation, vocabulary or feature file) that does not have the expected form."""


class CharadesFileNotFoundError(CharadesDataError, FileNotFoundError):
  """A required Charades-STA, GloVe or feature file that does not exist."""


def annotation_path(annotation_dir: str | Path, split: str) -> Path:
  if split not in SPLITS:
    raise CharadesDataError(f"split: expected one of {SPLITS}, got {split!r}")
  return Path(annotation_dir) / f"charades_sta_{split}.txt"



# -------------------------------------------------------------------------------------------- annotations

@dataclasses.dataclass(frozen=True)
class MomentAnnotation:
  """One annotation line: a sentence and the moment [start, end] (seconds, clipped) it describes."""

  sample_id: int
  vid: str
  start: float
  end: float
  duration: float
  sentence: str
  words: tuple[str, ...]
  where: str  # "file:line", for error messages further down the pipeline



def load_durations(path: str | Path) -> dict[str, float]:
  """{vid: duration in seconds} from charades.json."""
  path = Path(path)
  if not path.is_file():
    raise CharadesFileNotFoundError(f"{path}: Charades durations file not found (expected charades.json from "
                                    "the VSLNet repository, next to charades_sta_{train,test}.txt)")
  try:
    content = json.loads(path.read_text(encoding="utf-8"))
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise CharadesDataError(f"{path}: expected a JSON object {{vid: {{'duration': seconds}}}}: {error}") from None
  if not isinstance(content, Mapping):
    raise CharadesDataError(f"{path}: expected a JSON object {{vid: {{'duration': seconds}}}}, got "
                            f"{type(content).__name__}")
  durations = {}
  for vid, info in content.items():
    duration = info.get("duration") if isinstance(info, Mapping) else None
    try:
      duration = float(duration)
    except (TypeError, ValueError):
      duration = float("nan")
    if not (np.isfinite(duration) and duration > 0):
      raise CharadesDataError(f"{path}: video {vid}: field 'duration': expected a positive number of seconds, "
                              f"got {info.get('duration') if isinstance(info, Mapping) else info!r}")
    durations[str(vid)] = duration
  return durations


def parse_annotations(path: str | Path, durations: Mapping[str, float], *,
                      first_sample_id: int = 0) -> list[MomentAnnotation]:
  """Parses `VID start end##sentence` lines (blank lines skipped); sample ids count up from first_sample_id."""
  path = Path(path)
  if not path.is_file():
    raise CharadesFileNotFoundError(f"{path}: Charades-STA annotation file not found (expected "
                                    "charades_sta_train.txt / charades_sta_test.txt from the VSLNet repository)")
  annotations = []
  for line_number, line in text.read_lines(path):
    line = line.strip()
    if not line:
      continue
    where = f"{path}:{line_number}"
    header, separator, sentence = line.partition("##")
    fields = header.split()
    if not separator or len(fields) != 3:
      raise CharadesDataError(f"{where}: expected 'VID start end##sentence', got {line!r}")
    vid, start_text, end_text = fields
    try:
      start, end = float(start_text), float(end_text)
    except ValueError:
      raise CharadesDataError(f"{where}: video {vid}: expected numeric start and end seconds, got "
                              f"{start_text!r} and {end_text!r}") from None
    if not (np.isfinite(start) and np.isfinite(end)):
      raise CharadesDataError(f"{where}: video {vid}: expected finite start and end, got {start} and {end}")
    if vid not in durations:
      raise CharadesDataError(f"{where}: video {vid} is not in {DURATIONS_FILE} (unknown video id)")
    duration = durations[vid]
    start, end = max(0.0, start), min(end, duration)
    if not end > start:
      raise CharadesDataError(f"{where}: video {vid}: expected start < end within [0, {duration}] s, got "
                              f"[{start_text}, {end_text}] (empty after clipping)")
    words = tuple(text.tokenize(sentence))
    if not words:
      raise CharadesDataError(f"{where}: video {vid}: empty sentence (no tokens after '##')")
    annotations.append(MomentAnnotation(first_sample_id + len(annotations), vid, start, end, duration,
                                        sentence.strip(), words, where))
  if not annotations:
    raise CharadesDataError(f"{path}: no annotations (expected lines 'VID start end##sentence')")
  return annotations


def load_split_annotations(annotation_dir: str | Path) -> dict[str, list[MomentAnnotation]]:
  """{'train': [...], 'test': [...]}; sample ids run on from train into test, as VSLNet numbers them."""
  durations = load_durations(Path(annotation_dir) / DURATIONS_FILE)
  by_split, next_id = {}, 0
  for split in SPLITS:
    by_split[split] = parse_annotations(annotation_path(annotation_dir, split), durations, first_sample_id=next_id)
    next_id += len(by_split[split])
  return by_split


def first_videos(annotations: Sequence[MomentAnnotation], max_videos: int | None) -> list[MomentAnnotation]:
  """The annotations of the first `max_videos` distinct videos in file order (all when None)."""
  if max_videos is None:
    return list(annotations)
  if max_videos <= 0:
    raise CharadesDataError(f"max_videos: expected a positive count or None, got {max_videos}")
  kept: dict[str, None] = {}
  for annotation in annotations:
    if len(kept) == max_videos and annotation.vid not in kept:
      continue
    kept.setdefault(annotation.vid)
  return [a for a in annotations if a.vid in kept]


# ------------------------------------------------------------------------------------------------- samples

@dataclasses.dataclass(frozen=True, eq=False)
class MomentSample:
  """One query-moment pair ready for batching (ids encoded, labels computed on num_units clips)."""

  sample_id: int
  vid: str
  start: float  # seconds, clipped to [0, duration]
  end: float
  duration: float
  words: tuple[str, ...]  # every token of the sentence
  word_ids: np.ndarray  # (Lq,) int32, the first max_pos_len tokens
  char_ids: tuple[np.ndarray, ...]  # one (word length,) int32 array per kept token
  num_units: int
  start_index: int
  end_index: int
  feature_store: clip_features.VideoFeatureStore = dataclasses.field(repr=False)

  def video(self) -> np.ndarray:
    features = self.feature_store.load(self.vid)
    if features.shape[0] != self.num_units:
      raise CharadesDataError(f"{self.feature_store.path(self.vid)}: video {self.vid}: features have "
                              f"{features.shape[0]} clips but the labels were made for {self.num_units}")
    return features


def make_samples(annotations: Sequence[MomentAnnotation], store: clip_features.VideoFeatureStore,
                 word_vocab: Mapping[str, int], char_vocab: Mapping[str, int], max_pos_len: int) -> list[MomentSample]:
  samples = []
  for annotation in annotations:
    try:
      num_units = store.num_units(annotation.vid)
    except clip_features.FeatureDataError as error:
      raise type(error)(f"{error} (needed by {annotation.where})") from None
    start_index, end_index = moment_labels.time_to_index(annotation.start, annotation.end, num_units,
                                                         annotation.duration)
    word_ids, char_ids = text.encode_query(annotation.words, word_vocab, char_vocab, max_pos_len)
    samples.append(MomentSample(annotation.sample_id, annotation.vid, annotation.start, annotation.end,
                                annotation.duration, annotation.words, word_ids, char_ids, num_units,
                                int(start_index), int(end_index), store))
  return samples


@dataclasses.dataclass(eq=False)
class CharadesSTA:
  """Charades-STA with vocabularies and features; see the module docstring for every field."""

  train: list[MomentSample]
  test: list[MomentSample]
  word_vocab: dict[str, int]
  char_vocab: dict[str, int]
  word_vectors: np.ndarray
  max_pos_len: int
  features: clip_features.VideoFeatureStore = dataclasses.field(repr=False)
  synthetic_info: dict | None = None
  _by_id: dict[int, MomentSample] | None = dataclasses.field(default=None, init=False, repr=False)

  @property
  def feature_dir(self) -> Path:
    return self.features.feature_dir

  @property
  def synthetic(self) -> bool:
    return self.synthetic_info is not None

  @property
  def num_words(self) -> int:
    return len(self.word_vocab)

  @property
  def num_chars(self) -> int:
    return len(self.char_vocab)

  @property
  def word_dim(self) -> int:
    return int(self.word_vectors.shape[1])

  @property
  def feature_dim(self) -> int | None:
    return self.features.feature_dim

  def split(self, name: str) -> list[MomentSample]:
    if name not in SPLITS:
      raise CharadesDataError(f"split: expected one of {SPLITS}, got {name!r}")
    return self.train if name == "train" else self.test

  def lookup(self, sample_ids: Sequence[int]) -> list[MomentSample]:
    """The samples with these ids (e.g. a batch's sample_id over its real rows), from either split."""
    if self._by_id is None:
      self._by_id = {s.sample_id: s for s in self.train + self.test}
    try:
      return [self._by_id[int(i)] for i in sample_ids]
    except KeyError as error:
      raise CharadesDataError(f"sample_id: no sample has id {error.args[0]}") from None

  def describe_features(self) -> str:
    """A label for every printed metric: real features or synthetic ones (with their seed and recipe)."""
    if self.synthetic_info is None:
      return f"features from {self.feature_dir}"
    info = self.synthetic_info
    return (f"SYNTHETIC features (seed {info.get('seed')}, recipe {info.get('recipe_name', '?')} "
            f"v{info.get('recipe_version', '?')}) from {self.feature_dir}: not comparable to published numbers")

  def batches(self, split: str, batch_size: int, **kwargs) -> Iterator[dict[str, np.ndarray]]:
    return input_pipeline.iterate_lm_batches(self.split(split), batch_size, **kwargs)


def load_charades_sta(annotation_dir: str | Path, glove_path: str | Path, feature_dir: str | Path, *,
                      max_pos_len: int = 128, vocab_splits: Sequence[str] = SPLITS, char_min_count: int = 5,
                      max_videos: int | None = None, vocab_scope: str = "files",
                      cache_features: bool = True) -> CharadesSTA:
  """Reads annotations, builds vocabularies and labels, and checks every needed feature file's shape.

  `max_videos` keeps the samples of the first N distinct videos of each split (file order; the same rule as
  the synthetic generator's --max-videos). `vocab_scope` says which annotations of `vocab_splits` the
  vocabularies count (VOCAB_SCOPES): "files", every line of the annotation files, so that ids do not depend on
  max_videos; or "used", only the kept videos' lines, as VSLNet counts whatever annotation files it is given
  (on a subset it then has fewer chars reaching the count of 5; BUILD.md, 'Moment localization vs upstream').
  """
  if max_pos_len <= 0:
    raise CharadesDataError(f"max_pos_len: expected a positive length, got {max_pos_len}")
  unknown = [s for s in vocab_splits if s not in SPLITS]
  if unknown or not vocab_splits:
    raise CharadesDataError(f"vocab_splits: expected a non-empty subset of {SPLITS}, got {tuple(vocab_splits)}")
  if vocab_scope not in VOCAB_SCOPES:
    raise CharadesDataError(f"vocab_scope: expected one of {VOCAB_SCOPES}, got {vocab_scope!r}")
  annotations = load_split_annotations(annotation_dir)
  kept = {split: first_videos(annotations[split], max_videos) for split in SPLITS}
  counted = kept if vocab_scope == "used" else annotations
  word_counts, char_counts = text.count_tokens([a.words for s in SPLITS if s in vocab_splits for a in counted[s]])
  glove, word_dim = text.load_glove(glove_path, keep=set(word_counts))
  text.check_glove_coverage(word_counts, glove, glove_path, annotation_dir)
  word_vocab, word_vectors = text.build_word_vocab(word_counts, glove, word_dim)
  char_vocab = text.build_char_vocab(char_counts, char_min_count)
  store = clip_features.VideoFeatureStore(feature_dir, max_pos_len, cache=cache_features)
  samples = {split: make_samples(kept[split], store, word_vocab, char_vocab, max_pos_len) for split in SPLITS}
  store.settle_feature_dim()
  return CharadesSTA(samples["train"], samples["test"], word_vocab, char_vocab, word_vectors, max_pos_len, store,
                     clip_features.read_synthetic_marker(feature_dir))

