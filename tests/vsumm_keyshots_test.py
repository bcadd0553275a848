"""Keyshot generation: frame scores, int(1000 * mean) shot values, knapsack union, training target."""

import numpy as np
import pytest

from iptnet_jax.vsumm import keyshots
from iptnet_jax.vsumm.keyshots import VsummInputError
from iptnet_jax.vsumm.knapsack import knapsack

F32 = np.float32

# A 20-frame video, 4 steps (picks every 5 frames) and 3 shots of 5, 7 and 8 frames.
TINY_PICKS = np.array([0, 5, 10, 15])
TINY_SCORES = np.array([0.9, 0.1, 0.5, 0.6])
TINY_CPS = np.array([[0, 4], [5, 11], [12, 19]])
TINY_NFPS = np.array([5, 7, 8])


def test_step_scores_fill_frames_until_the_next_pick():
  frames = keyshots.step_to_frame_scores(TINY_SCORES, TINY_PICKS, 20)
  assert frames.dtype == np.float32
  np.testing.assert_array_equal(frames, np.repeat(TINY_SCORES.astype(F32), 5))
  # Frames before the first pick stay 0; the last step fills to n_frames.
  frames = keyshots.step_to_frame_scores([0.25, 0.75], [2, 4], 7)
  np.testing.assert_array_equal(frames, F32([0, 0, .25, .25, .75, .75, .75]))


def test_shot_values_of_the_tiny_video():
  frames = keyshots.step_to_frame_scores(TINY_SCORES, TINY_PICKS, 20)
  values = keyshots.shot_values(frames, TINY_CPS)
  # shot 0: mean float32(0.9) = 0.89999998 -> 899 (truncated, not rounded);
  # shot 1: (5 * .1 + 2 * .5) / 7 = 0.2142857 -> 214;  shot 2: (3 * .5 + 5 * .6) / 8 = 0.5625 -> 562.
  np.testing.assert_array_equal(values, [899, 214, 562])
  assert values.dtype == np.int32


def test_truncation_not_rounding():
  # 1000 * 0.4999999 = 499.9999 -> 499 and 1000 * float32(0.2345) = 234.50000584 -> 234 (round: 500, 235).
  values = keyshots.shot_values(F32([0.4999999, 0.2345, 0.0]), [[0, 0], [1, 1], [2, 2]])
  np.testing.assert_array_equal(values, [499, 234, 0])


def test_product_is_float64_as_under_dsnets_numpy():
  # float32(0.7) = 0.69999999: DSNet (numpy < 1.24) multiplies in float64 -> 699.99998 -> 699. A float32
  # product (numpy >= 2 semantics of the same expression) rounds to 700.0 and would give 700.
  assert int(F32(1000) * F32(0.7)) == 700
  np.testing.assert_array_equal(keyshots.shot_values(F32([0.7]), [[0, 0]]), [699])


def test_mean_is_numpys_float32_mean():
  # float32 mean of [.1, .4, .4] is 0.29999998 (-> 299) while the float64 mean is 0.3000000045 (-> 300);
  # for [.1, .7, .7] it is 0.5 (-> 500) against 0.49999999 (-> 499). DSNet used the float32 mean.
  frames = F32([.1, .4, .4, .1, .7, .7])
  np.testing.assert_array_equal(keyshots.shot_values(frames, [[0, 2], [3, 5]]), [299, 500])


def test_keyshot_summary_of_the_tiny_video():
  # Capacity int(0.65 * 20) = 13. Values 899/214/562 with weights 5/7/8: {0, 2} weighs 13 and is worth
  # 1461; {0, 1} is worth 1113 and {1, 2} does not fit. So frames 0-4 and 12-19.
  summary = keyshots.get_keyshot_summ(TINY_SCORES, TINY_CPS, 20, TINY_NFPS, TINY_PICKS, proportion=0.65)
  assert summary.dtype == bool
  np.testing.assert_array_equal(summary, np.r_[np.ones(5), np.zeros(7), np.ones(8)].astype(bool))
  # Capacity 10: only shot 0 (899) or shot 1 (214) fit alone -> shot 0.
  summary = keyshots.get_keyshot_summ(TINY_SCORES, TINY_CPS, 20, TINY_NFPS, TINY_PICKS, proportion=0.5)
  np.testing.assert_array_equal(np.flatnonzero(summary), np.arange(5))
  # Default 15%: capacity 3, no shot fits, and shot 0 does not fit either (remaining goes negative).
  assert not keyshots.get_keyshot_summ(TINY_SCORES, TINY_CPS, 20, TINY_NFPS, TINY_PICKS).any()


