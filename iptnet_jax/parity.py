"""Numeric parity of our JAX modules against minimal PyTorch restatements of the references.

    python -m iptnet_jax.parity            # every registered component
    python -m iptnet_jax.parity --only sm.forward,sm.losses
    python -m iptnet_jax.parity --list

prints one row per compared quantity (max-abs error, relative error, tolerance, pass/fail) and exits 1
if any row is out of tolerance (2 if PyTorch is missing). Needs the parity extra (torch==2.13.0, CPU) and
the restatements in tests/reference/ (a source checkout). Both sides run in float32 with full-precision
matmuls (JAX would otherwise use TF32 on recent GPUs); PyTorch runs on the CPU.

Conventions (docs/jax_style.md §3): weights are created by the torch model and ported into ours with
`iptnet_jax.porting`; dropout is off (rate 0, so training steps keep train mode on both sides); forward
tensors are compared by max-abs error (1e-5 per layer, 1e-4 for the whole network's outputs); losses,
gradients and training trajectories by relative error ||ours - ref|| / ||ref||, per parameter leaf,
reporting the worst leaf.

Components live in `COMPONENTS` (name -> function returning rows), added with `@register(name)`:
  sm.forward, sm.losses, sm.sgd, sm.adam        DSNet anchor-free (tests/reference/dsnet_torch.py)
  lm.forward, lm.losses, lm.adam_clip           VSLNet, PyTorch version (tests/reference/vslnet_torch.py): each
                                                module on torch's input to it, the network end to end, loss terms
                                                and gradients, the LM trainer's and the iPTNet LM phase's steps
  iptnet.propagation, iptnet.divergence         PM and D in float64 against the released code's loops
                                                (tests/reference/iptnet_torch.py), gradients included
  iptnet.ema                                    the EMA teacher (float64, and along the iPTNet LM phase)
LM padding: our VSLNet masks the padded steps before each depthwise conv (mask_conv_padding=True, the default);
upstream convolves them into the last valid steps. Cases with the mask compare our padded batch with torch on
each unpadded sample (where upstream has no padding to leak); the 'upstream padding' case turns the mask off and
gives torch the same padded batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from iptnet_jax import porting, run_log
from iptnet_jax.datasets import summarization
from iptnet_jax.sm import anchor_free
from iptnet_jax.sm import model as sm_model

FORWARD_LAYER_TOL = 1e-5  # max-abs, each stage of the forward pass
FORWARD_NETWORK_TOL = 1e-4  # max-abs, the network's outputs (probabilities and offsets)
LOSS_TOL = 1e-4  # relative, loss values and gradients
TRAJECTORY_LOSS_TOL = 1e-4  # relative, per-step losses along a short training run
SGD_PARAM_TOL = 1e-4  # relative, per-leaf parameter displacement after the run
# Adam divides each gradient element by its own running RMS, so float rounding in small gradient elements
# reaches the update undamped; 1e-3 still separates coupled L2 from AdamW or no decay by > 100x.
ADAM_PARAM_TOL = 1e-3


class MissingTorchError(ImportError):
  pass


@dataclasses.dataclass(frozen=True)
class Row:
  component: str
  max_abs: float
  rel: float
  tol: float
  criterion: str  # "max-abs", "rel" or "max-abs/scale": which error is held to `tol`
  detail: str = ""
  scale: float = 1.0  # "max-abs/scale": max(1, max |ref|)

  @property
  def error(self) -> float:
    if self.criterion == "max-abs/scale":
      return self.max_abs / self.scale
    return self.max_abs if self.criterion == "max-abs" else self.rel

  @property
  def passed(self) -> bool:
    return math.isfinite(self.error) and self.error <= self.tol


COMPONENTS: dict[str, Callable[[], list[Row]]] = {}
NOTES: list[str] = []  # what the cases in the component names are; printed above the table


def register(name: str):
  def add(fn):
    if name in COMPONENTS:
      raise ValueError(f"parity component {name!r} registered twice")
    COMPONENTS[name] = fn
    return fn
  return add


# ----------------------------------------------------------------------------------------------------
# Comparison helpers

def _flat(tree) -> dict[str, np.ndarray]:
  if isinstance(tree, Mapping):
    return {f"{k}/{sub}" if sub else str(k): v for k, t in tree.items() for sub, v in _flat(t).items()}
  return {"": np.asarray(tree, np.float64)}


def _relative(diff_norm: float, ref_norm: float) -> float:
  if ref_norm == 0.0:
    return 0.0 if diff_norm == 0.0 else math.inf
  return diff_norm / ref_norm


def compare(component: str, ours, ref, tol: float, criterion: str = "max-abs") -> Row:
  """One row for two arrays, or for two trees with the same leaves (the worst leaf's relative error).

  criterion "max-abs/scale" holds max-abs / max(1, max |ref|) to `tol`: max-abs for tensors of magnitude <= 1,
  relative to the largest magnitude beyond (float32 rounding grows with the magnitude)."""
  ours, ref = _flat(ours), _flat(ref)
  if ours.keys() != ref.keys():
    raise ValueError(f"{component}: different leaves {sorted(ours.keys() ^ ref.keys())}")
  max_abs, worst_rel, worst_leaf = 0.0, 0.0, ""
  for name in sorted(ref):
    a, b = ours[name], ref[name]
    if a.shape != b.shape:
      raise ValueError(f"{component}/{name}: shapes {a.shape} vs {b.shape}")
    diff = a - b
    max_abs = max(max_abs, float(np.max(np.abs(diff), initial=0.0)))
    rel = _relative(float(np.linalg.norm(diff)), float(np.linalg.norm(b)))
    if rel >= worst_rel:
      worst_rel, worst_leaf = rel, name
  detail = f"worst leaf {worst_leaf}" if len(ref) > 1 else ""
  scale = 1.0
  if criterion == "max-abs/scale":
    scale = max([1.0] + [float(np.max(np.abs(b), initial=0.0)) for b in ref.values()])
    detail = f"{detail}; max |ref| {scale:.3g}".lstrip("; ")
  return Row(component, max_abs, worst_rel, tol, criterion, detail, scale)


def load_reference(name: str):
  """A torch restatement from tests/reference/ (loaded by file path, so no `tests` package is needed)."""
  try:
    import torch  # noqa: F401, PLC0415
  except ImportError as err:
    raise MissingTorchError("parity needs PyTorch: `.venv/bin/pip install torch==2.13.0` (CPU build) or "
                            "`pip install -e '.[parity]'`") from err
  module_name = f"iptnet_jax_reference_{name}"
  if module_name in sys.modules:
    return sys.modules[module_name]
  path = Path(__file__).resolve().parents[1] / "tests" / "reference" / f"{name}.py"
  if not path.is_file():
    raise FileNotFoundError(f"{path}: the torch restatements ship with the source tree, not the package")
  spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module
  spec.loader.exec_module(module)
  return module


# ----------------------------------------------------------------------------------------------------
# SM: anchor-free DSNet

@dataclasses.dataclass(frozen=True)
class SMCase:
  """A model width, some videos (one padded batch) and the seed that draws weights, features, targets."""
  name: str
  feature_dim: int
  num_heads: int
  num_hidden: int
  lengths: tuple[int, ...]
  bucket: int
  seed: int


SM_SMALL = SMCase("small", feature_dim=64, num_heads=4, num_hidden=16, lengths=(7, 23, 50), bucket=64, seed=0)
SM_DSNET = SMCase("dsnet", feature_dim=1024, num_heads=8, num_hidden=128, lengths=(17, 40), bucket=48, seed=1)


def random_target(rng: np.random.Generator, length: int) -> np.ndarray:
  """Binary keyshot-like target: runs of ones of random length, at least one of them 1 step long."""
  target = np.zeros(length, np.float32)
  span = max(2, length // 4)
  pos = int(rng.integers(0, span))
  while pos < length:
    run = int(rng.integers(1, span + 1))
    target[pos:pos + run] = 1
    pos += run + int(rng.integers(1, span + 1))
  runs = anchor_free.target_runs(target)
  if not np.any(runs[:, 1] - runs[:, 0] == 1):
    # A 1-step run has IoU 0 whatever the prediction (soft-IoU loss -log 1e-8, zero gradient): keep one.
    padded = np.concatenate([[0], target, [0]])
    isolated = np.flatnonzero((padded[:-2] == 0) & (padded[1:-1] == 0) & (padded[2:] == 0))
    target[isolated[0] if len(isolated) else length - 1] = 1
  return target


def sm_examples(case: SMCase, seed_offset: int = 0) -> list[summarization.TrainingExample]:
  rng = np.random.default_rng([case.seed, seed_offset])
  examples = []
  for i, length in enumerate(case.lengths):
    target = random_target(rng, length)
    offsets = anchor_free.offset_labels(target)
    features = rng.normal(size=(length, case.feature_dim)).astype(np.float32)
    examples.append(summarization.TrainingExample(f"video_{i}", features, target, offsets,
                                                  anchor_free.centerness_labels(target, offsets)))
  return examples


def sm_batch(examples, bucket: int, extra_rows: int = 1, padding_seed: int = 0) -> dict:
  """The real batch contract, with an empty trailing row and noise (not zeros) in the padded steps."""
  batch = summarization.device_fields(summarization.make_batch(examples, len(examples) + extra_rows, (bucket,),
                                                               with_labels=True))
  noise = np.random.default_rng(padding_seed).normal(scale=5.0, size=batch["features"].shape)
  batch["features"] = np.where(batch["mask"][..., None] > 0, batch["features"], noise).astype(np.float32)
  return batch


def sm_models(case: SMCase):
  """(torch model in eval mode with dropout 0, our model with dropout 0, our params ported from torch)."""
  import torch  # noqa: PLC0415
  dsnet_torch = load_reference("dsnet_torch")
  torch.manual_seed(case.seed)
  torch_model = dsnet_torch.DSNetAF(case.feature_dim, case.num_hidden, case.num_heads, dropout=0.0).eval()
  model = sm_model.DSNetAF(num_hidden=case.num_hidden, num_heads=case.num_heads, attention_dim=case.feature_dim,
                           dropout_rate=0.0)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 4, case.feature_dim)),
                                             jnp.ones((1, 4)), deterministic=True))["params"]
  params = porting.dsnet_af_params_from_state_dict(torch_model.state_dict(), reference_params=shapes)
  return torch_model, model, params


def _torch_grads_as_params(torch_model) -> dict:
  """The .grad of every torch parameter, laid out as our params (a missing grad is a zero)."""
  import torch  # noqa: PLC0415
  grads = {name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in torch_model.named_parameters()}
  return porting.dsnet_af_params_from_state_dict(grads)


def sm_forward_rows(case: SMCase) -> list[Row]:
  """Each stage of the forward pass, every video of a padded batch vs torch on the unpadded video."""
  import torch  # noqa: PLC0415
  torch_model, model, params = sm_models(case)
  examples = sm_examples(case)
  batch = sm_batch(examples, case.bucket)

  @jax.jit
  def forward(params, features, mask):
    out, state = model.apply({"params": params}, features, mask, deterministic=True,
                             capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]
    return {"attention": inter["base_model"]["__call__"][0], "layer_norm": inter["layer_norm"]["__call__"][0],
            "hidden": out["hidden"], "cls_logits": out["cls_logits"], "loc_logits": out["log_offsets"],
            "ctr_logits": out["ctr_logits"], **sm_model.predictions(out)}

  ours = jax.device_get(forward(params, batch["features"], batch["mask"]))
  ours = {k: v for k, v in ours.items()}
  ours["cls"], ours["loc"], ours["ctr"] = ours.pop("cls_prob"), ours.pop("offsets"), ours.pop("ctr_prob")
  ref = {}
  with torch.no_grad():
    for example in examples:
      for key, value in torch_model.intermediates(torch.from_numpy(example.features)[None]).items():
        ref.setdefault(key, []).append(value.numpy())
  lengths = [len(e.features) for e in examples]
  tag = f"sm.forward[{case.name}]"
  stages = [("attention", "attention block"), ("layer_norm", "residual LayerNorm"), ("hidden", "hidden (fc1)"),
            ("cls_logits", "cls logits"), ("loc_logits", "loc log-offsets"), ("ctr_logits", "ctr logits")]
  rows = []
  for key, label in stages:
    mine = np.concatenate([ours[key][i, :n] for i, n in enumerate(lengths)])
    rows.append(compare(f"{tag} {label}", mine, np.concatenate(ref[key]), FORWARD_LAYER_TOL))
  mine = {k: np.concatenate([ours[k][i, :n] for i, n in enumerate(lengths)]) for k in ("cls", "loc", "ctr")}
  theirs = {k: np.concatenate(ref[k]) for k in ("cls", "loc", "ctr")}
  rows.append(compare(f"{tag} network (cls, offsets, ctr)", mine, theirs, FORWARD_NETWORK_TOL))
  return rows


LOSS_TERMS = ("cls", "loc", "ctr", "total")


def sm_loss_rows(case: SMCase) -> list[Row]:
  """Loss values and their gradients wrt every parameter: our padded-batch mean vs torch's per-video mean."""
  import torch  # noqa: PLC0415
  dsnet_torch = load_reference("dsnet_torch")
  torch_model, model, params = sm_models(case)
  examples = sm_examples(case, seed_offset=1)
  batch = sm_batch(examples, case.bucket)

  def loss_terms(params):
    outputs = model.apply({"params": params}, batch["features"], batch["mask"], deterministic=True)
    return anchor_free.anchor_free_losses(outputs, batch)

  values = jax.device_get(jax.jit(loss_terms)(params))
  all_grads = jax.device_get(jax.jit(jax.jacrev(loss_terms))(params))  # {term: grads}
  rows = []
  tag = f"sm.loss[{case.name}]"
  for name in LOSS_TERMS:
    value, grads = values[name], all_grads[name]
    torch_model.zero_grad()
    per_video = [dsnet_torch.losses(torch_model, e.features, e.target, e.offsets, e.centerness)[name]
                 for e in examples]
    ref_value = torch.stack(per_video).mean()
    ref_value.backward()
    rows.append(compare(f"{tag} {name} value", np.asarray(value), ref_value.detach().numpy(), LOSS_TOL, "rel"))
    rows.append(compare(f"{tag} {name} grad", grads, _torch_grads_as_params(torch_model),
                        LOSS_TOL, "rel"))
  return rows


@dataclasses.dataclass(frozen=True)
class Trajectory:
  losses: np.ndarray  # (steps, 4): cls, loc, ctr, total
  start: dict  # params before the first step
  end: dict  # params after the last step


def sm_jax_trajectory(case: SMCase, tx: optax.GradientTransformation, steps: int) -> Trajectory:
  """`steps` steps of our jitted train step, one padded video per step (batch size 1, as DSNet)."""
  from iptnet_jax.sm import train as sm_train  # noqa: PLC0415  (the trainer pulls in evaluation and orbax)
  _, model, params = sm_models(case)
  examples = sm_examples(case, seed_offset=2)
  train_step = sm_train.make_train_step(model, tx, lambda_reg=1.0, lambda_ctr=1.0)
  start = jax.tree.map(np.array, params)  # a copy: the train step donates the device buffers
  params = jax.tree.map(jnp.asarray, params)
  state = sm_train.TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                              rng=jax.random.key(case.seed))
  history = []
  for step in range(steps):
    batch = sm_batch([examples[step % len(examples)]], case.bucket, extra_rows=0, padding_seed=step)
    state, losses = train_step(state, batch)
    history.append([float(losses[k]) for k in LOSS_TERMS])
  return Trajectory(np.array(history), start, jax.device_get(state.params))


