"""Anchor-free labels and losses, with DSNet's worked numbers."""

import jax.numpy as jnp
import numpy as np

from iptnet_jax.datasets import anchor_free_labels
from iptnet_jax.sm import anchor_free

GOLDEN_TARGET = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0])


def test_centerness_golden_case():
  # reference_spec.md §2.5 (DSNet tests/anchor_free/test_anchor_free_helper.py).
  offsets = anchor_free_labels.offset_labels(GOLDEN_TARGET)
  ctr = anchor_free_labels.centerness_labels(GOLDEN_TARGET, offsets)
  np.testing.assert_allclose(ctr, [0, 0, 0, 0, .5, .5, 0, 0, 0, 0, 1, 0, 0], atol=1e-7)


def test_offsets_use_inclusive_end():
  offsets = anchor_free_labels.offset_labels(GOLDEN_TARGET)
  np.testing.assert_array_equal(offsets[3:7], [[0, 3], [1, 2], [2, 1], [3, 0]])
  np.testing.assert_array_equal(offsets[9:12], [[0, 2], [1, 1], [2, 0]])
  assert not offsets[GOLDEN_TARGET == 0].any()
  np.testing.assert_array_equal(anchor_free_labels.target_runs(GOLDEN_TARGET), [[3, 7], [9, 12]])


def test_single_step_run_and_run_at_the_end():
  target = np.array([1, 0, 1, 1])
  np.testing.assert_array_equal(anchor_free_labels.offset_labels(target), [[0, 0], [0, 0], [0, 1], [1, 0]])
  assert not anchor_free_labels.centerness_labels(target, anchor_free_labels.offset_labels(target)).any()


def _focal_reference(p, y):
  # DSNet's two-column form: x = [1-p, p], one-hot t, alpha_t = .25 / .75, summed over both columns.
  total = 0.0
  for pi, yi in zip(p, y):
    for column, x in enumerate((1 - pi, pi)):
      t = 1.0 if column == yi else 0.0
      p_t = x * t + (1 - x) * (1 - t)
      alpha_t = .25 * t + .75 * (1 - t)
      total += -alpha_t * (1 - p_t) ** 2 * np.log(p_t)
  return total / np.sum(y)


def test_focal_loss_equals_dsnet_two_column_form():
  logits = np.array([[-2.0, 0.3, 1.5, -0.2, 3.0]])
  target = np.array([[0, 1, 1, 0, 1]], np.float32)
  got = anchor_free.focal_loss(jnp.asarray(logits), jnp.asarray(target), jnp.ones_like(target))
  expected = _focal_reference(1 / (1 + np.exp(-logits[0])), target[0])
  np.testing.assert_allclose(got[0], expected, rtol=1e-5)


def test_soft_iou_loss_hand_case():
  pred = jnp.array([[[1.0, 2.0], [1.0, 1.0]]])
  label = jnp.array([[[1.0, 1.0], [0.0, 3.0]]])
  # step 0: inter 1+1=2, union 3+2-2=3; step 1: inter 0+1=1, union 2+3-1=4.
  got = anchor_free.soft_iou_loss(pred, label, jnp.ones((1, 2)))
  np.testing.assert_allclose(got[0], -(np.log(2 / 3 + 1e-8) + np.log(1 / 4 + 1e-8)) / 2, rtol=1e-6)


def test_one_step_ground_truth_gives_dsnets_constant_loss():
  got = anchor_free.soft_iou_loss(jnp.array([[[0.4, 0.7]]]), jnp.zeros((1, 1, 2)), jnp.ones((1, 1)))
  np.testing.assert_allclose(got[0], -np.log(1e-8), rtol=1e-6)  # ≈ 18.42


def test_batch_loss_is_mean_of_per_video_losses_and_ignores_padding():
  rng = np.random.default_rng(0)

  def video(n):
    target = (rng.uniform(size=n) > 0.6).astype(np.float32)
    target[n // 2] = 1
    offsets = anchor_free_labels.offset_labels(target)
    return {"target": target, "offsets": offsets, "centerness": anchor_free_labels.centerness_labels(target, offsets),
            "cls_logits": rng.normal(size=n), "log_offsets": rng.normal(size=(n, 2)), "ctr_logits": rng.normal(size=n)}

  videos = [video(6), video(9)]
  singles = []
  for v in videos:
    batch = {"target": v["target"][None], "offsets": v["offsets"][None], "centerness": v["centerness"][None],
             "mask": np.ones((1, len(v["target"])), np.float32), "example_mask": np.ones(1, np.float32)}
    outputs = {k: jnp.asarray(v[k][None]) for k in ("cls_logits", "log_offsets", "ctr_logits")}
    singles.append(anchor_free.anchor_free_losses(outputs, batch))

  length = 12
  def pad(x, fill=0.0):
    return np.concatenate([x, np.full((length - len(x), *x.shape[1:]), fill)]).astype(np.float32)
  batch = {k: np.stack([pad(v[k]) for v in videos] + [np.zeros((length, *videos[0][k].shape[1:]))])
           for k in ("target", "offsets", "centerness")}
  outputs = {k: jnp.asarray(np.stack([pad(v[k], 7.0) for v in videos] + [np.full((length, *videos[0][k].shape[1:]), 7.0)]))
             for k in ("cls_logits", "log_offsets", "ctr_logits")}
  batch["mask"] = np.stack([pad(np.ones(len(v["target"]))) for v in videos] + [np.zeros(length)]).astype(np.float32)
  batch["example_mask"] = np.array([1, 1, 0], np.float32)
  got = anchor_free.anchor_free_losses(outputs, batch)
  for name in ("cls", "loc", "ctr", "total"):
    np.testing.assert_allclose(got[name], (singles[0][name] + singles[1][name]) / 2, rtol=1e-5)
