"""eccv16 h5 layer: round trip, gtscore normalisation, and one clear error per malformed file."""

import h5py
import numpy as np
import pytest

from iptnet_jax.datasets import eccv16


def _fields(num_steps=10, n_frames=150, users=3, dim=8, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "features": rng.normal(size=(num_steps, dim)).astype(np.float32),
      "gtscore": rng.uniform(1, 5, size=num_steps).astype(np.float32),
      "user_summary": (rng.uniform(size=(users, n_frames)) > 0.8).astype(np.uint8),
      "change_points": np.array([[0, 59], [60, 119], [120, n_frames - 1]]),
      "n_frame_per_seg": np.array([60, 60, n_frames - 120]),
      "n_frames": np.int64(n_frames),
      "picks": np.arange(num_steps) * 15,
  }


def _write_raw(path, videos):
  with h5py.File(path, "w") as h5:
    for key, fields in videos.items():
      group = h5.create_group(key)
      for name, value in fields.items():
        group.create_dataset(name, data=value)


def test_round_trip_and_normalisation(tmp_path):
  fields = _fields()
  path = eccv16.write_eccv16_h5(tmp_path / "d.h5", {"video_1": fields})
  video = eccv16.read_videos(path, ["video_1"], require_user_summary=True)["video_1"]
  np.testing.assert_array_equal(video.features, fields["features"])
  g = fields["gtscore"]
  np.testing.assert_allclose(video.gtscore, (g - g.min()) / (g - g.min()).max(), rtol=1e-6)
  assert video.gtscore.min() == 0 and video.gtscore.max() == 1
  assert video.user_summary.dtype == bool and video.n_frames == 150 and video.name == "d.h5/video_1"
  assert video.user_scores is None  # optional: only the TVSum-I3D builder writes it


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.pop("gtscore"), "missing field 'gtscore'"),
    (lambda f: f.update(gtscore=np.ones(7)), "field 'gtscore': expected shape \\(10,\\)"),
    (lambda f: f["features"].__setitem__((3, 2), np.nan), "field 'features': expected finite values"),
    (lambda f: f.update(features=np.zeros((0, 8)), gtscore=np.zeros(0), picks=np.zeros(0, int)),
     "field 'features': expected a non-empty"),
    (lambda f: f.update(features=np.zeros(10)), "field 'features': expected a non-empty \\(T, D\\)"),
    (lambda f: f.update(picks=np.arange(10)[::-1]), "field 'picks'"),
    (lambda f: f.update(change_points=np.array([[0, 59], [60, 400]])), "field 'change_points'"),
    (lambda f: f.update(n_frame_per_seg=np.array([60, 60])), "field 'n_frame_per_seg'"),
    (lambda f: f.update(gtscore=np.full(10, 3.0)), "constant score"),
    (lambda f: f.update(user_summary=np.full((2, 150), 2)), "field 'user_summary': expected 0/1"),
    (lambda f: f.update(user_scores=np.ones((9, 20))), "field 'user_scores': expected shape \\(10, users\\)"),
])
def test_malformed_video_names_file_video_and_field(tmp_path, mutate, message):
  fields = _fields()
  mutate(fields)
  path = tmp_path / "bad.h5"
  _write_raw(path, {"video_7": fields})
  with pytest.raises(eccv16.DatasetFormatError, match=message) as error:
    eccv16.read_videos(path, ["video_7"], require_user_summary=True)
  assert "bad.h5" in str(error.value) and "video_7" in str(error.value)


def test_missing_user_summary_only_matters_for_evaluation(tmp_path):
  fields = _fields()
  fields.pop("user_summary")
  path = tmp_path / "train_only.h5"
  _write_raw(path, {"video_1": fields})
  assert eccv16.read_videos(path, ["video_1"], require_user_summary=False)["video_1"].user_summary is None
  with pytest.raises(eccv16.DatasetFormatError, match="missing field 'user_summary'"):
    eccv16.read_videos(path, ["video_1"], require_user_summary=True)


def test_missing_file_points_to_build_md(tmp_path):
  with pytest.raises(eccv16.DatasetNotFoundError, match="BUILD.md") as error:
    eccv16.read_videos(tmp_path / "eccv16_dataset_tvsum_google_pool5.h5", ["video_1"], require_user_summary=True)
  assert "eccv16_dataset_tvsum_google_pool5.h5" in str(error.value)


def test_unknown_video_key_and_non_hdf5_file(tmp_path):
  path = eccv16.write_eccv16_h5(tmp_path / "d.h5", {"video_1": _fields()})
  with pytest.raises(eccv16.DatasetFormatError, match="no video 'video_9'"):
    eccv16.read_videos(path, ["video_9"], require_user_summary=True)
  junk = tmp_path / "junk.h5"
  junk.write_text("not hdf5")
  with pytest.raises(eccv16.DatasetFormatError, match="not a readable HDF5"):
    eccv16.read_videos(junk, ["video_1"], require_user_summary=True)


def test_failed_write_leaves_nothing_behind(tmp_path):
  good, bad = _fields(), _fields()
  bad["features"][0, 0] = np.inf
  with pytest.raises(eccv16.DatasetFormatError, match="video 'video_2'"):
    eccv16.write_eccv16_h5(tmp_path / "out.h5", {"video_1": good, "video_2": bad})
  assert list(tmp_path.iterdir()) == []


def test_write_refuses_to_overwrite_unless_asked(tmp_path):
  path = eccv16.write_eccv16_h5(tmp_path / "d.h5", {"video_1": _fields()})
  with pytest.raises(FileExistsError):
    eccv16.write_eccv16_h5(path, {"video_1": _fields(seed=1)})
  eccv16.write_eccv16_h5(path, {"video_1": _fields(seed=1)}, overwrite=True)
