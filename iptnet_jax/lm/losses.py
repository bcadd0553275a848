"""VSLNet losses (reference_spec.md §3.3): span cross-entropy + highlight_lambda * weighted highlight BCE.

Every loss takes `example_mask` (B,): batch-padding samples (0) contribute nothing, neither to the sums nor to
the normalisers, so a batch padded up to a fixed size gives the same loss and gradients as the unpadded one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

HIGHLIGHT_LAMBDA = 5.0
# Upstream `HighLightLayer.compute_loss` weights positives 2 and negatives 1.
HIGHLIGHT_POSITIVE_WEIGHT = 2.0
# Upstream epsilon in the highlight normaliser.
_HIGHLIGHT_EPS = 1e-12


def span_cross_entropy(start_logits: jax.Array, end_logits: jax.Array, start_index: jax.Array,
                       end_index: jax.Array, example_mask: jax.Array) -> jax.Array:
  """CE(start) + CE(end), each averaged over the real examples (torch `CrossEntropyLoss(reduction='mean')`).

  The logits are already masked with -1e30 at padded steps, so those steps get ~zero probability.
  """
  example_mask = example_mask.astype(jnp.float32)

  def cross_entropy(logits, index):
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_probs, index[:, None].astype(jnp.int32), axis=-1)[:, 0]
    # `where`, not a product: a padding sample's label may point at a masked step (nll ~ 1e30).
    return jnp.where(example_mask > 0, nll, 0.0)

  per_example = cross_entropy(start_logits, start_index) + cross_entropy(end_logits, end_index)
  return jnp.sum(per_example) / jnp.maximum(jnp.sum(example_mask), 1.0)


def highlight_bce(highlight_logits: jax.Array, highlight_labels: jax.Array, video_mask: jax.Array,
                  example_mask: jax.Array) -> jax.Array:
  """Σ m·w·BCE(sigmoid(logit), y) / (Σ m + 1e-12), with w = 2 for y = 1 and 1 for y = 0 and m = valid steps of
  real examples.

  BCE is computed from the logits with log-sigmoid, which is exact where probabilities saturate. Upstream
  applies torch `BCELoss` to sigmoid probabilities, which clamps each log at -100. The two agree while the
  float32 sigmoid is not saturated (|logit| below about 16). Beyond that, torch's per-step loss of a wrong
  confident prediction is stuck at 100 with zero gradient (sigmoid rounds to 0 or 1), while here it is |logit|
  with gradient ±1, so confident mistakes keep being corrected.
  """
  logits = highlight_logits.astype(jnp.float32)
  labels = highlight_labels.astype(jnp.float32)
  mask = video_mask.astype(jnp.float32) * example_mask.astype(jnp.float32)[:, None]
  bce = -(labels * jax.nn.log_sigmoid(logits) + (1.0 - labels) * jax.nn.log_sigmoid(-logits))
  weights = jnp.where(labels > 0, HIGHLIGHT_POSITIVE_WEIGHT * labels, 1.0)
  # Masked steps hold logits of -1e30; `where` keeps their (huge) BCE out of the sum and the gradient.
  weighted = jnp.where(mask > 0, weights * bce * mask, 0.0)
  return jnp.sum(weighted) / (jnp.sum(mask) + _HIGHLIGHT_EPS)


def vslnet_loss(outputs: dict, batch: dict, highlight_lambda: float = HIGHLIGHT_LAMBDA
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Total = span + highlight_lambda * highlight, for `VSLNet` outputs and a batch of the LM batch contract.

  Returns (total, {'loss', 'span_loss', 'highlight_loss'}).
  """
  span = span_cross_entropy(outputs["start_logits"], outputs["end_logits"], batch["start_index"],
                            batch["end_index"], batch["example_mask"])
  highlight = highlight_bce(outputs["highlight_logits"], batch["highlight"], batch["video_mask"],
                            batch["example_mask"])
  total = span + highlight_lambda * highlight
  return total, dict(loss=total, span_loss=span, highlight_loss=highlight)
