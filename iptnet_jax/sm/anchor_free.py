"""Anchor-free DSNet losses (jax), reference_spec.md §2.5; their labels are made by `datasets.anchor_free_labels`.

Losses are computed per video exactly as DSNet's batch-1 loop does, then averaged over the real videos of
a padded batch, so a batch of B videos gives the mean of B DSNet losses and padding changes nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_EPS = 1e-8


def focal_loss(cls_logits: jax.Array, target: jax.Array, mask: jax.Array, gamma: float = 2.0) -> jax.Array:
  """(B,) DSNet focal loss: sum over valid steps / number of positives.

  DSNet's two-column one-hot focal loss weights the columns by alpha and 1 - alpha, which add up to one,
  so alpha cancels: FL = -(1-p)^g log p on positives and -p^g log(1-p) on negatives.
  """
  log_p = jax.nn.log_sigmoid(cls_logits)
  log_not_p = jax.nn.log_sigmoid(-cls_logits)
  p = jnp.exp(log_p)
  per_step = jnp.where(target > 0, -((1 - p) ** gamma) * log_p, -(p ** gamma) * log_not_p)
  num_pos = jnp.sum(target * mask, axis=-1)
  return jnp.sum(per_step * mask, axis=-1) / jnp.maximum(num_pos, 1.0)


def offset_iou(pred: jax.Array, label: jax.Array) -> jax.Array:
  """IoU of two (left, right) offset pairs around the same step, as DSNet's iou_offset."""
  inter = jnp.minimum(pred[..., 0], label[..., 0]) + jnp.minimum(pred[..., 1], label[..., 1])
  inter = jnp.where(inter < 0, 0.0, inter)
  union = pred.sum(-1) + label.sum(-1) - inter
  union = jnp.where(union <= 0, _EPS, union)
  return inter / union


def soft_iou_loss(pred_offsets: jax.Array, offset_label: jax.Array, positives: jax.Array) -> jax.Array:
  """(B,) mean over positives of -log(IoU + 1e-8)."""
  per_step = -jnp.log(offset_iou(pred_offsets, offset_label) + _EPS)
  return jnp.sum(per_step * positives, -1) / jnp.maximum(jnp.sum(positives, -1), 1.0)


def centerness_loss(ctr_logits: jax.Array, ctr_label: jax.Array, positives: jax.Array) -> jax.Array:
  """(B,) BCE over positives, with torch's clamp of each log term at -100."""
  log_p = jnp.maximum(jax.nn.log_sigmoid(ctr_logits), -100.0)
  log_not_p = jnp.maximum(jax.nn.log_sigmoid(-ctr_logits), -100.0)
  per_step = -(ctr_label * log_p + (1 - ctr_label) * log_not_p)
  return jnp.sum(per_step * positives, -1) / jnp.maximum(jnp.sum(positives, -1), 1.0)


def anchor_free_losses(outputs: dict, batch: dict, lambda_reg: float = 1.0, lambda_ctr: float = 1.0
                       ) -> dict[str, jax.Array]:
  """Batch-mean DSNet-AF losses; `outputs` from DSNetAF, `batch` from the summarization batcher."""
  mask = batch["mask"]
  positives = batch["target"] * mask
  per_video = {
      "cls": focal_loss(outputs["cls_logits"], batch["target"], mask),
      "loc": soft_iou_loss(jnp.exp(outputs["log_offsets"]), batch["offsets"], positives),
      "ctr": centerness_loss(outputs["ctr_logits"], batch["centerness"], positives),
  }
  per_video["total"] = per_video["cls"] + lambda_reg * per_video["loc"] + lambda_ctr * per_video["ctr"]
  weight = batch["example_mask"]
  denom = jnp.maximum(weight.sum(), 1.0)
  return {name: jnp.sum(value * weight) / denom for name, value in per_video.items()}
