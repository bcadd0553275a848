import numpy as np
import pytest

from iptnet_jax.datasets import batching


def test_bucket_length():
  assert batching.bucket_length(1, (4, 8)) == 4
  assert batching.bucket_length(8, (4, 8)) == 8
  assert batching.bucket_length(9, (4, 8)) == 16  # beyond the largest: multiples of it
  assert batching.bucket_length(17, (4, 8)) == 24
  with pytest.raises(batching.BucketError, match="strictly increasing"):
    batching.bucket_length(3, (8, 4))
  with pytest.raises(batching.BucketError, match="positive sequence length"):
    batching.bucket_length(0, (4,))


def test_pad_axis_and_mask():
  x = np.arange(6).reshape(3, 2)
  np.testing.assert_array_equal(batching.pad_axis(x, 5), [[0, 1], [2, 3], [4, 5], [0, 0], [0, 0]])
  np.testing.assert_array_equal(batching.pad_axis(x, 3, axis=1, value=-1), [[0, 1, -1], [2, 3, -1], [4, 5, -1]])
  with pytest.raises(batching.BucketError, match="more than the target"):
    batching.pad_axis(x, 2)
  np.testing.assert_array_equal(batching.length_mask([2, 0, 3], 3), [[1, 1, 0], [0, 0, 0], [1, 1, 1]])
