"""Collaborative mean teaching (TM): EMA teachers as an optax transform, per-module gating, divergence D.

Teachers. `ema_teacher(keep)` is a GradientTransformation whose state *is* the teacher: initialised as a
copy of the student (not zeros, unlike optax.ema, which averages updates), and after each step
  teacher <- keep * teacher + (1 - keep) * (params + updates)          (paper eq. 3: gamma = keep = 0.3)
It passes the updates through unchanged and must be the last element of its chain, so that
params + updates are the new student parameters. `teacher_params(opt_state)` reads the teachers back.

Gating. `per_module({'sm': tx_sm, 'lm': tx_lm})` runs one optimizer per module and takes `active` flags
per step, which it hands to each module's chain as the extra argument `active`. The stateful elements honour
it: `scale_by_adam_gated` (optax.scale_by_adam's arithmetic) and `ema_teacher`. An inactive module gets a
zero update, its Adam moments and step count stay exactly put (no drift from zero gradients), and its teacher
does not move. This reproduces the released code's phases, where a module without a loss has no .grad and is
skipped. Stateless elements before the gated Adam (add_decayed_weights, clipping) or after it (scale) need
no gate: the gated Adam's zero output is what reaches the parameters. An ungated stateful element inside a
chain (optax.scale_by_adam) is not detected and would drift; only a transform that takes no extra arguments
at all is refused. The gate is a select inside the elementwise update rather than lax.cond or a select around
optax.scale_by_adam: in the compiled joint step both of those made XLA copy the optimizer state every step,
while the inline select fuses into the one pass that updates the moments in place.

Divergence. `divergence(target, student, mask)` is D of eq. 4-8: KL(P(target) || P(student)) summed over
time (torch F.kl_div(log P(student), P(target), reduction='sum')) and averaged over the real examples,
with maps turned into distributions over time by a masked softmax (released code) or by normalising
the non-negative map ('normalize'). Gradient reaches both arguments (the released code never detaches the
target); teachers' outputs are passed through stop_gradient by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

DISTRIBUTIONS = ("softmax", "normalize")
DIRECTIONS = ("target_to_student", "student_to_target")
_NORMALIZE_EPS = 1e-8


class TeacherState(NamedTuple):
  teacher: optax.Params


def ema_teacher(keep: float) -> optax.GradientTransformationExtraArgs:
  """teacher <- keep * teacher + (1 - keep) * new student; the last transform of a chain. update(...,
  active=flag) leaves the teacher as it is when the flag is false."""
  if not 0.0 <= keep <= 1.0:
    raise ValueError(f"teacher EMA keep rate {keep}: expected a value in [0, 1]")

  def init(params):
    return TeacherState(teacher=jax.tree.map(jnp.array, params))  # a copy: the teacher starts as the student

  def update(updates, state, params=None, *, active=True, **extra):
    del extra
    if params is None:
      raise ValueError("ema_teacher needs the current params in update(updates, state, params)")
    new_student = optax.apply_updates(params, updates)
    # Eq. 3: teacher <- gamma * teacher + (1 - gamma) * student, gamma = keep, on the student after this step.
    teacher = optax.incremental_update(new_student, state.teacher, step_size=1.0 - keep)
    if active is not True:
      teacher = jax.tree.map(lambda new, old: jnp.where(active, new, old), teacher, state.teacher)
    return updates, TeacherState(teacher=teacher)

  return optax.GradientTransformationExtraArgs(init, update)


def scale_by_adam_gated(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                        ) -> optax.GradientTransformationExtraArgs:
  """optax.scale_by_adam (same state type, same arithmetic) whose update(..., active=flag) leaves the moments
  and the step count untouched and returns a zero update when the flag is false."""

  def init(params):
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=jax.tree.map(jnp.zeros_like, params),
                                  nu=jax.tree.map(jnp.zeros_like, params))

  def update(updates, state, params=None, *, active=True, **extra):
    del params, extra
    on = jnp.asarray(active, bool)
    count = state.count + on.astype(state.count.dtype)
    # Never-active modules have count 0; the floor keeps 1 - b**0 = 0 out of a division whose result the
    # select drops anyway (no NaN under jax_debug_nans).
    steps = jnp.maximum(count, 1)
    correction1, correction2 = 1 - b1**steps, 1 - b2**steps
    mu = jax.tree.map(lambda g, m: jnp.where(on, (1 - b1) * g + b1 * m, m), updates, state.mu)
    nu = jax.tree.map(lambda g, v: jnp.where(on, (1 - b2) * (g * g) + b2 * v, v), updates, state.nu)

    def scaled(m, v):
      step = (m / correction1.astype(m.dtype)) / (jnp.sqrt(v / correction2.astype(v.dtype)) + eps)
      return jnp.where(on, step, jnp.zeros_like(step))

    return jax.tree.map(scaled, mu, nu), optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformationExtraArgs(init, update)


def per_module(transforms: Mapping[str, optax.GradientTransformationExtraArgs]
               ) -> optax.GradientTransformationExtraArgs:
  """One transform per top-level params key; update(..., active={name: bool scalar}) passes each module its
  flag, which the gated elements of its chain (scale_by_adam_gated, ema_teacher) honour."""
  transforms = dict(transforms)

  def init(params):
    missing = set(transforms) ^ set(params)
    if missing:
      raise ValueError(f"per_module: params keys {sorted(params)} do not match transforms {sorted(transforms)}")
    return {name: tx.init(params[name]) for name, tx in transforms.items()}

  def update(updates, state, params=None, *, active: Mapping[str, jax.Array] | None = None, **extra):
    del extra
    new_updates, new_state = {}, {}
    for name, tx in transforms.items():
      if active is None:
        new_updates[name], new_state[name] = tx.update(updates[name], state[name], params[name])
        continue
      if not isinstance(tx, optax.GradientTransformationExtraArgs):
        raise TypeError(f"per_module: the {name!r} transform takes no extra arguments, so it cannot be gated by "
                        "`active`; build it with optax.chain of scale_by_adam_gated / ema_teacher")
      new_updates[name], new_state[name] = tx.update(updates[name], state[name], params[name],
                                                     active=active[name])
    return new_updates, new_state

  return optax.GradientTransformationExtraArgs(init, update)


def teacher_params(opt_state) -> dict:
  """{module: teacher params} from a per_module optimizer state whose chains end in ema_teacher."""
  return {name: optax.tree_utils.tree_get(module_state, "teacher") for name, module_state in opt_state.items()}


def _log_distribution(x: jax.Array, mask: jax.Array, kind: str) -> jax.Array:
  """log P over the valid steps; masked steps get a finite stand-in (never -inf, whose 0 * inf would put NaN
  into the gradients through jnp.where) and are dropped by the caller."""
  valid = mask > 0
  if kind == "softmax":
    log_p = jax.nn.log_softmax(jnp.where(valid, x, -1e30), axis=-1)
  elif kind == "normalize":
    positive = jnp.where(valid, jnp.maximum(x, 0.0) + _NORMALIZE_EPS, 1.0)
    log_p = jnp.log(positive) - jnp.log(jnp.sum(jnp.where(valid, positive, 0.0), axis=-1, keepdims=True))
  else:
    raise ValueError(f"divergence distribution {kind!r}: expected one of {DISTRIBUTIONS}")
  return jnp.where(valid, log_p, 0.0)


def divergence(target: jax.Array, student: jax.Array, mask: jax.Array, example_mask: jax.Array, *,
               distribution: str = "softmax", direction: str = "target_to_student") -> jax.Array:
  """Mean over real examples of KL(P(target) || P(student)) summed over valid steps (or the reverse)."""
  if direction not in DIRECTIONS:
    raise ValueError(f"divergence direction {direction!r}: expected one of {DIRECTIONS}")
  # Eq. 4-8: each importance map becomes a distribution over the video's steps (softmax over time in the
  # released code), then D = KL(P || Q) = sum_t P_t (log P_t - log Q_t), summed over time (reduction='sum').
  log_p = _log_distribution(target, mask, distribution)
  log_q = _log_distribution(student, mask, distribution)
  if direction == "student_to_target":
    log_p, log_q = log_q, log_p
  valid = mask > 0
  per_step = jnp.where(valid, jnp.exp(log_p) * (log_p - log_q), 0.0)
  per_example = per_step.sum(-1)
  weight = example_mask * (valid.sum(-1) > 0)
  return jnp.sum(per_example * weight) / jnp.maximum(weight.sum(), 1.0)
