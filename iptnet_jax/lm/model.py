"""VSLNet (Zhang et al., ACL 2020), PyTorch version (`model/VSLNet_t7.py`, `model/layers_t7.py`), in Flax Linen.

The module tree mirrors the upstream PyTorch modules one to one, so that a torch `state_dict` can be ported by a
mechanical key map (reference_spec.md §3.2; jax_style.md §3):

  torch key                                                     Flax path (collection 'params' unless noted)
  embedding_net.word_emb.pad_vec                                (none: the zero PAD row is a constant)
  embedding_net.word_emb.unk_vec              (1, Dw)           embedding_net/word_emb/unk_vec          (same)
  embedding_net.word_emb.glove_vec            (V-2, Dw)         'constants': embedding_net/word_emb/glove_vec
  embedding_net.char_emb.char_emb.weight      (C, Dc)           embedding_net/char_emb/char_emb/embedding
  embedding_net.char_emb.char_convs.{i}.0.weight (o, Dc, 1, k)  embedding_net/char_emb/char_convs_{i}/kernel (1,k,Dc,o)
  embedding_net.linear.conv1d.weight          (d, Din, 1)       embedding_net/linear/conv1d/kernel (Din, d)
  video_affine.linear.conv1d.*                                  video_affine/linear/conv1d/*
  feature_encoder.pos_embedding.position_embeddings.weight      feature_encoder/pos_embedding/position_embeddings/embedding
  feature_encoder.conv_block.depthwise_separable_conv.{i}.0.weight (d,1,7)
                                                                feature_encoder/conv_block/depthwise_separable_conv_{i}/depthwise_conv/kernel (7,1,d)
  feature_encoder.conv_block.depthwise_separable_conv.{i}.1.{weight (d,d,1),bias}
                                                                feature_encoder/conv_block/depthwise_separable_conv_{i}/pointwise_conv/{kernel (d,d),bias}
  feature_encoder.conv_block.layer_norms.{i}.{weight,bias}      feature_encoder/conv_block/layer_norms_{i}/{scale,bias}
  feature_encoder.attention_block.{query,key,value,out_layer}.conv1d.*   feature_encoder/attention_block/<same>/conv1d/*
  feature_encoder.attention_block.layer_norm{1,2}.*             feature_encoder/attention_block/layer_norm{1,2}/*
  cq_attention.{w4C (d,1), w4Q (d,1), w4mlu (1,1,d)}            cq_attention/{w4C, w4Q, w4mlu}          (same)
  cq_attention.cqa_linear.conv1d.*                              cq_attention/cqa_linear/conv1d/*
  cq_concat.weighted_pool.weight (d,1)                          cq_concat/weighted_pool/weight          (same)
  cq_concat.conv1d.conv1d.*                                     cq_concat/conv1d/conv1d/*
  highlight_layer.conv1d.conv1d.*                               highlight_layer/conv1d/conv1d/*
  predictor.{start,end}_encoder.lstm.{weight_ih_l0,weight_hh_l0,bias_ih_l0,bias_hh_l0}
                                                                predictor/{start,end}_encoder/lstm/<same>  (same layout)
  predictor.{start,end}_block.{0,2}.conv1d.*                    predictor/{start,end}_block_{0,2}/conv1d/*

Value transforms: a 1x1 torch Conv1d weight (out, in, 1) becomes a Dense kernel `w[:, :, 0].T`; the depthwise
Conv1d weight (d, 1, 7) goes through `permute(2, 1, 0)` and the char Conv2d weights through
`permute(2, 3, 1, 0)`; LayerNorm `weight` is `scale`; embeddings, the CQA/pool vectors and the LSTM tensors are
copied unchanged.

Initialisation follows upstream `init_parameters`: xavier-uniform Conv/Linear weights (Flax's xavier on the
Flax kernel layout has the same fans as torch's on the torch layout), zero biases, N(0, 1) position and char
tables (char PAD row zero), torch's LSTM default U(±1/sqrt(H)) and xavier for the bare vectors using torch's fan
convention.

Deliberate deviations from upstream, all visible only on padded inputs (char padding is NOT masked, as upstream):
* `mask_conv_padding=True` (default) zeroes padded steps before each depthwise conv. Upstream convolves the
  padding (projected zero features + position embeddings) into the last valid steps (3 per kernel-7 conv
  layer, 12 after the encoder's 4), so its outputs depend on how far a batch is padded; with bucketed padding
  that would change results with the bucket. With the mask, every sample behaves as it would alone in an
  unpadded batch, which is exactly upstream's behaviour for an unpadded input. Set it to False to reproduce upstream's leak bit for bit.
* `query_free_importance` uses the real video mask where the iPTNet code (`with_sum_data`) used an all-ones
  mask, so padded steps are ignored instead of attended to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from iptnet_jax.lm.lstm import lstm_recurrence

# Added to masked logits, as upstream `mask_logits`. Finite in float32 (and bf16), so 0 * it stays 0.
MASK_VALUE = -1e30

_xavier_uniform = nn.initializers.xavier_uniform()
_zeros = nn.initializers.zeros


def mask_logits(logits: jax.Array, mask: jax.Array) -> jax.Array:
  """logits + (1 - mask) * -1e30, computed in float32 (upstream `mask_logits`)."""
  mask = mask.astype(jnp.float32)
  return logits.astype(jnp.float32) + (1.0 - mask) * jnp.float32(MASK_VALUE)


def _uniform(bound: float):
  """U(-bound, bound) initializer."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _torch_xavier_uniform(fan_in: int, fan_out: int):
  """torch.nn.init.xavier_uniform_ with the fans torch derives from the torch-layout tensor."""
  return _uniform(math.sqrt(6.0 / (fan_in + fan_out)))