def sm_torch_trajectory(case: SMCase, make_optimizer: Callable, steps: int) -> Trajectory:
  """The same run in the torch restatement: train mode (dropout 0), one video per step."""
  dsnet_torch = load_reference("dsnet_torch")
  torch_model, _, start = sm_models(case)
  examples = sm_examples(case, seed_offset=2)
  optimizer = make_optimizer(torch_model.parameters())
  history = []
  for step in range(steps):
    video = dataclasses.asdict(examples[step % len(examples)])
    losses = dsnet_torch.train_step(torch_model, optimizer, video)
    history.append([losses[k] for k in LOSS_TERMS])
  end = porting.dsnet_af_params_from_state_dict(torch_model.state_dict())
  return Trajectory(np.array(history), start, end)


def trajectory_rows(tag: str, ours: Trajectory, ref: Trajectory, param_tol: float) -> list[Row]:
  displacement = lambda t: jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, t.end, t.start)
  loss_rel = np.abs(ours.losses - ref.losses) / np.abs(ref.losses)
  steps = len(ref.losses)
  return [
      Row(f"{tag} losses, {steps} steps", float(np.max(np.abs(ours.losses - ref.losses))), float(loss_rel.max()),
          TRAJECTORY_LOSS_TOL, "rel", "worst step and term"),
      compare(f"{tag} param displacement", displacement(ours), displacement(ref), param_tol, "rel"),
  ]


