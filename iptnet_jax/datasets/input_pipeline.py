"""The input pipeline: bucketing, the SM and LM batch contracts (collation, the device fields, the model's inputs)
and the iPTNet joint batch. The trainers, the parity harness and the benchmarks all batch through here.

Bucketing. Every distinct array shape that reaches a jitted function compiles a new executable, so sequences are
padded to a small, fixed set of bucket lengths and carry a validity mask. A length beyond the largest bucket is
rounded up to a multiple of that largest bucket, so even very long videos add only a few shapes.

SM batches (`sm_batch`, `iterate_sm_batches`) from `summarization.TrainingExample`s (with labels) or
`eccv16.SummVideo`s (without), numpy dicts:
  features      float32 (B, T, D)  zero-padded to a bucket length T
  mask          float32 (B, T)     1 = valid step
  target        float32 (B, T)     binary keyshot target           (training batches only)
  offsets       float32 (B, T, 2)  anchor-free (left, right) labels (training batches only)
  centerness    float32 (B, T)                                      (training batches only)
  example_mask  float32 (B,)       1 = real video; the last batch is padded with empty videos so that the
                                   batch size, and with it the compiled shape, never changes
and, host-side only, `names`: the video names of the real rows.

LM batches (`lm_batch`, `iterate_lm_batches`) from `charades_sta.MomentSample`s (or YouTube Highlights' moment
samples); B is fixed, lengths are bucketed:
  video        float32 (B, Lv, Dv)  zero-padded resampled features; Lv = bucket of the batch's max num_units
  video_mask   float32 (B, Lv)      1 = valid clip
  word_ids     int32   (B, Lq)      0 = PAD, 1 = UNK; Lq = bucket of the longest query
  char_ids     int32   (B, Lq, Lc)  0 = PAD; Lc = bucket of the longest word, at least 4 (the widest char kernel)
  query_mask   float32 (B, Lq)
  start_index  int32   (B,)
  end_index    int32   (B,)
  highlight    float32 (B, Lv)      0/1 highlight labels (`moment_labels.highlight_labels`), 0 on padding
  example_mask float32 (B,)         1 = real sample, 0 = filler row of the last batch
and, host-side only (metrics):
  duration     float32 (B,)         seconds
  num_units    int32   (B,)         valid video length
  gt_start, gt_end float32 (B,)     annotated moment in seconds
  sample_id    int32   (B,)         MomentSample.sample_id, -1 on filler rows
Filler rows of a short last batch repeat the batch's first sample (every array well-formed, no all-masked
row that could turn a masked softmax into NaN) and carry example_mask 0: weight losses and metrics by it.

`SM_FIELDS` / `LM_FIELDS` give each device field's dtype and axes; the device fields are their keys
(`sm_device_fields` / `lm_device_fields` drop the host-only ones) and `LM_MODEL_INPUTS` the LM's positional inputs.

Joint batches (`joint_batch`, `joint_batches`): {'source', 'sm', 'lm'} with the fields of both contracts in every
batch, the absent source as a small masked stand-in. The joint step's lax.switch needs every branch's inputs to
exist with fixed shapes. The stand-in is all zeros with empty masks and example_mask 0; the chosen branch never
reads it. Stand-ins keep the batch size of the real part, so a batch splits evenly over the data-parallel
devices, and take their lengths from `StandinShapes`: sized like one real bucket of their source
(`standin_shapes(config)`), an SM batch and an LM batch of those buckets (and equal batch sizes) have the same
shape signature and share one compiled step. The sources (the joint step's branches) are SM_ONLY, LM_ONLY,
LM_DATA and SM_DATA (`SOURCE_NAMES`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from iptnet_jax.datasets import moment_labels
from iptnet_jax.errors import InputError

# ------------------------------------------------------------------------------------------------ bucketing

class BatchError(InputError):
  """A batch request (batch size, samples, buckets, source) that cannot be served."""


class BucketError(BatchError):
  """A bucket specification or a length that cannot be bucketed."""


def check_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
  """Returns the buckets as a tuple after checking they are positive and strictly increasing."""
  buckets = tuple(int(b) for b in buckets)
  if not buckets:
    raise BucketError("buckets: expected at least one bucket length, got none")
  if any(b <= 0 for b in buckets) or any(a >= b for a, b in zip(buckets, buckets[1:])):
    raise BucketError(f"buckets: expected positive, strictly increasing lengths, got {buckets}")
  return buckets


def bucket_length(n: int, buckets: Sequence[int]) -> int:
  """The smallest bucket >= n; beyond the largest bucket, n rounded up to a multiple of it."""
  buckets = check_buckets(buckets)
  if n <= 0:
    raise BucketError(f"length: expected a positive sequence length, got {n}")
  for b in buckets:
    if n <= b:
      return b
  largest = buckets[-1]
  return -(-n // largest) * largest


def pad_axis(x: np.ndarray, length: int, axis: int = 0, value=0) -> np.ndarray:
  """Pads `x` with `value` at the end of `axis` up to `length` (never truncates)."""
  x = np.asarray(x)
  current = x.shape[axis]
  if current > length:
    raise BucketError(f"pad_axis: array has {current} entries on axis {axis}, more than the target {length}")
  if current == length:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, length - current)
  return np.pad(x, widths, mode="constant", constant_values=value)


def length_mask(lengths: Sequence[int], max_len: int) -> np.ndarray:
  """(B, max_len) float32 mask with 1.0 on the first `lengths[b]` positions of row b."""
  lengths = np.asarray(lengths)
  return (np.arange(max_len)[None, :] < lengths[:, None]).astype(np.float32)


# -------------------------------------------------------------------------------------------- the contracts

# Device field -> (dtype, axes); the axes name the sizes of `_zeros`: B batch, T steps, D features, Lv clips,
# Lq words, Lc chars per word.
SM_FIELDS = {"features": (np.float32, ("B", "T", "D")), "mask": (np.float32, ("B", "T")),
             "target": (np.float32, ("B", "T")), "offsets": (np.float32, ("B", "T", 2)),
             "centerness": (np.float32, ("B", "T")), "example_mask": (np.float32, ("B",))}
LM_FIELDS = {"video": (np.float32, ("B", "Lv", "D")), "video_mask": (np.float32, ("B", "Lv")),
             "word_ids": (np.int32, ("B", "Lq")), "char_ids": (np.int32, ("B", "Lq", "Lc")),
             "query_mask": (np.float32, ("B", "Lq")), "start_index": (np.int32, ("B",)),
             "end_index": (np.int32, ("B",)), "highlight": (np.float32, ("B", "Lv")),
             "example_mask": (np.float32, ("B",))}
SM_DEVICE_FIELDS = tuple(SM_FIELDS)
LM_DEVICE_FIELDS = tuple(LM_FIELDS)
LM_MODEL_INPUTS = ("video", "video_mask", "word_ids", "char_ids", "query_mask")  # VSLNet's positional inputs

VIDEO_BUCKETS = (32, 64, 96, 128)
QUERY_BUCKETS = (8, 16, 24, 32, 48, 64, 96, 128)
CHAR_BUCKETS = (4, 8, 16, 32)  # Charades-STA words have <= 15 chars: almost every batch is 8 or 16
MIN_CHAR_LENGTH = 4  # VSLNet's char CNN has kernels up to width 4; shorter char axes would break it
HIGHLIGHT_EXTENSION = 0.1


def _zeros(fields: dict, **sizes: int) -> dict[str, np.ndarray]:
  return {name: np.zeros(tuple(sizes[a] if isinstance(a, str) else a for a in axes), dtype)
          for name, (dtype, axes) in fields.items()}


def sm_device_fields(batch: dict) -> dict:
  """The arrays of an SM batch that go to the device (drops host-only metadata such as names); the fields a batch
  without labels lacks stay absent."""
  return {k: v for k, v in batch.items() if k in SM_FIELDS}


def lm_device_fields(batch: dict) -> dict:
  """The arrays of an LM batch that go to the device (drops the host-only metric fields)."""
  return {k: batch[k] for k in LM_DEVICE_FIELDS}


def lm_batch_options(lm_config) -> dict:
  """iterate_lm_batches' bucket and highlight options from an LM config (config.data.*)."""
  return dict(video_buckets=tuple(lm_config.data.video_buckets), query_buckets=tuple(lm_config.data.query_buckets),
              char_buckets=tuple(lm_config.data.char_buckets), highlight_extension=lm_config.data.highlight_extension)


