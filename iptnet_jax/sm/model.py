"""The anchor-free DSNet summarization module (SM), reference_spec.md §2.4.

x (B, T, D) -> multi-head self-attention (no biases, dropout 0.5 on the attention weights and after the
output projection) -> residual + LayerNorm(eps 1e-5) -> Linear D->128, ReLU, Dropout 0.5, LayerNorm ->
heads: importance logit, (left, right) log-offsets, centerness logit.

Unlike DSNet (batch 1, no padding), videos arrive padded to a bucket length with a (B, T) mask; padded
steps are masked out of the attention keys, so a video's outputs do not depend on the padding around it.
Mixed precision (`dtype` = bfloat16, config `model.compute_dtype`): parameters stay float32; the attention
block and fc1 compute in bfloat16 (their matmuls are almost all the FLOPs), softmax, LayerNorm statistics and
the four small heads run in float32, so scores keep float32 resolution for the int(1000 * mean) shot values.

Submodule names mirror DSNet's state_dict (base_model.{Q,K,V,fc.0}, layer_norm, fc1.0 -> fc1_linear,
fc1.3 -> fc1_norm, fc_cls, fc_loc, fc_ctr) so upstream checkpoints map onto these parameters one to one
(iptnet_jax.sm.porting). Initialisers are PyTorch's
defaults, which DSNet-AF training keeps.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

# Large enough to zero a softmax weight, finite so 0 * it stays 0; masks are applied in float32.
MASK_VALUE = -1e30


def torch_uniform(fan_in: int):
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for nn.Linear weights and biases."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_linear(features: int, fan_in: int, *, use_bias: bool = True, name: str | None = None,
                 dtype=None) -> nn.Dense:
  """nn.Dense with PyTorch nn.Linear's default initialisation (float32 parameters, `dtype` computation)."""
  init = torch_uniform(fan_in)
  return nn.Dense(features, use_bias=use_bias, kernel_init=init, bias_init=init, name=name, dtype=dtype)


class AttentionExtractor(nn.Module):
  """DSNet's multi-head self-attention over frame features, with key masking for padded steps."""

  num_heads: int = 8
  attention_dim: int = 1024  # width of Q, K, V (DSNet: = the feature width)
  dropout_rate: float = 0.5
  dtype: jnp.dtype = jnp.float32  # computation dtype of the projections and the weighted sum

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
    batch, length, feature_dim = x.shape
    if self.attention_dim % self.num_heads:
      raise ValueError(f"model.attention_dim={self.attention_dim} must be divisible by "
                       f"model.num_heads={self.num_heads}")
    head_dim = self.attention_dim // self.num_heads

    def project(name):
      y = torch_linear(self.attention_dim, feature_dim, use_bias=False, name=name, dtype=self.dtype)(x)
      return y.reshape(batch, length, self.num_heads, head_dim)

    q, k, v = project("Q"), project("K"), project("V")
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / math.sqrt(head_dim)
    logits = jnp.where(mask[:, None, None, :] > 0, logits, MASK_VALUE)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    weights = nn.Dropout(self.dropout_rate)(weights, deterministic=deterministic)
    y = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, self.attention_dim)
    y = torch_linear(feature_dim, self.attention_dim, use_bias=False, name="fc", dtype=self.dtype)(y)
    return nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)


class DSNetAF(nn.Module):
  """Anchor-free DSNet. Returns logits; probabilities and offsets follow with sigmoid / exp."""

  num_hidden: int = 128
  num_heads: int = 8
  attention_dim: int = 1024
  dropout_rate: float = 0.5
  layer_norm_eps: float = 1e-5
  # iPTNet's learned shift term (Gamma) of importance propagation: one more Linear head on the hidden
  # features. Off for plain DSNet, whose checkpoints have no such head.
  with_shift_head: bool = False
  dtype: jnp.dtype = jnp.float32  # computation dtype of attention and fc1 (module docstring)

  @nn.compact
  def __call__(self, features: jax.Array, mask: jax.Array, *, deterministic: bool) -> dict[str, jax.Array]:
    feature_dim = features.shape[-1]
    attended = AttentionExtractor(self.num_heads, self.attention_dim, self.dropout_rate, dtype=self.dtype,
                                  name="base_model")(features, mask, deterministic=deterministic)
    out = nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, name="layer_norm")(attended + features)
    hidden = torch_linear(self.num_hidden, feature_dim, name="fc1_linear", dtype=self.dtype)(out)
    hidden = nn.Dropout(self.dropout_rate)(nn.relu(hidden), deterministic=deterministic)
    hidden = nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=jnp.float32, name="fc1_norm")(hidden)
    outputs = {
        "cls_logits": torch_linear(1, self.num_hidden, name="fc_cls")(hidden)[..., 0],
        "log_offsets": torch_linear(2, self.num_hidden, name="fc_loc")(hidden),
        "ctr_logits": torch_linear(1, self.num_hidden, name="fc_ctr")(hidden)[..., 0],
        "hidden": hidden,
    }
    if self.with_shift_head:
      outputs["shift"] = torch_linear(1, self.num_hidden, name="fc_shift")(hidden)[..., 0]
    return outputs


def predictions(outputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """What evaluation needs: importance and centerness probabilities, (left, right) offsets in steps."""
  return {
      "cls_prob": jax.nn.sigmoid(outputs["cls_logits"]),
      "offsets": jnp.exp(outputs["log_offsets"]),
      "ctr_prob": jax.nn.sigmoid(outputs["ctr_logits"]),
  }
