"""SM parity: anchor-free DSNet against its torch restatement (reference/dsnet_torch.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from iptnet_jax.datasets import anchor_free_labels, input_pipeline, summarization
from iptnet_jax.parity.common import (ADAM_PARAM_TOL, FORWARD_LAYER_TOL, FORWARD_NETWORK_TOL, LOSS_TOL, NOTES,
                                      SGD_PARAM_TOL, Row, Trajectory, compare, register,
                                      trajectory_rows)
from iptnet_jax.sm import anchor_free, porting
from iptnet_jax.sm import model as sm_model


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
  runs = anchor_free_labels.target_runs(target)
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
    offsets = anchor_free_labels.offset_labels(target)
    features = rng.normal(size=(length, case.feature_dim)).astype(np.float32)
    examples.append(summarization.TrainingExample(f"video_{i}", features, target, offsets,
                                                  anchor_free_labels.centerness_labels(target, offsets)))
  return examples


def sm_batch(examples, bucket: int, extra_rows: int = 1, padding_seed: int = 0) -> dict:
  """The real batch contract, with an empty trailing row and noise (not zeros) in the padded steps."""
  batch = input_pipeline.sm_device_fields(input_pipeline.sm_batch(examples, len(examples) + extra_rows, (bucket,),
                                                               with_labels=True))
  noise = np.random.default_rng(padding_seed).normal(scale=5.0, size=batch["features"].shape)
  batch["features"] = np.where(batch["mask"][..., None] > 0, batch["features"], noise).astype(np.float32)
  return batch


def sm_models(case: SMCase):
  """(torch model in eval mode with dropout 0, our model with dropout 0, our params ported from torch)."""
  import torch  # noqa: PLC0415
  from iptnet_jax.parity.reference import dsnet_torch  # noqa: PLC0415 (needs torch)
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
  from iptnet_jax.parity.reference import dsnet_torch  # noqa: PLC0415 (needs torch)
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
  from iptnet_jax.parity.reference import dsnet_torch  # noqa: PLC0415 (needs torch)
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
