"""Summarization videos of a split -> DSNet training examples (keyshot target and anchor-free labels).

Training target (reference_spec.md §2.3): the 15 % knapsack keyshot summary of the normalised gtscore,
sampled at the picks. DSNet skips videos whose target is all zero; so do we, and say which.

Batches: `input_pipeline.iterate_sm_batches` (the SM batch contract is in its docstring).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from iptnet_jax.datasets import anchor_free_labels, eccv16
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
