"""Tests for iptnet_jax/lm/losses.py: hand-worked values, batch padding, the logit-BCE vs torch-BCE gap, and the
loss through the model (finite gradients, inert batch-padding samples)."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from iptnet_jax.lm import losses
from iptnet_jax.lm.model import MASK_VALUE, VSLNet, init_variables

NEG = MASK_VALUE


def _torch_style_bce(prob, label):
  """torch BCELoss on probabilities: each log clamped at -100."""
  with np.errstate(divide="ignore"):  # log(0) = -inf is what the clamp is for
    log_p = np.maximum(np.log(prob), -100.0)
    log_1mp = np.maximum(np.log(1.0 - prob), -100.0)
  return -(label * log_p + (1.0 - label) * log_1mp)


def test_span_cross_entropy_hand_worked_value():
  # Example 0: start logits [0, 0, masked] -> p(start=0) = 1/2; end logits [ln 3, 0, 0] -> p(end=0) = 3/5.
  # Example 1: start logits [ln 4, 0, masked] -> p(start=1) = 1/5; end logits [0, ln 2, masked] -> 2/3.
  start = jnp.array([[0.0, 0.0, NEG], [math.log(4), 0.0, NEG]])
  end = jnp.array([[math.log(3), 0.0, 0.0], [0.0, math.log(2), NEG]])
  got = losses.span_cross_entropy(start, end, jnp.array([0, 1]), jnp.array([0, 1]), jnp.ones(2))
  expected = ((math.log(2) + math.log(5 / 3)) + (math.log(5) + math.log(3 / 2))) / 2
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_span_cross_entropy_padding_examples_contribute_nothing():
  start = jnp.array([[0.0, 0.0, NEG]])
  end = jnp.array([[math.log(3), 0.0, 0.0]])
  alone = losses.span_cross_entropy(start, end, jnp.array([0]), jnp.array([0]), jnp.ones(1))
  # A padding sample with an all-masked row and a label on a masked step.
  start_padded = jnp.concatenate([start, jnp.full((1, 3), NEG)], axis=0)
  end_padded = jnp.concatenate([end, jnp.array([[5.0, NEG, NEG]])], axis=0)
  fn = lambda s, e: losses.span_cross_entropy(s, e, jnp.array([0, 2]), jnp.array([0, 1]), jnp.array([1.0, 0.0]))
  padded, grads = jax.value_and_grad(fn, argnums=(0, 1))(start_padded, end_padded)
  np.testing.assert_allclose(padded, alone, rtol=1e-6)
  for g in grads:
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g[1], 0.0)


def test_span_cross_entropy_all_padding_batch_is_zero():
  got = losses.span_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32),
                                  jnp.zeros(2, jnp.int32), jnp.zeros(2))
  assert float(got) == 0.0


def test_highlight_bce_hand_worked_value():
  # Example 0: logits [0, 0, masked], labels [1, 0, 0], 2 valid steps: (2 ln 2 + ln 2) summed.
  # Example 1: logits [ln 3, masked, masked], labels [0, 0, 0], 1 valid step: -ln(1 - 3/4) = ln 4.
  logits = jnp.array([[0.0, 0.0, NEG], [math.log(3), NEG, NEG]])
  labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  video_mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
  got = losses.highlight_bce(logits, labels, video_mask, jnp.ones(2))
  expected = (3 * math.log(2) + math.log(4)) / 3
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_highlight_bce_padding_examples_contribute_nothing():
  logits = jnp.array([[0.3, -1.2, NEG]])
  labels = jnp.array([[1.0, 0.0, 0.0]])
  video_mask = jnp.array([[1.0, 1.0, 0.0]])
  alone = losses.highlight_bce(logits, labels, video_mask, jnp.ones(1))
  logits_p = jnp.concatenate([logits, jnp.array([[7.0, -3.0, 2.0]])])
  labels_p = jnp.concatenate([labels, jnp.array([[0.0, 1.0, 1.0]])])
  mask_p = jnp.concatenate([video_mask, jnp.ones((1, 3))])
  fn = lambda x: losses.highlight_bce(x, labels_p, mask_p, jnp.array([1.0, 0.0]))
  padded, grad = jax.value_and_grad(fn)(logits_p)
  np.testing.assert_allclose(padded, alone, rtol=1e-6)
  np.testing.assert_array_equal(grad[1], 0.0)
  np.testing.assert_array_equal(grad[0, 2], 0.0)  # a masked step of a real example


def test_highlight_bce_matches_torch_probability_bce_when_not_saturated():
  rng = np.random.default_rng(0)
  logits = rng.uniform(-12, 12, size=(3, 7)).astype(np.float32)
  labels = (rng.uniform(size=(3, 7)) > 0.5).astype(np.float32)
  mask = np.ones((3, 7), np.float32)
  got = losses.highlight_bce(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask), jnp.ones(3))
  prob = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  weights = np.where(labels > 0, 2.0, 1.0)
  expected = np.sum(weights * _torch_style_bce(prob, labels)) / np.sum(mask)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_highlight_bce_saturated_mistake_keeps_growing_unlike_torch_clamp():
  # The documented difference: torch's float32 sigmoid(120) is 1.0, so its BCE for label 0 is clamped at 100;
  # the log-sigmoid form gives the exact 120 and a gradient of 1.
  logits = jnp.array([[120.0]])
  fn = lambda x: losses.highlight_bce(x, jnp.zeros((1, 1)), jnp.ones((1, 1)), jnp.ones(1))
  value, grad = jax.value_and_grad(fn)(logits)
  np.testing.assert_allclose(value, 120.0, rtol=1e-6)
  np.testing.assert_allclose(grad, [[1.0]], rtol=1e-6)
  assert _torch_style_bce(np.float32(1.0), 0.0) == 100.0


def test_total_is_span_plus_lambda_highlight():
  outputs = dict(start_logits=jnp.array([[0.0, 0.0, NEG]]), end_logits=jnp.array([[0.0, 0.0, NEG]]),
                 highlight_logits=jnp.array([[0.0, 0.0, NEG]]))
  batch = dict(start_index=jnp.array([0]), end_index=jnp.array([1]), highlight=jnp.array([[1.0, 1.0, 0.0]]),
               video_mask=jnp.array([[1.0, 1.0, 0.0]]), example_mask=jnp.ones(1))
  total, parts = losses.vslnet_loss(outputs, batch)
  np.testing.assert_allclose(parts["span_loss"], 2 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(parts["highlight_loss"], 2 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(total, 2 * math.log(2) + 5.0 * 2 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(parts["loss"], total)


def test_model_loss_padding_example_inert_and_gradients_finite():
  """VSLNet + vslnet_loss end to end: finite gradients, batch-padding samples inert."""
  num_words, num_chars, visual_dim = 12, 10, 12
  model = VSLNet(num_words=num_words, num_chars=num_chars, word_dim=6, dim=16, num_heads=2, max_pos_len=16,
                 char_dim=8, char_channels=(2, 3, 4, 5), visual_dim=visual_dim)
  rng = np.random.default_rng(5)
  variables = init_variables(model, jax.random.key(0), rng.normal(size=(num_words, 6)).astype(np.float32))
  video_lens, query_lens, lv, lq = (6, 8), (3, 5), 8, 5
  real = dict(video=rng.normal(size=(2, lv, visual_dim)).astype(np.float32),
              video_mask=(np.arange(lv) < np.array(video_lens)[:, None]).astype(np.float32),
              query_mask=(np.arange(lq) < np.array(query_lens)[:, None]).astype(np.float32),
              start_index=np.array([1, 2], np.int32), end_index=np.array([4, 6], np.int32),
              highlight=np.zeros((2, lv), np.float32), example_mask=np.ones(2, np.float32))
  real["video"] *= real["video_mask"][..., None]
  real["word_ids"] = (rng.integers(1, num_words, size=(2, lq)) * real["query_mask"]).astype(np.int32)
  real["word_ids"][0, 0] = 1  # exercise the UNK row
  real["char_ids"] = (rng.integers(0, num_chars, size=(2, lq, 4)) * real["query_mask"][..., None]).astype(np.int32)
  real["highlight"][0, 1:5] = 1.0
  real["highlight"][1, 2:7] = 1.0

  # Two kinds of batch-padding row (example_mask 0): all masks zero with garbage features and labels, and a
  # copy of the first sample (what the data pipeline's filler rows are). Same shapes, so one compile serves both.
  garbage = {k: np.concatenate([v, np.zeros_like(v[:1])]) for k, v in real.items()}
  garbage["video"][-1] = rng.normal(size=garbage["video"][-1].shape)
  garbage["start_index"][-1], garbage["end_index"][-1] = 7, 3
  copy = {k: np.concatenate([v, v[:1]]) for k, v in real.items()}
  copy["example_mask"][-1] = 0.0
  inputs = ("video", "video_mask", "word_ids", "char_ids", "query_mask")

  def loss_fn(params, video, batch):
    batch = dict(batch, video=video)
    outputs = model.apply({"params": params, "constants": variables["constants"]},
                          *(batch[k] for k in inputs), deterministic=True)
    return losses.vslnet_loss(outputs, batch)[0]

  grad_fn = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
  loss_garbage, (grads, video_grad) = grad_fn(variables["params"], garbage["video"], garbage)
  loss_copy, (grads_copy, video_grad_copy) = grad_fn(variables["params"], copy["video"], copy)
  np.testing.assert_allclose(loss_copy, loss_garbage, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads_copy, grads)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(g)), jax.tree_util.keystr(path)
  assert np.all(np.isfinite(video_grad))
  # Nothing flows back into the padding row, nor into the padded steps of a real one.
  np.testing.assert_array_equal(video_grad[2], 0.0)
  np.testing.assert_array_equal(video_grad_copy[2], 0.0)
  np.testing.assert_array_equal(video_grad[0, 6:], 0.0)
  assert np.abs(video_grad[0, :6]).max() > 0.0
  assert np.abs(grads["embedding_net"]["word_emb"]["unk_vec"]).max() > 0.0
  # The char PAD row gets no gradient, as torch's padding_idx=0.
  np.testing.assert_array_equal(grads["embedding_net"]["char_emb"]["char_emb"]["embedding"][0], 0.0)