def _normal_with_zero_pad_row(key, shape, dtype=jnp.float32):
  """torch nn.Embedding(padding_idx=0) init: N(0, 1) with row 0 zeroed."""
  return jax.random.normal(key, shape, dtype).at[0].set(0.0)


class Conv1D(nn.Module):
  """Upstream `Conv1D`: a 1x1 Conv1d over (B, L, D), i.e. a Dense on the last axis."""

  out_dim: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Dense(self.out_dim, use_bias=self.use_bias, kernel_init=_xavier_uniform, bias_init=_zeros,
                    name="conv1d")(x)


class WordEmbedding(nn.Module):
  """Rows: 0 = PAD (zero, constant), 1 = UNK (trainable), 2.. = GloVe (frozen, collection 'constants')."""

  num_words: int
  word_dim: int
  drop_rate: float

  @nn.compact
  def __call__(self, word_ids: jax.Array, *, deterministic: bool) -> jax.Array:
    unk_vec = self.param("unk_vec", _torch_xavier_uniform(self.word_dim, 1), (1, self.word_dim))
    # The GloVe rows live outside 'params', so neither the gradient nor the optimizer ever sees them. `init`
    # fills them with NaN: `init_variables` must load the real rows, and forgetting to do so poisons every
    # output instead of silently training without word vectors.
    glove_vec = self.variable("constants", "glove_vec",
                              lambda: jnp.full((self.num_words - 2, self.word_dim), jnp.nan, jnp.float32)).value
    pad_vec = jnp.zeros((1, self.word_dim), jnp.float32)
    table = jnp.concatenate([pad_vec, unk_vec, jax.lax.stop_gradient(glove_vec)], axis=0)
    word_emb = jnp.take(table, word_ids, axis=0)
    return nn.Dropout(self.drop_rate)(word_emb, deterministic=deterministic)


