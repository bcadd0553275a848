"""EMA teacher transform, gated Adam, per-module gating (no Adam drift), teacher read-back, divergence D."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from iptnet_jax.iptnet import teaching


def _params():
  return {"sm": {"w": jnp.array([1.0, -2.0])}, "lm": {"w": jnp.array([0.5, 3.0, -1.0])}}


def _optimizer(keep=0.3):
  return teaching.per_module({
      "sm": optax.chain(optax.add_decayed_weights(1e-3), teaching.scale_by_adam_gated(), optax.scale(-0.1),
                        teaching.ema_teacher(keep)),
      "lm": optax.chain(optax.clip_by_global_norm(1.0), teaching.scale_by_adam_gated(), optax.scale(-0.2),
                        teaching.ema_teacher(keep)),
  })


def test_teacher_starts_as_a_copy_and_follows_with_keep_rate():
  params = _params()
  tx = _optimizer(keep=0.3)
  state = tx.init(params)
  teachers = teaching.teacher_params(state)
  jax.tree.map(np.testing.assert_array_equal, teachers, params)  # a copy, not zeros
  grads = {"sm": {"w": jnp.array([0.3, -0.1])}, "lm": {"w": jnp.array([1.0, 2.0, 3.0])}}
  updates, state = tx.update(grads, state, params, active={"sm": True, "lm": True})
  new_params = optax.apply_updates(params, updates)
  expected = jax.tree.map(lambda old, new: 0.3 * old + 0.7 * new, teachers, new_params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), teaching.teacher_params(state), expected)


def test_inactive_module_neither_moves_nor_drifts_nor_updates_its_teacher():
  params = _params()
  tx = _optimizer()
  state = tx.init(params)
  step = jax.jit(lambda g, s, p, a: tx.update(g, s, p, active=a))
  grads = {"sm": {"w": jnp.array([0.3, -0.1])}, "lm": {"w": jnp.array([1.0, 2.0, 3.0])}}
  # One step with both active gives the LM Adam moments; then LM-inactive steps with zero LM gradients.
  updates, state = step(grads, state, params, {"sm": True, "lm": True})
  params = optax.apply_updates(params, updates)
  lm_before, lm_state_before = params["lm"], state["lm"]
  zero_lm = {"sm": grads["sm"], "lm": {"w": jnp.zeros(3)}}
  for _ in range(3):
    updates, state = step(zero_lm, state, params, {"sm": True, "lm": False})
    params = optax.apply_updates(params, updates)
  jax.tree.map(np.testing.assert_array_equal, params["lm"], lm_before)
  jax.tree.map(np.testing.assert_array_equal, state["lm"], lm_state_before)
  assert not np.allclose(params["sm"]["w"], _params()["sm"]["w"])
  # Contrast: optax without gating keeps moving the LM on zero gradients (Adam momentum).
  ungated_updates, _ = step(zero_lm, state, params, {"sm": True, "lm": True})
  assert np.abs(np.asarray(ungated_updates["lm"]["w"])).max() > 1e-3


def _gradient_sequence(steps, seed=0):
  rng = np.random.default_rng(seed)
  return [{"a": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32), "b": jnp.asarray(rng.normal(size=5), jnp.float32)}
          for _ in range(steps)]


def test_gated_adam_when_active_is_optax_adam():
  grads = _gradient_sequence(6)
  ours, reference = teaching.scale_by_adam_gated(), optax.scale_by_adam()
  ours_state, reference_state = ours.init(grads[0]), reference.init(grads[0])
  ours_update = jax.jit(lambda g, s: ours.update(g, s, active=jnp.asarray(True)))
  for g in grads:
    ours_step, ours_state = ours_update(g, ours_state)
    reference_step, reference_state = reference.update(g, reference_state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), ours_step, reference_step)
  assert type(ours_state) is type(reference_state)  # same state type: checkpoints and tree_get see no change
  assert int(ours_state.count) == int(reference_state.count) == len(grads)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours_state, reference_state)


def test_gated_adam_inactive_steps_are_exact_no_ops_even_before_the_first_active_step():
  grads = _gradient_sequence(4, seed=1)
  tx = teaching.scale_by_adam_gated()
  update = jax.jit(lambda g, s, on: tx.update(g, s, active=on))
  state = tx.init(grads[0])
  initial = state
  with jax.debug_nans(True):  # op by op, no intermediate NaN either
    tx.update(grads[0], state, active=jnp.asarray(False))
  for g in grads[:2]:  # inactive from the start: count 0, the bias correction's 1 - b**0 = 0 must not leak NaN
    step, state = update(g, state, jnp.asarray(False))
    jax.tree.map(lambda x: np.testing.assert_array_equal(x, 0.0), step)
  jax.tree.map(np.testing.assert_array_equal, state, initial)
  # Then active: the same as a fresh optax Adam that never saw the inactive steps.
  reference = optax.scale_by_adam()
  reference_state = reference.init(grads[0])
  for g in grads[2:]:
    step, state = update(g, state, jnp.asarray(True))
    reference_step, reference_state = reference.update(g, reference_state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), step, reference_step)
  before = state
  _, state = update({"a": jnp.full((4, 3), jnp.inf), "b": jnp.full(5, jnp.nan)}, state, jnp.asarray(False))
  jax.tree.map(np.testing.assert_array_equal, state, before)  # a select, not a product: no 0 * inf


def test_gated_ema_teacher_holds_when_inactive():
  params = {"w": jnp.array([1.0, 2.0])}
  tx = teaching.ema_teacher(0.3)
  state = tx.init(params)
  move = {"w": jnp.array([0.5, -0.5])}
  _, held = tx.update(move, state, params, active=jnp.asarray(False))
  np.testing.assert_array_equal(held.teacher["w"], params["w"])
  _, moved = tx.update(move, state, params, active=jnp.asarray(True))
  np.testing.assert_allclose(moved.teacher["w"], 0.3 * params["w"] + 0.7 * (params["w"] + move["w"]), rtol=1e-6)


def test_per_module_refuses_a_transform_it_cannot_gate():
  params = _params()
  tx = teaching.per_module({"sm": optax.identity(), "lm": optax.chain(teaching.scale_by_adam_gated())})
  state = tx.init(params)
  tx.update(params, state, params)  # ungated use is fine
  with pytest.raises(TypeError, match="'sm' transform"):
    tx.update(params, state, params, active={"sm": True, "lm": False})


def test_ema_needs_params_and_a_valid_keep_rate():
  tx = teaching.ema_teacher(0.3)
  with pytest.raises(ValueError, match="params"):
    tx.update({"w": jnp.ones(1)}, tx.init({"w": jnp.ones(1)}))
  with pytest.raises(ValueError, match="keep rate"):
    teaching.ema_teacher(1.5)


@pytest.fixture
def float64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def _kl_numpy(target, student, length, kind):
  t, s = target[:length], student[:length]
  if kind == "softmax":
    p, q = np.exp(t) / np.exp(t).sum(), np.exp(s) / np.exp(s).sum()
  else:
    p = (np.maximum(t, 0) + 1e-8) / (np.maximum(t, 0) + 1e-8).sum()
    q = (np.maximum(s, 0) + 1e-8) / (np.maximum(s, 0) + 1e-8).sum()
  return float(np.sum(p * (np.log(p) - np.log(q))))


@pytest.mark.parametrize("kind", teaching.DISTRIBUTIONS)
def test_divergence_matches_kl_per_example_with_masks(float64, kind):
  rng = np.random.default_rng(0)
  target, student = rng.uniform(-1, 2, size=(3, 9)), rng.uniform(-1, 2, size=(3, 9))
  lengths = [9, 4, 0]  # the third row is an all-padding example
  mask = (np.arange(9)[None] < np.array(lengths)[:, None]).astype(np.float64)
  example_mask = np.array([1.0, 1.0, 1.0])
  got = teaching.divergence(jnp.asarray(target), jnp.asarray(student), jnp.asarray(mask), jnp.asarray(example_mask),
                            distribution=kind)
  expected = np.mean([_kl_numpy(target[b], student[b], lengths[b], kind) for b in range(2)])
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
  reverse = teaching.divergence(jnp.asarray(target), jnp.asarray(student), jnp.asarray(mask), jnp.asarray(example_mask),
                                distribution=kind, direction="student_to_target")
  np.testing.assert_allclose(reverse, np.mean([_kl_numpy(student[b], target[b], lengths[b], kind) for b in range(2)]),
                             atol=1e-12)


def test_gradient_reaches_the_target_and_stays_finite_next_to_padding():
  mask = jnp.array([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
  target, student = jnp.array([[0.2, 0.9, 0.4, 5.0], [1.0, 2.0, 3.0, 4.0]]), jnp.zeros((2, 4))
  g_target, g_student = jax.grad(lambda t, s: teaching.divergence(t, s, mask, jnp.ones(2)), argnums=(0, 1))(target, student)
  assert np.isfinite(g_target).all() and np.isfinite(g_student).all()
  assert np.abs(g_target[0, :3]).sum() > 0  # the released code does not detach the target
  assert not np.asarray(g_target[:, 3]).any() and not np.asarray(g_target[1]).any()
  g_stopped = jax.grad(lambda t: teaching.divergence(jax.lax.stop_gradient(t), student, mask, jnp.ones(2)))(target)
  assert not np.asarray(g_stopped).any()