SGD_LR = 0.05
ADAM_LR, ADAM_WEIGHT_DECAY = 1e-3, 0.05  # a decay large enough that coupled vs decoupled L2 shows
TRAJECTORY_STEPS = 5


def sm_sgd_rows(case: SMCase = SM_SMALL, steps: int = TRAJECTORY_STEPS) -> list[Row]:
  import torch  # noqa: PLC0415
  ours = sm_jax_trajectory(case, optax.sgd(SGD_LR), steps)
  ref = sm_torch_trajectory(case, lambda p: torch.optim.SGD(p, lr=SGD_LR), steps)
  return trajectory_rows(f"sm.sgd[{case.name}]", ours, ref, SGD_PARAM_TOL)


def sm_adam_rows(case: SMCase = SM_SMALL, steps: int = TRAJECTORY_STEPS,
                 tx: optax.GradientTransformation | None = None, label: str = "make_optimizer") -> list[Row]:
  """Our Adam with coupled L2 (sm.train.make_optimizer) vs torch.optim.Adam(weight_decay=...)."""
  import torch  # noqa: PLC0415
  from iptnet_jax.sm import train as sm_train  # noqa: PLC0415
  tx = tx if tx is not None else sm_train.make_optimizer(ADAM_LR, ADAM_WEIGHT_DECAY)
  ours = sm_jax_trajectory(case, tx, steps)
  ref = sm_torch_trajectory(case, lambda p: torch.optim.Adam(p, lr=ADAM_LR, weight_decay=ADAM_WEIGHT_DECAY), steps)
  return trajectory_rows(f"sm.adam[{case.name}, {label}]", ours, ref, ADAM_PARAM_TOL)