class CharConvParams(nn.Module):
  """The parameters of one upstream char Conv2d(Dc, channels, (1, kernel)), as nn.Conv would declare them
  (same names, shapes, initialisers and order, so the same values for the same seed)."""

  channels: int
  kernel: int
  in_dim: int

  @nn.compact
  def __call__(self) -> tuple[jax.Array, jax.Array]:
    kernel = self.param("kernel", _xavier_uniform, (1, self.kernel, self.in_dim, self.channels))
    return kernel, self.param("bias", _zeros, (self.channels,))


class CharacterEmbedding(nn.Module):
  """Char table + one (1, k) VALID Conv2d per kernel, ReLU, max over the chars of each word.

  The convolutions run as ONE matmul: each char position's window of max(kernels) embeddings (zero past the
  word's end) times the kernels stacked side by side (a k-tap kernel zero on the taps beyond k), then each
  kernel's max over its VALID positions. Same arithmetic as the separate convolutions, in one large product
  instead of four small convolutions and their gradients (timed by the `lm-profile` row 'char CNN' of
  `python -m benchmarks.run --only lm`; figures in BUILD.md).

  As upstream, the max also runs over windows of PAD chars (zero embeddings, so ReLU(bias) there): a word's
  vector can depend on the char axis length Lc, which the data pipeline fixes per bucket.
  """

  num_chars: int
  char_dim: int
  drop_rate: float
  channels: Sequence[int] = (10, 20, 30, 40)
  kernels: Sequence[int] = (1, 2, 3, 4)

  @nn.compact
  def __call__(self, char_ids: jax.Array, *, deterministic: bool) -> jax.Array:
    width, length = max(self.kernels), char_ids.shape[-1]
    if length < width:
      raise ValueError(f"char_ids: {length} chars per word, the char CNN needs at least {width} (its widest "
                       "kernel)")
    char_emb = nn.Embed(self.num_chars, self.char_dim, embedding_init=_normal_with_zero_pad_row,
                        name="char_emb")(char_ids)
    # torch's padding_idx=0 gives the PAD row no gradient; zeroing its lookups does the same here.
    char_emb = char_emb * (char_ids != 0)[..., None].astype(char_emb.dtype)
    char_emb = nn.Dropout(self.drop_rate)(char_emb, deterministic=deterministic)  # (B, Lq, Lc, Dc)
    padded = jnp.pad(char_emb, ((0, 0), (0, 0), (0, width - 1), (0, 0)))
    windows = jnp.concatenate([padded[:, :, tap:tap + length] for tap in range(width)], axis=-1)  # (.., Lc, w*Dc)
    kernels, biases = [], []
    for i, (kernel, channel) in enumerate(zip(self.kernels, self.channels)):
      weight, bias = CharConvParams(channel, kernel, self.char_dim, name=f"char_convs_{i}")()
      weight = weight[0].reshape(kernel * self.char_dim, channel)  # rows tap-major, as the windows
      kernels.append(jnp.pad(weight, ((0, (width - kernel) * self.char_dim), (0, 0))))
      biases.append(bias)
    responses = nn.relu(windows @ jnp.concatenate(kernels, axis=1) + jnp.concatenate(biases))
    outputs, first = [], 0
    for kernel, channel in zip(self.kernels, self.channels):
      # A k-tap kernel has Lc - k + 1 VALID positions; the later ones would read past the word.
      outputs.append(jnp.max(responses[:, :, :length - kernel + 1, first:first + channel], axis=2))
      first += channel
    return jnp.concatenate(outputs, axis=-1)


