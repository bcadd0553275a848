"""Summarization videos of a split -> training examples and padded, bucketed batches.

Training target (reference_spec.md §2.3): the 15 % knapsack keyshot summary of the normalised gtscore,
sampled at the picks. DSNet skips videos whose target is all zero; so do we, and say which.

Batches are numpy dicts (the SM batch contract):
  features      float32 (B, T, D)  zero-padded to a bucket length T
  mask          float32 (B, T)     1 = valid step
  target        float32 (B, T)     binary keyshot target           (training batches only)
  offsets       float32 (B, T, 2)  anchor-free (left, right) labels (training batches only)
  centerness    float32 (B, T)                                      (training batches only)
  example_mask  float32 (B,)       1 = real video; the last batch is padded with empty videos so that the
                                   batch size, and with it the compiled shape, never changes
and, host-side only, `names`: the video names of the real rows.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from iptnet_jax.datasets import anchor_free_labels, batching, eccv16
from iptnet_jax.datasets.splits import Split, VideoRef
from iptnet_jax.vsumm import keyshots


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingExample:
  name: str
  features: np.ndarray  # (T, D)
  target: np.ndarray  # (T,) 0/1
  offsets: np.ndarray  # (T, 2)
  centerness: np.ndarray  # (T,)


def load_videos(refs: Iterable[VideoRef], eval_refs: Iterable[VideoRef] = ()) -> dict[VideoRef, eccv16.SummVideo]:
  """Reads every referenced video once, grouped by file; `eval_refs` must carry user summaries."""
  eval_refs = set(eval_refs)
  by_file: dict = defaultdict(set)
  for ref in set(refs) | eval_refs:
    by_file[ref.h5_path].add(ref)
  videos = {}
  for h5_path, file_refs in sorted(by_file.items()):
    needs_summary = {r.video_key for r in file_refs if r in eval_refs}
    plain = {r.video_key for r in file_refs} - needs_summary
    loaded = {}
    if needs_summary:
      loaded.update(eccv16.read_videos(h5_path, sorted(needs_summary), require_user_summary=True))
    if plain:
      loaded.update(eccv16.read_videos(h5_path, sorted(plain), require_user_summary=False))
    for ref in file_refs:
      videos[ref] = loaded[ref.video_key]
  return videos


def check_feature_widths(videos: Mapping[VideoRef, eccv16.SummVideo]) -> int:
  """The one feature width of `videos`; a video of another width is named (file, key) against the majority.

  Every file is valid alone, so only the run's videos together can tell which one is odd; the model is built for
  one width, and without this check the odd video would fail later with a shape error naming neither.
  """
  if not videos:
    raise ValueError("check_feature_widths: no videos")
  widths = Counter(video.features.shape[1] for video in videos.values())
  common, count = widths.most_common(1)[0]
  example = next(ref for ref, video in sorted(videos.items()) if video.features.shape[1] == common)
  for ref, video in sorted(videos.items()):
    if video.features.shape[1] != common:
      raise eccv16.DatasetFormatError(
          f"{ref.h5_path}: video '{ref.video_key}': field 'features': expected width {common} like {count} other "
          f"video(s) of the run (e.g. {example.name}), got shape {video.features.shape}; a run needs one width")
  return common


def load_split_videos(splits: Sequence[Split]) -> dict[VideoRef, eccv16.SummVideo]:
  """All videos of all splits, each read once and of one feature width; val/test videos need user summaries."""
  train = [r for s in splits for r in s.train]
  evaluated = [r for s in splits for r in (*s.val, *s.test)]
  videos = load_videos(train, evaluated)
  check_feature_widths(videos)
  return videos


def training_example(video: eccv16.SummVideo, proportion: float = 0.15) -> TrainingExample | None:
  """The DSNet training example of a video, or None when its keyshot target is empty."""
  summary = keyshots.get_keyshot_summ(video.gtscore, video.change_points, video.n_frames,
                                      video.n_frame_per_seg, video.picks, proportion)
  target = keyshots.downsample_summ(summary, video.picks).astype(np.float32)
  if not target.any():
    return None
  offsets = anchor_free_labels.offset_labels(target)
  return TrainingExample(video.name, video.features, target, offsets,
                         anchor_free_labels.centerness_labels(target, offsets))


def training_examples(videos: Iterable[eccv16.SummVideo], proportion: float = 0.15) -> list[TrainingExample]:
  examples = []
  for video in videos:
    example = training_example(video, proportion)
    if example is None:
      logging.warning("skipping %s: its keyshot target is empty (DSNet skips these too)", video.name)
    else:
      examples.append(example)
  return examples


def _pad_rows(rows: Sequence[np.ndarray], length: int, batch_size: int) -> np.ndarray:
  padded = [batching.pad_axis(r, length) for r in rows]
  filler = np.zeros((length, *rows[0].shape[1:]), rows[0].dtype)
  padded += [filler] * (batch_size - len(rows))
  return np.stack(padded).astype(np.float32)


def make_batch(items: Sequence, batch_size: int, buckets: Sequence[int], *, with_labels: bool) -> dict:
  """Pads `items` (TrainingExample or SummVideo) into one batch of `batch_size` rows."""
  if not items or len(items) > batch_size:
    raise ValueError(f"make_batch: expected 1..{batch_size} videos, got {len(items)}")
  lengths = [item.features.shape[0] for item in items]
  length = batching.bucket_length(max(lengths), buckets)
  batch = {
      "features": _pad_rows([item.features for item in items], length, batch_size),
      "mask": batching.length_mask(lengths + [0] * (batch_size - len(items)), length),
      "example_mask": (np.arange(batch_size) < len(items)).astype(np.float32),
      "names": [item.name for item in items],
  }
  if with_labels:
    batch["target"] = _pad_rows([item.target for item in items], length, batch_size)
    batch["offsets"] = _pad_rows([item.offsets for item in items], length, batch_size)
    batch["centerness"] = _pad_rows([item.centerness for item in items], length, batch_size)
  return batch


def iterate_batches(items: Sequence, batch_size: int, buckets: Sequence[int], *, with_labels: bool,
                    rng: np.random.Generator | None = None) -> Iterator[dict]:
  """Batches in shuffled order (when `rng` is given) or in the given order."""
  order = rng.permutation(len(items)) if rng is not None else np.arange(len(items))
  for start in range(0, len(items), batch_size):
    yield make_batch([items[i] for i in order[start:start + batch_size]], batch_size, buckets,
                     with_labels=with_labels)


DEVICE_FIELDS = ("features", "mask", "target", "offsets", "centerness", "example_mask")


def device_fields(batch: dict) -> dict:
  """The arrays of a batch that go to the device (drops host-only metadata such as names)."""
  return {k: v for k, v in batch.items() if k in DEVICE_FIELDS}
