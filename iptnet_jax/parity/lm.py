"""LM parity: VSLNet, PyTorch version, against its torch restatement (reference/vslnet_torch.py): each module
on torch's input to it, the network end to end, loss terms and gradients, and the LM trainer's steps."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from iptnet_jax.lm import porting
from iptnet_jax.datasets.input_pipeline import LM_MODEL_INPUTS
from iptnet_jax.parity.common import (ADAM_PARAM_TOL, FORWARD_LAYER_TOL, FORWARD_NETWORK_TOL, LOSS_TOL, NOTES, Row,
                                      Trajectory, _flat, compare, register, trajectory_rows)


@dataclasses.dataclass(frozen=True)
class LMCase:
  """A VSLNet configuration, one padded batch of queries (+1 filler row, as the batcher makes) and a seed.

  per_sample=True compares our padded batch with torch on each unpadded sample (our mask_conv_padding=True
  behaves as upstream on unpadded input); per_sample=False gives torch the same padded batch, which only
  mask_conv_padding=False reproduces (upstream convolves the padding into the last valid steps).
  """
  name: str
  dim: int
  num_heads: int
  word_dim: int
  char_dim: int
  visual_dim: int
  num_words: int
  num_chars: int
  char_channels: tuple[int, ...]
  max_pos_len: int
  video_lengths: tuple[int, ...]
  query_lengths: tuple[int, ...]
  video_bucket: int
  query_bucket: int
  char_len: int
  mask_conv_padding: bool = True
  position_embedding: bool = True
  predictor_type: str = "rnn"
  seed: int = 0
  char_kernels: tuple[int, ...] = (1, 2, 3, 4)
  forward_criterion: str = "max-abs"  # of the per-module rows; see LM_VSLNET

  @property
  def per_sample(self) -> bool:
    return self.mask_conv_padding


_LM_SMALL_DIMS = dict(dim=16, num_heads=4, word_dim=12, char_dim=8, visual_dim=24, num_words=40, num_chars=20,
                      char_channels=(3, 4, 5, 6), max_pos_len=32)
LM_SMALL = LMCase("small", **_LM_SMALL_DIMS, video_lengths=(9, 21, 32), query_lengths=(3, 11, 7), video_bucket=32,
                  query_bucket=12, char_len=8, seed=0)
# Upstream's padding leak on both sides: our mask_conv_padding=False and torch on the same padded batch (videos
# padded to the longest, as upstream; queries one step further, the shapes of LM_SMALL's batch).
LM_LEAK = LMCase("upstream padding", **_LM_SMALL_DIMS, video_lengths=(9, 21, 32), query_lengths=(3, 11, 7),
                 video_bucket=32, query_bucket=12, char_len=8, mask_conv_padding=False, seed=1)
# The iPTNet LM's option: no positional table (torch restatement with the same option).
LM_NOPOS = LMCase("no pos table", **_LM_SMALL_DIMS, video_lengths=(9, 21, 32), query_lengths=(3, 11, 7),
                  video_bucket=32, query_bucket=12, char_len=8, position_embedding=False, seed=2)
# VSLNet's `--predictor transformer` option: the feature encoder applied twice (start, then end), then LayerNorms.
LM_TRANSFORMER = LMCase("transformer predictor", **_LM_SMALL_DIMS, video_lengths=(9, 21, 32),
                        query_lengths=(3, 11, 7), video_bucket=32, query_bucket=12, char_len=8,
                        predictor_type="transformer", seed=4)
# VSLNet's default sizes (d 128, 8 heads, 300-d words, 50-d chars, 1024-d I3D features, 128 positions). Its
# activations reach |x| ~ 20 (cq_attention), where one float32 rounding is ~1e-6 and torch's own float32 result
# differs from its float64 one by ~1e-5: its module rows hold max-abs / max(1, max |ref|) to 1e-5.
LM_VSLNET = LMCase("vslnet", dim=128, num_heads=8, word_dim=300, char_dim=50, visual_dim=1024, num_words=200,
                   num_chars=40, char_channels=(10, 20, 30, 40), max_pos_len=128, video_lengths=(37, 64),
                   query_lengths=(6, 13), video_bucket=64, query_bucket=16, char_len=16, seed=3,
                   forward_criterion="max-abs/scale")
LM_FORWARD_CASES = (LM_SMALL, LM_LEAK, LM_NOPOS, LM_TRANSFORMER, LM_VSLNET)
LM_LOSS_CASES = (LM_SMALL, LM_LEAK)
LM_LOSS_TERMS = ("span_loss", "highlight_loss", "loss")
HIGHLIGHT_LAMBDA = 5.0


def lm_batch(case: LMCase, seed_offset: int = 0) -> dict:
  """A batch of the LM batch contract (input_pipeline.LM_DEVICE_FIELDS): real rows, then one filler row repeating
  the first (example_mask 0); noise (not zeros) in the padded video steps; at least one UNK word and one
  word shorter than the widest char kernel."""
  from iptnet_jax.datasets import moment_labels  # noqa: PLC0415
  rng = np.random.default_rng([case.seed, seed_offset, 7])
  real = len(case.video_lengths)
  rows = list(range(real)) + [0]
  lv, lq, lc = case.video_bucket, case.query_bucket, case.char_len
  video = rng.normal(size=(real, lv, case.visual_dim)).astype(np.float32)
  video_mask = (np.arange(lv)[None] < np.array(case.video_lengths)[:, None]).astype(np.float32)
  video = np.where(video_mask[..., None] > 0, video, 5.0 * rng.normal(size=video.shape)).astype(np.float32)
  word_ids = np.zeros((real, lq), np.int32)
  char_ids = np.zeros((real, lq, lc), np.int32)
  start, end = np.zeros(real, np.int32), np.zeros(real, np.int32)
  highlight = np.zeros((real, lv), np.float32)
  for i, (n_v, n_q) in enumerate(zip(case.video_lengths, case.query_lengths)):
    word_ids[i, :n_q] = rng.integers(1, case.num_words, size=n_q)
    word_ids[i, rng.integers(0, n_q)] = 1  # UNK: its trainable vector gets a gradient
    for j in range(n_q):
      length = 1 if j == 0 else int(rng.integers(1, lc + 1))
      char_ids[i, j, :length] = rng.integers(1, case.num_chars, size=length)
    start[i] = rng.integers(0, n_v)
    end[i] = rng.integers(start[i], min(start[i] + n_v // 2, n_v - 1) + 1)
    highlight[i, :n_v] = moment_labels.highlight_labels(int(start[i]), int(end[i]), n_v)
  query_mask = (word_ids != 0).astype(np.float32)
  batch = {"video": video, "video_mask": video_mask, "word_ids": word_ids, "char_ids": char_ids,
           "query_mask": query_mask, "start_index": start, "end_index": end, "highlight": highlight}
  batch = {k: np.ascontiguousarray(v[rows]) for k, v in batch.items()}
  batch["example_mask"] = (np.arange(len(rows)) < real).astype(np.float32)
  return batch


def lm_model(case: LMCase):
  from iptnet_jax.lm.model import VSLNet  # noqa: PLC0415
  return VSLNet(num_words=case.num_words, num_chars=case.num_chars, word_dim=case.word_dim, dim=case.dim,
                num_heads=case.num_heads, drop_rate=0.0, max_pos_len=case.max_pos_len, char_dim=case.char_dim,
                char_channels=case.char_channels, char_kernels=case.char_kernels, visual_dim=case.visual_dim,
                mask_conv_padding=case.mask_conv_padding, position_embedding=case.position_embedding,
                predictor_type=case.predictor_type)


def lm_models(case: LMCase):
  """(torch VSLNet with dropout 0, our VSLNet with dropout 0, our variables ported from the torch state_dict)."""
  import torch  # noqa: PLC0415
  from iptnet_jax.parity.reference import vslnet_torch  # noqa: PLC0415 (needs torch)
  glove = np.random.default_rng([case.seed, 99]).normal(size=(case.num_words - 2, case.word_dim))
  torch.manual_seed(case.seed)
  torch_model = vslnet_torch.VSLNet(
      num_chars=case.num_chars, word_dim=case.word_dim, char_dim=case.char_dim, visual_dim=case.visual_dim,
      dim=case.dim, num_heads=case.num_heads, max_pos_len=case.max_pos_len, drop_rate=0.0,
      glove_vectors=torch.tensor(glove, dtype=torch.float32), char_channels=case.char_channels,
      char_kernels=case.char_kernels, position_embedding=case.position_embedding, predictor=case.predictor_type)
  model = lm_model(case)
  variables = porting.vslnet_variables_from_state_dict(torch_model.state_dict(), model)
  return torch_model, model, variables


def _torch_rows(batch: dict, i: int | slice, video_len: int | None = None, query_len: int | None = None) -> dict:
  import torch  # noqa: PLC0415
  sl = lambda a, n: a[i, :n] if n is not None else a[i]
  return {"word_ids": torch.from_numpy(sl(batch["word_ids"], query_len)).long(),
          "char_ids": torch.from_numpy(sl(batch["char_ids"], query_len)).long(),
          "video": torch.from_numpy(sl(batch["video"], video_len)),
          "v_mask": torch.from_numpy(sl(batch["video_mask"], video_len)),
          "q_mask": torch.from_numpy(sl(batch["query_mask"], query_len))}


def _lengths(batch: dict) -> list[tuple[int, int]]:
  real = int(batch["example_mask"].sum())
  return [(int(batch["video_mask"][i].sum()), int(batch["query_mask"][i].sum())) for i in range(real)]


def torch_lm_intermediates(torch_model, batch: dict, per_sample: bool) -> list[dict]:
  """Per real sample, every module's input and output in the torch forward pass: the unpadded sample's
  (per_sample) or its row of the padded batch (then padded steps included)."""
  import torch  # noqa: PLC0415
  out = []
  with torch.no_grad():
    if not per_sample:
      inter = torch_model.intermediates(**_torch_rows(batch, slice(0, len(_lengths(batch)))))
    for i, (n_v, n_q) in enumerate(_lengths(batch)):
      if per_sample:
        one = torch_model.intermediates(**_torch_rows(batch, slice(i, i + 1), n_v, n_q))
        out.append({k: v[0].numpy() for k, v in one.items()})
      else:
        out.append({k: v[i].numpy() for k, v in inter.items()})
  return out


_LM_QUERY_TENSORS = ("word_emb", "char_emb", "embedding_net", "query_encoder_input", "query_conv_block",
                     "query_attention_block")
# Row label -> (our output's name, torch tensor compared with it). Each module gets torch's input to it (the
# torch tensors named in lm_module_fn), so every row is that module's own error, not an accumulation.
_LM_MODULES = (
    ("video_affine", "video_affine"), ("embedding_net.word_emb", "word_emb"),
    ("embedding_net.char_emb (CNN)", "char_emb"), ("embedding_net", "embedding_net"),
    ("feature_encoder.conv_block (video)", "video_conv_block"),
    ("feature_encoder.attention_block (video)", "video_attention_block"),
    ("feature_encoder (video)", "video_feature_encoder"),
    ("feature_encoder.conv_block (query)", "query_conv_block"),
    ("feature_encoder.attention_block (query)", "query_attention_block"),
    ("feature_encoder (query)", "query_feature_encoder"),
    ("cq_attention", "cq_attention"), ("cq_concat", "cq_concat"), ("highlight_layer (logits)", "highlight_logits"),
    ("predictor.start_encoder", "start_features"), ("predictor.end_encoder", "end_features"),
    ("predictor (start logits)", "predictor_start_logits"), ("predictor (end logits)", "predictor_end_logits"))
# Our module outputs that torch names differently (the encoder's output is its attention block's).
_LM_TORCH_NAME = {"video_feature_encoder": "video_attention_block", "query_feature_encoder": "query_attention_block",
                  "predictor_start_logits": "start_logits", "predictor_end_logits": "end_logits"}
LM_NETWORK_OUTPUTS = ("highlight_prob", "start_logits", "end_logits")


@functools.lru_cache(maxsize=None)
def lm_module_fn(model):
  """Jitted (variables, batch, torch tensors) -> each module's output on torch's input to it, and the network's."""

  @jax.jit
  def forward(variables, batch, t):
    def call(fn, *args):
      return model.apply(variables, *args, method=fn)

    vm, qm = batch["video_mask"], batch["query_mask"]
    kw = dict(deterministic=True)
    out = {
        "video_affine": call(lambda m, v: m.video_affine(v, **kw), batch["video"]),
        "word_emb": call(lambda m, w: m.embedding_net.word_emb(w, **kw), batch["word_ids"]),
        "char_emb": call(lambda m, c: m.embedding_net.char_emb(c, **kw), batch["char_ids"]),
        "embedding_net": call(lambda m, w, c: m.embedding_net(w, c, **kw), batch["word_ids"], batch["char_ids"]),
        "cq_attention": call(lambda m, *a: m.cq_attention(*a, **kw), t["video_attention_block"],
                             t["query_attention_block"], vm, qm),
        "cq_concat": call(lambda m, *a: m.cq_concat(*a), t["cq_attention"], t["query_attention_block"], qm),
        "highlight_logits": call(lambda m, *a: m.highlight_layer(*a), t["cq_concat"], vm),
    }
    if model.predictor_type == "rnn":
      out["start_features"] = call(lambda m, *a: m.predictor.start_encoder(*a), t["predictor_input"], vm)
      out["end_features"] = call(lambda m, *a: m.predictor.end_encoder(*a), t["start_features"], vm)
    else:  # torch's start_features are after the LayerNorm, the end encoder's input before it: both from x
      def encoders(m, x, mask):
        p = m.predictor
        start = p.encoder(x, mask, **kw)
        end = p.encoder(start, mask, **kw)
        return p.start_layer_norm(start), p.end_layer_norm(end)
      out["start_features"], out["end_features"] = call(encoders, t["predictor_input"], vm)
    out["predictor_start_logits"], out["predictor_end_logits"] = call(
        lambda m, *a: m.predictor(*a, **kw), t["predictor_input"], vm)
    for side, mask, source in (("video", vm, "video_affine"), ("query", qm, "embedding_net")):
      out[f"{side}_conv_block"] = call(lambda m, *a: m.feature_encoder.conv_block(*a, **kw),
                                       t[f"{side}_encoder_input"], mask)
      out[f"{side}_attention_block"] = call(lambda m, *a: m.feature_encoder.attention_block(*a, **kw),
                                            t[f"{side}_conv_block"], mask)
      out[f"{side}_feature_encoder"] = call(lambda m, *a: m.feature_encoder(*a, **kw), t[source], mask)
    network = model.apply(variables, *(batch[k] for k in LM_MODEL_INPUTS), **kw)
    out.update({k: network[k] for k in LM_NETWORK_OUTPUTS})
    return out

  return forward