class Embedding(nn.Module):
  """Query embedding: Dense([word; char]) to `dim`, no dropout after it (upstream `Embedding`)."""

  num_words: int
  num_chars: int
  word_dim: int
  char_dim: int
  out_dim: int
  drop_rate: float
  char_channels: Sequence[int] = (10, 20, 30, 40)
  char_kernels: Sequence[int] = (1, 2, 3, 4)

  def setup(self):
    self.word_emb = WordEmbedding(self.num_words, self.word_dim, self.drop_rate)
    self.char_emb = CharacterEmbedding(self.num_chars, self.char_dim, self.drop_rate, self.char_channels,
                                       self.char_kernels)
    self.linear = Conv1D(self.out_dim)

  def __call__(self, word_ids: jax.Array, char_ids: jax.Array, *, deterministic: bool) -> jax.Array:
    word_emb = self.word_emb(word_ids, deterministic=deterministic)
    char_emb = self.char_emb(char_ids, deterministic=deterministic)
    return self.linear(jnp.concatenate([word_emb, char_emb], axis=-1))


class PositionalEmbedding(nn.Module):
  """Learned (max_pos_len, dim) table, N(0, 1) as torch nn.Embedding; returns rows 0..L-1."""

  max_pos_len: int
  dim: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    length = x.shape[1]
    if length > self.max_pos_len:
      raise ValueError(f"sequence length {length} exceeds max_pos_len {self.max_pos_len}")
    table = nn.Embed(self.max_pos_len, self.dim, embedding_init=nn.initializers.normal(1.0),
                     name="position_embeddings")
    return table(jnp.arange(length))[None]


class VisualProjection(nn.Module):
  """Dense(Dropout(V)) to `dim`."""

  dim: int
  drop_rate: float

  @nn.compact
  def __call__(self, visual_features: jax.Array, *, deterministic: bool) -> jax.Array:
    x = nn.Dropout(self.drop_rate)(visual_features, deterministic=deterministic)
    return Conv1D(self.dim, name="linear")(x)


class DepthwiseConv1D(nn.Module):
  """torch Conv1d(dim, dim, k, groups=dim, padding=k//2, bias=False) over (B, L, dim); kernel (k, 1, dim).

  Computed as k shifted multiply-adds: XLA's grouped convolution (and its gradient) is about ten times slower on
  CPU for these shapes, and the result is the same.
  """

  dim: int
  kernel_size: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", _xavier_uniform, (self.kernel_size, 1, self.dim))
    pad = self.kernel_size // 2
    length = x.shape[1]
    padded = jnp.pad(x, ((0, 0), (pad, self.kernel_size - 1 - pad), (0, 0)))
    return sum(padded[:, k:k + length, :] * kernel[k, 0] for k in range(self.kernel_size))


class DepthwiseSeparableConv(nn.Module):
  """One upstream `nn.Sequential(depthwise Conv1d k (no bias), pointwise 1x1 Conv1d, ReLU)`."""

  dim: int
  kernel_size: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = DepthwiseConv1D(self.dim, self.kernel_size, name="depthwise_conv")(x)
    x = nn.Dense(self.dim, kernel_init=_xavier_uniform, bias_init=_zeros, name="pointwise_conv")(x)
    return nn.relu(x)


class DepthwiseSeparableConvBlock(nn.Module):
  """num_layers x [X <- X + Dropout(DSConv(LN(X)))], pre-LN with eps 1e-6."""

  dim: int
  kernel_size: int
  drop_rate: float
  num_layers: int = 4
  mask_padding: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
    for i in range(self.num_layers):
      residual = x
      y = nn.LayerNorm(epsilon=1e-6, name=f"layer_norms_{i}")(x)
      if self.mask_padding:
        # Zero padded steps so that they cannot leak into the last kernel_size//2 valid steps (module docstring).
        y = y * mask[..., None].astype(y.dtype)
      y = DepthwiseSeparableConv(self.dim, self.kernel_size, name=f"depthwise_separable_conv_{i}")(y)
      x = nn.Dropout(self.drop_rate)(y, deterministic=deterministic) + residual
    return x


