"""Tests for iptnet_jax/lm/model.py (VSLNet in Flax): shapes, masks, frozen GloVe rows, LSTM semantics.

The model + loss gradient test is in lm_losses_test.py (batch-padding samples are inert end to end).
"""

import types

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flax.linen as nn

from iptnet_jax.lm.model import (VSLNet, CharacterEmbedding, DepthwiseConv1D, DynamicRNN, dummy_inputs,
                                 init_variables)

NUM_WORDS, NUM_CHARS, WORD_DIM, VISUAL_DIM, CHAR_LEN = 12, 10, 6, 12, 4
TINY = dict(num_words=NUM_WORDS, num_chars=NUM_CHARS, word_dim=WORD_DIM, dim=16, num_heads=2, max_pos_len=16,
            char_dim=8, char_channels=(2, 3, 4, 5), visual_dim=VISUAL_DIM)


def _jit_apply(model, method=None):
  return jax.jit(lambda variables, *args: model.apply(variables, *args, deterministic=True, method=method))


def _sample_batch(rng, video_lens, query_lens):
  """Unpadded content of a batch: per-sample features, word ids (>=1) and char ids."""
  samples = []
  for lv, lq in zip(video_lens, query_lens):
    samples.append(dict(video=rng.normal(size=(lv, VISUAL_DIM)).astype(np.float32),
                        word_ids=rng.integers(1, NUM_WORDS, size=lq).astype(np.int32),
                        char_ids=rng.integers(0, NUM_CHARS, size=(lq, CHAR_LEN)).astype(np.int32)))
  return samples


def _pad(samples, video_len, query_len, rng=None):
  """Pads samples to (video_len, query_len); with `rng`, the padded region is filled with garbage, not zeros."""
  fill = (lambda shape, hi=None: rng.normal(size=shape) if hi is None else rng.integers(1, hi, size=shape)) \
      if rng is not None else (lambda shape, hi=None: np.zeros(shape))
  batch = dict(video=[], video_mask=[], word_ids=[], char_ids=[], query_mask=[])
  for s in samples:
    lv, lq = len(s["video"]), len(s["word_ids"])
    batch["video"].append(np.concatenate([s["video"], fill((video_len - lv, VISUAL_DIM))]))
    batch["video_mask"].append(np.arange(video_len) < lv)
    batch["word_ids"].append(np.concatenate([s["word_ids"], fill((query_len - lq,), NUM_WORDS)]))
    batch["char_ids"].append(np.concatenate([s["char_ids"], fill((query_len - lq, CHAR_LEN), NUM_CHARS)]))
    batch["query_mask"].append(np.arange(query_len) < lq)
  dtypes = dict(video=np.float32, video_mask=np.float32, word_ids=np.int32, char_ids=np.int32,
                query_mask=np.float32)
  return {k: np.stack(v).astype(dtypes[k]) for k, v in batch.items()}


def _model_args(batch):
  return tuple(jnp.asarray(batch[k]) for k in ("video", "video_mask", "word_ids", "char_ids", "query_mask"))


@pytest.fixture(scope="module")
def vslnet():
  """The TINY VSLNet, its word vectors and initial variables, and jitted apply / query_free functions shared by
  the tests, so that tests using the same shapes share one compile."""
  model = VSLNet(**TINY)
  word_vectors = np.random.default_rng(1).normal(size=(NUM_WORDS, WORD_DIM)).astype(np.float32)
  return types.SimpleNamespace(model=model, word_vectors=word_vectors,
                               variables=init_variables(model, jax.random.key(0), word_vectors),
                               apply=_jit_apply(model), query_free=_jit_apply(model, VSLNet.query_free_importance))


