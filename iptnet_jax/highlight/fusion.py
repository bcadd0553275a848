"""Low-rank multimodal fusion of per-clip audio and visual features.

Ye et al. (ICCV 2021, "Temporal Cue Guided Video Highlight Detection with Low-Rank Audio-Visual Fusion"),
supplement: the clip features of the two modalities are fused by a low-rank tensor fusion in the form of
low-rank multimodal fusion (LMF, Liu et al., ACL 2018),

    h = sum_r lambda_r (W_v^(r) [v; 1]) o (W_a^(r) [a; 1]) + b                                     (LMF eq. 6)

with R rank-one factors (R = 8 best in the supplement). This equals the full tensor fusion
h_k = sum_ij W[k, i, j] [v; 1]_i [a; 1]_j + b_k of the outer product [v; 1] (x) [a; 1] (LMF eq. 2-3, TFN) with
the core W[k] = sum_r lambda_r w_v^(r)[:, k] (x) w_a^(r)[:, k] of rank R: O(R d d_h) per clip instead of the
O(d^2 d_h) of the explicit core (`full_tensor_fusion` builds it, for the tests).

W^(r) [x; 1] = K^(r) x + b^(r): the appended 1 is a Dense bias, so each modality's R factors are one
`nn.Dense(R * d_h)` (its kernel and bias are the rows i < d and i = d of the stacked factors, `full_core`).
LMF's own choices, kept here: the fusion weights lambda (R,) and the output bias b (d_h,); LMF initialises
the factors and lambda by Xavier-normal and b by zeros.

One modality (the 'w/o audio' / 'w/o vision' rows): the product has one term, h = sum_r lambda_r W^(r)[x; 1]
+ b, which is a linear map of x (its rank is then irrelevant); this is what the supplement's single-modality
rows reduce to with the same module.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class LowRankFusion(nn.Module):
  """h = sum_r lambda_r prod_m (W_m^(r) [x_m; 1]) + b over the given modalities (module docstring)."""

  rank: int = 8
  features: int = 128

  @nn.compact
  def __call__(self, inputs: Sequence[jax.Array]) -> jax.Array:
    if not inputs:
      raise ValueError("LowRankFusion: expected at least one modality")
    if self.rank < 1:
      raise ValueError(f"LowRankFusion: rank must be >= 1, got {self.rank}")
    product = None
    for m, x in enumerate(inputs):
      # W_m^(r)[x; 1] for all r at once: (..., R * d_h) -> (..., R, d_h).
      factors = nn.Dense(self.rank * self.features, kernel_init=nn.initializers.xavier_normal(),
                         bias_init=nn.initializers.zeros, name=f"factor_{m}")(x)
      factors = factors.reshape(x.shape[:-1] + (self.rank, self.features))
      product = factors if product is None else product * factors
    weights = self.param("rank_weights", nn.initializers.xavier_normal(), (1, self.rank))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return jnp.einsum("...rh,r->...h", product, weights[0]) + bias


def full_core(params, num_modalities: int, rank: int) -> jax.Array:
  """The explicit fusion core W (d_h, d_1 + 1, ..., d_M + 1) = sum_r lambda_r outer_m w_m^(r)[:, :, k]."""
  factors = []
  for m in range(num_modalities):
    dense = params[f"factor_{m}"]
    stacked = jnp.concatenate([dense["kernel"], dense["bias"][None, :]], axis=0)  # (d + 1, R * d_h)
    factors.append(stacked.reshape(stacked.shape[0], rank, -1))  # (d + 1, R, d_h)
  weights = params["rank_weights"][0]
  letters = "ijklmnop"[:num_modalities]
  spec = ",".join(f"{c}rh" for c in letters) + ",r->h" + letters
  return jnp.einsum(spec, *factors, weights)


def full_tensor_fusion(core: jax.Array, bias: jax.Array, inputs: Sequence[jax.Array]) -> jax.Array:
  """Tensor fusion with an explicit core: h_k = sum W[k, i, j, ..] z_1,i z_2,j .. + b_k, z_m = [x_m; 1]."""
  letters = "ijklmnop"[:len(inputs)]
  padded = [jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1) for x in inputs]
  spec = "h" + letters + "," + ",".join(f"...{c}" for c in letters) + "->...h"
  return jnp.einsum(spec, core, *padded) + bias
