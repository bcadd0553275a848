"""Losses of the two training regimes, and Noisy-OR for the aggregation comparison.

(a) Supervised per domain, as UMT (Liu et al., CVPR 2022; TencentARC/UMT models/blocks/head.py SaliencyHead):
    binary cross-entropy between each clip's logit and a soft saliency target in [0, 1], averaged over the
    real clips (`clip_bce`). UMT's target is the mean user score rescaled, (sum_u a_u - 20) / 80; the
    alternative 'vote' target (data.py) is the fraction of users who rate the clip above their median, the
    label of top-5 mAP averaged over users. An optional pairwise hinge (`pairwise_hinge`, weight
    `loss.rank_weight`, default 0) ranks clips of a video by their target.

(b) Weakly supervised, as Ye et al. (ICCV 2021): video-level labels only (the domain's videos 1, other
    domains' videos 0). The supplement names the terms, not their formulas; the choices made here:
      L = BCE(s_V, y_V)                                                   video score of the aggregation
          + w_cue * (L_var + L_score)                                     temporal-cue objective
          + beta * mean_{clips of positive videos} p_s                    L1 sparsity (p_s >= 0, so |p_s| = p_s)
      L_var   = max(0, m_var   - (mean_pos Var_t p - mean_neg Var_t p))   positive videos have peaked scores,
      L_score = max(0, m_score - (mean_pos top_t p - mean_neg top_t p))   and their top clips score higher,
    with Var_t the variance of a video's clip probabilities over its real clips and top_t the mean of its
    ceil(top_fraction * T) highest ones. beta = 1e-4 is the supplement's best of {1e-4, ..., 1e-1}.
    Margins with only positives or only negatives in the batch are 0 (no term to compare).

Noisy-OR (`noisy_or`): p_V = 1 - prod_t (1 - p_t). Its gradient dp_V/ds_t = p_t (1 - p_t) prod_{j != t} (1 - p_j)
vanishes with the number of clips (tau = 60 clips at p = 0.5: 2^-61); the attention-weighted aggregation's
ds_V/ds_t = alpha_t does not (the supplement's argument; tests/highlight_losses_test.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _safe_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  weights = weights.astype(values.dtype)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def clip_bce(clip_logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean over real clips of BCE(logit, soft target) (UMT's SaliencyHead loss)."""
  return _safe_mean(optax.sigmoid_binary_cross_entropy(clip_logits, targets), mask)


def pairwise_hinge(clip_logits: jax.Array, targets: jax.Array, mask: jax.Array, margin: float = 1.0,
                   min_gap: float = 0.05) -> jax.Array:
  """Mean over pairs (i, j) of one video with target_i > target_j + min_gap of max(0, margin - (s_i - s_j))."""
  valid = mask[:, :, None] & mask[:, None, :]
  ordered = (targets[:, :, None] - targets[:, None, :]) > min_gap
  hinge = jax.nn.relu(margin - (clip_logits[:, :, None] - clip_logits[:, None, :]))
  return _safe_mean(hinge, valid & ordered)


def noisy_or(clip_probs: jax.Array, mask: jax.Array) -> jax.Array:
  """p_V = 1 - prod over real clips of (1 - p_t)."""
  return 1.0 - jnp.prod(jnp.where(mask, 1.0 - clip_probs, 1.0), axis=-1)


def video_bce(video_logits: jax.Array, labels: jax.Array) -> jax.Array:
  return jnp.mean(optax.sigmoid_binary_cross_entropy(video_logits, labels.astype(video_logits.dtype)))


def masked_variance(values: jax.Array, mask: jax.Array) -> jax.Array:
  """(B,) variance over the real entries of each row."""
  weights = mask.astype(values.dtype)
  count = jnp.maximum(jnp.sum(weights, axis=-1), 1.0)
  mean = jnp.sum(values * weights, axis=-1) / count
  return jnp.sum(weights * (values - mean[:, None]) ** 2, axis=-1) / count


def top_fraction_mean(values: jax.Array, mask: jax.Array, fraction: float) -> jax.Array:
  """(B,) mean of the ceil(fraction * n) largest real entries of each row (at least one)."""
  count = jnp.sum(mask, axis=-1)
  k = jnp.maximum(jnp.ceil(fraction * count), 1.0)
  ranked = -jnp.sort(-jnp.where(mask, values, -jnp.inf), axis=-1)
  keep = jnp.arange(values.shape[-1])[None, :] < k[:, None]
  return jnp.sum(jnp.where(keep, ranked, 0.0), axis=-1) / k


def _pos_minus_neg(per_video: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  pos, neg = labels > 0.5, labels <= 0.5
  both = jnp.any(pos) & jnp.any(neg)
  return _safe_mean(per_video, pos) - _safe_mean(per_video, neg), both


def temporal_cue_terms(clip_logits: jax.Array, mask: jax.Array, labels: jax.Array, *, var_margin: float,
                       score_margin: float, top_fraction: float) -> dict[str, jax.Array]:
  """{'var': L_var, 'score': L_score, 'sparsity': mean p_s over positive videos' clips} (module docstring)."""
  probs = jax.nn.sigmoid(clip_logits)
  var_gap, both = _pos_minus_neg(masked_variance(probs, mask), labels)
  top_gap, _ = _pos_minus_neg(top_fraction_mean(probs, mask, top_fraction), labels)
  positive_clips = mask & (labels[:, None] > 0.5)
  return {
      "var": jnp.where(both, jax.nn.relu(var_margin - var_gap), 0.0),
      "score": jnp.where(both, jax.nn.relu(score_margin - top_gap), 0.0),
      "sparsity": _safe_mean(probs, positive_clips),
  }