def test_param_count_matches_upstream_at_default_dims():
  # reference_spec.md §3.2: 780,671 without the word/char tables and UNK (GloVe 300-d).
  for word_dim, expected in ((300, 780_671), (50, 780_671 - 250 * 128)):
    model = VSLNet(num_words=100, num_chars=30, word_dim=word_dim)
    shapes = jax.eval_shape(
        lambda key, m=model: m.init(key, *dummy_inputs(m, video_len=3, query_len=2, char_len=4),
                                    deterministic=True), jax.random.key(0))
    params = shapes["params"]
    count = sum(x.size for x in jax.tree.leaves(params))
    tables = params["embedding_net"]["word_emb"]["unk_vec"].size + \
        params["embedding_net"]["char_emb"]["char_emb"]["embedding"].size
    assert count - tables == expected
    assert set(params) == {"embedding_net", "video_affine", "feature_encoder", "cq_attention", "cq_concat",
                           "highlight_layer", "predictor"}


def test_transformer_predictor_shapes():
  model = VSLNet(**TINY, predictor_type="transformer")
  args = dummy_inputs(model, batch=2, video_len=7, query_len=3, char_len=CHAR_LEN)
  variables, outputs = jax.eval_shape(
      lambda key: model.init_with_output(key, *args, deterministic=True)[::-1], jax.random.key(0))
  assert outputs["start_logits"].shape == (2, 7)
  assert "encoder" in variables["params"]["predictor"]
  assert "start_layer_norm" in variables["params"]["predictor"]


def test_shapes_and_masked_outputs(vslnet):
  batch = _pad(_sample_batch(np.random.default_rng(0), (5, 8), (3, 5)), 8, 5)
  outputs = vslnet.apply(vslnet.variables, *_model_args(batch))
  for name in ("start_logits", "end_logits", "highlight_logits", "highlight_prob"):
    assert outputs[name].shape == (2, 8), name
    assert outputs[name].dtype == jnp.float32, name
    assert np.all(np.isfinite(outputs[name])), name
  for name in ("start_logits", "end_logits", "highlight_logits"):
    assert np.all(outputs[name][0, 5:] < -1e29), name
    assert np.all(np.abs(outputs[name][:, :5]) < 1e3), name
  np.testing.assert_array_equal(outputs["highlight_prob"][0, 5:], 0.0)
  assert np.all((outputs["highlight_prob"][:, :5] > 0) & (outputs["highlight_prob"][:, :5] < 1))