_LM_TORCH_INPUTS = ("video_affine", "embedding_net", "video_encoder_input", "query_encoder_input",
                    "video_conv_block", "query_conv_block", "video_attention_block", "query_attention_block",
                    "cq_attention", "cq_concat", "predictor_input", "start_features")


def _padded(ref: list[dict], key: str, batch: dict) -> np.ndarray:
  """Per-sample torch tensors laid out as the batch (zeros beyond each sample, the filler row as row 0)."""
  length = batch["query_mask" if key in _LM_QUERY_TENSORS else "video_mask"].shape[1]
  rows = [np.pad(r[key], [(0, length - len(r[key]))] + [(0, 0)] * (r[key].ndim - 1)) for r in ref]  # per_sample
  rows += [rows[0]] * (batch["example_mask"].shape[0] - len(rows))
  return np.stack(rows).astype(np.float32)


def lm_forward_rows(case: LMCase) -> list[Row]:
  """Each module on torch's input to it (max-abs 1e-5), then the whole network end to end (1e-4)."""
  torch_model, model, variables = lm_models(case)
  batch = lm_batch(case)
  ref = torch_lm_intermediates(torch_model, batch, case.per_sample)
  torch_inputs = {k: _padded(ref, k, batch) for k in _LM_TORCH_INPUTS}
  ours = jax.device_get(lm_module_fn(model)(variables, batch, torch_inputs))
  lengths = _lengths(batch)

  def valid(rows, key):  # the valid steps of every sample, concatenated
    query_side = _LM_TORCH_NAME.get(key, key) in _LM_QUERY_TENSORS
    return np.concatenate([rows[i][:(n_q if query_side else n_v)] for i, (n_v, n_q) in enumerate(lengths)])

  mine = lambda key: valid(ours[key], key)
  theirs = lambda key: valid([r[_LM_TORCH_NAME.get(key, key)] for r in ref], key)
  tag = f"lm.forward[{case.name}]"
  rows = [compare(f"{tag} {label}", mine(key), theirs(key), FORWARD_LAYER_TOL, case.forward_criterion)
          for label, key in _LM_MODULES]
  rows.append(compare(f"{tag} network end to end (highlight, start, end)", {k: mine(k) for k in LM_NETWORK_OUTPUTS},
                      {k: theirs(k) for k in LM_NETWORK_OUTPUTS}, FORWARD_NETWORK_TOL))
  return rows + lm_small_activation_rows(case, torch_model, model, variables, batch, ref)