# ---------------------------------------------------------------------------------------------- SM batches

def _pad_rows(rows: Sequence[np.ndarray], length: int, batch_size: int) -> np.ndarray:
  padded = [pad_axis(r, length) for r in rows]
  filler = np.zeros((length, *rows[0].shape[1:]), rows[0].dtype)
  padded += [filler] * (batch_size - len(rows))
  return np.stack(padded).astype(np.float32)


def sm_batch(items: Sequence, batch_size: int, buckets: Sequence[int], *, with_labels: bool) -> dict:
  """Pads `items` (TrainingExample or SummVideo) into one batch of `batch_size` rows."""
  if not items or len(items) > batch_size:
    raise BatchError(f"sm_batch: expected 1..{batch_size} videos, got {len(items)}")
  lengths = [item.features.shape[0] for item in items]
  length = bucket_length(max(lengths), buckets)
  batch = {
      "features": _pad_rows([item.features for item in items], length, batch_size),
      "mask": length_mask(lengths + [0] * (batch_size - len(items)), length),
      "example_mask": (np.arange(batch_size) < len(items)).astype(np.float32),
      "names": [item.name for item in items],
  }
  if with_labels:
    batch["target"] = _pad_rows([item.target for item in items], length, batch_size)
    batch["offsets"] = _pad_rows([item.offsets for item in items], length, batch_size)
    batch["centerness"] = _pad_rows([item.centerness for item in items], length, batch_size)
  return batch