def test_valid_outputs_invariant_to_extra_padding(vslnet):
  rng = np.random.default_rng(2)
  samples = _sample_batch(rng, (5, 7), (3, 5))
  tight = _pad(samples, 8, 5)
  loose = _pad(samples, 13, 9, rng=rng)  # more padding, and garbage in it
  out_tight = vslnet.apply(vslnet.variables, *_model_args(tight))
  out_loose = vslnet.apply(vslnet.variables, *_model_args(loose))
  qf_tight = vslnet.query_free(vslnet.variables, jnp.asarray(tight["video"]), jnp.asarray(tight["video_mask"]))
  qf_loose = vslnet.query_free(vslnet.variables, jnp.asarray(loose["video"]), jnp.asarray(loose["video_mask"]))
  for b, lv in enumerate((5, 7)):
    for name in ("start_logits", "end_logits", "highlight_prob"):
      np.testing.assert_allclose(out_loose[name][b, :lv], out_tight[name][b, :lv], atol=1e-5, rtol=1e-5,
                                 err_msg=name)
    np.testing.assert_allclose(qf_loose[b, :lv], qf_tight[b, :lv], atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(qf_loose[b, lv:], 0.0)
  # The query-free scores are a different function from the query-guided highlight.
  assert np.max(np.abs(qf_tight[0, :5] - out_tight["highlight_prob"][0, :5])) > 1e-4


def test_upstream_conv_leak_when_conv_masking_is_off(vslnet):
  # Documents why mask_conv_padding defaults to True: upstream's unmasked convs see the padding.
  model = VSLNet(**TINY, mask_conv_padding=False)
  samples = _sample_batch(np.random.default_rng(3), (5,), (3,))
  qf = _jit_apply(model, VSLNet.query_free_importance)
  tight, loose = _pad(samples, 5, 3), _pad(samples, 9, 3)
  qf_tight = qf(vslnet.variables, jnp.asarray(tight["video"]), jnp.asarray(tight["video_mask"]))
  qf_loose = qf(vslnet.variables, jnp.asarray(loose["video"]), jnp.asarray(loose["video_mask"]))
  assert np.max(np.abs(qf_loose[0, :5] - qf_tight[0, :5])) > 1e-4


def test_glove_rows_are_frozen_constants(vslnet):
  params, constants = vslnet.variables["params"], vslnet.variables["constants"]
  param_paths = ["/".join(str(k.key) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]
  assert not [p for p in param_paths if "glove" in p]
  np.testing.assert_array_equal(constants["embedding_net"]["word_emb"]["glove_vec"], vslnet.word_vectors[2:])
  assert params["embedding_net"]["word_emb"]["unk_vec"].shape == (1, WORD_DIM)

  batch = _pad(_sample_batch(np.random.default_rng(4), (6, 8), (4, 5)), 8, 5)
  batch["word_ids"][0, :2] = [1, 5]  # UNK and a GloVe word
  out = vslnet.apply(vslnet.variables, *_model_args(batch))
  # The constants are really used: other GloVe rows change the output.
  other = {"params": params, "constants": jax.tree.map(lambda x: x + 1.0, constants)}
  out_other = vslnet.apply(other, *_model_args(batch))
  assert np.max(np.abs(out_other["start_logits"] - out["start_logits"])) > 1e-4
  with pytest.raises(flax.errors.ScopeCollectionNotFound):  # forgetting the constants fails loudly
    jax.eval_shape(lambda: vslnet.model.apply({"params": params}, *_model_args(batch), deterministic=True))


def test_init_variables_rejects_mismatched_word_vectors(vslnet):
  with pytest.raises(ValueError, match="word_vectors"):
    init_variables(vslnet.model, jax.random.key(0), np.zeros((NUM_WORDS, WORD_DIM + 1), np.float32))


def test_depthwise_conv_matches_grouped_convolution_with_same_padding():
  # torch Conv1d(groups=dim, padding=3) == XLA grouped conv with (3, 3) zero padding.
  x = np.random.default_rng(0).normal(size=(2, 9, 5)).astype(np.float32)
  conv = DepthwiseConv1D(5, 7)
  params = conv.init(jax.random.key(0), x)["params"]
  assert params["kernel"].shape == (7, 1, 5)
  expected = jax.lax.conv_general_dilated(x, params["kernel"], (1,), [(3, 3)],
                                          dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=5)
  np.testing.assert_allclose(conv.apply({"params": params}, x), expected, atol=1e-5)


class ConvCharacterEmbedding(nn.Module):
  """The char CNN as separate (1, k) VALID convolutions (torch Conv2d semantics), for comparison."""

  num_chars: int
  char_dim: int
  channels: tuple
  kernels: tuple

  @nn.compact
  def __call__(self, char_ids):
    emb = nn.Embed(self.num_chars, self.char_dim, name="char_emb")(char_ids)
    emb = emb * (char_ids != 0)[..., None]
    outputs = []
    for i, (kernel, channel) in enumerate(zip(self.kernels, self.channels)):
      conv = nn.Conv(channel, kernel_size=(1, kernel), padding="VALID", kernel_init=nn.initializers.xavier_uniform(),
                     name=f"char_convs_{i}")
      outputs.append(jnp.max(nn.relu(conv(emb)), axis=2))
    return jnp.concatenate(outputs, axis=-1)


def test_character_embedding_one_matmul_equals_separate_convolutions_with_the_same_init():
  channels, kernels = (3, 4, 5, 6), (1, 2, 3, 4)
  char_ids = np.random.default_rng(0).integers(0, 9, size=(2, 3, 7)).astype(np.int32)
  char_ids[0, 0, 2:] = 0  # a short word: its later windows cover PAD chars, as upstream
  ours = CharacterEmbedding(9, 5, 0.0, channels, kernels)
  conv = ConvCharacterEmbedding(9, 5, channels, kernels)
  params = ours.init(jax.random.key(4), char_ids, deterministic=True)["params"]
  conv_params = conv.init(jax.random.key(4), char_ids)["params"]
  # nn.Conv's parameter names, shapes (torch port layout) and initial values, so seeds reproduce.
  jax.tree.map(np.testing.assert_array_equal, {k: v for k, v in params.items() if k != "char_emb"},
               {k: v for k, v in conv_params.items() if k != "char_emb"})
  params = jax.tree.map(lambda x: x + 0.1, params)  # non-zero biases
  got = jax.jit(lambda p: ours.apply({"params": p}, char_ids, deterministic=True))(params)
  want = jax.jit(lambda p: conv.apply({"params": p}, char_ids))(params)
  assert got.shape == (2, 3, sum(channels))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  grad = lambda module, **kw: jax.jit(jax.grad(lambda p: jnp.sum(jnp.sin(module.apply({"params": p}, char_ids,
                                                                                       **kw)))))(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               grad(ours, deterministic=True), grad(conv))


def test_character_embedding_rejects_words_shorter_than_the_widest_kernel():
  with pytest.raises(ValueError, match="char_ids: 3 chars per word"):
    CharacterEmbedding(9, 5, 0.0).init(jax.random.key(0), np.ones((1, 2, 3), np.int32), deterministic=True)


def test_lstm_matches_torch_equations_and_masks_padding():
  rng = np.random.default_rng(0)
  hidden, in_dim, length = 3, 4, 5
  x = rng.normal(size=(2, length, in_dim)).astype(np.float32)
  mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
  rnn = DynamicRNN(hidden)
  params = rnn.init(jax.random.key(0), x, mask)["params"]["lstm"]
  assert {k: v.shape for k, v in params.items()} == {
      "weight_ih_l0": (4 * hidden, in_dim), "weight_hh_l0": (4 * hidden, hidden), "bias_ih_l0": (4 * hidden,),
      "bias_hh_l0": (4 * hidden,)}
  for v in params.values():  # torch default init U(±1/sqrt(H))
    assert np.abs(v).max() <= 1 / np.sqrt(hidden)
  got = jax.jit(rnn.apply)({"params": {"lstm": params}}, x, mask)

  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  sigmoid = lambda z: 1 / (1 + np.exp(-z))
  h = np.zeros((2, hidden))
  c = np.zeros((2, hidden))
  expected = []
  for t in range(length):  # torch.nn.LSTM docs, gate order (i, f, g, o)
    gates = x[:, t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h @ p["weight_hh_l0"].T + p["bias_hh_l0"]
    i, f, g, o = np.split(gates, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    expected.append(h)
  # Valid steps equal torch's LSTM (padding is on the right, so it never reaches them); padded steps are 0.
  np.testing.assert_allclose(got, np.stack(expected, axis=1) * mask[..., None], atol=1e-6)
  assert np.all(np.abs(got[1]) > 0)


def test_without_position_embedding_any_length_is_accepted_and_no_table_exists():
  model = VSLNet(num_words=6, num_chars=5, word_dim=4, dim=8, num_heads=2, max_pos_len=4, char_dim=4,
                 char_channels=(2, 2, 2, 2), visual_dim=6, position_embedding=False)
  variables = init_variables(model, jax.random.key(0), np.zeros((6, 4), np.float32))
  assert "pos_embedding" not in variables["params"]["feature_encoder"]
  video = jnp.ones((1, 10, 6))  # longer than max_pos_len
  out = model.apply(variables, video, jnp.ones((1, 10)), deterministic=True, method=VSLNet.query_free_importance)
  assert out.shape == (1, 10) and np.isfinite(np.asarray(out)).all()
