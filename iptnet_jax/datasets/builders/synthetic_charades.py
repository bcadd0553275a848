"""Synthetic Charades-STA video features with a planted, learnable query -> moment relation.

Real Charades I3D features are not available here. This writes, for the REAL Charades-STA annotations,
one `{vid}.npy` (T, dim) float32 per video in VSLNet's layout, so the real loader
(`charades_sta.load_charades_sta`) and the real labels run unchanged. Recipe "charades-word-concepts" v1:

* every word w has a fixed random unit "concept" direction c_w (seeded by the run seed and a hash of the
  word, so it is the same in every video and both splits). The directions lie in one fixed random
  `concept_rank`-dimensional subspace of R^dim (default 128, VSLNet's hidden size), as the semantic content
  of real features occupies a small subspace: a model's 1024 -> 128 projection can then keep all of it,
  while the noise fills every dimension;
* a sentence's concept is the unit vector along sum_w idf(w) c_w over its tokens, with
  idf(w) = log((1 + S) / (1 + df(w))) over the S TRAINING sentences, df(w) of which hold w (a word unseen in
  training gets log(1 + S)): words in nearly every sentence ("person", "a", ".") carry almost no visual
  signal, as with real features, and the weights are the same for both splits;
* a video of duration D has T = max(min_frames, round(D)) frames (about one feature per second, like
  Charades I3D); frame t covers [t D/T, (t+1) D/T];
* frame t = per-video background offset (random direction, norm offset_scale)
            + Gaussian noise (norm about noise_scale)
            + signal_scale * sum over this video's annotated sentences k of coverage_k(t) * concept(sentence_k)
            + signal_scale * (same, for `distractors_per_video` random sentences of OTHER videos of the same
              split, each over a random run of frames: actions nobody asked about),
  where coverage_k(t) in [0, 1] is the fraction of frame t inside sentence k's moment (soft boundaries);
* finally every frame is multiplied by sqrt(dim), so entries are O(1) like real I3D features (a 1024 -> 128
  projection of tiny inputs would start far below VSLNet's N(0, 1) position embeddings).

A query therefore matches the frames of its own moment (shared words with the sentence that planted it)
more than other moments of the same video (other sentences, often different verbs/objects) or distractors,
and a model must read the query's words to tell them apart: "there is some action here" is not enough.
Test-split features are planted from the test annotations by the same recipe; the model only ever sees the
features and the query, never the recipe.

The folder gets a `SYNTHETIC.json` marker (seed, recipe, parameters), written BEFORE any feature file and
rewritten with "complete": true at the end, so a folder holding these .npy files is always marked: the loader
exposes `CharadesSTA.synthetic` / `describe_features()` and every metric printed from it must say
"synthetic features". Every file is written atomically (temporary file + rename).

CLI: python -m iptnet_jax.datasets.synthetic_charades --shared ../shared/data --out DIR
       [--seed 0 --dim 1024 --splits train,test --max-videos N --noise 1.0 --signal 1.0 --distractors 1
        --concept-rank 128]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iptnet_jax.datasets import charades_sta, clip_features
from iptnet_jax.errors import InputError

RECIPE_NAME = "charades-word-concepts"
RECIPE_VERSION = 1
RECIPE_TEXT = ("frame = per-video offset + Gaussian noise + signal * sum_k coverage_k(frame) * unit(sum of "
               "train-idf-weighted word concept directions of sentence k), over the video's annotated sentences and "
               "`distractors_per_video` random sentences of other videos of the split on random frame runs; "
               "word directions are seeded by (seed, sha256(word)) inside a seeded concept_rank-dim subspace; "
               "T = max(min_frames, round(duration)); everything times sqrt(dim)")


class SyntheticDataError(charades_sta.CharadesDataError):
  """Bad generator settings or an output folder that must not be written into."""


@dataclasses.dataclass(frozen=True)
class SyntheticCharadesSpec:
  seed: int = 0
  dim: int = 1024
  min_frames: int = 8
  signal_scale: float = 1.0
  noise_scale: float = 1.0
  offset_scale: float = 1.0
  distractors_per_video: int = 1
  concept_rank: int = 128  # dimension of the subspace holding the word directions; >= dim means all of R^dim

  def __post_init__(self):
    checks = {"seed": self.seed >= 0, "dim": self.dim >= 1, "min_frames": self.min_frames >= 1,
              "signal_scale": self.signal_scale >= 0, "noise_scale": self.noise_scale >= 0,
              "offset_scale": self.offset_scale >= 0, "distractors_per_video": self.distractors_per_video >= 0,
              "concept_rank": self.concept_rank >= 1}
    for field, ok in checks.items():
      if not ok:
        raise SyntheticDataError(f"synthetic Charades features: bad value {field}={getattr(self, field)!r}")


def _hash64(text: str) -> int:
  return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _unit(vector: np.ndarray) -> np.ndarray:
  return vector / max(float(np.linalg.norm(vector)), 1e-12)


def concept_basis(seed: int, dim: int, rank: int) -> np.ndarray | None:
  """(dim, rank) orthonormal basis of the concept subspace, or None when it is all of R^dim."""
  if rank >= dim:
    return None
  rng = np.random.default_rng([seed, 3])
  basis, _ = np.linalg.qr(rng.standard_normal((dim, rank)))
  return basis


def word_concept(word: str, seed: int, basis: np.ndarray | None, dim: int) -> np.ndarray:
  """The fixed (dim,) unit direction of a word (same in every video and split)."""
  rng = np.random.default_rng([seed, _hash64(word), 1])
  if basis is None:
    return _unit(rng.standard_normal(dim)).astype(np.float32)
  return (basis @ _unit(rng.standard_normal(basis.shape[1]))).astype(np.float32)


class ConceptBank:
  """Word and sentence concept directions for one (seed, dim), computed once per word.

  With `training_sentences`, a word's direction weighs idf(w) = log((1 + S) / (1 + df(w))) in a sentence
  concept (S training sentences, df(w) of them holding w; an unseen word gets log(1 + S)); without, every
  token weighs 1.
  """

  def __init__(self, seed: int, dim: int, training_sentences: Sequence[Sequence[str]] | None = None, *,
               rank: int | None = None):
    self.seed, self.dim = seed, dim
    self._basis = concept_basis(seed, dim, dim if rank is None else rank)
    self._words: dict[str, np.ndarray] = {}
    self._idf: dict[str, float] | None = None
    if training_sentences is not None:
      document_frequency: dict[str, int] = {}
      for words in training_sentences:
        for word in set(words):
          document_frequency[word] = document_frequency.get(word, 0) + 1
      total = len(training_sentences)
      self._idf = {w: float(np.log((1 + total) / (1 + df))) for w, df in document_frequency.items()}
      self._unseen_weight = float(np.log(1 + total))

  @classmethod
  def for_annotations(cls, annotation_dir: str | Path, spec: "SyntheticCharadesSpec") -> "ConceptBank":
    """The bank `generate` uses for these annotation files and settings."""
    train = charades_sta.load_split_annotations(annotation_dir)["train"]
    return cls(spec.seed, spec.dim, [a.words for a in train], rank=spec.concept_rank)

  def word(self, word: str) -> np.ndarray:
    if word not in self._words:
      self._words[word] = word_concept(word, self.seed, self._basis, self.dim)
    return self._words[word]

  def weight(self, word: str) -> float:
    if self._idf is None:
      return 1.0
    return self._idf.get(word, self._unseen_weight)

  def sentence(self, words: Sequence[str]) -> np.ndarray:
    """unit(sum of the tokens' weighted directions), float32 (dim,)."""
    total = np.sum([self.weight(w) * self.word(w).astype(np.float64) for w in words], axis=0)
    return _unit(total).astype(np.float32)


def num_frames(duration: float, min_frames: int = 8) -> int:
  """Feature rows for a video: about one per second, at least min_frames."""
  return max(min_frames, int(round(duration)))


def moment_coverage(start: float, end: float, duration: float, frames: int) -> np.ndarray:
  """(frames,) fraction of each frame's time span [t D/T, (t+1) D/T] that lies inside [start, end]."""
  edges = np.arange(frames + 1, dtype=np.float64) * duration / frames
  inside = np.minimum(edges[1:], end) - np.maximum(edges[:-1], start)
  return np.clip(inside / (duration / frames), 0.0, 1.0)


def synthesize_video(vid: str, duration: float, sentences: Sequence[charades_sta.MomentAnnotation],
                     distractor_pool: Sequence[charades_sta.MomentAnnotation], spec: SyntheticCharadesSpec,
                     bank: ConceptBank) -> np.ndarray:
  """(T, dim) float32 features of one video; depends only on (spec, vid, its sentences, the pool)."""
  rng = np.random.default_rng([spec.seed, _hash64(vid), 2])
  frames = num_frames(duration, spec.min_frames)
  offset = spec.offset_scale * _unit(rng.standard_normal(spec.dim))
  features = offset + rng.normal(0.0, spec.noise_scale / np.sqrt(spec.dim), (frames, spec.dim))
  for sentence in sentences:
    coverage = moment_coverage(sentence.start, sentence.end, duration, frames)
    features += spec.signal_scale * coverage[:, None] * bank.sentence(sentence.words)
  has_others = any(a.vid != vid for a in distractor_pool)
  for _ in range(spec.distractors_per_video if has_others else 0):
    distractor = distractor_pool[int(rng.integers(len(distractor_pool)))]
    while distractor.vid == vid:  # a sentence of this very video would plant a second copy of its moment
      distractor = distractor_pool[int(rng.integers(len(distractor_pool)))]
    length = int(rng.integers(1, max(1, frames // 4) + 1))
    first = int(rng.integers(0, frames - length + 1))
    features[first:first + length] += spec.signal_scale * bank.sentence(distractor.words)
  return (features * np.sqrt(spec.dim)).astype(np.float32)


def _atomic_write_bytes(path: Path, write) -> None:
  handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
  try:
    with handle:
      write(handle)
      handle.flush()
      os.fsync(handle.fileno())
    os.replace(handle.name, path)
  except BaseException:
    Path(handle.name).unlink(missing_ok=True)
    raise


def _write_json(path: Path, content: dict) -> None:
  _atomic_write_bytes(path, lambda f: f.write(json.dumps(content, indent=2, sort_keys=True).encode("utf-8")))


def _check_output_folder(out_dir: Path, marker: dict) -> None:
  existing = clip_features.read_synthetic_marker(out_dir) if out_dir.is_dir() else None
  if existing is None:
    if out_dir.is_dir() and any(out_dir.glob("*.npy")):
      raise SyntheticDataError(f"{out_dir}: holds .npy files but no {clip_features.SYNTHETIC_MARKER} marker (real "
                               "features?); refusing to mix synthetic features into it: choose an empty folder")
    return
  keys = ("generator", "recipe_name", "recipe_version", "parameters")
  if any(existing.get(k) != marker[k] for k in keys):
    raise SyntheticDataError(f"{out_dir}: already holds synthetic features made with other settings "
                             f"({ {k: existing.get(k) for k in keys} }); choose an empty folder")


def generate(annotation_dir: str | Path, out_dir: str | Path, spec: SyntheticCharadesSpec = SyntheticCharadesSpec(),
             *, splits: Sequence[str] = charades_sta.SPLITS, max_videos: int | None = None) -> dict:
  """Writes {vid}.npy for the (first max_videos per split) annotated videos, plus the markers; returns the marker."""
  annotation_dir, out_dir = Path(annotation_dir), Path(out_dir)
  if not splits or any(s not in charades_sta.SPLITS for s in splits):
    raise SyntheticDataError(f"splits: expected a non-empty subset of {charades_sta.SPLITS}, got {tuple(splits)}")
  annotations = charades_sta.load_split_annotations(annotation_dir)
  marker = {
      "synthetic": True,
      "generator": "iptnet_jax.datasets.synthetic_charades",
      "recipe_name": RECIPE_NAME,
      "recipe_version": RECIPE_VERSION,
      "recipe": RECIPE_TEXT,
      "seed": spec.seed,
      "parameters": dataclasses.asdict(spec),
      "annotations": {charades_sta.annotation_path(annotation_dir, s).name: hashlib.sha256(
          charades_sta.annotation_path(annotation_dir, s).read_bytes()).hexdigest() for s in charades_sta.SPLITS},
      "splits": list(splits),
      "max_videos": max_videos,
      "complete": False,
  }
  _check_output_folder(out_dir, marker)
  out_dir.mkdir(parents=True, exist_ok=True)
  # The marker goes first: an interrupted run must never leave unmarked synthetic .npy files behind.
  _write_json(out_dir / clip_features.SYNTHETIC_MARKER, marker)
  bank = ConceptBank(spec.seed, spec.dim, [a.words for a in annotations["train"]], rank=spec.concept_rank)
  shapes = {}
  for split in splits:
    pool = annotations[split]  # the full split, so a video's features do not depend on max_videos
    by_video: dict[str, list[charades_sta.MomentAnnotation]] = {}
    for annotation in charades_sta.first_videos(pool, max_videos):
      by_video.setdefault(annotation.vid, []).append(annotation)
    for vid, sentences in by_video.items():
      features = synthesize_video(vid, sentences[0].duration, sentences, pool, spec, bank)
      _atomic_write_bytes(out_dir / f"{vid}.npy", lambda f, x=features: np.save(f, x, allow_pickle=False))
      shapes[vid] = int(features.shape[0])
  shapes_path = out_dir / "feature_shapes.json"  # VSLNet's per-folder {vid: T} index
  previous = json.loads(shapes_path.read_text(encoding="utf-8")) if shapes_path.is_file() else {}
  _write_json(shapes_path, {**previous, **shapes})
  marker.update(complete=True, num_videos=len({**previous, **shapes}))
  _write_json(out_dir / clip_features.SYNTHETIC_MARKER, marker)
  return marker


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m iptnet_jax.datasets.synthetic_charades",
      description="Write SYNTHETIC (T, dim) features for the real Charades-STA annotations (VSLNet layout).")
  parser.add_argument("--shared", type=Path, help="shared data folder holding charades_sta/ (annotations)")
  parser.add_argument("--annotations", type=Path, help="folder of charades_sta_{train,test}.txt + charades.json "
                      "(default: SHARED/charades_sta)")
  parser.add_argument("--out", type=Path, required=True, help="output folder for {vid}.npy + SYNTHETIC.json")
  parser.add_argument("--seed", type=int, default=SyntheticCharadesSpec.seed)
  parser.add_argument("--dim", type=int, default=SyntheticCharadesSpec.dim, help="feature width (I3D: 1024)")
  parser.add_argument("--splits", default="train,test", help="comma-separated subset of train,test")
  parser.add_argument("--max-videos", type=int, default=None, help="only the first N videos of each split")
  parser.add_argument("--signal", type=float, default=SyntheticCharadesSpec.signal_scale)
  parser.add_argument("--noise", type=float, default=SyntheticCharadesSpec.noise_scale)
  parser.add_argument("--offset", type=float, default=SyntheticCharadesSpec.offset_scale)
  parser.add_argument("--distractors", type=int, default=SyntheticCharadesSpec.distractors_per_video)
  parser.add_argument("--min-frames", type=int, default=SyntheticCharadesSpec.min_frames)
  parser.add_argument("--concept-rank", type=int, default=SyntheticCharadesSpec.concept_rank)
  args = parser.parse_args(argv)
  if args.annotations is None and args.shared is None:
    parser.error("give --shared (holding charades_sta/) or --annotations")
  annotation_dir = args.annotations if args.annotations is not None else args.shared / "charades_sta"
  try:
    spec = SyntheticCharadesSpec(seed=args.seed, dim=args.dim, min_frames=args.min_frames,
                                 signal_scale=args.signal, noise_scale=args.noise, offset_scale=args.offset,
                                 distractors_per_video=args.distractors, concept_rank=args.concept_rank)
    marker = generate(annotation_dir, args.out, spec, splits=[s for s in args.splits.split(",") if s],
                      max_videos=args.max_videos)
  except InputError as error:  # the annotations' CharadesDataError, a bad --out folder's SyntheticDataError
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(f"wrote SYNTHETIC features for {marker['num_videos']} videos to {args.out} "
        f"(recipe {RECIPE_NAME} v{RECIPE_VERSION}, seed {spec.seed}, dim {spec.dim})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
