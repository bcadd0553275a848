"""The eager PyTorch training loops of the speed benchmarks, around the parity restatements.

The models are not restated here: they are the modules of iptnet_jax.parity.reference (VSLNet from vslnet_torch,
DSNet-AF from dsnet_torch, propagation / divergence / EMA from iptnet_torch).
This module adds only what a timed training loop needs beyond them:

LM (benchmarks/lm.py): VSLNet's loader (`collate`: pad to the batch maxima, no buckets), its optimizer
(`make_optimizer`: AdamW, lr 1e-4, eps 1e-6, weight decay 0.01 except biases and LayerNorms, linear decay to 0)
and its step (`train_step`: train mode, forward, losses, zero_grad, backward, clip_grad_norm_(1.0), step,
schedule). One op choice differs from upstream: the optimizer is torch.optim.AdamW (its default multi-tensor
implementation), where upstream's transformers.AdamW updates one parameter at a time in Python (restated as
vslnet_torch.TransformersAdamW, which also adds eps before the bias correction); torch's is the faster of the
two, so the reference is not slowed down by this choice.

Joint iPTNet step (benchmarks/joint.py): `SMWithShift` (DSNet-AF plus the zeta head of the released SM) and
`JointTorch`, the released code's four per-source steps, one sample at a time (reference_spec.md §1.4).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from iptnet_jax.parity.reference import dsnet_torch, iptnet_torch, vslnet_torch


def vslnet(config, word_vectors: np.ndarray, num_chars: int, visual_dim: int):
  """vslnet_torch.VSLNet with the sizes of an LM config (configs/charades.py's `model` and
  `data.max_pos_len`; `model.position_embedding` False is the iPTNet LM), the rows 2.. of `word_vectors` frozen."""
  m = config.model
  return vslnet_torch.VSLNet(
      num_chars=num_chars, word_dim=word_vectors.shape[1], char_dim=m.char_dim, visual_dim=visual_dim, dim=m.dim,
      num_heads=m.num_heads, max_pos_len=config.data.max_pos_len, drop_rate=m.drop_rate,
      glove_vectors=torch.as_tensor(word_vectors[2:], dtype=torch.float32), predictor=m.predictor,
      char_channels=tuple(m.char_channels), char_kernels=tuple(m.char_kernels),
      position_embedding=m.get("position_embedding", True))


def make_optimizer(model: nn.Module, total_steps: int, lr: float = 1e-4, weight_decay: float = 0.01):
  """AdamW with VSLNet's no-decay groups and a linear decay to 0 (no warm-up)."""
  no_decay = ("bias", "layer_norm", "LayerNorm")
  named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
  groups = [{"params": [p for n, p in named if not any(nd in n for nd in no_decay)], "weight_decay": weight_decay},
            {"params": [p for n, p in named if any(nd in n for nd in no_decay)], "weight_decay": 0.0}]
  optimizer = torch.optim.AdamW(groups, lr=lr, eps=1e-6)
  scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / max(total_steps, 1)))
  return optimizer, scheduler


def collate(samples, *, min_char_len: int = 4, highlight_extension: float = 0.1) -> dict:
  """VSLNet-style batch of MomentSamples padded to the batch maxima (no buckets), as torch tensors."""
  from iptnet_jax.datasets import moment_labels

  batch_size = len(samples)
  video_len = max(s.num_units for s in samples)
  query_len = max(len(s.word_ids) for s in samples)
  char_len = max(min_char_len, max(len(c) for s in samples for c in s.char_ids))
  videos = [s.video() for s in samples]
  video = np.zeros((batch_size, video_len, videos[0].shape[1]), np.float32)
  video_mask = np.zeros((batch_size, video_len), np.float32)
  highlight = np.zeros((batch_size, video_len), np.float32)
  word_ids = np.zeros((batch_size, query_len), np.int64)
  char_ids = np.zeros((batch_size, query_len, char_len), np.int64)
  for row, (s, v) in enumerate(zip(samples, videos)):
    video[row, :s.num_units] = v
    video_mask[row, :s.num_units] = 1.0
    highlight[row, :s.num_units] = moment_labels.highlight_labels(s.start_index, s.end_index, s.num_units,
                                                                  highlight_extension)
    word_ids[row, :len(s.word_ids)] = s.word_ids
    for position, chars in enumerate(s.char_ids):
      char_ids[row, position, :len(chars)] = chars
  as_tensor = torch.from_numpy
  return {"video": as_tensor(video), "video_mask": as_tensor(video_mask), "highlight": as_tensor(highlight),
          "word_ids": as_tensor(word_ids), "char_ids": as_tensor(char_ids),
          "start_index": torch.as_tensor([s.start_index for s in samples], dtype=torch.int64),
          "end_index": torch.as_tensor([s.end_index for s in samples], dtype=torch.int64)}