NOTES += [
    f"sm [{c.name}]: D={c.feature_dim}, {c.num_heads} heads, hidden {c.num_hidden}; videos of T="
    f"{'/'.join(map(str, c.lengths))} in one batch padded to {c.bucket} steps (+1 empty row, noise in the "
    f"padding) vs torch on each unpadded video" for c in (SM_SMALL, SM_DSNET)]
NOTES += [f"sm.sgd / sm.adam: {TRAJECTORY_STEPS} train steps, one padded video per step, dropout 0; "
          f"optax.sgd({SGD_LR}) vs torch SGD; sm.train.make_optimizer({ADAM_LR}, {ADAM_WEIGHT_DECAY}) vs "
          f"torch.optim.Adam(lr={ADAM_LR}, weight_decay={ADAM_WEIGHT_DECAY})"]


@register("sm.forward")
def _sm_forward() -> list[Row]:
  return sm_forward_rows(SM_SMALL) + sm_forward_rows(SM_DSNET)


@register("sm.losses")
def _sm_losses() -> list[Row]:
  return sm_loss_rows(SM_SMALL) + sm_loss_rows(SM_DSNET)


@register("sm.sgd")
def _sm_sgd() -> list[Row]:
  return sm_sgd_rows()


@register("sm.adam")
def _sm_adam() -> list[Row]:
  return sm_adam_rows()


