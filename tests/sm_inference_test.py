"""SM inference (iptnet_jax.sm.inference): padded batched predictions cut back to each video, the F-score metric
rule, split scores and the seeded random floor."""

import jax
import numpy as np
import pytest

from iptnet_jax.datasets import eccv16
from iptnet_jax.sm import inference
from iptnet_jax.sm import model as sm_model

DIM = 8


def _video(name: str, steps: int, seed: int) -> eccv16.SummVideo:
  rng = np.random.default_rng(seed)
  n_frames = 15 * steps
  starts = np.arange(0, n_frames, 10)
  change_points = np.stack([starts, np.minimum(starts + 9, n_frames - 1)], axis=1).astype(np.int64)
  return eccv16.SummVideo(name, rng.normal(size=(steps, DIM)).astype(np.float32),
                          rng.random(steps).astype(np.float32), change_points,
                          (change_points[:, 1] - change_points[:, 0] + 1).astype(np.int64), n_frames,
                          np.arange(steps, dtype=np.int64) * 15, rng.random((3, n_frames)) < 0.15,
                          rng.random((steps, 3)).astype(np.float32))


VIDEOS = [_video("eccv16_dataset_tvsum_google_pool5.h5/video_1", 9, 0), _video("summe.h5/video_2", 13, 1),
          _video("summe.h5/video_3", 5, 2)]


def test_batched_predictions_are_each_video_alone_cut_to_its_length():
  model = sm_model.DSNetAF(num_hidden=8, num_heads=2, attention_dim=DIM)
  params = model.init(jax.random.key(0), np.zeros((1, 4, DIM)), np.ones((1, 4)), deterministic=True)["params"]
  preds = inference.predict_videos(inference.make_predict_fn(model), params, VIDEOS, batch_size=2, buckets=(16,))
  assert list(preds) == [v.name for v in VIDEOS]
  for video in VIDEOS:
    alone = sm_model.predictions(model.apply({"params": params}, video.features[None], np.ones((1, video.num_steps)),
                                             deterministic=True))
    assert {k: v.shape for k, v in preds[video.name].items()} == {
        "cls_prob": (video.num_steps,), "offsets": (video.num_steps, 2), "ctr_prob": (video.num_steps,)}
    for key, value in preds[video.name].items():
      np.testing.assert_allclose(value, np.asarray(alone[key][0]), atol=1e-5, err_msg=f"{video.name} {key}")


def test_auto_metric_is_dsnets_rule_on_the_name_and_explicit_metrics_pass_through():
  tvsum, summe = VIDEOS[0], VIDEOS[1]
  assert inference.resolve_eval_metric(tvsum, "auto") == "avg"
  assert inference.resolve_eval_metric(summe, "auto") == "max"
  assert inference.resolve_eval_metric(summe, "avg") == "avg"


def _random_preds(seed: int) -> dict:
  rng = np.random.default_rng(seed)
  return {v.name: {"cls_prob": rng.random(v.num_steps), "offsets": rng.random((v.num_steps, 2)) * 3,
                   "ctr_prob": rng.random(v.num_steps)} for v in VIDEOS}


def test_split_score_is_the_mean_of_the_videos_scores_under_either_protocol():
  preds = _random_preds(0)
  settings = dict(nms_thresh=0.5, proportion=0.15, metric="auto")
  per_video = inference.video_fscores(VIDEOS, preds, **settings)
  assert all(0 <= f <= 1 for f in per_video.values())
  assert per_video != inference.video_fscores(VIDEOS, preds, **{**settings, "metric": "avg"})  # summe: max != avg
  assert inference.split_score(VIDEOS, preds, protocol="fscore", **settings) == pytest.approx(
      np.mean(list(per_video.values())))
  maps = inference.video_top5_maps(VIDEOS, preds)
  assert inference.split_score(VIDEOS, preds, protocol="top5_map", **settings) == pytest.approx(
      np.mean(list(maps.values())))


@pytest.mark.parametrize("protocol", ["fscore", "top5_map"])
def test_random_floor_is_seeded(protocol):
  per_seed = inference.random_floor_per_seed(VIDEOS, num_seeds=4, metric="auto", protocol=protocol, seed=3)
  assert per_seed.shape == (4,) and np.all((0 <= per_seed) & (per_seed <= 1)) and np.ptp(per_seed) > 0
  np.testing.assert_array_equal(per_seed, inference.random_floor_per_seed(VIDEOS, num_seeds=4, metric="auto",
                                                                          protocol=protocol, seed=3))
  assert inference.random_floor(VIDEOS, num_seeds=4, metric="auto", protocol=protocol, seed=3) == pytest.approx(
      (per_seed.mean(), per_seed.std()))
  assert not np.array_equal(per_seed, inference.random_floor_per_seed(VIDEOS, num_seeds=4, metric="auto",
                                                                      protocol=protocol, seed=4))
