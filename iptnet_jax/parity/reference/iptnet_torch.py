"""PyTorch restatements of the released iPTNet code's propagation, divergence and EMA (reference_spec.md §1.2,
§1.4), for parity tests only. One unpadded sequence at a time, with loops, as the released code runs.

* `prop`: the released `propagation` (scan range r, alpha 0.5, Gaussian sigma 4 as a table of offsets):
  p_i = s_i + alpha * sum_{j in W(i)} cos(f_i, f_j) s_j over the clipped window W(i) = [max(i-r, 0),
  min(i+r, T-1)]; then prop_i = p_i * g(argmax_{j in W(i)} p_j - i) + zeta_i. variant='paper' replaces the
  first line by Algorithm 1's mean_{j in W(i)} cos(f_i, f_j) s_j (the rest unchanged).
* `kl`: F.kl_div(log_softmax(student), softmax(target), reduction='sum'), no detach: gradient reaches both.
* `ema_update`: teacher <- keep * teacher + (1 - keep) * student, in place, after each optimizer step.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def gaussian_table(radius: int, sigma: float = 4.0) -> dict[int, float]:
  """Offset -> exp(-o^2 / (2 sigma^2)), a table of python floats (the released code builds it with numpy)."""
  return {o: math.exp(-(o ** 2) / (2 * sigma ** 2)) for o in range(-radius, radius + 1)}


def prop(scores: torch.Tensor, features: torch.Tensor, zeta: torch.Tensor, radius: int = 10, alpha: float = 0.5,
         sigma: float = 4.0, variant: str = "released") -> torch.Tensor:
  """Propagated importance (T,) of one sequence: scores (T,), features (T, F), zeta (T,)."""
  length = features.shape[0]
  table = gaussian_table(radius, sigma)
  aggregated = torch.zeros(length, dtype=scores.dtype)
  for i in range(length):
    lo, hi = max(i - radius, 0), min(i + radius + 1, length)
    window = features[lo:hi]
    sim = torch.cosine_similarity(features[i].unsqueeze(0).repeat(window.shape[0], 1), window, 1)
    weighted = sim * scores[lo:hi]
    if variant == "released":
      aggregated[i] = weighted.sum() * alpha + scores[i]
    elif variant == "paper":
      aggregated[i] = weighted.mean()
    else:
      raise ValueError(variant)
  out = aggregated.clone()
  for i in range(length):
    lo, hi = max(i - radius, 0), min(i + radius + 1, length)
    offset = int(torch.argmax(aggregated[lo:hi])) - min(radius, i)
    out[i] = aggregated[i] * table[offset]
  return out + zeta


def kl(target: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
  """KL(softmax(target) || softmax(student)) over the time axis, summed (the released code's D)."""
  return F.kl_div(F.log_softmax(student, dim=-1), F.softmax(target, dim=-1), reduction="sum")


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, keep: float) -> None:
  for t, s in zip(teacher.parameters(), student.parameters()):
    t.mul_(keep).add_(s, alpha=1.0 - keep)
