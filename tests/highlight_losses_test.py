"""Losses of the two regimes and the aggregation's gradient against Noisy-OR's (iptnet_jax/highlight)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from iptnet_jax.highlight import losses
from iptnet_jax.highlight.model import HighlightModel, masked_softmax


def test_noisy_or_gradient_vanishes_where_the_attention_aggregation_does_not():
  """The worked case: tau = 60 clips of a positive video, every clip at p = 0.5 (logit 0, as at init).

  Noisy-OR: p_V = 1 - 2^-60 ~ 1, and d(-log p_V)/ds_t = -p_t (1 - p_t) prod_{j != t} (1 - p_j) / p_V =
  -0.25 * 2^-59: no clip gets a signal. Attention-weighted: s_V = sum_j alpha_j s_j, so
  d(-log sigma(s_V))/ds_t = -(1 - p_V) alpha_t = -0.5 / 60.
  """
  tau = 60
  logits = jnp.zeros((1, tau))
  mask = jnp.ones((1, tau), bool)

  def noisy_or_nll(s):
    return -jnp.log(losses.noisy_or(jax.nn.sigmoid(s), mask))[0]

  def attention_nll(s, scores):
    alpha = masked_softmax(scores, mask)
    return optax.sigmoid_binary_cross_entropy(jnp.sum(alpha * s, -1), jnp.ones(1))[0]

  g_noisy = jax.grad(noisy_or_nll)(logits)
  g_att = jax.grad(attention_nll)(logits, jnp.zeros((1, tau)))
  np.testing.assert_allclose(np.asarray(g_noisy), -0.25 * 2.0 ** -59, rtol=1e-3)
  np.testing.assert_allclose(np.asarray(g_att), -0.5 / tau, rtol=1e-5)
  assert np.max(np.abs(g_noisy)) < 1e-15 < np.min(np.abs(g_att))


def test_model_video_logit_is_the_attention_weighted_clip_logit_and_its_gradient_reaches_every_clip():
  model = HighlightModel(modalities=("video",), hidden=8, rank=2, encoder="none", num_heads=2,
                         attention_features=4, input_dropout=0.0, dropout=0.0)
  x = jax.random.normal(jax.random.key(0), (1, 60, 5))
  mask = jnp.ones((1, 60), bool)
  params = model.init(jax.random.key(1), {"video": x}, mask)["params"]
  out = model.apply({"params": params}, {"video": x}, mask)
  np.testing.assert_allclose(np.asarray(out["video_logit"]),
                             np.asarray(jnp.sum(out["attention"] * out["clip_logits"], -1)), rtol=1e-5, atol=1e-6)

  def nll(inputs):
    logit = model.apply({"params": params}, {"video": inputs}, mask)["video_logit"]
    return optax.sigmoid_binary_cross_entropy(logit, jnp.ones(1))[0]

  per_clip = np.linalg.norm(np.asarray(jax.grad(nll)(x))[0], axis=-1)
  assert per_clip.min() > 1e-6 * per_clip.max() > 0


def test_clip_bce_ignores_padded_clips():
  logits = jnp.array([[0.5, -1.0, 7.0]])
  targets = jnp.array([[0.2, 0.9, 0.0]])
  mask = jnp.array([[True, True, False]])
  expected = np.mean([-(0.2 * np.log(1 / (1 + np.exp(-0.5))) + 0.8 * np.log(1 - 1 / (1 + np.exp(-0.5)))),
                      -(0.9 * np.log(1 / (1 + np.exp(1.0))) + 0.1 * np.log(1 - 1 / (1 + np.exp(1.0))))])
  assert float(losses.clip_bce(logits, targets, mask)) == pytest.approx(expected, rel=1e-5)


def test_pairwise_hinge_counts_only_ordered_pairs_of_real_clips():
  logits = jnp.array([[2.0, 0.0, 0.5, 9.0]])
  targets = jnp.array([[1.0, 0.0, 0.5, 0.0]])
  mask = jnp.array([[True, True, True, False]])
  # Ordered pairs: (0,1) gap 2 -> 0; (0,2) gap 1.5 -> 0; (2,1) gap 0.5 -> 0.5. Mean 0.5 / 3.
  assert float(losses.pairwise_hinge(logits, targets, mask, margin=1.0)) == pytest.approx(0.5 / 3)


def _probs_logits(p):
  p = np.asarray(p, np.float64)
  return jnp.asarray(np.log(p / (1 - p)), jnp.float32)


def test_temporal_cue_terms_are_zero_when_the_margins_hold_and_positive_when_they_do_not():
  mask = jnp.ones((2, 4), bool)
  labels = jnp.array([1.0, 0.0])
  peaked = [0.95, 0.05, 0.05, 0.05]  # positive: one clear highlight
  flat = [0.1, 0.1, 0.1, 0.1]
  good = losses.temporal_cue_terms(_probs_logits([peaked, flat]), mask, labels, var_margin=0.05,
                                   score_margin=0.5, top_fraction=0.25)
  assert float(good["var"]) == 0.0 and float(good["score"]) == 0.0
  assert float(good["sparsity"]) == pytest.approx(np.mean(peaked), rel=1e-5)
  bad = losses.temporal_cue_terms(_probs_logits([flat, peaked]), mask, labels, var_margin=0.05,
                                  score_margin=0.5, top_fraction=0.25)
  var_gap = np.var(flat) - np.var(peaked)
  assert float(bad["var"]) == pytest.approx(0.05 - var_gap, rel=1e-4)
  assert float(bad["score"]) == pytest.approx(0.5 - (0.1 - 0.95), rel=1e-4)


def test_temporal_cue_terms_vanish_without_negatives_and_respect_padding():
  logits = _probs_logits([[0.5, 0.5, 0.9, 0.9]])
  only_pos = losses.temporal_cue_terms(logits, jnp.ones((1, 4), bool), jnp.ones(1), var_margin=0.1,
                                       score_margin=0.5, top_fraction=0.5)
  assert float(only_pos["var"]) == 0.0 and float(only_pos["score"]) == 0.0
  padded = jnp.array([[True, True, False, False]])
  assert float(losses.top_fraction_mean(jax.nn.sigmoid(logits), padded, 0.5)[0]) == pytest.approx(0.5, rel=1e-5)
  assert float(losses.masked_variance(jax.nn.sigmoid(logits), padded)[0]) == pytest.approx(0.0, abs=1e-7)
