import numpy as np
import pytest

from iptnet_jax.datasets import input_pipeline


def test_bucket_length():
  assert input_pipeline.bucket_length(1, (4, 8)) == 4
  assert input_pipeline.bucket_length(8, (4, 8)) == 8
  assert input_pipeline.bucket_length(9, (4, 8)) == 16  # beyond the largest: multiples of it
  assert input_pipeline.bucket_length(17, (4, 8)) == 24
  with pytest.raises(input_pipeline.BucketError, match="strictly increasing"):
    input_pipeline.bucket_length(3, (8, 4))
  with pytest.raises(input_pipeline.BucketError, match="positive sequence length"):
    input_pipeline.bucket_length(0, (4,))


def test_pad_axis_and_mask():
  x = np.arange(6).reshape(3, 2)
  np.testing.assert_array_equal(input_pipeline.pad_axis(x, 5), [[0, 1], [2, 3], [4, 5], [0, 0], [0, 0]])
  np.testing.assert_array_equal(input_pipeline.pad_axis(x, 3, axis=1, value=-1), [[0, 1, -1], [2, 3, -1], [4, 5, -1]])
  with pytest.raises(input_pipeline.BucketError, match="more than the target"):
    input_pipeline.pad_axis(x, 2)
  np.testing.assert_array_equal(input_pipeline.length_mask([2, 0, 3], 3), [[1, 1, 0], [0, 0, 0], [1, 1, 1]])