class MultiHeadAttentionBlock(nn.Module):
  """Pre-LN masked multi-head self-attention with a Dense "FFN" and two residuals (spec §3.2.3c)."""

  dim: int
  num_heads: int
  drop_rate: float

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
    if self.dim % self.num_heads:
      raise ValueError(f"dim {self.dim} is not a multiple of num_heads {self.num_heads}")
    head_size = self.dim // self.num_heads
    dropout = nn.Dropout(self.drop_rate)

    def split_heads(t):  # (B, L, d) -> (B, L, heads, head_size)
      return t.reshape(t.shape[:-1] + (self.num_heads, head_size))

    y = dropout(nn.LayerNorm(epsilon=1e-6, name="layer_norm1")(x), deterministic=deterministic)
    query = split_heads(Conv1D(self.dim, name="query")(y))
    key = split_heads(Conv1D(self.dim, name="key")(y))
    value = split_heads(Conv1D(self.dim, name="value")(y))
    scores = jnp.einsum("bqhc,bkhc->bhqk", query, key) / math.sqrt(head_size)
    scores = mask_logits(scores, mask[:, None, None, :])  # padded keys get ~zero weight
    probs = dropout(jax.nn.softmax(scores, axis=-1), deterministic=deterministic)
    attended = jnp.einsum("bhqk,bkhc->bqhc", probs, value).reshape(x.shape[:-1] + (self.dim,))
    residual = dropout(attended, deterministic=deterministic) + x
    y = dropout(nn.LayerNorm(epsilon=1e-6, name="layer_norm2")(residual), deterministic=deterministic)
    y = Conv1D(self.dim, name="out_layer")(y)
    return dropout(y, deterministic=deterministic) + residual


class FeatureEncoder(nn.Module):
  """X + P[:L] -> depthwise-separable conv block -> masked MHA block. One instance encodes video and query."""

  dim: int
  num_heads: int
  max_pos_len: int
  drop_rate: float
  kernel_size: int = 7
  num_layers: int = 4
  mask_conv_padding: bool = True
  position_embedding: bool = True

  def setup(self):
    if self.position_embedding:
      self.pos_embedding = PositionalEmbedding(self.max_pos_len, self.dim)
    self.conv_block = DepthwiseSeparableConvBlock(self.dim, self.kernel_size, self.drop_rate, self.num_layers,
                                                  self.mask_conv_padding)
    self.attention_block = MultiHeadAttentionBlock(self.dim, self.num_heads, self.drop_rate)

  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
    features = x + self.pos_embedding(x) if self.position_embedding else x
    features = self.conv_block(features, mask, deterministic=deterministic)
    return self.attention_block(features, mask, deterministic=deterministic)


class CQAttention(nn.Module):
  """Context-query attention with the trilinear score (spec §3.2.4)."""

  dim: int
  drop_rate: float

  @nn.compact
  def __call__(self, context: jax.Array, query: jax.Array, c_mask: jax.Array, q_mask: jax.Array, *,
               deterministic: bool) -> jax.Array:
    d = self.dim
    # Shapes and fans as the torch tensors, so the port copies them unchanged.
    w4c = self.param("w4C", _torch_xavier_uniform(1, d), (d, 1))
    w4q = self.param("w4Q", _torch_xavier_uniform(1, d), (d, 1))
    w4mlu = self.param("w4mlu", _torch_xavier_uniform(d, d), (1, 1, d))
    dropout = nn.Dropout(self.drop_rate)
    c_drop = dropout(context, deterministic=deterministic)
    q_drop = dropout(query, deterministic=deterministic)
    score = (c_drop @ w4c  # (B, Lv, 1)
             + jnp.swapaxes(q_drop @ w4q, 1, 2)  # (B, 1, Lq)
             + jnp.einsum("bid,bjd->bij", c_drop * w4mlu, q_drop))  # (B, Lv, Lq)
    score_row = jax.nn.softmax(mask_logits(score, q_mask[:, None, :]), axis=2)  # over query words
    score_col = jax.nn.softmax(mask_logits(score, c_mask[:, :, None]), axis=1)  # over video steps
    c2q = score_row @ query
    # Upstream computes (S_r S_c^T) C; S_r (S_c^T C) is the same product without the (Lv, Lv) matrix.
    q2c = score_row @ (jnp.swapaxes(score_col, 1, 2) @ context)
    # The undropped context and query enter the output, as upstream.
    output = jnp.concatenate([context, c2q, context * c2q, context * q2c], axis=-1)
    return Conv1D(d, name="cqa_linear")(output)


