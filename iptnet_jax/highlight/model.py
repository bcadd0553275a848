"""Highlight detector: per-modality projection -> low-rank AV fusion -> temporal encoder -> clip scores,
plus the attention-gated instance aggregation to one video score (Ye et al., ICCV 2021, supplement).

    x_m (B, T, D_m)  --Dropout(input_dropout), Dense(d), LayerNorm, ReLU, Dropout-->  z_m (B, T, d)
    h = LowRankFusion(R)(z_v, z_a)                                    (fusion.py; one modality: linear)
    c = TemporalEncoder(h, mask)                                      (B, T, d), 'transformer' | 'conv' | 'none'
    clip logit  s_t = W_p c_t + b_p,          p_s = sigma(s_t)        (supplement: clip score)
    video logit s_V = W_p (sum_j alpha_j c_j) + b_p, p_V = sigma(s_V) (supplement: attention-gated aggregation)

The supplement does not give the attention's form; the choice here is the gated attention of Ilse et al.
(ICML 2018, "Attention-based deep multiple instance learning", eq. 9):
alpha_j = softmax_j(w^T (tanh(V c_j) o sigmoid(U c_j))), masked to the video's clips. W_p, b_p are shared
between the clip and the video score (one Dense), so s_V = sum_j alpha_j s_j: the video logit is an
attention-weighted mean of the clip logits, whose gradient does not vanish with the number of clips the way
Noisy-OR's does (losses.noisy_or; tests/highlight_losses_test.py has the worked case).

The temporal encoder (not specified by the supplement beyond 'temporal'; chosen for UMT's per-domain regime
with 4 training videos, see configs/highlight_tvsum.py):
  'transformer'  pre-LayerNorm blocks of masked multi-head self-attention + MLP. Position enters through a
                 depthwise temporal convolution in front of each block (a conditional positional encoding,
                 translation-equivariant), so a model trained on tau-clip crops applies unchanged to a whole
                 video; there is no absolute position embedding.
  'conv'         residual blocks of LayerNorm -> Conv1D(kernel, dilation 2^l) -> ReLU -> Dropout.
  'none'         the fused clip features go straight to the head.

Padding: `mask` (B, T) is True on real clips. Inputs are zeroed at padded clips and so is every block's
output (so 'SAME' convolutions see zeros beyond a video's end, exactly as for an unpadded video), attention
keys exclude padded clips, and the aggregation's softmax runs over real clips only: a video's outputs on its
clips do not depend on how much padding follows it (tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from iptnet_jax.highlight.fusion import LowRankFusion

ENCODERS = ("transformer", "conv", "none")
MODALITIES = ("video", "audio")


class ModalityProjection(nn.Module):
  features: int = 128
  input_dropout: float = 0.5
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    x = nn.Dropout(self.input_dropout)(x, deterministic=deterministic)
    x = nn.Dense(self.features)(x)
    x = nn.relu(nn.LayerNorm()(x))
    return nn.Dropout(self.dropout)(x, deterministic=deterministic)


def _masked(x: jax.Array, mask: jax.Array) -> jax.Array:
  return x * mask[..., None].astype(x.dtype)


class TemporalEncoder(nn.Module):
  kind: str = "transformer"
  num_layers: int = 1
  num_heads: int = 4
  kernel_size: int = 3
  mlp_ratio: int = 2
  dropout: float = 0.1
  attention_dropout: float = 0.1

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
    if self.kind not in ENCODERS:
      raise ValueError(f"TemporalEncoder: kind must be one of {ENCODERS}, got {self.kind!r}")
    x = _masked(x, mask)
    if self.kind == "none":
      return x
    width = x.shape[-1]
    drop = lambda y: nn.Dropout(self.dropout)(y, deterministic=deterministic)  # noqa: E731
    for layer in range(self.num_layers):
      if self.kind == "conv":
        y = nn.Conv(width, (self.kernel_size,), kernel_dilation=(2 ** layer,), padding="SAME",
                    name=f"conv_{layer}")(_masked(nn.LayerNorm(name=f"norm_{layer}")(x), mask))
        x = _masked(x + drop(nn.relu(y)), mask)
        continue
      # Depthwise conv as a positional encoding (translation-equivariant).
      x = _masked(x + nn.Conv(width, (self.kernel_size,), padding="SAME", feature_group_count=width,
                              name=f"pos_conv_{layer}")(x), mask)
      y = nn.LayerNorm(name=f"attn_norm_{layer}")(x)
      y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dropout_rate=self.attention_dropout,
                                          deterministic=deterministic, name=f"attn_{layer}")(
                                              y, y, mask=nn.make_attention_mask(mask, mask))
      x = _masked(x + drop(y), mask)
      y = nn.LayerNorm(name=f"mlp_norm_{layer}")(x)
      y = nn.Dense(width * self.mlp_ratio, name=f"mlp_in_{layer}")(y)
      y = nn.Dense(width, name=f"mlp_out_{layer}")(drop(nn.gelu(y)))
      x = _masked(x + drop(y), mask)
    return _masked(nn.LayerNorm(name="out_norm")(x), mask)


class GatedAttentionPooling(nn.Module):
  """alpha = masked softmax_j(w^T (tanh(V c_j) o sigmoid(U c_j))) (Ilse et al. 2018, eq. 9)."""

  features: int = 64

  @nn.compact
  def __call__(self, c: jax.Array, mask: jax.Array) -> jax.Array:
    gate = jnp.tanh(nn.Dense(self.features, name="V")(c)) * nn.sigmoid(nn.Dense(self.features, name="U")(c))
    scores = nn.Dense(1, name="w")(gate)[..., 0]
    return masked_softmax(scores, mask)


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
  """Softmax over the last axis restricted to mask; an all-False row gives zeros (not NaN)."""
  scores = jnp.where(mask, scores, -1e30)
  peak = jax.lax.stop_gradient(jnp.max(scores, axis=-1, keepdims=True))
  weights = jnp.where(mask, jnp.exp(scores - peak), 0.0)
  return weights / jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1e-30)


class HighlightModel(nn.Module):
  """Clip and video highlight scores from a dict of per-clip features (module docstring)."""

  modalities: Sequence[str] = MODALITIES
  hidden: int = 128
  rank: int = 8
  encoder: str = "transformer"
  num_layers: int = 1
  num_heads: int = 4
  kernel_size: int = 3
  input_dropout: float = 0.5
  dropout: float = 0.1
  attention_features: int = 64

  @nn.compact
  def __call__(self, features: Mapping[str, jax.Array], mask: jax.Array, *,
               deterministic: bool = True) -> dict[str, jax.Array]:
    missing = [m for m in self.modalities if m not in features]
    if missing or not self.modalities:
      raise ValueError(f"HighlightModel: modalities {tuple(self.modalities)} need features {missing}")
    mask = mask.astype(bool)
    projected = [
        ModalityProjection(self.hidden, self.input_dropout, self.dropout, name=f"proj_{m}")(
            _masked(features[m].astype(jnp.float32), mask), deterministic=deterministic)
        for m in self.modalities
    ]
    fused = LowRankFusion(self.rank, self.hidden, name="fusion")(projected)
    fused = nn.LayerNorm(name="fusion_norm")(fused)
    c = TemporalEncoder(self.encoder, self.num_layers, self.num_heads, self.kernel_size, dropout=self.dropout,
                        attention_dropout=self.dropout, name="encoder")(fused, mask, deterministic=deterministic)
    head = nn.Dense(1, name="score_head")  # W_p, b_p: shared by clips and the pooled video feature
    clip_logits = head(c)[..., 0]
    alpha = GatedAttentionPooling(self.attention_features, name="pooling")(c, mask)
    video_logit = head(jnp.einsum("bt,btd->bd", alpha, c))[..., 0]
    return {"clip_logits": jnp.where(mask, clip_logits, 0.0), "video_logit": video_logit, "attention": alpha}
