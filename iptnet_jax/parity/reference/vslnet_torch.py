"""PyTorch restatement of VSLNet, PyTorch version (reference_spec.md §3.2, §3.3), for parity tests only.

Module and attribute names reproduce the upstream state_dict keys (`embedding_net.word_emb.{pad_vec,unk_vec,
glove_vec}`, `embedding_net.char_emb.char_convs.{i}.0.*`, `feature_encoder.conv_block.depthwise_separable_conv.
{i}.{0,1}.*`, `predictor.start_block.{0,2}.conv1d.*`, ...), so `state_dict()` is what an upstream checkpoint
holds. As upstream: the convolutions see the padded steps (no masking), the LSTMs run over the whole padded
sequence unpacked, the highlight layer returns sigmoid scores and its loss is torch BCELoss on them.

Constructor arguments beyond upstream's (all default to upstream's values):
* `char_channels`, `char_kernels`: upstream hard-codes (10, 20, 30, 40) and (1, 2, 3, 4);
* `position_embedding=False`: the encoder without positional table (the iPTNet LM, "LocNets", has none; its
  other differences, the DSNet-style attention and char kernels (1, 3, 3), are not restated);
* `drop_rate`: parity runs set 0 so that train mode is deterministic.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

MASK_VALUE = -1e30


def mask_logits(inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
  return inputs + (1.0 - mask.to(torch.float32)) * MASK_VALUE


class Conv1D(nn.Module):
  """A 1x1 Conv1d over (B, L, D) inputs."""

  def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
    super().__init__()
    self.conv1d = nn.Conv1d(in_dim, out_dim, kernel_size=1, bias=bias)

  def forward(self, x):
    return self.conv1d(x.transpose(1, 2)).transpose(1, 2)


class WordEmbedding(nn.Module):
  """Rows PAD (zero, frozen), UNK (trainable, xavier) and the frozen GloVe rows, concatenated at lookup."""

  def __init__(self, word_dim: int, drop_rate: float, glove_vectors: torch.Tensor):
    super().__init__()
    self.pad_vec = nn.Parameter(torch.zeros(1, word_dim), requires_grad=False)
    unk_vec = torch.empty(1, word_dim)
    nn.init.xavier_uniform_(unk_vec)
    self.unk_vec = nn.Parameter(unk_vec)
    self.glove_vec = nn.Parameter(torch.as_tensor(glove_vectors, dtype=torch.float32), requires_grad=False)
    self.dropout = nn.Dropout(drop_rate)

  def forward(self, word_ids):
    table = torch.cat([self.pad_vec, self.unk_vec, self.glove_vec], dim=0)
    return self.dropout(F.embedding(word_ids, table, padding_idx=0))


class CharacterEmbedding(nn.Module):
  """Char table (PAD row 0) -> one Conv2d (1, k) + ReLU per kernel -> max over the char axis -> concat."""

  def __init__(self, num_chars: int, char_dim: int, drop_rate: float, channels=(10, 20, 30, 40),
               kernels=(1, 2, 3, 4)):
    super().__init__()
    self.char_emb = nn.Embedding(num_chars, char_dim, padding_idx=0)
    self.char_convs = nn.ModuleList([
        nn.Sequential(nn.Conv2d(char_dim, channel, kernel_size=(1, kernel), bias=True), nn.ReLU())
        for kernel, channel in zip(kernels, channels)])
    self.dropout = nn.Dropout(drop_rate)

  def forward(self, char_ids):
    emb = self.dropout(self.char_emb(char_ids))  # (B, Lq, Lc, Dc)
    emb = emb.permute(0, 3, 1, 2)  # (B, Dc, Lq, Lc)
    outputs = [conv(emb).max(dim=3).values for conv in self.char_convs]  # each (B, channel, Lq)
    return torch.cat(outputs, dim=1).permute(0, 2, 1)


class Embedding(nn.Module):
  def __init__(self, num_chars, word_dim, char_dim, drop_rate, out_dim, glove_vectors, char_channels=(10, 20, 30, 40),
               char_kernels=(1, 2, 3, 4)):
    super().__init__()
    self.word_emb = WordEmbedding(word_dim, drop_rate, glove_vectors)
    self.char_emb = CharacterEmbedding(num_chars, char_dim, drop_rate, char_channels, char_kernels)
    self.linear = Conv1D(word_dim + sum(char_channels), out_dim)

  def forward(self, word_ids, char_ids):
    return self.linear(torch.cat([self.word_emb(word_ids), self.char_emb(char_ids)], dim=2))


class PositionalEmbedding(nn.Module):
  def __init__(self, num_embeddings: int, embedding_dim: int):
    super().__init__()
    self.position_embeddings = nn.Embedding(num_embeddings, embedding_dim)

  def forward(self, inputs):
    batch, length = inputs.shape[:2]
    return self.position_embeddings(torch.arange(length).unsqueeze(0).repeat(batch, 1))


class VisualProjection(nn.Module):
  def __init__(self, visual_dim: int, dim: int, drop_rate: float):
    super().__init__()
    self.drop = nn.Dropout(drop_rate)
    self.linear = Conv1D(visual_dim, dim)

  def forward(self, visual_features):
    return self.linear(self.drop(visual_features))


class DepthwiseSeparableConvBlock(nn.Module):
  """num_layers x [X <- X + Dropout(ReLU(PW(DW(LN(X)))))]; the convolutions run over padded steps too."""

  def __init__(self, dim: int, kernel_size: int, drop_rate: float, num_layers: int = 4):
    super().__init__()
    self.depthwise_separable_conv = nn.ModuleList([
        nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size=kernel_size, groups=dim, padding=kernel_size // 2, bias=False),
            nn.Conv1d(dim, dim, kernel_size=1, bias=True),
            nn.ReLU())
        for _ in range(num_layers)])
    self.layer_norms = nn.ModuleList([nn.LayerNorm(dim, eps=1e-6) for _ in range(num_layers)])
    self.dropout = nn.Dropout(drop_rate)

  def forward(self, x):
    for norm, conv in zip(self.layer_norms, self.depthwise_separable_conv):
      residual = x
      y = conv(norm(x).transpose(1, 2))
      x = self.dropout(y).transpose(1, 2) + residual
    return x


class MultiHeadAttentionBlock(nn.Module):
  def __init__(self, dim: int, num_heads: int, drop_rate: float):
    super().__init__()
    assert dim % num_heads == 0
    self.num_heads, self.head_size = num_heads, dim // num_heads
    self.dropout = nn.Dropout(drop_rate)
    self.query, self.key, self.value = Conv1D(dim, dim), Conv1D(dim, dim), Conv1D(dim, dim)
    self.layer_norm1 = nn.LayerNorm(dim, eps=1e-6)
    self.layer_norm2 = nn.LayerNorm(dim, eps=1e-6)
    self.out_layer = Conv1D(dim, dim)

  def _heads(self, x):  # (B, L, d) -> (B, heads, L, head_size)
    return x.view(*x.shape[:-1], self.num_heads, self.head_size).permute(0, 2, 1, 3)

  def forward(self, x, mask):
    y = self.dropout(self.layer_norm1(x))
    query, key, value = self._heads(self.query(y)), self._heads(self.key(y)), self._heads(self.value(y))
    scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size)
    scores = mask_logits(scores, mask.unsqueeze(1).unsqueeze(2))
    probs = self.dropout(torch.softmax(scores, dim=-1))
    attended = torch.matmul(probs, value).permute(0, 2, 1, 3)
    attended = attended.reshape(*attended.shape[:-2], -1)
    residual = self.dropout(attended) + x
    out = self.out_layer(self.dropout(self.layer_norm2(residual)))
    return self.dropout(out) + residual


class FeatureEncoder(nn.Module):
  def __init__(self, dim, num_heads, max_pos_len, kernel_size=7, num_layers=4, drop_rate=0.0,
               position_embedding=True):
    super().__init__()
    if position_embedding:
      self.pos_embedding = PositionalEmbedding(max_pos_len, dim)
    self.position_embedding = position_embedding
    self.conv_block = DepthwiseSeparableConvBlock(dim, kernel_size, drop_rate, num_layers)
    self.attention_block = MultiHeadAttentionBlock(dim, num_heads, drop_rate)

  def intermediates(self, x, mask):
    features = x + self.pos_embedding(x) if self.position_embedding else x
    conv = self.conv_block(features)
    return {"encoder_input": features, "conv_block": conv, "attention_block": self.attention_block(conv, mask)}

  def forward(self, x, mask):
    return self.intermediates(x, mask)["attention_block"]


class CQAttention(nn.Module):
  def __init__(self, dim: int, drop_rate: float):
    super().__init__()
    w4C, w4Q, w4mlu = torch.empty(dim, 1), torch.empty(dim, 1), torch.empty(1, 1, dim)
    for w in (w4C, w4Q, w4mlu):
      nn.init.xavier_uniform_(w)
    self.w4C, self.w4Q, self.w4mlu = nn.Parameter(w4C), nn.Parameter(w4Q), nn.Parameter(w4mlu)
    self.dropout = nn.Dropout(drop_rate)
    self.cqa_linear = Conv1D(4 * dim, dim)

  def trilinear_attention(self, context, query):
    c_len, q_len = context.shape[1], query.shape[1]
    context, query = self.dropout(context), self.dropout(query)
    sub0 = torch.matmul(context, self.w4C).expand(-1, -1, q_len)
    sub1 = torch.matmul(query, self.w4Q).transpose(1, 2).expand(-1, c_len, -1)
    sub2 = torch.matmul(context * self.w4mlu, query.transpose(1, 2))
    return sub0 + sub1 + sub2

  def forward(self, context, query, c_mask, q_mask):
    score = self.trilinear_attention(context, query)  # (B, Lv, Lq)
    score_row = torch.softmax(mask_logits(score, q_mask.unsqueeze(1)), dim=2)
    score_col = torch.softmax(mask_logits(score, c_mask.unsqueeze(2)), dim=1).transpose(1, 2)
    c2q = torch.matmul(score_row, query)
    q2c = torch.matmul(torch.matmul(score_row, score_col), context)  # the (Lv, Lv) product, as upstream
    return self.cqa_linear(torch.cat([context, c2q, context * c2q, context * q2c], dim=2))


class WeightedPool(nn.Module):
  def __init__(self, dim: int):
    super().__init__()
    weight = torch.empty(dim, 1)
    nn.init.xavier_uniform_(weight)
    self.weight = nn.Parameter(weight)

  def forward(self, x, mask):
    alpha = mask_logits(torch.tensordot(x, self.weight, dims=1), mask.unsqueeze(2))  # (B, L, 1)
    alpha = torch.softmax(alpha, dim=1)
    return torch.matmul(x.transpose(1, 2), alpha).squeeze(2)


class CQConcatenate(nn.Module):
  def __init__(self, dim: int):
    super().__init__()
    self.weighted_pool = WeightedPool(dim)
    self.conv1d = Conv1D(2 * dim, dim)

  def forward(self, context, query, q_mask):
    pooled = self.weighted_pool(query, q_mask).unsqueeze(1).repeat(1, context.shape[1], 1)
    return self.conv1d(torch.cat([context, pooled], dim=2))


class HighLightLayer(nn.Module):
  def __init__(self, dim: int):
    super().__init__()
    self.conv1d = Conv1D(dim, 1)

  def logits(self, x, mask):
    return mask_logits(self.conv1d(x).squeeze(2), mask)

  def forward(self, x, mask):
    return torch.sigmoid(self.logits(x, mask))


def highlight_loss(scores, labels, mask, epsilon: float = 1e-12):
  """BCE on the sigmoid scores, weight 2 on positives and 1 on negatives, over the valid steps of the batch."""
  labels = labels.to(torch.float32)
  weights = torch.where(labels == 0.0, labels + 1.0, 2.0 * labels)
  per_step = nn.BCELoss(reduction="none")(scores, labels) * weights
  mask = mask.to(torch.float32)
  return torch.sum(per_step * mask) / (torch.sum(mask) + epsilon)


class DynamicRNN(nn.Module):
  def __init__(self, dim: int):
    super().__init__()
    self.lstm = nn.LSTM(input_size=dim, hidden_size=dim, num_layers=1, bias=True, batch_first=True)

  def forward(self, x, mask):
    out, _ = self.lstm(x)
    return out * mask.to(torch.float32).unsqueeze(2)


class ConditionedPredictor(nn.Module):
  def __init__(self, dim, num_heads, max_pos_len, drop_rate, predictor="rnn", position_embedding=True):
    super().__init__()
    self.predictor = predictor
    if predictor == "rnn":
      self.start_encoder = DynamicRNN(dim)
      self.end_encoder = DynamicRNN(dim)
    else:
      self.encoder = FeatureEncoder(dim, num_heads, max_pos_len, drop_rate=drop_rate,
                                    position_embedding=position_embedding)
      self.start_layer_norm = nn.LayerNorm(dim, eps=1e-6)
      self.end_layer_norm = nn.LayerNorm(dim, eps=1e-6)
    self.start_block = nn.Sequential(Conv1D(2 * dim, dim), nn.ReLU(), Conv1D(dim, 1))
    self.end_block = nn.Sequential(Conv1D(2 * dim, dim), nn.ReLU(), Conv1D(dim, 1))

  def intermediates(self, x, mask):
    if self.predictor == "rnn":
      start_features = self.start_encoder(x, mask)
      end_features = self.end_encoder(start_features, mask)
    else:
      start_features = self.encoder(x, mask)
      end_features = self.encoder(start_features, mask)
      start_features = self.start_layer_norm(start_features)
      end_features = self.end_layer_norm(end_features)
    start = self.start_block(torch.cat([start_features, x], dim=2)).squeeze(2)
    end = self.end_block(torch.cat([end_features, x], dim=2)).squeeze(2)
    return {"start_features": start_features, "end_features": end_features,
            "start_logits": mask_logits(start, mask), "end_logits": mask_logits(end, mask)}

  def forward(self, x, mask):
    out = self.intermediates(x, mask)
    return out["start_logits"], out["end_logits"]


def cross_entropy_loss(start_logits, end_logits, start_labels, end_labels):
  ce = nn.CrossEntropyLoss(reduction="mean")
  return ce(start_logits, start_labels) + ce(end_logits, end_labels)


class VSLNet(nn.Module):
  """forward(word_ids, char_ids, video, v_mask, q_mask) -> (highlight scores, start logits, end logits)."""

  def __init__(self, *, num_chars, word_dim, char_dim, visual_dim, dim, num_heads, max_pos_len, drop_rate,
               glove_vectors, predictor="rnn", char_channels=(10, 20, 30, 40), char_kernels=(1, 2, 3, 4),
               position_embedding=True):
    super().__init__()
    self.embedding_net = Embedding(num_chars, word_dim, char_dim, drop_rate, dim, glove_vectors, char_channels,
                                   char_kernels)
    self.video_affine = VisualProjection(visual_dim, dim, drop_rate)
    self.feature_encoder = FeatureEncoder(dim, num_heads, max_pos_len, drop_rate=drop_rate,
                                          position_embedding=position_embedding)
    self.cq_attention = CQAttention(dim, drop_rate)
    self.cq_concat = CQConcatenate(dim)
    self.highlight_layer = HighLightLayer(dim)
    self.predictor = ConditionedPredictor(dim, num_heads, max_pos_len, drop_rate, predictor, position_embedding)
    self.init_parameters()

  def init_parameters(self):
    def init_weights(m):
      if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
          nn.init.zeros_(m.bias)
      elif isinstance(m, nn.LSTM):
        m.reset_parameters()
    self.apply(init_weights)

  def intermediates(self, word_ids, char_ids, video, v_mask, q_mask) -> dict[str, torch.Tensor]:
    """Every module's output; names as our Flax module paths where one exists."""
    out = {"video_affine": self.video_affine(video),
           "word_emb": self.embedding_net.word_emb(word_ids),
           "char_emb": self.embedding_net.char_emb(char_ids),
           "embedding_net": self.embedding_net(word_ids, char_ids)}
    video_enc = self.feature_encoder.intermediates(out["video_affine"], v_mask)
    query_enc = self.feature_encoder.intermediates(out["embedding_net"], q_mask)
    out.update({f"video_{k}": v for k, v in video_enc.items()})
    out.update({f"query_{k}": v for k, v in query_enc.items()})
    out["cq_attention"] = self.cq_attention(video_enc["attention_block"], query_enc["attention_block"], v_mask,
                                            q_mask)
    out["cq_concat"] = self.cq_concat(out["cq_attention"], query_enc["attention_block"], q_mask)
    out["highlight_logits"] = self.highlight_layer.logits(out["cq_concat"], v_mask)
    out["highlight_prob"] = torch.sigmoid(out["highlight_logits"])
    out["predictor_input"] = out["cq_concat"] * out["highlight_prob"].unsqueeze(2)
    out.update(self.predictor.intermediates(out["predictor_input"], v_mask))
    return out

  def forward(self, word_ids, char_ids, video, v_mask, q_mask):
    out = self.intermediates(word_ids, char_ids, video, v_mask, q_mask)
    return out["highlight_prob"], out["start_logits"], out["end_logits"]