# ----------------------------------------------------------------------------------------------------
# LM: VSLNet (PyTorch version)

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
LM_MODEL_INPUTS = ("video", "video_mask", "word_ids", "char_ids", "query_mask")
LM_LOSS_TERMS = ("span_loss", "highlight_loss", "loss")
HIGHLIGHT_LAMBDA = 5.0


def lm_batch(case: LMCase, seed_offset: int = 0) -> dict:
  """A batch of the LM batch contract (lm.train.DEVICE_FIELDS): real rows, then one filler row repeating
  the first (example_mask 0); noise (not zeros) in the padded video steps; at least one UNK word and one
  word shorter than the widest char kernel."""
  from iptnet_jax.lm import labels as lm_labels  # noqa: PLC0415
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
    highlight[i, :n_v] = lm_labels.highlight_labels(int(start[i]), int(end[i]), n_v)
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
  vslnet_torch = load_reference("vslnet_torch")
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
  vslnet_torch = load_reference("vslnet_torch")
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
# iPTNet's LM group: plain Adam, lr 5e-4 (loc_lr), no decay, clip 1.0 in LM phases; teachers keep 0.3.
IPTNET_LM = dict(lm_lr=5e-4, clip_norm=1.0, teacher_keep=0.3, sm_lr=1e-4, sm_weight_decay=1e-5)
LM_TRAJECTORY_CASE = LM_SMALL
IPTNET_LM_CASE = LM_NOPOS  # the iPTNet LM has no positional table


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
  torch_model.train()
  losses, norms = [], []
  for step in range(steps):
    loss = torch_lm_losses(torch_model, lm_batch(case, seed_offset=10 + step), case.per_sample)["loss"]
    optimizer.zero_grad()
    loss.backward()
    norms.append(float(torch.nn.utils.clip_grad_norm_(torch_model.parameters(), LM_TRAIN["clip_norm"])))
    optimizer.step()
    scheduler.step()
    losses.append(float(loss.detach()))
  end = porting.vslnet_variables_from_state_dict(torch_model.state_dict(), variables)["params"]
  return LMTrajectory(np.array(losses), variables["params"], end, grad_norms=np.array(norms))


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


def iptnet_lm_trajectory(case: LMCase = IPTNET_LM_CASE, steps: int = LM_TRAJECTORY_STEPS) -> LMTrajectory:
  """LM phases (source LM_ONLY) of our joint iPTNet step: per-module Adam, LM clipping in the step, EMA teachers."""
  from iptnet_jax.iptnet import batches as joint_batches  # noqa: PLC0415
  from iptnet_jax.iptnet import step as step_lib  # noqa: PLC0415
  from iptnet_jax.iptnet import teaching  # noqa: PLC0415
  _, lm, variables = lm_models(case)
  sm = sm_model.DSNetAF(num_hidden=8, num_heads=2, attention_dim=8, dropout_rate=0.0, with_shift_head=True)
  sm_params = sm.init(jax.random.key(case.seed), jnp.zeros((1, 4, case.visual_dim)), jnp.ones((1, 4)),
                      deterministic=True)["params"]
  tx = step_lib.make_optimizer(IPTNET_LM["sm_lr"], IPTNET_LM["sm_weight_decay"], IPTNET_LM["lm_lr"],
                               IPTNET_LM["teacher_keep"])
  settings = step_lib.JointSettings(highlight_lambda=HIGHLIGHT_LAMBDA, lm_clip_norm=IPTNET_LM["clip_norm"])
  joint_step = step_lib.make_joint_step(sm, lm, tx, settings, sources=(step_lib.LM_ONLY,))
  params = {"sm": sm_params, "lm": jax.tree.map(jnp.asarray, variables["params"])}
  start = jax.tree.map(np.array, params)
  state = step_lib.JointState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                              rng=jax.random.key(case.seed))
  constants = jax.tree.map(jnp.asarray, variables["constants"])
  losses = []
  for step in range(steps):
    batch = joint_batches.joint_batch(step_lib.LM_ONLY, lm=lm_batch(case, seed_offset=10 + step),
                                      feature_dim=case.visual_dim)
    state, metrics = joint_step(state, constants, batch)
    losses.append(float(metrics["total"]))
  end = jax.device_get(state.params)
  teachers = jax.device_get(teaching.teacher_params(state.opt_state))
  sm_moved = max(float(np.max(np.abs(np.asarray(a) - b))) for tree in (end["sm"], teachers["sm"])
                 for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(start["sm"])))
  return LMTrajectory(np.array(losses), start["lm"], end["lm"], teachers["lm"], sm_moved=sm_moved)