class WeightedPool(nn.Module):
  """Attention pooling: softmax_j(Q w + mask) weighted sum of the query steps."""

  dim: int

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    weight = self.param("weight", _torch_xavier_uniform(1, self.dim), (self.dim, 1))
    alpha = mask_logits((x @ weight)[..., 0], mask)  # (B, L)
    alpha = jax.nn.softmax(alpha, axis=1)
    return jnp.einsum("bl,bld->bd", alpha, x)


class CQConcatenate(nn.Module):
  """F = Dense([features; tile(pooled query)])."""

  dim: int

  @nn.compact
  def __call__(self, context: jax.Array, query: jax.Array, q_mask: jax.Array) -> jax.Array:
    pooled_query = WeightedPool(self.dim, name="weighted_pool")(query, q_mask)
    pooled_query = jnp.broadcast_to(pooled_query[:, None, :], context.shape[:2] + pooled_query.shape[-1:])
    return Conv1D(self.dim, name="conv1d")(jnp.concatenate([context, pooled_query], axis=-1))


class HighLightLayer(nn.Module):
  """Query-guided highlighting: masked logits (B, L); sigmoid gives the highlight score."""

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    logits = Conv1D(1, name="conv1d")(x)[..., 0]
    return mask_logits(logits, mask)


class TorchLSTM(nn.Module):
  """One-layer unidirectional torch nn.LSTM (batch_first): gates (i, f, g, o), both biases, torch param layout.

  Runs over the whole padded sequence from zero state, exactly as upstream calls nn.LSTM without packing.
  """

  hidden_size: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = self.hidden_size
    init = _uniform(1.0 / math.sqrt(h))  # torch LSTM.reset_parameters
    weight_ih = self.param("weight_ih_l0", init, (4 * h, x.shape[-1]))
    weight_hh = self.param("weight_hh_l0", init, (4 * h, h))
    bias_ih = self.param("bias_ih_l0", init, (4 * h,))
    bias_hh = self.param("bias_hh_l0", init, (4 * h,))
    input_gates = x @ weight_ih.T + bias_ih + bias_hh  # all steps at once; only h @ W_hh is sequential
    outputs = lstm_recurrence(jnp.swapaxes(input_gates, 0, 1), weight_hh)  # lm/lstm.py: custom backward pass
    return jnp.swapaxes(outputs, 0, 1)


class DynamicRNN(nn.Module):
  """LSTM over the padded sequence, outputs zeroed at padded steps.

  Padding is on the right and the LSTM runs forward, so the outputs at valid steps never see a padded step:
  a plain scan followed by the mask equals torch's packed (length-aware) LSTM there, and equals upstream's
  unpacked LSTM everywhere after masking.
  """

  dim: int

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    return TorchLSTM(self.dim, name="lstm")(x) * mask[..., None].astype(x.dtype)


