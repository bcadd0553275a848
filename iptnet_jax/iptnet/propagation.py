"""Importance propagation (PM, paper Algorithm 1), vectorised over a batch of padded sequences.

For each step i, with window W(i) = {j : |j - i| <= s, j a valid step of the same sequence} (edges and
padding excluded):

  aggregated importance
    'released': p_i = s_i + alpha * sum_{j in W(i)} cos(f_i, f_j) * s_j        (the released code, alpha 0.5;
                                                                                  j = i is in W(i), cos = 1)
    'paper':    p_i = mean_{j in W(i)} cos(f_i, f_j) * s_j                     (Algorithm 1, line 6)
  j*_i = argmax_{j in W(i)} p_j (first maximum), o_i = j*_i - i in [-s, s]
  g(o) = exp(-o^2 / (2 sigma^2))            a fixed Gaussian of the integer offset: no gradient flows here
  prop_i = p_i * g(o_i) + shift_i           shift = the learned term Gamma, a head on the features

Windows are built as 2s+1 shifted views of the zero-padded sequence, so the kernel is a handful of dense
ops (no gathers) and jit-friendly; padded steps get 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

VARIANTS = ("released", "paper")
_NORM_EPS = 1e-8  # torch.nn.functional.cosine_similarity's eps, applied to each norm


def _windows(x: jax.Array, radius: int) -> jax.Array:
  """(B, T, ...) -> (B, T, 2r+1, ...): entry k holds x[:, i + k - r] (zeros outside the sequence)."""
  length = x.shape[1]
  pad = [(0, 0), (radius, radius)] + [(0, 0)] * (x.ndim - 2)
  padded = jnp.pad(x, pad)
  return jnp.stack([padded[:, k:k + length] for k in range(2 * radius + 1)], axis=2)


def cosine_window(features: jax.Array, radius: int) -> jax.Array:
  """(B, T, 2r+1) cosine similarity between each step and its window's steps."""
  # max(|f|, eps) computed as sqrt(max(|f|^2, eps^2)): the same value, but a zero vector (a padded step after
  # LayerNorm) gets a zero gradient instead of the 0/0 of d|f|/df.
  norms = jnp.sqrt(jnp.maximum(jnp.sum(features * features, axis=-1, keepdims=True), _NORM_EPS ** 2))
  unit = features / norms
  return jnp.einsum("btf,btkf->btk", unit, _windows(unit, radius))


def propagate(scores: jax.Array, features: jax.Array, mask: jax.Array, shift: jax.Array | None = None, *,
              radius: int = 10, variant: str = "released", alpha: float = 0.5, sigma: float = 4.0
              ) -> jax.Array:
  """Propagated importance (B, T) from scores (B, T), features (B, T, F) and a validity mask (B, T)."""
  if variant not in VARIANTS:
    raise ValueError(f"propagation variant {variant!r}: expected one of {VARIANTS}")
  if radius < 0:
    raise ValueError(f"propagation radius {radius}: expected >= 0")
  valid = mask > 0
  # Algorithm 1: the window W(i) of the s = radius steps either side of step i, clipped to the sequence.
  window_valid = _windows(valid, radius) & valid[..., None]  # (B, T, K)
  # Algorithm 1: the cosine similarity of step i's feature with each window step's.
  similarity = jnp.where(window_valid, cosine_window(features, radius), 0.0)
  weighted = similarity * _windows(scores, radius)
  if variant == "released":  # the released code's aggregation (reference_spec.md §1.2), in place of line 6
    aggregated = scores + alpha * weighted.sum(-1)
  else:  # Algorithm 1, line 6: importance times similarity, averaged over the window
    aggregated = weighted.sum(-1) / jnp.maximum(window_valid.sum(-1), 1)

  # Algorithm 1: Gaussian weight g(o_i) of the offset o_i to the window's best step; the offset is an
  # integer, so the weight is a constant for the gradient (stop_gradient says so explicitly).
  neighbour_values = jnp.where(window_valid, _windows(aggregated, radius), -jnp.inf)
  offset = jnp.argmax(neighbour_values, axis=-1) - radius
  gauss = jax.lax.stop_gradient(jnp.exp(-(offset.astype(scores.dtype) ** 2) / (2.0 * sigma ** 2)))
  propagated = aggregated * gauss
  if shift is not None:  # Algorithm 1's learned shift Gamma (the SM's zeta head): prop_i = p_i * g(o_i) + Gamma_i
    propagated = propagated + shift
  return jnp.where(valid, propagated, 0.0)