SMALL_ACTIVATION_SCALE = 1e-3


def lm_small_activation_rows(case, torch_model, model, variables, batch, ref) -> list[Row]:
  """The encoder's blocks again on torch's inputs scaled by 1e-3: LayerNorm's eps (1e-6 upstream) is invisible on
  unit-scale activations and decides the output on small ones."""
  import torch  # noqa: PLC0415
  scaled = ("video_encoder_input", "video_conv_block")
  inputs = {k: _padded(ref, k, batch) * (SMALL_ACTIVATION_SCALE if k in scaled else 1.0) for k in _LM_TORCH_INPUTS}
  ours = jax.device_get(lm_module_fn(model)(variables, batch, inputs))
  theirs = {"video_conv_block": [], "video_attention_block": []}
  with torch.no_grad():
    for i, row in enumerate(ref):
      small = {k: torch.from_numpy(row[k][None] * SMALL_ACTIVATION_SCALE) for k in scaled}
      mask = torch.from_numpy(batch["video_mask"][i:i + 1, :len(row["video_conv_block"])])
      theirs["video_conv_block"].append(torch_model.feature_encoder.conv_block(small["video_encoder_input"])[0])
      theirs["video_attention_block"].append(
          torch_model.feature_encoder.attention_block(small["video_conv_block"], mask)[0])
  lengths = _lengths(batch)
  tag = f"lm.forward[{case.name}]"
  return [compare(f"{tag} feature_encoder.{key[6:]} (video), inputs x {SMALL_ACTIVATION_SCALE:g}",
                  np.concatenate([ours[key][i, :n_v] for i, (n_v, _) in enumerate(lengths)]),
                  np.concatenate([t[:n_v].numpy() for t, (n_v, _) in zip(theirs[key], lengths)]),
                  FORWARD_LAYER_TOL, case.forward_criterion) for key in theirs]