class ConditionedPredictor(nn.Module):
  """Start/end heads; 'rnn': H_s = LSTM_s(F), H_e = LSTM_e(H_s); logits = Dense(ReLU(Dense([H; F]))) + mask."""

  dim: int
  num_heads: int
  max_pos_len: int
  drop_rate: float
  predictor: str = "rnn"
  mask_conv_padding: bool = True
  position_embedding: bool = True

  def setup(self):
    if self.predictor == "rnn":
      self.start_encoder = DynamicRNN(self.dim)
      self.end_encoder = DynamicRNN(self.dim)
    elif self.predictor == "transformer":
      # Upstream applies this one encoder twice (start, then end), then separate LayerNorms.
      self.encoder = FeatureEncoder(self.dim, self.num_heads, self.max_pos_len, self.drop_rate,
                                    mask_conv_padding=self.mask_conv_padding,
                                    position_embedding=self.position_embedding)
      self.start_layer_norm = nn.LayerNorm(epsilon=1e-6)
      self.end_layer_norm = nn.LayerNorm(epsilon=1e-6)
    else:
      raise ValueError(f"predictor: expected 'rnn' or 'transformer', got {self.predictor!r}")
    # Names keep the torch nn.Sequential indices (index 1 is the parameter-free ReLU).
    self.start_block_0 = Conv1D(self.dim)
    self.start_block_2 = Conv1D(1)
    self.end_block_0 = Conv1D(self.dim)
    self.end_block_2 = Conv1D(1)

  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool) -> tuple[jax.Array, jax.Array]:
    if self.predictor == "rnn":
      start_features = self.start_encoder(x, mask)
      end_features = self.end_encoder(start_features, mask)
    else:
      start_features = self.encoder(x, mask, deterministic=deterministic)
      end_features = self.encoder(start_features, mask, deterministic=deterministic)
      start_features = self.start_layer_norm(start_features)
      end_features = self.end_layer_norm(end_features)
    start = self.start_block_2(nn.relu(self.start_block_0(jnp.concatenate([start_features, x], axis=-1))))
    end = self.end_block_2(nn.relu(self.end_block_0(jnp.concatenate([end_features, x], axis=-1))))
    return mask_logits(start[..., 0], mask), mask_logits(end[..., 0], mask)


class VSLNet(nn.Module):
  """VSLNet with the 'rnn' (default) or 'transformer' conditioned predictor (`predictor_type`).

  `num_words` counts PAD and UNK (the word-vector matrix has num_words rows); `word_dim` is its width.
  Variables: 'params' (trainable) and 'constants' (the frozen GloVe rows); build both with `init_variables`.
  """

  num_words: int
  num_chars: int
  word_dim: int = 300
  dim: int = 128
  num_heads: int = 8
  drop_rate: float = 0.2
  max_pos_len: int = 128
  char_dim: int = 50
  char_channels: Sequence[int] = (10, 20, 30, 40)
  char_kernels: Sequence[int] = (1, 2, 3, 4)
  visual_dim: int = 1024
  # Upstream's `predictor` option; renamed because the submodule keeps upstream's name `predictor`.
  predictor_type: str = "rnn"
  mask_conv_padding: bool = True
  # The released iPTNet LM ("LocNets") has no positional embedding; without it the encoder takes sequences
  # of any length, which the query-free path needs on summarization videos longer than max_pos_len.
  position_embedding: bool = True

  def setup(self):
    self.embedding_net = Embedding(self.num_words, self.num_chars, self.word_dim, self.char_dim, self.dim,
                                   self.drop_rate, self.char_channels, self.char_kernels)
    self.video_affine = VisualProjection(self.dim, self.drop_rate)
    self.feature_encoder = FeatureEncoder(self.dim, self.num_heads, self.max_pos_len, self.drop_rate,
                                          mask_conv_padding=self.mask_conv_padding,
                                          position_embedding=self.position_embedding)
    self.cq_attention = CQAttention(self.dim, self.drop_rate)
    self.cq_concat = CQConcatenate(self.dim)
    self.highlight_layer = HighLightLayer()
    self.predictor = ConditionedPredictor(self.dim, self.num_heads, self.max_pos_len, self.drop_rate,
                                          self.predictor_type, self.mask_conv_padding,
                                          self.position_embedding)

  def __call__(self, video: jax.Array, video_mask: jax.Array, word_ids: jax.Array, char_ids: jax.Array,
               query_mask: jax.Array, *, deterministic: bool) -> dict[str, jax.Array]:
    """Returns start_logits, end_logits, highlight_logits (masked with -1e30) and highlight_prob, all (B, Lv)."""
    video_mask = video_mask.astype(jnp.float32)
    query_mask = query_mask.astype(jnp.float32)
    video_features = self.video_affine(video, deterministic=deterministic)
    query_features = self.embedding_net(word_ids, char_ids, deterministic=deterministic)
    video_features = self.feature_encoder(video_features, video_mask, deterministic=deterministic)
    query_features = self.feature_encoder(query_features, query_mask, deterministic=deterministic)
    features = self.cq_attention(video_features, query_features, video_mask, query_mask,
                                 deterministic=deterministic)
    features = self.cq_concat(features, query_features, query_mask)
    highlight_logits = self.highlight_layer(features, video_mask)
    highlight_prob = jax.nn.sigmoid(highlight_logits)
    start_logits, end_logits = self.predictor(features * highlight_prob[..., None], video_mask,
                                              deterministic=deterministic)
    return dict(start_logits=start_logits, end_logits=end_logits, highlight_logits=highlight_logits,
                highlight_prob=highlight_prob)

  def query_free_importance(self, video: jax.Array, video_mask: jax.Array, *, deterministic: bool) -> jax.Array:
    """sigmoid(HighLight(Encoder(VisualProj(v)))): query-free step importance (B, Lv), 0 at padded steps.

    iPTNet scores summarization videos this way (its `with_sum_data`), skipping the query, CQA and CQConcat.
    The iPTNet code passed an all-ones mask; the real mask is used here so that padding is ignored.
    """
    video_mask = video_mask.astype(jnp.float32)
    features = self.video_affine(video, deterministic=deterministic)
    features = self.feature_encoder(features, video_mask, deterministic=deterministic)
    return jax.nn.sigmoid(self.highlight_layer(features, video_mask))