def lm_forward(model: nn.Module, batch: dict):
  """(highlight scores, start logits, end logits) of a `collate` batch."""
  query_mask = (batch["word_ids"] != 0).float()
  return model(batch["word_ids"], batch["char_ids"], batch["video"], batch["video_mask"], query_mask)


def lm_loss(model: nn.Module, batch: dict, highlight_lambda: float = 5.0):
  """(VSLNet's training loss, the highlight scores (B, Lv)) of a `collate` batch."""
  h_score, start_logits, end_logits = lm_forward(model, batch)
  return vslnet_torch.losses(h_score, start_logits, end_logits, batch, highlight_lambda)["loss"], h_score


def train_step(model: nn.Module, optimizer, scheduler, batch: dict, highlight_lambda: float = 5.0,
               clip_norm: float = 1.0) -> float:
  """One upstream training step (train mode): forward, losses, zero_grad, backward, clip, AdamW, schedule."""
  model.train()
  loss, _ = lm_loss(model, batch, highlight_lambda)
  optimizer.zero_grad()
  loss.backward()
  nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
  optimizer.step()
  scheduler.step()
  return float(loss.detach())


# ------------------------------------------------------------------------------------------------- joint step

class SMWithShift(nn.Module):
  """dsnet_torch.DSNetAF plus the released SM's zeta head (a Linear on the hidden features, the Gamma shift of
  propagation). forward is DSNetAF's (cls, loc, ctr), so dsnet_torch.losses applies; the stages of the last
  call (hidden, cls, zeta, ...) stay in `last` for propagation."""

  def __init__(self, num_feature: int, num_hidden: int, num_head: int, dropout: float):
    super().__init__()
    self.net = dsnet_torch.DSNetAF(num_feature, num_hidden, num_head, dropout)
    self.fc_shift = nn.Linear(num_hidden, 1)
    self.last: dict = {}

  def forward(self, x):
    out = self.net.intermediates(x)
    out["zeta"] = self.fc_shift(out["hidden"]).squeeze(-1)
    self.last = out
    return out["cls"], out["loc"], out["ctr"]


def query_free_importance(lm: nn.Module, video: torch.Tensor) -> torch.Tensor:
  """The released LM's `with_sum_data`: sigmoid(HighLight(Encoder(VisualProj(v)))) with an all-ones mask, (1, T)."""
  mask = torch.ones(video.shape[:2])
  return lm.highlight_layer(lm.feature_encoder(lm.video_affine(video), mask), mask)


