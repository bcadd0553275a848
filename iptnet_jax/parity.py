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

Components live in `COMPONENTS` (name -> function returning rows); LM and iPTNet components are added
the same way with `@register("lm.something")`.
"""

from __future__ import annotations

import argparse
import dataclasses
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
  criterion: str  # "max-abs" or "rel": which error is held to `tol`
  detail: str = ""

  @property
  def error(self) -> float:
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
  """One row for two arrays, or for two trees with the same leaves (the worst leaf's relative error)."""
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
  return Row(component, max_abs, worst_rel, tol, criterion, detail)


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
# Report

def full_precision():
  """Context: float32 matmuls in JAX (no TF32 / bf16 passes on GPU or TPU) and in torch."""
  import torch  # noqa: PLC0415
  torch.set_float32_matmul_precision("highest")
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
