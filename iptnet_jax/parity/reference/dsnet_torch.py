"""PyTorch restatement of anchor-free DSNet (reference_spec.md §2.4, §2.5, §2.7) for parity tests.

Batch 1, no padding, no mask: exactly the setting of the reference training loop. Module and attribute
names reproduce the upstream state_dict keys (base_model.{Q,K,V}.weight, base_model.fc.0.weight,
layer_norm.*, fc1.0.*, fc1.3.*, fc_{cls,loc,ctr}.*), so its `state_dict()` is what an upstream checkpoint
holds. The dropout probability is a constructor argument so that parity runs can set it to 0 while
keeping train mode, as the reference training loop does.

The losses restate the reference formulas literally (not in the simplified form our JAX code uses):
focal loss on a two-column one-hot [1 - p, p] with alpha = 0.25, soft IoU with in-place clamps of the
intersection (< 0 -> 0) and the union (<= 0 -> 1e-8), and torch's BCE on the positives.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

EPS = 1e-8


class AttentionExtractor(nn.Module):
  """Multi-head self-attention without biases; dropout on the attention weights and after W_O."""

  def __init__(self, num_head: int = 8, num_feature: int = 1024, dropout: float = 0.5):
    super().__init__()
    if num_feature % num_head:
      raise ValueError(f"num_feature={num_feature} is not divisible by num_head={num_head}")
    self.num_head = num_head
    self.head_dim = num_feature // num_head
    self.Q = nn.Linear(num_feature, num_feature, bias=False)
    self.K = nn.Linear(num_feature, num_feature, bias=False)
    self.V = nn.Linear(num_feature, num_feature, bias=False)
    self.attention_dropout = nn.Dropout(dropout)
    # Sequential(Linear, Dropout), as upstream: the projection's key is base_model.fc.0.weight.
    self.fc = nn.Sequential(nn.Linear(num_feature, num_feature, bias=False), nn.Dropout(dropout))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    _, seq_len, num_feature = x.shape  # (1, T, D)

    def heads(t):  # (1, T, D) -> (heads, T, head_dim)
      return t.view(seq_len, self.num_head, self.head_dim).transpose(0, 1)

    q, k, v = heads(self.Q(x)), heads(self.K(x)), heads(self.V(x))
    attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(self.head_dim), dim=-1)
    y = torch.bmm(self.attention_dropout(attn), v)  # (heads, T, head_dim)
    y = y.transpose(0, 1).reshape(1, seq_len, num_feature)
    return self.fc(y)


class DSNetAF(nn.Module):
  """DSNet anchor-free with the attention base model; forward returns (cls prob, offsets, ctr prob)."""

  def __init__(self, num_feature: int = 1024, num_hidden: int = 128, num_head: int = 8, dropout: float = 0.5):
    super().__init__()
    self.base_model = AttentionExtractor(num_head, num_feature, dropout)
    self.layer_norm = nn.LayerNorm(num_feature)
    self.fc1 = nn.Sequential(nn.Linear(num_feature, num_hidden), nn.ReLU(), nn.Dropout(dropout),
                             nn.LayerNorm(num_hidden))
    self.fc_cls = nn.Linear(num_hidden, 1)
    self.fc_loc = nn.Linear(num_hidden, 2)
    self.fc_ctr = nn.Linear(num_hidden, 1)

  def intermediates(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every stage of the forward pass for one video x (1, T, D); logits before sigmoid / exp."""
    seq_len = x.shape[1]
    attention = self.base_model(x)
    layer_norm = self.layer_norm(attention + x)
    hidden = self.fc1(layer_norm)
    cls_logits = self.fc_cls(hidden).view(seq_len)
    loc_logits = self.fc_loc(hidden).view(seq_len, 2)
    ctr_logits = self.fc_ctr(hidden).view(seq_len)
    return {"attention": attention[0], "layer_norm": layer_norm[0], "hidden": hidden[0],
            "cls_logits": cls_logits, "loc_logits": loc_logits, "ctr_logits": ctr_logits,
            "cls": cls_logits.sigmoid(), "loc": loc_logits.exp(), "ctr": ctr_logits.sigmoid()}

  def forward(self, x: torch.Tensor):
    out = self.intermediates(x)
    return out["cls"], out["loc"], out["ctr"]


def focal_loss(prob: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
  """Classification loss of the reference: sum over both one-hot columns and all steps / #positives."""
  label = target.long()
  two_column = torch.stack([1 - prob, prob], dim=-1)  # (T, 2)
  one_hot = torch.eye(2, dtype=prob.dtype)[label]
  p_t = two_column * one_hot + (1 - two_column) * (1 - one_hot)
  alpha_t = alpha * one_hot + (1 - alpha) * (1 - one_hot)
  loss = (-alpha_t * (1 - p_t).pow(gamma) * p_t.log()).sum()
  return loss / label.sum()


def soft_iou_loss(pred_offsets: torch.Tensor, offset_label: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
  """Mean over positives of -log(IoU + 1e-8); IoU of (left, right) offset pairs around each step."""
  positive = target.bool()
  pred, label = pred_offsets[positive], offset_label[positive]
  inter = torch.min(pred[:, 0], label[:, 0]) + torch.min(pred[:, 1], label[:, 1])
  inter[inter < 0] = 0
  union = pred.sum(-1) + label.sum(-1) - inter
  union[union <= 0] = EPS
  return -torch.log(inter / union + EPS).mean()


def centerness_loss(ctr_prob: torch.Tensor, ctr_label: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
  positive = target.bool()
  return F.binary_cross_entropy(ctr_prob[positive], ctr_label[positive])


def losses(model: DSNetAF, features, target, offsets, centerness, lambda_reg: float = 1.0,
           lambda_ctr: float = 1.0) -> dict[str, torch.Tensor]:
  """The reference's per-video losses; features (T, D), labels (T,), (T, 2), (T,) as arrays or tensors."""
  as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)
  cls, loc, ctr = model(as_tensor(features)[None])
  target = as_tensor(target)
  out = {"cls": focal_loss(cls, target),
         "loc": soft_iou_loss(loc, as_tensor(offsets), target),
         "ctr": centerness_loss(ctr, as_tensor(centerness), target)}
  out["total"] = out["cls"] + lambda_reg * out["loc"] + lambda_ctr * out["ctr"]
  return out


def train_step(model: DSNetAF, optimizer: torch.optim.Optimizer, video: dict, lambda_reg: float = 1.0,
               lambda_ctr: float = 1.0) -> dict[str, float]:
  """One reference training step on one video (train mode, zero_grad, backward, step); returns the losses."""
  model.train()
  out = losses(model, video["features"], video["target"], video["offsets"], video["centerness"],
               lambda_reg, lambda_ctr)
  optimizer.zero_grad()
  out["total"].backward()
  optimizer.step()
  return {k: float(v.detach()) for k, v in out.items()}