def losses(h_score, start_logits, end_logits, batch: dict, highlight_lambda: float = 5.0) -> dict[str, torch.Tensor]:
  """The upstream training loss: CE(start) + CE(end) + highlight_lambda * highlight BCE; batch as tensors."""
  span = cross_entropy_loss(start_logits, end_logits, batch["start_index"], batch["end_index"])
  highlight = highlight_loss(h_score, batch["highlight"], batch["video_mask"])
  return {"span_loss": span, "highlight_loss": highlight, "loss": span + highlight_lambda * highlight}


class TransformersAdamW(torch.optim.Optimizer):
  """The update of transformers.AdamW (upstream VSLNet_t7's optimizer), restated: eps is added to sqrt(v) BEFORE
  the bias correction (torch.optim.AdamW and optax add it after), then the decoupled decay p -= lr * wd * p."""

  def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0):
    super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

  @torch.no_grad()
  def step(self, closure=None):
    for group in self.param_groups:
      b1, b2 = group["betas"]
      for p in group["params"]:
        if p.grad is None:
          continue
        state = self.state[p]
        if not state:
          state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
        state["step"] += 1
        state["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
        state["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        step_size = group["lr"] * math.sqrt(1 - b2 ** state["step"]) / (1 - b1 ** state["step"])
        p.addcdiv_(state["m"], state["v"].sqrt().add_(group["eps"]), value=-step_size)
        p.add_(p, alpha=-group["lr"] * group["weight_decay"])