def torch_lm_losses(torch_model, batch: dict, per_sample: bool, highlight_lambda: float = HIGHLIGHT_LAMBDA) -> dict:
  """The upstream loss on the real rows; per_sample: each sample's forward pass alone, outputs re-padded to the
  batch's video length (scores 0, logits -1e30 beyond each sample) before the batch loss."""
  import torch  # noqa: PLC0415
  from iptnet_jax.parity.reference import vslnet_torch  # noqa: PLC0415 (needs torch)
  lengths = _lengths(batch)
  real = len(lengths)
  lv = batch["video_mask"].shape[1]
  if per_sample:
    scores, starts, ends = [], [], []
    for i, (n_v, n_q) in enumerate(lengths):
      h, s, e = torch_model(**_torch_rows(batch, slice(i, i + 1), n_v, n_q))
      scores.append(torch.cat([h, torch.zeros(1, lv - n_v)], dim=1))
      starts.append(torch.cat([s, torch.full((1, lv - n_v), vslnet_torch.MASK_VALUE)], dim=1))
      ends.append(torch.cat([e, torch.full((1, lv - n_v), vslnet_torch.MASK_VALUE)], dim=1))
    h_score, start_logits, end_logits = torch.cat(scores), torch.cat(starts), torch.cat(ends)
  else:
    h_score, start_logits, end_logits = torch_model(**_torch_rows(batch, slice(0, real)))
  labels = {"start_index": torch.from_numpy(batch["start_index"][:real]).long(),
            "end_index": torch.from_numpy(batch["end_index"][:real]).long(),
            "highlight": torch.from_numpy(batch["highlight"][:real]),
            "video_mask": torch.from_numpy(batch["video_mask"][:real])}
  return vslnet_torch.losses(h_score, start_logits, end_logits, labels, highlight_lambda)


