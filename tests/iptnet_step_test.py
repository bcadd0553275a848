"""The joint step: branch selection by source, gating, ablations, falling losses."""

import jax
import numpy as np
import pytest

import iptnet_fixtures as fx
from iptnet_jax.iptnet import step as step_lib
from iptnet_jax.iptnet import teaching

# Compiles the four-branch joint step (minutes on 2 CPU cores): the full suite only, not the fast tier.
pytestmark = pytest.mark.slow


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def setup():
  sm, lm = fx.models()
  tx = step_lib.make_optimizer(3e-3, 1e-5, 5e-3, teacher_keep=0.3)
  step = step_lib.make_joint_step(sm, lm, tx, step_lib.JointSettings(radius=3))
  return sm, lm, tx, step


@pytest.mark.parametrize("source, sm_moves, lm_moves, nonzero, zero", [
    (step_lib.SM_ONLY, True, False, {"sm_supervised"}, {"lm_supervised", "teach_sm", "teach_lm", "consistency"}),
    (step_lib.LM_ONLY, False, True, {"lm_supervised"}, {"sm_supervised", "teach_sm", "teach_lm", "consistency"}),
    (step_lib.LM_DATA, True, True, {"lm_supervised", "teach_sm", "consistency"}, {"sm_supervised", "teach_lm"}),
    (step_lib.SM_DATA, True, True, {"sm_supervised", "teach_lm", "consistency"}, {"lm_supervised", "teach_sm"}),
])
def test_source_selects_branch_and_only_active_modules_and_teachers_move(setup, source, sm_moves, lm_moves,
                                                                          nonzero, zero):
  sm, lm, tx, step = setup
  state, constants = fx.init_state(sm, lm, tx)
  # One step of every source first, so that the teachers differ from the students and Adam has moments.
  for warm in (step_lib.LM_DATA, step_lib.SM_DATA):
    state, _ = step(state, constants, fx.joint(warm, np.random.default_rng(warm)))
  before = jax.device_get((state.params, teaching.teacher_params(state.opt_state), state.opt_state))
  state, metrics = step(state, constants, fx.joint(source, np.random.default_rng(7)))
  after = jax.device_get((state.params, teaching.teacher_params(state.opt_state), state.opt_state))
  for module, moves in (("sm", sm_moves), ("lm", lm_moves)):
    assert _changed(before[0][module], after[0][module]) == moves, module
    assert _changed(before[1][module], after[1][module]) == moves, f"{module} teacher"
    assert _changed(before[2][module], after[2][module]) == moves, f"{module} optimizer state"
  metrics = jax.device_get(metrics)
  assert all(metrics[k] > 0 for k in nonzero), metrics
  assert all(metrics[k] == 0 for k in zero), metrics
  assert np.isclose(metrics["total"], sum(metrics[k] for k in nonzero), rtol=1e-5)


def test_without_teaching_no_teacher_terms(setup):
  sm, lm, tx, _ = setup
  step = step_lib.make_joint_step(sm, lm, tx, step_lib.JointSettings(radius=3, teaching=False, propagation=False))
  state, constants = fx.init_state(sm, lm, tx)
  for source in (step_lib.LM_DATA, step_lib.SM_DATA):
    state, metrics = step(state, constants, fx.joint(source, np.random.default_rng(source)))
    assert float(metrics["consistency"]) == 0 and float(metrics["teach_sm"] + metrics["teach_lm"]) > 0


def test_a_short_joint_run_lowers_the_losses(setup):
  sm, lm, tx, step = setup
  state, constants = fx.init_state(sm, lm, tx, seed=3)
  fixed = {s: fx.joint(s, np.random.default_rng(100 + s)) for s in (step_lib.LM_DATA, step_lib.SM_DATA)}
  history = {s: [] for s in fixed}
  for _ in range(25):
    for source, batch in fixed.items():
      state, metrics = step(state, constants, batch)
      history[source].append(float(metrics["total"]))
  for source, losses in history.items():
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), (step_lib.SOURCE_NAMES[source], losses)