def init_variables(model: VSLNet, rng: jax.Array, word_vectors) -> dict:
  """Initial {'params', 'constants'} for `model`, with rows 2.. of `word_vectors` as the frozen GloVe rows.

  `word_vectors` is the dataset's (num_words, word_dim) matrix: row 0 PAD, row 1 an UNK placeholder (the model
  learns its own UNK vector), rows 2.. GloVe. Train only `variables['params']`; pass both collections to
  `model.apply`.
  """
  word_vectors = jnp.asarray(word_vectors, jnp.float32)
  if word_vectors.shape != (model.num_words, model.word_dim):
    raise ValueError(f"word_vectors: expected shape ({model.num_words}, {model.word_dim}) for this model, "
                     f"got {word_vectors.shape}")
  if model.num_words < 2:
    raise ValueError(f"num_words: expected at least the PAD and UNK rows, got {model.num_words}")
  lengths = dict(video_len=1, query_len=1, char_len=max(model.char_kernels))
  variables = jax.jit(lambda key: model.init(key, *dummy_inputs(model, **lengths), deterministic=True))(rng)
  variables = dict(variables)
  constants = variables["constants"]
  variables["constants"] = {"embedding_net": {"word_emb": {"glove_vec": word_vectors[2:]}}}
  if jax.tree.structure(constants) != jax.tree.structure(variables["constants"]):
    raise AssertionError(f"unexpected 'constants' layout {jax.tree.structure(constants)}")
  return variables


def dummy_inputs(model: VSLNet, *, batch: int = 1, video_len: int, query_len: int, char_len: int):
  """Zero inputs of the given sizes in `__call__`'s positional order (masks all ones)."""
  return (jnp.zeros((batch, video_len, model.visual_dim), jnp.float32),
          jnp.ones((batch, video_len), jnp.float32),
          jnp.zeros((batch, query_len), jnp.int32),
          jnp.zeros((batch, query_len, char_len), jnp.int32),
          jnp.ones((batch, query_len), jnp.float32))