def torch_lm_grads(torch_model, model_or_variables) -> dict:
  """The .grad of every torch parameter in our params layout (missing grads, e.g. the frozen rows, are 0)."""
  import torch  # noqa: PLC0415
  grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in torch_model.named_parameters()}
  return porting.vslnet_variables_from_state_dict(grads, model_or_variables)["params"]


def lm_loss_rows(case: LMCase, grad_terms: tuple[str, ...] = LM_LOSS_TERMS) -> list[Row]:
  """Loss terms, and the gradient of each of `grad_terms` wrt every parameter: our padded batch (filler row
  included) vs torch."""
  from iptnet_jax.lm import losses as lm_losses  # noqa: PLC0415
  torch_model, model, variables = lm_models(case)
  batch = lm_batch(case, seed_offset=1)
  constants = variables["constants"]

  def terms(params):
    outputs = model.apply({"params": params, "constants": constants}, *(batch[k] for k in LM_MODEL_INPUTS),
                          deterministic=True)
    return lm_losses.vslnet_loss(outputs, batch, HIGHLIGHT_LAMBDA)[1]

  def value_and_grads(params):  # one reverse pass per term in grad_terms
    if grad_terms == ("loss",):
      grads, values = jax.grad(lambda p: (lambda t: (t["loss"], t))(terms(p)), has_aux=True)(params)
      return values, {"loss": grads}
    return terms(params), {k: v for k, v in jax.jacrev(terms)(params).items() if k in grad_terms}

  values, all_grads = jax.device_get(jax.jit(value_and_grads)(variables["params"]))
  tag = f"lm.loss[{case.name}]"
  rows = []
  ref_terms = torch_lm_losses(torch_model, batch, case.per_sample)
  for name in LM_LOSS_TERMS:
    ref = ref_terms[name]
    rows.append(compare(f"{tag} {name} value", np.asarray(values[name]), ref.detach().numpy(), LOSS_TOL, "rel"))
    if name not in grad_terms:
      continue
    torch_model.zero_grad()
    ref.backward(retain_graph=True)
    ref_grads = torch_lm_grads(torch_model, variables)
    rows.append(compare(f"{tag} {name} grad", lm_leaves(all_grads[name]), lm_leaves(ref_grads), LOSS_TOL, "rel"))
    rows.append(compare(f"{tag} {name} grad, shift-invariant biases (exactly 0)",
                        lm_leaves(all_grads[name], invariant=True), lm_leaves(ref_grads, invariant=True),
                        ZERO_GRAD_TOL, "max-abs"))
  return rows


