"""Analytic FLOP counts of the benchmarked models (a multiply-add is 2 FLOPs, as XLA's cost analysis counts).

Matmul FLOPs are exact. Elementwise FLOPs (softmax, masks, LayerNorm, dropout, activations, biases) are an
estimate at one FLOP per elementary operation per element; for DSNet-AF they are below 1 % of the total.

Training counts forward + backward, without the optimizer (reported separately by `adam_flops`). The
backward of a matmul Y = X W costs one matmul for dW and one for dX, except where X needs no gradient: the
Q, K, V projections read the input features, so only their weight gradients are computed (XLA removes the
unused dX, and PyTorch's autograd never builds it).

`tests/benchmarks_test.py` checks these counts against `jax.jit(f).lower(...).compile().cost_analysis()`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class FlopCount:
  matmul: float = 0.0
  elementwise: float = 0.0

  @property
  def total(self) -> float:
    return self.matmul + self.elementwise

  def __add__(self, other: "FlopCount") -> "FlopCount":
    return FlopCount(self.matmul + other.matmul, self.elementwise + other.elementwise)

  def __mul__(self, factor: float) -> "FlopCount":
    return FlopCount(self.matmul * factor, self.elementwise * factor)

  __rmul__ = __mul__


def matmul(m: int, k: int, n: int) -> float:
  """(m, k) @ (k, n)."""
  return 2.0 * m * k * n


def _sm_default(field: str) -> int:
  """A default of iptnet_jax.sm.model.DSNetAF (= DSNet-AF's size), so that the count follows the model."""
  from iptnet_jax.sm.model import DSNetAF

  return DSNetAF.__dataclass_fields__[field].default


@dataclasses.dataclass(frozen=True)
class DSNetAFShape:
  """The SM's sizes; the defaults are the model's (feature_dim: DSNet's GoogLeNet / I3D width)."""

  feature_dim: int = 1024
  attention_dim: int = _sm_default("attention_dim")
  num_heads: int = _sm_default("num_heads")
  num_hidden: int = _sm_default("num_hidden")
  num_outputs: int = 4  # cls 1 + loc 2 + ctr 1


def _dsnet_af_matmuls(length: int, s: DSNetAFShape) -> dict[str, float]:
  """Forward matmul FLOPs of one video of `length` steps, by layer."""
  t, d, a, h = length, s.feature_dim, s.attention_dim, s.num_hidden
  return {
      "qkv": 3 * matmul(t, d, a),
      "scores": matmul(t, a, t),  # all heads: H x (T, A/H) @ (A/H, T)
      "weights_v": matmul(t, t, a),  # H x (T, T) @ (T, A/H)
      "out_proj": matmul(t, a, d),
      "fc1": matmul(t, d, h),
      "heads": matmul(t, h, s.num_outputs),
  }


def _dsnet_af_elementwise(length: int, s: DSNetAFShape, *, training: bool) -> float:
  t, d, h = length, s.feature_dim, s.num_hidden
  scores = s.num_heads * t * t
  # scale, mask select, max, subtract, exp, sum, divide; dropout (compare, select) in training
  per_score = 7 + (2 if training else 0)
  # residual add + LayerNorm (mean, subtract, square, sum, multiply by rsqrt, scale, shift); dropout after W_O
  per_feature = 8 + (2 if training else 0)
  # bias, ReLU, LayerNorm(7); dropout after the ReLU
  per_hidden = 9 + (2 if training else 0)
  return per_score * scores + per_feature * t * d + per_hidden * t * h + s.num_outputs * t


def dsnet_af_forward(length: int, shape: DSNetAFShape = DSNetAFShape(), *, batch: int = 1) -> FlopCount:
  """Inference forward (no dropout) of `batch` videos of `length` steps each."""
  return FlopCount(sum(_dsnet_af_matmuls(length, shape).values()),
                   _dsnet_af_elementwise(length, shape, training=False)) * batch


def dsnet_af_train(length: int, shape: DSNetAFShape = DSNetAFShape(), *, batch: int = 1) -> FlopCount:
  """Forward (with dropout) + backward of `batch` videos of `length` steps each; the losses are O(T)."""
  mm = _dsnet_af_matmuls(length, shape)
  forward = sum(mm.values())
  backward = mm["qkv"] + 2 * (forward - mm["qkv"])  # Q, K, V: weight gradients only
  elementwise = _dsnet_af_elementwise(length, shape, training=True)
  losses = 40 * length  # focal, soft IoU, centerness and their gradients: tens of FLOPs per step
  return FlopCount(forward + backward, 3 * elementwise + losses) * batch


def dsnet_af_num_params(shape: DSNetAFShape = DSNetAFShape()) -> int:
  d, a, h = shape.feature_dim, shape.attention_dim, shape.num_hidden
  return 4 * d * a + 2 * d + (d * h + h) + 2 * h + (h + 1) * shape.num_outputs


def adam_flops(num_params: int) -> float:
  """Coupled-L2 Adam: decay add, two moment updates, bias corrections, sqrt, divide, scale, apply (~12/param)."""
  return 12.0 * num_params


def sm_epoch_train(lengths: Iterable[int], shape: DSNetAFShape = DSNetAFShape()) -> FlopCount:
  """Forward + backward of every video at its own length (no padding): the useful work of an epoch."""
  total = FlopCount()
  for length in lengths:
    total = total + dsnet_af_train(int(length), shape)
  return total