def test_training_target_is_the_summary_at_the_picks():
  summary = keyshots.get_keyshot_summ(TINY_SCORES, TINY_CPS, 20, TINY_NFPS, TINY_PICKS, proportion=0.65)
  np.testing.assert_array_equal(keyshots.downsample_summ(summary, TINY_PICKS), [True, False, False, True])
  # With picks every 15 frames this equals DSNet's summary[::15].
  summary = np.random.default_rng(0).random(100) < 0.3
  np.testing.assert_array_equal(keyshots.downsample_summ(summary, np.arange(0, 100, 15)), summary[::15])


def test_overlapping_shots_give_their_union():
  summary = keyshots.get_keyshot_summ([1.0], [[0, 3], [2, 5]], 10, [4, 4], [0], proportion=0.8)
  np.testing.assert_array_equal(np.flatnonzero(summary), np.arange(6))


def _dsnet_keyshots_literal(scores, cps, n_frames, nfps, picks, proportion=0.15):
  """DSNet's get_keyshot_summ restated with its loops; numpy < 1.24 promotion emulated (float64 product)."""
  frame_scores = np.zeros(n_frames, dtype=np.float32)
  for i in range(len(picks)):
    hi = picks[i + 1] if i + 1 < len(picks) else n_frames
    frame_scores[picks[i]:hi] = scores[i]
  seg_scores = np.zeros(len(cps), dtype=np.int32)
  for k, (first, last) in enumerate(cps):
    seg_scores[k] = int(1000 * np.float64(frame_scores[first:last + 1].mean()))
  packed = knapsack(seg_scores, nfps, int(n_frames * proportion))
  summary = np.zeros(n_frames, dtype=bool)
  for k in packed:
    summary[cps[k][0]:cps[k][1] + 1] = True
  return summary


def _random_video(rng, num_steps):
  n_frames = 15 * num_steps - int(rng.integers(1, 15))
  picks = np.arange(num_steps) * 15
  bounds = np.unique(np.r_[0, rng.choice(np.arange(1, n_frames), num_steps // 4, replace=False), n_frames])
  cps = np.stack([bounds[:-1], bounds[1:] - 1], axis=1)
  return n_frames, picks, cps, cps[:, 1] - cps[:, 0] + 1


def test_matches_dsnets_loops_on_random_videos():
  rng = np.random.default_rng(11)
  for case in range(30):
    num_steps = int(rng.integers(20, 300))
    n_frames, picks, cps, nfps = _random_video(rng, num_steps)
    scores = rng.random(num_steps)
    if case % 3 == 0:  # gtscore-like values on a coarse grid: many equal shots and knapsack ties
      scores = np.round(scores * 20) / 20
    expected = _dsnet_keyshots_literal(scores, cps, n_frames, nfps, picks)
    np.testing.assert_array_equal(keyshots.get_keyshot_summ(scores, cps, n_frames, nfps, picks), expected)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(step_scores=[.1, .2, .3]), "step_scores"),
    (dict(step_scores=[.1, np.nan, .3, .4]), "step_scores"),
    (dict(picks=[0, 5, 5, 15]), "picks"),
    (dict(picks=[0, 5, 10, 20]), "picks"),
    (dict(change_points=[[0, 4], [5, 11], [12, 20]]), "change_points"),
    (dict(change_points=[[0, 4], [6, 5], [12, 19]]), "change_points"),
    (dict(change_points=[0, 4, 5, 11]), "change_points"),
    (dict(n_frame_per_seg=[5, 7]), "n_frame_per_seg"),
    (dict(n_frame_per_seg=[5, -7, 8]), "n_frame_per_seg"),
    (dict(n_frames=0), "n_frames"),
    (dict(proportion=1.5), "proportion"),
])
def test_bad_input_raises_a_named_error(kwargs, needle):
  args = dict(step_scores=TINY_SCORES, change_points=TINY_CPS, n_frames=20, n_frame_per_seg=TINY_NFPS,
              picks=TINY_PICKS)
  args.update(kwargs)
  with pytest.raises(VsummInputError, match=needle):
    keyshots.get_keyshot_summ(**args)


def test_downsample_rejects_picks_outside_the_summary():
  with pytest.raises(VsummInputError, match="picks"):
    keyshots.downsample_summ(np.zeros(10, bool), [0, 10])
  with pytest.raises(VsummInputError, match="summary"):
    keyshots.downsample_summ(np.full(10, 2), [0, 5])