# Biases the loss is exactly invariant to, so their exact gradient is 0 and both frameworks return rounding noise
# (~1e-7): a key bias adds q.b_k to every score of a query (softmax over keys ignores it); the start/end output
# biases shift all logits of a sample (the span cross-entropy ignores it; the highlight loss never sees them).
# Relative errors of noise are meaningless: they are held to max-abs ZERO_GRAD_TOL instead, and left out of the
# trajectory comparisons (Adam normalises noise gradients into +-lr steps, in torch as here; no output changes).
LM_INVARIANT_LEAVES = ("feature_encoder/attention_block/key/conv1d/bias", "predictor/start_block_2/conv1d/bias",
                       "predictor/end_block_2/conv1d/bias")
ZERO_GRAD_TOL = 1e-5


def lm_leaves(tree, invariant: bool = False) -> dict[str, np.ndarray]:
  """{'a/b/c': leaf} of an LM params-shaped tree: without the shift-invariant biases, or only those."""
  return {k: v for k, v in _flat(tree).items() if (k in LM_INVARIANT_LEAVES) == invariant}


@dataclasses.dataclass(frozen=True)
class LMTrajectory:
  losses: np.ndarray  # (steps,): the total loss at each step
  start: dict  # LM params before the first step
  end: dict  # LM params after the last step
  teacher_end: dict | None = None  # the LM teacher after the last step (iPTNet runs)
  grad_norms: np.ndarray | None = None  # global gradient norm before clipping, per step (torch runs)
  sm_moved: float = 0.0  # max |change| of the SM student and teacher (iPTNet runs: must stay 0 in LM phases)