class JointTorch:
  """The released iPTNet code's training steps (reference_spec.md §1.4), one sample per step, per data source:

    sm_only  L_sum (DSNet-AF losses); Adam; EMA of the SM teacher
    lm_only  L_loc (VSLNet losses); clip the LM to norm 1; Adam; EMA of the LM teacher
    lm_data  L_loc + KL(h||prop) + KL(h_t||prop) + KL(h_t||h), prop = PM(SM(v)) on the Charades clip features;
             clip the LM; Adam; EMA of both teachers
    sm_data  L_sum + KL(h||prop) + KL(h||prop_t) + KL(s_t||s), h = LM.with_sum_data(x), prop_t from the SM
             teacher; Adam; EMA of both teachers

  One torch.optim.Adam with the released two parameter groups (SM: lr, coupled L2 weight decay; LM: loc_lr, no
  decay); zero_grad leaves the parameters without a loss at grad None, so Adam skips them (our step's gating).
  Propagation is iptnet_torch.prop (the released Python loops over steps), KL is iptnet_torch.kl (torch's
  kl_div, sum), the EMA is iptnet_torch.ema_update. Teachers: the SM teacher in eval mode and the LM teacher in
  train mode (dropout on), as the released code leaves them; both run under no_grad, since their outputs are
  constants of the loss (as in ours; the released code may also build their autograd graphs, which would only
  slow it down). The released SM forward also propagates in SM-only epochs, unused by that loss; left out here.
  """

  def __init__(self, sm: SMWithShift, lm: nn.Module, *, sm_lr: float, sm_weight_decay: float, lm_lr: float,
               teacher_keep: float, lambda_reg: float = 1.0, lambda_ctr: float = 1.0,
               highlight_lambda: float = 5.0, clip_norm: float = 1.0, radius: int = 10, alpha: float = 0.5,
               sigma: float = 4.0, variant: str = "released"):
    self.dsnet = dsnet_torch
    self.iptnet = iptnet_torch
    self.sm, self.lm = sm, lm
    self.sm_teacher = copy.deepcopy(sm).requires_grad_(False).eval()
    self.lm_teacher = copy.deepcopy(lm).requires_grad_(False).train()
    trainable = lambda module: [p for p in module.parameters() if p.requires_grad]
    self.optimizer = torch.optim.Adam([
        {"params": trainable(sm), "lr": sm_lr, "weight_decay": sm_weight_decay},
        {"params": trainable(lm), "lr": lm_lr, "weight_decay": 0.0}])
    self.keep, self.clip_norm = teacher_keep, clip_norm
    self.lambdas = dict(lambda_reg=lambda_reg, lambda_ctr=lambda_ctr)
    self.highlight_lambda = highlight_lambda
    self.prop_args = dict(radius=radius, alpha=alpha, sigma=sigma, variant=variant)

  def _prop(self, stages: dict) -> torch.Tensor:
    return self.iptnet.prop(stages["cls"], stages["hidden"], stages["zeta"], **self.prop_args)

  def _sm_supervised(self, video: dict) -> torch.Tensor:
    return self.dsnet.losses(self.sm, video["features"], video["target"], video["offsets"], video["centerness"],
                             **self.lambdas)["total"]

  def _update(self, loss: torch.Tensor, moved: tuple[str, ...], clip_lm: bool) -> float:
    self.optimizer.zero_grad()
    loss.backward()
    if clip_lm:
      nn.utils.clip_grad_norm_(self.lm.parameters(), self.clip_norm)
    self.optimizer.step()
    for name in moved:
      self.iptnet.ema_update(getattr(self, f"{name}_teacher"), getattr(self, name), self.keep)
    return float(loss.detach())

  def sm_only(self, video: dict) -> float:
    self.sm.train()
    return self._update(self._sm_supervised(video), ("sm",), clip_lm=False)

  def lm_only(self, batch: dict) -> float:
    self.lm.train()
    loss, _ = lm_loss(self.lm, batch, self.highlight_lambda)
    return self._update(loss, ("lm",), clip_lm=True)

  def lm_data(self, batch: dict) -> float:
    self.sm.train()
    self.lm.train()
    loss, h = lm_loss(self.lm, batch, self.highlight_lambda)
    with torch.no_grad():
      h_teacher = lm_forward(self.lm_teacher, batch)[0][0]
    self.sm(batch["video"])
    prop, kl = self._prop(self.sm.last), self.iptnet.kl
    loss = loss + kl(h[0], prop) + kl(h_teacher, prop) + kl(h_teacher, h[0])
    return self._update(loss, ("sm", "lm"), clip_lm=True)

  def sm_data(self, video: dict) -> float:
    self.sm.train()
    self.lm.train()
    loss = self._sm_supervised(video)
    student = self.sm.last
    with torch.no_grad():
      self.sm_teacher(video["features"][None])
      teacher = self.sm_teacher.last
      prop_teacher = self._prop(teacher)
    h = query_free_importance(self.lm, video["features"][None])[0]
    kl = self.iptnet.kl
    loss = loss + kl(h, self._prop(student)) + kl(h, prop_teacher) + kl(teacher["cls"], student["cls"])
    return self._update(loss, ("sm", "lm"), clip_lm=False)
