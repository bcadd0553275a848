"""iPTNet parity against the released code (reference/iptnet_torch.py): the LM phase of our joint step (Adam,
clipping, the EMA teacher), propagation (PM), divergence (TM) and the EMA teacher alone."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from iptnet_jax.lm import porting
from iptnet_jax.parity.common import ADAM_PARAM_TOL, NOTES, Row, Trajectory, compare, register
from iptnet_jax.parity.lm import (HIGHLIGHT_LAMBDA, LM_NOPOS, LM_TRAJECTORY_STEPS, LMCase, LMTrajectory,
                                  lm_adam_clip_rows, lm_batch, lm_leaves, lm_models, torch_lm_steps)
from iptnet_jax.sm import model as sm_model

# iPTNet's LM group: plain Adam, lr 5e-4 (loc_lr), no decay, clip 1.0 in LM phases; teachers keep 0.3.
IPTNET_LM = dict(lm_lr=5e-4, clip_norm=1.0, teacher_keep=0.3, sm_lr=1e-4, sm_weight_decay=1e-5)
IPTNET_LM_CASE = LM_NOPOS  # the iPTNet LM has no positional table


def iptnet_lm_trajectory(case: LMCase = IPTNET_LM_CASE, steps: int = LM_TRAJECTORY_STEPS) -> LMTrajectory:
  """LM phases (source LM_ONLY) of our joint iPTNet step: per-module Adam, LM clipping in the step, EMA teachers."""
  from iptnet_jax.datasets import input_pipeline  # noqa: PLC0415
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
    batch = input_pipeline.joint_batch(step_lib.LM_ONLY, lm=lm_batch(case, seed_offset=10 + step),
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
  from iptnet_jax.parity.reference import iptnet_torch  # noqa: PLC0415 (needs torch)
  torch_model, _, variables = lm_models(case)
  teacher = copy.deepcopy(torch_model)
  optimizer = torch.optim.Adam(torch_model.parameters(), lr=IPTNET_LM["lm_lr"])
  losses, norms = torch_lm_steps(torch_model, case, steps, optimizer, IPTNET_LM["clip_norm"],
                                 lambda: iptnet_torch.ema_update(teacher, torch_model, IPTNET_LM["teacher_keep"]))
  port = lambda m: porting.vslnet_variables_from_state_dict(m.state_dict(), variables)["params"]
  return LMTrajectory(losses, variables["params"], port(torch_model), port(teacher), grad_norms=norms)


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


NOTES += [f"lm.adam_clip [iPTNet] / iptnet.ema: {LM_TRAJECTORY_STEPS} LM_ONLY steps of iptnet.step.make_joint_step "
          f"({IPTNET_LM}) vs torch Adam + clip_grad_norm_ + EMA teacher on [{IPTNET_LM_CASE.name}]"]


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
  from iptnet_jax.parity.reference import iptnet_torch  # noqa: PLC0415 (needs torch)
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
  from iptnet_jax.parity.reference import iptnet_torch  # noqa: PLC0415 (needs torch)
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
  from iptnet_jax.parity.reference import iptnet_torch  # noqa: PLC0415 (needs torch)
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
