"""Localize a sentence in a video you bring, with a trained LM (an LM run, or the LM of an iPTNet run).

  python -m iptnet_jax.localize --workdir=W --features=F.npy --query="a person opens the door" --out=O \
      [--split=K] [--duration=SECONDS] [--top_k=5] [--nms=0.5]

F is a `.npy` (T, D) array of clip features of the width the run's LM was trained on (Charades I3D: 1024).
As VSLNet, more than lm.data.max_pos_len clips are average-pooled to max_pos_len (`moment_labels.
visual_feature_sampling`), and clip i of N covers [i D / N, (i + 1) D / N] seconds of a video of D seconds
(`--duration`, default T seconds: one feature per second, the synthetic features' rate). The query is tokenized
and encoded with the run's vocabularies, rebuilt from the annotation and GloVe files the run's config names and
checked against the GloVe rows stored in the checkpoint (words outside the vocabulary become UNK and are listed).

Spans: VSLNet's span distribution M = triu(P_s P_e^T) over clip pairs s <= e (`lm.span`). The first span is
VSLNet's prediction (`span.predict_spans`, the maximum of M); the next ones come by descending M, dropping spans
whose IoU with a kept one is >= `--nms` (0.5), so that the top-k are different moments. Writes O/spans.json (each span:
seconds, clips, score M) and O/highlight.png (the query-conditioned highlight curve, VSLNet's query-guided
highlighting, with the spans). Bad input is one line naming the file or flag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iptnet_jax import fileio, run_models
from iptnet_jax.errors import InputError
from iptnet_jax.summarize import FeaturesError, check_width, read_features

SPANS_FILE = "spans.json"
PLOT_FILE = "highlight.png"


def query_vocabulary(run: run_models.TrainedRun) -> tuple[dict, dict]:
  """(word_vocab, char_vocab) of the run's LM data, rebuilt as the loader built them for training and checked
  against the checkpoint's GloVe rows and char table."""
  from iptnet_jax.datasets import charades_sta, text

  lm_config = run.lm_config
  source = lm_config.data.get("source", "charades_sta")
  if source == "charades_sta":
    annotation_dir, glove_path = lm_config.data.annotation_dir, lm_config.data.glove_path
    annotations = charades_sta.load_split_annotations(annotation_dir)
    if lm_config.data.get("vocab_scope", "files") == "used":  # only the kept videos' lines (load_charades_sta)
      max_videos = lm_config.data.get("max_videos", 0) or None
      annotations = {split: charades_sta.first_videos(annotations[split], max_videos) for split in annotations}
    word_counts, char_counts = text.count_tokens(
        [a.words for split in charades_sta.SPLITS for a in annotations[split]])
    glove, word_dim = text.load_glove(glove_path, keep=set(word_counts))
    word_vocab, vectors = text.build_word_vocab(word_counts, glove, word_dim)
    char_vocab = text.build_char_vocab(char_counts)
    origin = f"{annotation_dir} and {glove_path}"
  else:  # YouTube Highlights: its loader builds the vocabularies from the titles (it reads the features too)
    from iptnet_jax.lm import train as lm_train

    dataset = lm_train.load_lm_data(lm_config, run.workdir)
    word_vocab, vectors, char_vocab = dataset.word_vocab, dataset.word_vectors, dataset.char_vocab
    origin = f"the YouTube Highlights files in {lm_config.data.youtube_dir}"
  stored = np.asarray(run.lm.variables["constants"]["embedding_net"]["word_emb"]["glove_vec"])
  num_chars = np.shape(run.lm.variables["params"]["embedding_net"]["char_emb"]["char_emb"]["embedding"])[0]
  if (vectors[2:].shape != stored.shape or not np.allclose(vectors[2:], stored, atol=1e-6)
      or len(char_vocab) != num_chars):
    raise run_models.RunReadError(
        f"the vocabulary rebuilt from {origin} ({len(word_vocab)} words, {len(char_vocab)} chars) is not the one the "
        f"LM in {run.lm.checkpoint_dir} was trained with ({stored.shape[0] + 2} words, {num_chars} chars): those "
        "files changed since the run, or are read from another folder (relative paths are taken from the current "
        "folder, as when training)")
  return word_vocab, char_vocab