def torch_iptnet_lm_trajectory(case: LMCase = IPTNET_LM_CASE, steps: int = LM_TRAJECTORY_STEPS) -> LMTrajectory:
  """The released code's LM phase (train_loc, coll=False): Adam(loc_lr) on the LM, clip_grad_norm_ on the LM
  parameters, step, then the EMA of the LM teacher."""
  import copy  # noqa: PLC0415

  import torch  # noqa: PLC0415
  iptnet_torch = load_reference("iptnet_torch")
  torch_model, _, variables = lm_models(case)
  teacher = copy.deepcopy(torch_model)
  optimizer = torch.optim.Adam(torch_model.parameters(), lr=IPTNET_LM["lm_lr"])
  torch_model.train()
  losses, norms = [], []
  for step in range(steps):
    loss = torch_lm_losses(torch_model, lm_batch(case, seed_offset=10 + step), case.per_sample)["loss"]
    optimizer.zero_grad()
    loss.backward()
    norms.append(float(torch.nn.utils.clip_grad_norm_(torch_model.parameters(), IPTNET_LM["clip_norm"])))
    optimizer.step()
    iptnet_torch.ema_update(teacher, torch_model, IPTNET_LM["teacher_keep"])
    losses.append(float(loss.detach()))
  port = lambda m: porting.vslnet_variables_from_state_dict(m.state_dict(), variables)["params"]
  return LMTrajectory(np.array(losses), variables["params"], port(torch_model), port(teacher),
                      grad_norms=np.array(norms))


def _iptnet_lm_trajectories() -> tuple[LMTrajectory, LMTrajectory]:
  """Ours and torch's, computed once per process (lm.adam_clip and iptnet.ema read the same run)."""
  if "iptnet_lm" not in _CACHE:
    _CACHE["iptnet_lm"] = (iptnet_lm_trajectory(), torch_iptnet_lm_trajectory())
  return _CACHE["iptnet_lm"]


_CACHE: dict[str, object] = {}


def iptnet_lm_adam_clip_rows() -> list[Row]:
  ours, ref = _iptnet_lm_trajectories()
  return lm_adam_clip_rows(ours, ref, label="iPTNet LM phase, Adam + clip in the joint step")


def iptnet_ema_rows() -> list[Row]:
  ours, ref = _iptnet_lm_trajectories()
  teacher = lambda t: Trajectory(t.losses[:, None], lm_leaves(t.start), lm_leaves(t.teacher_end))
  displacement = lambda t: jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, t.end, t.start)
  tag = f"iptnet.ema[LM teacher, keep {IPTNET_LM['teacher_keep']}, {len(ref.losses)} steps]"
  return [compare(f"{tag} teacher displacement", displacement(teacher(ours)), displacement(teacher(ref)),
                  ADAM_PARAM_TOL, "rel"),
          Row("iptnet.ema[SM student + teacher in LM phases] max |change|", ours.sm_moved, ours.sm_moved, 0.0,
              "max-abs", "gated: no loss, no Adam step, no EMA")]


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
          f"linear LambdaLR on [{LM_TRAJECTORY_CASE.name}]",
          f"lm.adam_clip [iPTNet] / iptnet.ema: {LM_TRAJECTORY_STEPS} LM_ONLY steps of iptnet.step.make_joint_step "
          f"({IPTNET_LM}) vs torch Adam + clip_grad_norm_ + EMA teacher on [{IPTNET_LM_CASE.name}]"]


@register("lm.forward")
def _lm_forward() -> list[Row]:
  return [row for case in LM_FORWARD_CASES for row in lm_forward_rows(case)]


@register("lm.losses")
def _lm_losses() -> list[Row]:
  return [row for case in LM_LOSS_CASES for row in lm_loss_rows(case)]


@register("lm.adam_clip")
def _lm_adam_clip() -> list[Row]:
  return lm_adam_clip_rows() + iptnet_lm_adam_clip_rows()


# ----------------------------------------------------------------------------------------------------
# iPTNet: propagation (PM), divergence (TM) and the EMA teacher

FLOAT64_TOL = 1e-10  # relative, float64 values and gradients of PM and D


@dataclasses.dataclass(frozen=True)
class PropagationCase:
  name: str
  lengths: tuple[int, ...]  # one padded batch; lengths longer than, shorter than and equal to the window
  width: int
  feature_dim: int
  radius: int
  seed: int