LM_TRAJECTORY_STEPS = 5
# configs/charades.py's recipe (AdamW, decoupled decay 0.01 off biases / LayerNorms, eps 1e-6, clip 1.0, linear
# decay to 0 over the run's steps) with a larger lr, so that 5 steps move the weights visibly.
LM_TRAIN = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01, clip_norm=1.0)
LM_TRAJECTORY_CASE = LM_SMALL


def lm_train_trajectory(case: LMCase = LM_TRAJECTORY_CASE, steps: int = LM_TRAJECTORY_STEPS,
                        tx: optax.GradientTransformation | None = None) -> LMTrajectory:
  """Our LM trainer's jitted step (lm.train.make_train_step) with lm.train.make_optimizer, one batch per step."""
  import ml_collections  # noqa: PLC0415

  from iptnet_jax.lm import train as lm_train  # noqa: PLC0415
  _, model, variables = lm_models(case)
  if tx is None:
    tx = lm_train.make_optimizer(ml_collections.ConfigDict(LM_TRAIN), total_steps=steps)
  train_step = lm_train.make_train_step(model, tx, HIGHLIGHT_LAMBDA)
  start = jax.tree.map(np.array, variables["params"])
  params = jax.tree.map(jnp.asarray, variables["params"])
  state = lm_train.TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                              rng=jax.random.key(case.seed))
  constants = jax.tree.map(jnp.asarray, variables["constants"])
  losses = []
  for step in range(steps):
    state, metrics = train_step(state, constants, lm_batch(case, seed_offset=10 + step))
    losses.append(float(metrics["loss"]))
  return LMTrajectory(np.array(losses), start, jax.device_get(state.params))


def _no_decay(name: str) -> bool:
  return any(nd in name for nd in ("bias", "layer_norm", "LayerNorm"))  # VSLNet_t7 build_optimizer_and_scheduler


def torch_lm_steps(torch_model, case: LMCase, steps: int, optimizer, clip_norm: float,
                   after_step: Callable[[], object]) -> tuple[np.ndarray, np.ndarray]:
  """`steps` upstream training steps in train mode on the case's batches (seed offsets 10, 11, ...): zero_grad,
  backward, clip_grad_norm_, optimizer step, then `after_step()`. Returns the losses and pre-clip grad norms."""
  import torch  # noqa: PLC0415
  torch_model.train()
  losses, norms = [], []
  for step in range(steps):
    loss = torch_lm_losses(torch_model, lm_batch(case, seed_offset=10 + step), case.per_sample)["loss"]
    optimizer.zero_grad()
    loss.backward()
    norms.append(float(torch.nn.utils.clip_grad_norm_(torch_model.parameters(), clip_norm)))
    optimizer.step()
    after_step()
    losses.append(float(loss.detach()))
  return np.array(losses), np.array(norms)


