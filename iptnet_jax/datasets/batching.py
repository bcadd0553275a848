"""Length bucketing and padding for variable-length sequences.

Every distinct array shape that reaches a jitted function compiles a new executable, so videos are padded
to a small, fixed set of bucket lengths and carry a validity mask. A length beyond the largest bucket is
rounded up to a multiple of that largest bucket, so even very long videos add only a few shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iptnet_jax.errors import InputError


class BucketError(InputError):
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
