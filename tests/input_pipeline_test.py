"""Bucketing and the iPTNet joint batches of the input pipeline (the SM and LM collation: charades_sta_test,
sm_train_test)."""

import types

import ml_collections
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


def _joint_config():
  return ml_collections.ConfigDict({
      "train": {"batch_size": 2}, "data": {"buckets": (4, 8)},
      "lm": {"train": {"batch_size": 2}, "data": {"video_buckets": (8, 16), "query_buckets": (4,), "char_buckets": (4,),
                                                  "highlight_extension": 0.1}}})


def test_joint_batches_feed_one_source_with_the_other_as_a_stand_in():
  config, dim = _joint_config(), 3
  shapes = input_pipeline.standin_shapes(config)
  assert shapes == input_pipeline.StandinShapes(sm_length=4, lm_video_length=8, lm_query_length=4, lm_char_length=4)
  examples = [types.SimpleNamespace(name=f"v{i}", features=np.ones((6, dim), np.float32), target=np.ones(6, np.float32),
                                    offsets=np.zeros((6, 2), np.float32), centerness=np.zeros(6, np.float32))
              for i in range(3)]
  sm = list(input_pipeline.joint_batches(input_pipeline.SM_DATA, config, np.random.default_rng(0), feature_dim=dim,
                                         shapes=shapes, sm_examples=examples))
  assert len(sm) == 2 and all(b["source"] == input_pipeline.SM_DATA for b in sm)
  assert set(sm[0]["sm"]) == set(input_pipeline.SM_DEVICE_FIELDS) and sm[0]["sm"]["features"].shape == (2, 8, dim)
  assert {k: (v.shape, v.dtype) for k, v in sm[0]["lm"].items()} == {
      k: (v.shape, v.dtype) for k, v in input_pipeline.lm_standin(2, dim, 8, 4, 4).items()}
  assert not any(v.any() for v in sm[0]["lm"].values())  # all zeros, example_mask 0


def test_joint_batches_read_the_lm_datas_train_split_up_to_the_limit():
  config, dim, asked = _joint_config(), 3, []

  class LMData:
    def batches(self, split, batch_size, **options):
      asked.append((split, batch_size, options))
      return (dict(input_pipeline.lm_standin(batch_size, dim, 16), duration=np.ones(batch_size)) for _ in range(5))

  shapes = input_pipeline.standin_shapes(config)
  lm = list(input_pipeline.joint_batches(input_pipeline.LM_ONLY, config, np.random.default_rng(0), feature_dim=dim,
                                         shapes=shapes, lm_data=LMData(), lm_limit=3))
  assert len(lm) == 3 and all(b["source"] == input_pipeline.LM_ONLY for b in lm)
  (split, batch_size, options), = asked
  assert (split, batch_size, options["shuffle"], options["video_buckets"]) == ("train", 2, True, (8, 16))
  assert set(lm[0]["lm"]) == set(input_pipeline.LM_DEVICE_FIELDS)  # the host-only duration is dropped
  assert lm[0]["sm"]["features"].shape == (2, 4, dim)  # the stand-in as long as the smallest SM bucket
  assert len(list(input_pipeline.joint_batches(input_pipeline.LM_ONLY, config, np.random.default_rng(0),
                                               feature_dim=dim, shapes=shapes, lm_data=LMData()))) == 5


def test_joint_batches_past_one_pass_read_further_reshuffled_passes():
  config, dim, asked = _joint_config(), 3, []

  class LMData:
    def batches(self, split, batch_size, rng, **options):
      asked.append(int(rng.integers(1000)))  # each pass draws its own order from the phase's rng
      return (dict(input_pipeline.lm_standin(batch_size, dim, 16), duration=np.ones(batch_size)) for _ in range(5))

  shapes = input_pipeline.standin_shapes(config)
  lm = list(input_pipeline.joint_batches(input_pipeline.LM_DATA, config, np.random.default_rng(0), feature_dim=dim,
                                         shapes=shapes, lm_data=LMData(), lm_limit=12))
  assert len(lm) == 12 and len(asked) == 3 and len(set(asked)) == 3  # 5 + 5 + 2 batches
  asked.clear()
  assert len(list(input_pipeline.joint_batches(input_pipeline.LM_DATA, config, np.random.default_rng(0),
                                               feature_dim=dim, shapes=shapes, lm_data=LMData(), lm_limit=5))) == 5
  assert len(asked) == 1  # exactly one pass: no second one is started

  class Empty:
    def batches(self, split, batch_size, **options):
      return iter(())

  assert list(input_pipeline.joint_batches(input_pipeline.LM_DATA, config, np.random.default_rng(0), feature_dim=dim,
                                           shapes=shapes, lm_data=Empty(), lm_limit=4)) == []