PM_CASES = (PropagationCase("r10", (25, 3, 14, 1, 40), 40, 16, radius=10, seed=0),
            PropagationCase("r2", (25, 3, 14, 1), 25, 6, radius=2, seed=1))


def _propagation_inputs(case: PropagationCase) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(case.seed)
  shape = (len(case.lengths), case.width)
  mask = (np.arange(case.width)[None] < np.array(case.lengths)[:, None]).astype(np.float64)
  return {"scores": rng.uniform(size=shape), "features": rng.normal(size=shape + (case.feature_dim,)),
          "shift": rng.normal(size=shape), "mask": mask, "cotangent": rng.normal(size=shape)}


def propagation_rows(case: PropagationCase, variant: str) -> list[Row]:
  """iptnet.propagation.propagate on a padded batch vs the released loop per sequence, float64: the map and
  the gradient of <cotangent, map> wrt scores, features and the shift head's output (zeta)."""
  import torch  # noqa: PLC0415

  from iptnet_jax.iptnet import propagation  # noqa: PLC0415
  iptnet_torch = load_reference("iptnet_torch")
  x = _propagation_inputs(case)
  with jax.enable_x64(True):
    def probe(scores, features, shift):
      out = propagation.propagate(scores, features, jnp.asarray(x["mask"]), shift, radius=case.radius,
                                  variant=variant)
      return jnp.sum(out * x["cotangent"]), out

    (_, ours), grads = jax.jit(jax.value_and_grad(probe, argnums=(0, 1, 2), has_aux=True))(
        x["scores"], x["features"], x["shift"])
    ours, grads = np.asarray(ours), [np.asarray(g) for g in grads]
  ref = np.zeros_like(x["scores"])
  ref_grads = [np.zeros_like(x["scores"]), np.zeros_like(x["features"]), np.zeros_like(x["shift"])]
  for i, n in enumerate(case.lengths):
    inputs = [torch.tensor(x[k][i, :n], requires_grad=True) for k in ("scores", "features", "shift")]
    out = iptnet_torch.prop(*inputs, radius=case.radius, variant=variant)
    (out * torch.from_numpy(x["cotangent"][i, :n])).sum().backward()
    ref[i, :n] = out.detach().numpy()
    for dst, src in zip(ref_grads, inputs):
      dst[i, :n] = src.grad.numpy()
  tag = f"iptnet.propagation[{variant}, {case.name}]"
  return [compare(f"{tag} map", ours, ref, FLOAT64_TOL, "rel"),
          compare(f"{tag} grads (scores, features, zeta)", dict(zip(("scores", "features", "zeta"), grads)),
                  dict(zip(("scores", "features", "zeta"), ref_grads)), FLOAT64_TOL, "rel")]


DIVERGENCE_LENGTHS = (30, 7, 1, 18)  # one padded batch (+1 filler row, example_mask 0)


def divergence_rows(direction: str = "target_to_student") -> list[Row]:
  """teaching.divergence (softmax over valid steps) vs the mean over samples of torch F.kl_div(log_softmax(student),
  softmax(target), reduction='sum') on each unpadded sample, float64; value and gradient into both arguments."""
  import torch  # noqa: PLC0415

  from iptnet_jax.iptnet import teaching  # noqa: PLC0415
  iptnet_torch = load_reference("iptnet_torch")
  rng = np.random.default_rng(len(direction))
  width, real = max(DIVERGENCE_LENGTHS), len(DIVERGENCE_LENGTHS)
  lengths = DIVERGENCE_LENGTHS + (DIVERGENCE_LENGTHS[0],)
  mask = (np.arange(width)[None] < np.array(lengths)[:, None]).astype(np.float64)
  example_mask = (np.arange(real + 1) < real).astype(np.float64)
  target = rng.uniform(size=mask.shape)  # an LM highlight map in [0, 1]
  student = 3.0 * rng.normal(size=mask.shape)  # a propagated map, unbounded
  with jax.enable_x64(True):
    value, grads = jax.jit(jax.value_and_grad(
        lambda t, s: teaching.divergence(t, s, jnp.asarray(mask), jnp.asarray(example_mask), direction=direction),
        argnums=(0, 1)))(target, student)
    value, grads = float(value), [np.asarray(g) for g in grads]
  t_ref = torch.tensor(target, requires_grad=True)
  s_ref = torch.tensor(student, requires_grad=True)
  terms = []
  for i, n in enumerate(DIVERGENCE_LENGTHS):
    a, b = t_ref[i, :n], s_ref[i, :n]
    terms.append(iptnet_torch.kl(a, b) if direction == "target_to_student" else iptnet_torch.kl(b, a))
  ref = torch.stack(terms).mean()
  ref.backward()
  tag = f"iptnet.divergence[softmax, {direction}]"
  return [compare(f"{tag} value", np.asarray(value), ref.detach().numpy(), FLOAT64_TOL, "rel"),
          compare(f"{tag} grads (target, student)", {"target": grads[0], "student": grads[1]},
                  {"target": t_ref.grad.numpy(), "student": s_ref.grad.numpy()}, FLOAT64_TOL, "rel")]