def iterate_sm_batches(items: Sequence, batch_size: int, buckets: Sequence[int], *, with_labels: bool,
                       rng: np.random.Generator | None = None) -> Iterator[dict]:
  """Batches in shuffled order (when `rng` is given) or in the given order."""
  order = rng.permutation(len(items)) if rng is not None else np.arange(len(items))
  for start in range(0, len(items), batch_size):
    yield sm_batch([items[i] for i in order[start:start + batch_size]], batch_size, buckets,
                   with_labels=with_labels)


# ---------------------------------------------------------------------------------------------- LM batches

def lm_batch(samples: Sequence, batch_size: int, *, video_buckets: Sequence[int] = VIDEO_BUCKETS,
             query_buckets: Sequence[int] = QUERY_BUCKETS, char_buckets: Sequence[int] = CHAR_BUCKETS,
             highlight_extension: float = HIGHLIGHT_EXTENSION) -> dict[str, np.ndarray]:
  """One LM batch dict (the contract in the module docstring) from 1..batch_size moment samples."""
  if not 0 < len(samples) <= batch_size:
    raise BatchError(f"lm_batch: expected 1..{batch_size} samples, got {len(samples)}")
  num_real = len(samples)
  rows = list(samples) + [samples[0]] * (batch_size - num_real)
  videos = [s.video() for s in rows]
  feature_dim = videos[0].shape[1]
  video_len = bucket_length(max(s.num_units for s in rows), video_buckets)
  query_len = bucket_length(max(len(s.word_ids) for s in rows), query_buckets)
  char_len = bucket_length(max(MIN_CHAR_LENGTH, max(len(c) for s in rows for c in s.char_ids)), char_buckets)

  batch = {
      "video": np.zeros((batch_size, video_len, feature_dim), np.float32),
      "video_mask": np.zeros((batch_size, video_len), np.float32),
      "word_ids": np.zeros((batch_size, query_len), np.int32),
      "char_ids": np.zeros((batch_size, query_len, char_len), np.int32),
      "query_mask": np.zeros((batch_size, query_len), np.float32),
      "start_index": np.asarray([s.start_index for s in rows], np.int32),
      "end_index": np.asarray([s.end_index for s in rows], np.int32),
      "highlight": np.zeros((batch_size, video_len), np.float32),
      "example_mask": (np.arange(batch_size) < num_real).astype(np.float32),
      "duration": np.asarray([s.duration for s in rows], np.float32),
      "num_units": np.asarray([s.num_units for s in rows], np.int32),
      "gt_start": np.asarray([s.start for s in rows], np.float32),
      "gt_end": np.asarray([s.end for s in rows], np.float32),
      "sample_id": np.asarray([s.sample_id if i < num_real else -1 for i, s in enumerate(rows)], np.int32),
  }
  for row, (sample, video) in enumerate(zip(rows, videos)):
    if video.shape[1] != feature_dim:
      raise BatchError(f"video {sample.vid}: expected {feature_dim}-d features like the rest of the batch, "
                              f"got {video.shape[1]}")
    batch["video"][row] = pad_axis(video, video_len)
    batch["video_mask"][row, :sample.num_units] = 1.0
    batch["highlight"][row] = pad_axis(moment_labels.highlight_labels(
        sample.start_index, sample.end_index, sample.num_units, highlight_extension), video_len)
    batch["word_ids"][row, :len(sample.word_ids)] = sample.word_ids
    batch["query_mask"][row, :len(sample.word_ids)] = 1.0
    for position, chars in enumerate(sample.char_ids):
      batch["char_ids"][row, position, :len(chars)] = chars
  return batch


def iterate_lm_batches(samples: Sequence, batch_size: int, *, shuffle: bool,
                       rng: np.random.Generator | None = None, video_buckets: Sequence[int] = VIDEO_BUCKETS,
                       query_buckets: Sequence[int] = QUERY_BUCKETS, char_buckets: Sequence[int] = CHAR_BUCKETS,
                       drop_remainder: bool = False,
                       highlight_extension: float = HIGHLIGHT_EXTENSION) -> Iterator[dict[str, np.ndarray]]:
  """Yields batch dicts of exactly batch_size rows (a short last batch is filled up; see example_mask).

  With shuffle, the order is `rng.permutation(len(samples))` (one new order per call: call once per epoch).
  drop_remainder drops a short last batch instead of filling it up.
  """
  if batch_size <= 0:
    raise BatchError(f"batch_size: expected a positive batch size, got {batch_size}")
  if shuffle and rng is None:
    raise BatchError("iterate_lm_batches: shuffle=True needs an rng (np.random.Generator)")
  order = rng.permutation(len(samples)) if shuffle else np.arange(len(samples))
  for first in range(0, len(samples), batch_size):
    indices = order[first:first + batch_size]
    if len(indices) < batch_size and drop_remainder:
      return
    yield lm_batch([samples[i] for i in indices], batch_size, video_buckets=video_buckets,
                   query_buckets=query_buckets, char_buckets=char_buckets,
                   highlight_extension=highlight_extension)