def encode(query: str, word_vocab: dict, char_vocab: dict, max_pos_len: int):
  """(words, word_ids, char_ids per word, unknown words)."""
  from iptnet_jax.datasets import text

  words = text.tokenize(query)
  if not words:
    raise FeaturesError(f"--query={query!r}: no words")
  word_ids, char_ids = text.encode_query(words, word_vocab, char_vocab, max_pos_len)
  unknown = sorted({w for w in words[:max_pos_len] if w not in word_vocab})
  if len(unknown) == len(set(words[:max_pos_len])):
    raise FeaturesError(f"--query={query!r}: none of its words ({', '.join(unknown)}) is in the run's vocabulary, "
                        "so the LM would read only unknown-word vectors")
  return words[:max_pos_len], word_ids, char_ids, unknown


def lm_batch(video: np.ndarray, word_ids: np.ndarray, char_ids, lm_config) -> dict:
  """One padded row in the trainer's bucket lengths (lm.data.*_buckets)."""
  from iptnet_jax.datasets.input_pipeline import MIN_CHAR_LENGTH, bucket_length

  data = lm_config.data
  num_units, dim = video.shape
  video_len = bucket_length(num_units, tuple(data.video_buckets))
  query_len = bucket_length(len(word_ids), tuple(data.query_buckets))
  char_len = bucket_length(max(MIN_CHAR_LENGTH, max(len(c) for c in char_ids)),
                           tuple(data.char_buckets))
  batch = {"video": np.zeros((1, video_len, dim), np.float32), "video_mask": np.zeros((1, video_len), np.float32),
           "word_ids": np.zeros((1, query_len), np.int32), "char_ids": np.zeros((1, query_len, char_len), np.int32),
           "query_mask": np.zeros((1, query_len), np.float32)}
  batch["video"][0, :num_units] = video
  batch["video_mask"][0, :num_units] = 1.0
  batch["word_ids"][0, :len(word_ids)] = word_ids
  batch["query_mask"][0, :len(word_ids)] = 1.0
  for position, chars in enumerate(char_ids):
    batch["char_ids"][0, position, :len(chars)] = chars
  return batch