def ema_update_rows(keep: float = 0.3, steps: int = 4) -> list[Row]:
  """ema_teacher alone, float64: teacher after `steps` updates of random student moves vs the torch EMA loop."""
  import torch  # noqa: PLC0415

  from iptnet_jax.iptnet import teaching  # noqa: PLC0415
  iptnet_torch = load_reference("iptnet_torch")
  rng = np.random.default_rng(5)
  params = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(5,))}
  moves = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(steps)]
  with jax.enable_x64(True):
    tx = teaching.ema_teacher(keep)
    p = jax.tree.map(jnp.asarray, params)
    state = tx.init(p)
    for move in moves:
      updates, state = tx.update(jax.tree.map(jnp.asarray, move), state, p)
      p = optax.apply_updates(p, updates)
    ours = jax.tree.map(np.asarray, state.teacher)
  student = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()})
  teacher = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()})
  for move in moves:
    with torch.no_grad():
      for k, v in move.items():
        student[k].add_(torch.from_numpy(v))
    iptnet_torch.ema_update(teacher, student, keep)
  ref = {k: v.detach().numpy() for k, v in teacher.items()}
  return [compare(f"iptnet.ema[ema_teacher({keep}), {steps} updates, float64] teacher", ours, ref, FLOAT64_TOL,
                  "rel")]


NOTES += [f"iptnet.propagation [{c.name}]: float64, radius {c.radius}, alpha 0.5, sigma 4, sequences of "
          f"T={'/'.join(map(str, c.lengths))} padded to {c.width}, {c.feature_dim}-d features; ours on the padded "
          "batch vs the released loop per sequence; grads of <random cotangent, map>" for c in PM_CASES]
NOTES += [f"iptnet.divergence: float64, T={'/'.join(map(str, DIVERGENCE_LENGTHS))} padded +1 filler row; mean "
          "over samples of F.kl_div(log_softmax(student), softmax(target), reduction='sum'), no detach"]


@register("iptnet.propagation")
def _iptnet_propagation() -> list[Row]:
  from iptnet_jax.iptnet import propagation  # noqa: PLC0415
  return [row for variant in propagation.VARIANTS for case in PM_CASES for row in propagation_rows(case, variant)]


@register("iptnet.divergence")
def _iptnet_divergence() -> list[Row]:
  return divergence_rows("target_to_student") + divergence_rows("student_to_target")


@register("iptnet.ema")
def _iptnet_ema() -> list[Row]:
  return ema_update_rows() + iptnet_ema_rows()


# ----------------------------------------------------------------------------------------------------
# Report

def full_precision():
  """Context: float32 matmuls in JAX (no TF32 / bf16 passes on GPU or TPU) and in torch; one torch thread (the
  restatements run many tiny ops, where intra-op threads cost several times more than they save)."""
  import torch  # noqa: PLC0415
  torch.set_float32_matmul_precision("highest")
  torch.set_num_threads(1)
  return jax.default_matmul_precision("float32")


def run(names: list[str]) -> list[Row]:
  unknown = [n for n in names if n not in COMPONENTS]
  if unknown:
    raise KeyError(f"unknown parity components {unknown}; known: {sorted(COMPONENTS)}")
  rows = []
  with full_precision():
    for name in names:
      rows += COMPONENTS[name]()
  return rows


def format_rows(rows: list[Row]) -> str:
  table = [[r.component, f"{r.max_abs:.2e}", f"{r.rel:.2e}", f"{r.criterion} <= {r.tol:.0e}",
            "pass" if r.passed else "FAIL", r.detail] for r in rows]
  return run_log.format_table(["component", "max-abs error", "relative error", "tolerance", "result", "note"],
                              table)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m iptnet_jax.parity", description=__doc__.split("\n\n")[0])
  parser.add_argument("--only", default="", help="comma-separated component names (default: all)")
  parser.add_argument("--list", action="store_true", help="list the registered components and exit")
  args = parser.parse_args(argv)
  if args.list:
    print("\n".join(COMPONENTS))
    return 0
  names = [n for n in args.only.split(",") if n] or list(COMPONENTS)
  try:
    import torch  # noqa: PLC0415
  except ImportError:
    print("parity needs PyTorch: `.venv/bin/pip install torch==2.13.0` (CPU build)", file=sys.stderr)
    return 2
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch.__version__} on cpu; float32, "
        f"matmul precision float32 on both sides, dropout off")
  rows = run(names)
  print("\n".join(NOTES) + "\n")
  print(format_rows(rows))
  failed = [r.component for r in rows if not r.passed]
  print(f"\n{len(rows) - len(failed)}/{len(rows)} within tolerance" + (f"; FAILED: {failed}" if failed else ""))
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