def torch_lm_train_trajectory(case: LMCase = LM_TRAJECTORY_CASE, steps: int = LM_TRAJECTORY_STEPS,
                              make_optimizer: Callable | None = None) -> LMTrajectory:
  """The reference loop (main_t7.py): zero_grad, backward, clip_grad_norm_, AdamW step, linear schedule step.

  torch.optim.AdamW adds eps after the bias correction, as optax; upstream's transformers.AdamW adds it before
  (see lm.train's docstring and vslnet_torch.TransformersAdamW); `make_optimizer(groups)` swaps in another one.
  """
  import torch  # noqa: PLC0415
  torch_model, _, variables = lm_models(case)
  named = list(torch_model.named_parameters())
  groups = [{"params": [p for n, p in named if not _no_decay(n)], "weight_decay": LM_TRAIN["weight_decay"]},
            {"params": [p for n, p in named if _no_decay(n)], "weight_decay": 0.0}]
  if make_optimizer is None:
    optimizer = torch.optim.AdamW(groups, lr=LM_TRAIN["lr"], betas=(LM_TRAIN["b1"], LM_TRAIN["b2"]),
                                  eps=LM_TRAIN["eps"])
  else:
    optimizer = make_optimizer(groups)
  scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, (steps - s) / steps))
  losses, norms = torch_lm_steps(torch_model, case, steps, optimizer, LM_TRAIN["clip_norm"], scheduler.step)
  end = porting.vslnet_variables_from_state_dict(torch_model.state_dict(), variables)["params"]
  return LMTrajectory(losses, variables["params"], end, grad_norms=norms)


def lm_adam_clip_rows(ours: LMTrajectory | None = None, ref: LMTrajectory | None = None,
                      label: str = "lm.train.make_optimizer") -> list[Row]:
  ours = ours if ours is not None else lm_train_trajectory()
  ref = ref if ref is not None else torch_lm_train_trajectory()
  rows = trajectory_rows(f"lm.adam_clip[{label}]", _as_trajectory(ours), _as_trajectory(ref), ADAM_PARAM_TOL)

  norms = ref.grad_norms
  return [dataclasses.replace(r, detail=f"{r.detail}; pre-clip grad norms {norms.min():.2f}..{norms.max():.2f}"
                              .lstrip("; ")) for r in rows]


def _as_trajectory(t: LMTrajectory) -> Trajectory:
  return Trajectory(t.losses[:, None], lm_leaves(t.start), lm_leaves(t.end))


NOTES += [
    f"lm [{c.name}]: d={c.dim}, {c.num_heads} heads, words {c.word_dim}-d, chars {c.char_dim}-d "
    f"{c.char_channels}, video {c.visual_dim}-d, {c.max_pos_len} positions"
    f"{'' if c.position_embedding else ' (no positional table)'}; videos Lv={'/'.join(map(str, c.video_lengths))}"
    f", queries Lq={'/'.join(map(str, c.query_lengths))} in one batch padded to ({c.video_bucket}, "
    f"{c.query_bucket}, {c.char_len} chars) +1 filler row, noise in padded video steps; "
    + ("mask_conv_padding=True vs torch on each unpadded sample" if c.per_sample else
       "mask_conv_padding=False vs torch on the same padded batch (upstream's padding leak on both sides)")
    for c in LM_FORWARD_CASES]
NOTES += [f"lm.adam_clip [lm.train]: {LM_TRAJECTORY_STEPS} steps of lm.train.make_train_step with "
          f"lm.train.make_optimizer({LM_TRAIN}) vs torch clip_grad_norm_ + torch.optim.AdamW (no_decay groups) + "
          f"linear LambdaLR on [{LM_TRAJECTORY_CASE.name}]"]


@register("lm.forward")
def _lm_forward() -> list[Row]:
  return [row for case in LM_FORWARD_CASES for row in lm_forward_rows(case)]


@register("lm.losses")
def _lm_losses() -> list[Row]:
  return [row for case in LM_LOSS_CASES for row in lm_loss_rows(case)]


@register("lm.adam_clip")
def _lm_adam_clip() -> list[Row]:
  from iptnet_jax.parity.iptnet import iptnet_lm_adam_clip_rows  # noqa: PLC0415  (iptnet builds on this module)
  return lm_adam_clip_rows() + iptnet_lm_adam_clip_rows()
