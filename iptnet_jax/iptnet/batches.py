"""Joint batches: the fields of both sources in every batch, the absent source as a small masked stand-in.

The step's lax.switch needs every branch's inputs to exist with fixed shapes. The stand-in for the absent
source is all zeros with empty masks and example_mask 0; the chosen branch never reads it. Stand-ins keep
the batch size of the real part, so a batch splits evenly over the data-parallel devices, and take their
lengths from `StandinShapes`: sized like one real bucket of their source, an SM batch and an LM batch of
those buckets (and equal batch sizes) have the same shape signature and share one compiled step.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from iptnet_jax.datasets import summarization
from iptnet_jax.iptnet import step as step_lib
from iptnet_jax.lm import train as lm_train

STANDIN_LENGTH = 8  # default steps / clips / words of a stand-in


@dataclasses.dataclass(frozen=True)
class StandinShapes:
  sm_length: int = STANDIN_LENGTH
  lm_video_length: int = STANDIN_LENGTH
  lm_query_length: int = STANDIN_LENGTH
  lm_char_length: int = 4


def sm_standin(batch_size: int, feature_dim: int, length: int = STANDIN_LENGTH) -> dict:
  return {"features": np.zeros((batch_size, length, feature_dim), np.float32),
          "mask": np.zeros((batch_size, length), np.float32),
          "target": np.zeros((batch_size, length), np.float32),
          "offsets": np.zeros((batch_size, length, 2), np.float32),
          "centerness": np.zeros((batch_size, length), np.float32),
          "example_mask": np.zeros((batch_size,), np.float32)}


def lm_standin(batch_size: int, feature_dim: int, length: int = STANDIN_LENGTH, query_len: int = STANDIN_LENGTH,
               char_len: int = 4) -> dict:
  return {"video": np.zeros((batch_size, length, feature_dim), np.float32),
          "video_mask": np.zeros((batch_size, length), np.float32),
          "word_ids": np.zeros((batch_size, query_len), np.int32),
          "char_ids": np.zeros((batch_size, query_len, char_len), np.int32),
          "query_mask": np.zeros((batch_size, query_len), np.float32),
          "start_index": np.zeros((batch_size,), np.int32),
          "end_index": np.zeros((batch_size,), np.int32),
          "highlight": np.zeros((batch_size, length), np.float32),
          "example_mask": np.zeros((batch_size,), np.float32)}


def joint_batch(source: int, *, sm: dict | None = None, lm: dict | None = None, feature_dim: int,
                shapes: StandinShapes = StandinShapes()) -> dict:
  """{'source', 'sm', 'lm'} from the real part of one source (a host batch of either batcher)."""
  if source in (step_lib.SM_ONLY, step_lib.SM_DATA):
    if sm is None:
      raise ValueError(f"source {step_lib.SOURCE_NAMES[source]} needs an SM batch")
    sm_part = summarization.device_fields(sm)
    lm_part = lm_standin(sm_part["features"].shape[0], feature_dim, shapes.lm_video_length, shapes.lm_query_length,
                         shapes.lm_char_length)
  elif source in (step_lib.LM_ONLY, step_lib.LM_DATA):
    if lm is None:
      raise ValueError(f"source {step_lib.SOURCE_NAMES[source]} needs an LM batch")
    lm_part = lm_train.device_fields(lm)
    sm_part = sm_standin(lm_part["video"].shape[0], feature_dim, shapes.sm_length)
  else:
    raise ValueError(f"source {source}: expected one of {list(range(len(step_lib.SOURCE_NAMES)))}")
  return {"source": np.int32(source), "sm": sm_part, "lm": lm_part}