def span_distribution(start_logits: np.ndarray, end_logits: np.ndarray, num_units: int) -> np.ndarray:
  """M (N, N) = triu(P_s P_e^T) over the valid clips, float64 as `lm.span.predict_spans`."""
  def softmax(x):
    x = np.asarray(x[:num_units], np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()

  return np.triu(softmax(start_logits)[:, None] * softmax(end_logits)[None, :])


def top_spans(joint: np.ndarray, first: tuple[int, int], top_k: int, nms: float) -> list[tuple[int, int, float]]:
  """(start clip, end clip, M): `first` (VSLNet's prediction, `span.predict_spans`), then the best spans by M,
  greedily skipping spans whose IoU with a kept one is >= nms."""
  n = joint.shape[0]
  kept = [(int(first[0]), int(first[1]), float(joint[first[0], first[1]]))]
  for flat in np.argsort(-joint, axis=None, kind="stable"):  # ties: smaller start, then smaller end
    if len(kept) == top_k:
      break
    start, end = divmod(int(flat), n)
    if start > end:
      break  # the lower triangle is zero and sorts last
    if any((min(end, e) - max(start, s) + 1) / (max(end, e) - min(start, s) + 1) >= nms for s, e, _ in kept):
      continue
    kept.append((start, end, float(joint[start, end])))
  return kept


def localize(run: run_models.TrainedRun, features: np.ndarray, query: str, *, duration: float, top_k: int = 5,
             nms: float = 0.5) -> dict:
  import jax

  from iptnet_jax.datasets import moment_labels
  from iptnet_jax.lm import span

  lm_config = run.lm_config
  max_pos_len = int(lm_config.data.max_pos_len)
  word_vocab, char_vocab = query_vocabulary(run)
  words, word_ids, char_ids, unknown = encode(query, word_vocab, char_vocab, max_pos_len)
  video = moment_labels.visual_feature_sampling(features, max_pos_len)
  num_units = video.shape[0]
  batch = lm_batch(video, word_ids, char_ids, lm_config)
  outputs = jax.device_get(_forward(run.lm.model)(run.lm.variables, batch))
  start_logits, end_logits = outputs["start_logits"][0], outputs["end_logits"][0]
  joint = span_distribution(start_logits, end_logits, num_units)
  best_start, best_end = span.predict_spans(start_logits[None, :num_units], end_logits[None, :num_units],
                                            np.ones((1, num_units)))
  spans = top_spans(joint, (best_start[0], best_end[0]), top_k, nms)
  starts, ends = span.index_to_time(np.array([s for s, _, _ in spans]), np.array([e for _, e, _ in spans]),
                                    np.full(len(spans), num_units), np.full(len(spans), duration))
  unit_start, _ = moment_labels.unit_times(num_units, duration)
  return {
      "query": query, "words": list(words), "unknown_words": unknown, "num_clips": int(features.shape[0]),
      "num_units": num_units, "duration_seconds": duration,
      "spans": [{"rank": r + 1, "seconds": [round(float(a), 3), round(float(b), 3)], "clips": [s, e],
                 "score": round(m, 6)} for r, ((s, e, m), a, b) in enumerate(zip(spans, starts, ends))],
      "highlight": {"seconds": np.round(unit_start.astype(np.float64), 3).tolist(),
                    "value": np.round(outputs["highlight_prob"][0, :num_units].astype(np.float64), 5).tolist()},
      "selection": f"VSLNet's span distribution triu(P_s P_e^T); top {top_k} by it, skipping IoU >= {nms} to a kept span",
  }


_FORWARDS: dict = {}


def _forward(model):
  """jitted VSLNet forward (dropout off), one per model."""
  import jax

  from iptnet_jax.datasets.input_pipeline import LM_MODEL_INPUTS

  if model not in _FORWARDS:
    def forward(variables, batch):
      return model.apply(variables, *(batch[k] for k in LM_MODEL_INPUTS), deterministic=True)
    _FORWARDS[model] = jax.jit(forward)
  return _FORWARDS[model]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m iptnet_jax.localize", description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="an LM or iPTNet run's workdir")
  parser.add_argument("--split", type=int, default=None, help="iPTNet runs: whose split's LM (default: the first)")
  parser.add_argument("--features", required=True, help="a .npy (T, D) array of clip features")
  parser.add_argument("--query", required=True, help="the sentence to localize")
  parser.add_argument("--duration", type=float, default=None, help="video length in seconds (default: T)")
  parser.add_argument("--top_k", type=int, default=5)
  parser.add_argument("--nms", type=float, default=0.5, help="IoU at which a lower-ranked span is dropped")
  parser.add_argument("--out", required=True, help="output folder for spans.json and highlight.png")
  args = parser.parse_args(list(argv))
  if args.top_k < 1:
    raise FeaturesError(f"--top_k={args.top_k}: expected at least 1")
  if not 0 < args.nms <= 1:
    raise FeaturesError(f"--nms={args.nms}: expected an IoU in (0, 1]")
  if args.duration is not None and not (np.isfinite(args.duration) and args.duration > 0):
    raise FeaturesError(f"--duration={args.duration}: expected a positive number of seconds")
  return args


def run(argv: Sequence[str]) -> dict:
  from iptnet_jax import plots

  args = parse_args(argv)
  if Path(args.features).suffix.lower() != ".npy":
    raise FeaturesError(f"--features={args.features}: expected a .npy (T, D) array of clip features")
  (video,) = read_features(args.features)
  trained = run_models.load_run(args.workdir, args.split, need_lm=True)
  check_width(video, trained.lm.feature_dim, trained.workdir)
  duration = float(args.duration) if args.duration is not None else float(video.features.shape[0])
  result = localize(trained, video.features, args.query, duration=duration, top_k=args.top_k, nms=args.nms)
  result = {"source": trained.source(), "features": str(Path(args.features)), **result}
  out = Path(args.out)
  try:
    out.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise fileio.write_error(out, error) from None
  split = f", split {trained.split} LM" if trained.split is not None else ""
  plots.highlight_figure(out / PLOT_FILE, np.asarray(result["highlight"]["seconds"]), result["highlight"]["value"],
                         result["spans"], duration, f'"{args.query}" in {video.name}: {trained.task} run '
                         f"{trained.workdir.name}{split}")
  result["plot"] = str(out / PLOT_FILE)
  fileio.write_json(out / SPANS_FILE, result)
  return result


def main(argv: Sequence[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  try:
    result = run(argv)
  except InputError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  if result["unknown_words"]:
    print(f"note: not in the run's vocabulary (read as UNK): {', '.join(result['unknown_words'])}")
  for span in result["spans"]:
    print(f"{span['rank']}: {span['seconds'][0]:.1f}-{span['seconds'][1]:.1f} s (score {span['score']:.3f})")
  print(f"wrote {Path(result['plot']).parent / SPANS_FILE} and {result['plot']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