# ------------------------------------------------------------------------------------------- joint batches

SM_ONLY, LM_ONLY, LM_DATA, SM_DATA = 0, 1, 2, 3
SOURCE_NAMES = ("sm_only", "lm_only", "lm_data", "sm_data")
SM_SOURCES = (SM_ONLY, SM_DATA)
STANDIN_LENGTH = 8  # default steps / clips / words of a stand-in


@dataclasses.dataclass(frozen=True)
class StandinShapes:
  sm_length: int = STANDIN_LENGTH
  lm_video_length: int = STANDIN_LENGTH
  lm_query_length: int = STANDIN_LENGTH
  lm_char_length: int = 4


def standin_shapes(config) -> StandinShapes:
  """Stand-ins as long as the smallest bucket of their source (config.data.buckets, config.lm.data.*_buckets)."""
  lm_data = config.lm.data
  return StandinShapes(sm_length=min(config.data.buckets), lm_video_length=min(lm_data.video_buckets),
                       lm_query_length=min(lm_data.query_buckets), lm_char_length=min(lm_data.char_buckets))


def sm_standin(batch_size: int, feature_dim: int, length: int = STANDIN_LENGTH) -> dict:
  return _zeros(SM_FIELDS, B=batch_size, T=length, D=feature_dim)


def lm_standin(batch_size: int, feature_dim: int, length: int = STANDIN_LENGTH, query_len: int = STANDIN_LENGTH,
               char_len: int = 4) -> dict:
  return _zeros(LM_FIELDS, B=batch_size, Lv=length, D=feature_dim, Lq=query_len, Lc=char_len)


def joint_batch(source: int, *, sm: dict | None = None, lm: dict | None = None, feature_dim: int,
                shapes: StandinShapes = StandinShapes()) -> dict:
  """{'source', 'sm', 'lm'} from the real part of one source (a host batch of either batcher)."""
  if source in SM_SOURCES:
    if sm is None:
      raise BatchError(f"source {SOURCE_NAMES[source]} needs an SM batch")
    sm_part = sm_device_fields(sm)
    lm_part = lm_standin(sm_part["features"].shape[0], feature_dim, shapes.lm_video_length, shapes.lm_query_length,
                         shapes.lm_char_length)
  elif source in (LM_ONLY, LM_DATA):
    if lm is None:
      raise BatchError(f"source {SOURCE_NAMES[source]} needs an LM batch")
    lm_part = lm_device_fields(lm)
    sm_part = sm_standin(lm_part["video"].shape[0], feature_dim, shapes.sm_length)
  else:
    raise BatchError(f"source {source}: expected one of {list(range(len(SOURCE_NAMES)))}")
  return {"source": np.int32(source), "sm": sm_part, "lm": lm_part}


def joint_batches(source: int, config, rng: np.random.Generator, *, feature_dim: int, shapes: StandinShapes,
                  sm_examples: Sequence = (), lm_data=None, lm_limit: int | None = None) -> Iterator[dict]:
  """One pass of the iPTNet joint step over `source`'s data, as joint host batches: the SM training examples
  (config.train.batch_size, config.data.buckets) or the LM data's train split (`lm_data.batches`, as CharadesSTA
  and YouTube Highlights batch it; config.lm.train.batch_size and config.lm.data's buckets), shuffled by `rng`;
  with `lm_limit`, exactly `lm_limit` LM batches: a pass stops there, or further passes (each reshuffled by `rng`)
  follow until the limit is reached."""
  if source in SM_SOURCES:
    for batch in iterate_sm_batches(sm_examples, config.train.batch_size, tuple(config.data.buckets),
                                    with_labels=True, rng=rng):
      yield joint_batch(source, sm=batch, feature_dim=feature_dim, shapes=shapes)
    return
  remaining = lm_limit
  while True:
    lm_batches = lm_data.batches("train", config.lm.train.batch_size, shuffle=True, rng=rng,
                                 **lm_batch_options(config.lm))
    produced = 0
    for batch in itertools.islice(lm_batches, remaining):  # islice pulls no batch past the limit
      yield joint_batch(source, lm=batch, feature_dim=feature_dim, shapes=shapes)
      produced += 1
    if remaining is None or produced in (0, remaining):
      return
    remaining -= produced
