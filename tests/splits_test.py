"""Split files: DSNet yml, VASNet json (with augmented keys naming other files), PGL-SUM json."""

import json
import os
from pathlib import Path

import pytest
import yaml

from iptnet_jax.datasets import splits

SHARED = Path(os.environ.get("IPTNET_SHARED_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))
SPLIT_DIR = SHARED / "vsumm" / "splits"


def test_dsnet_yml_keys_name_their_file(tmp_path):
  path = tmp_path / "s.yml"
  path.write_text(yaml.safe_dump([{
      "train_keys": ["../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_2",
                     "../datasets/eccv16_dataset_ovp_google_pool5.h5/video_9"],
      "test_keys": ["../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_35"]}]))
  (split,) = splits.load_splits(path, tmp_path / "data")
  assert split.train[1] == splits.VideoRef(tmp_path / "data" / "eccv16_dataset_ovp_google_pool5.h5", "video_9")
  assert split.test[0].name == "eccv16_dataset_tvsum_google_pool5.h5/video_35"
  assert split.val == ()


def test_vasnet_augmented_keys_gain_the_h5_extension(tmp_path):
  path = tmp_path / "s.json"
  path.write_text(json.dumps([{"train_keys": ["eccv16_dataset_youtube_google_pool5/video_28", "video_3"],
                               "test_keys": ["eccv16_dataset_tvsum_google_pool5/video_41"]}]))
  (split,) = splits.load_splits(path, tmp_path, default_h5="eccv16_dataset_summe_google_pool5.h5")
  assert [r.name for r in split.train] == ["eccv16_dataset_youtube_google_pool5.h5/video_28",
                                           "eccv16_dataset_summe_google_pool5.h5/video_3"]


def test_bare_keys_need_a_default_file_and_val_keys_are_kept(tmp_path):
  path = tmp_path / "s.json"
  path.write_text(json.dumps([{"train_keys": ["video_1"], "val_keys": ["video_2"], "test_keys": ["video_3"]}]))
  with pytest.raises(splits.SplitFormatError, match="data.default_h5"):
    splits.load_splits(path, tmp_path)
  (split,) = splits.load_splits(path, tmp_path, default_h5="x.h5")
  assert [r.video_key for r in split.val] == ["video_2"]


@pytest.mark.parametrize("content, message", [
    ("{}", "non-empty list of splits"),
    ('[{"train_keys": ["video_1"]}]', "test_keys"),
    ('[{"train_keys": ["video_1"], "test_keys": ["video_1"]}]', "both train_keys and test_keys"),
    ('[{"train_keys": [3], "test_keys": ["video_1"]}]', "video key string"),
    ("[{", "cannot parse"),
])
def test_malformed_split_files(tmp_path, content, message):
  path = tmp_path / "s.json"
  path.write_text(content)
  with pytest.raises(splits.SplitFormatError, match=message) as error:
    splits.load_splits(path, tmp_path, default_h5="x.h5")
  assert "s.json" in str(error.value)


def test_missing_split_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.yml"):
    splits.load_splits(tmp_path / "nope.yml", tmp_path)


@pytest.mark.skipif(not SPLIT_DIR.is_dir(), reason=f"published split files not found at {SPLIT_DIR}")
@pytest.mark.parametrize("relative, default_h5, num_train, num_test, files", [
    ("dsnet/tvsum.yml", None, 40, 10, 1),
    ("dsnet/tvsum_aug.yml", None, 154, 10, 4),
    ("dsnet/summe_trans.yml", None, 139, 25, 4),
    ("pglsum/tvsum_splits.json", "eccv16_dataset_tvsum_google_pool5.h5", 40, 10, 1),
    ("vasnet/tvsum_aug_splits.json", None, 154, 10, 4),
    ("vasnet/summe_splits.json", "eccv16_dataset_summe_google_pool5.h5", 20, 5, 1),
])
def test_published_split_files(relative, default_h5, num_train, num_test, files):
  loaded = splits.load_splits(SPLIT_DIR / relative, "datasets", default_h5)
  assert len(loaded) == 5
  for split in loaded:
    assert (len(split.train), len(split.test)) == (num_train, num_test)
  assert len({r.h5_path for s in loaded for r in s.train + s.test}) == files


def test_h5_renames_run_a_published_split_on_another_file(tmp_path):
  path = tmp_path / "s.yml"
  path.write_text(yaml.safe_dump([{"train_keys": ["../datasets/eccv16_dataset_tvsum_google_pool5.h5/video_2"],
                                   "test_keys": ["video_5"]}]))
  renames = splits.parse_h5_renames("eccv16_dataset_tvsum_google_pool5.h5=tvsum_i3d.h5")
  (split,) = splits.load_splits(path, tmp_path, "eccv16_dataset_tvsum_google_pool5.h5", renames)
  assert split.train[0].name == "tvsum_i3d.h5/video_2" and split.test[0].name == "tvsum_i3d.h5/video_5"
  with pytest.raises(splits.SplitFormatError, match="h5_renames"):
    splits.parse_h5_renames("just_a_name.h5")


# ------------------------------------------------------------------------------------------ validation carve

def _split_of(n_train, index=0):
  ref = lambda i: splits.VideoRef(Path("/d/x.h5"), f"video_{i}")
  return splits.Split(index, tuple(ref(i) for i in range(n_train)), (), (ref(100), ref(101)))


@pytest.mark.parametrize("n_train,fraction,expected", [(40, 0.2, 8), (10, 0.2, 2), (3, 0.2, 1), (2, 0.9, 1)])
def test_carved_validation_is_a_fixed_disjoint_fraction_of_train(n_train, fraction, expected):
  split = _split_of(n_train)
  carved = splits.carve_validation(split, fraction, seed=0)
  assert len(carved.val) == expected and len(carved.train) == n_train - expected
  assert set(carved.val).isdisjoint(carved.train) and set(carved.val) | set(carved.train) == set(split.train)
  assert carved.test == split.test
  # Fixed: the same subset whatever the order of the split file, different for another seed or split.
  shuffled = splits.Split(0, tuple(reversed(split.train)), (), split.test)
  assert set(splits.carve_validation(shuffled, fraction, seed=0).val) == set(carved.val)
  if n_train >= 10:
    assert set(splits.carve_validation(split, fraction, seed=1).val) != set(carved.val)
    other = splits.carve_validation(_split_of(n_train, index=1), fraction, seed=0)
    assert {r.video_key for r in other.val} != {r.video_key for r in carved.val}


def test_carving_refuses_a_split_with_val_keys_or_one_training_video():
  assert splits.carve_validation(_split_of(5), 0.0, seed=0) == _split_of(5)
  with_val = splits.Split(0, _split_of(5).train, _split_of(1).train, ())
  with pytest.raises(splits.SplitFormatError, match="already has val_keys"):
    splits.carve_validation(with_val, 0.2, seed=0)
  with pytest.raises(splits.SplitFormatError, match="at least 2"):
    splits.carve_validation(_split_of(1), 0.2, seed=0)
