"""iPTNet parity with PyTorch restatements of the released code (iptnet_jax/parity/reference/iptnet_torch.py):
the PM kernel and the divergence D in float64, the EMA teacher, and the LM phase of our joint step (Adam +
clipping + EMA teachers) against torch Adam + clip_grad_norm_ + EMA on the VSLNet restatement
(iptnet_jax/parity/reference/vslnet_torch.py).

Skips without torch (`pip install torch==2.13.0`). Comparisons and tolerances are the ones `python -m
iptnet_jax.parity` reports (iptnet_jax/parity/).
"""

import jax
import pytest

from iptnet_jax import parity
from iptnet_jax.iptnet import propagation, teaching


@pytest.mark.parametrize("case", parity.PM_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("variant", propagation.VARIANTS)
def test_propagation_and_its_gradients_match_the_released_loop_in_float64(torch, variant, case):
  rows = parity.propagation_rows(case, variant)
  parity.assert_all_pass(rows)
  assert all(r.tol == parity.FLOAT64_TOL for r in rows)


def test_propagation_comparison_sees_a_different_gaussian(torch, monkeypatch):
  original = propagation.propagate
  monkeypatch.setattr(propagation, "propagate", lambda *a, **kw: original(*a, **{**kw, "sigma": 4.5}))
  rows = parity.propagation_rows(parity.PM_CASES[0], "released")
  assert not any(r.passed for r in rows)


@pytest.mark.parametrize("direction", teaching.DIRECTIONS)
def test_divergence_and_gradients_into_both_arguments_match_torch_kl_div(torch, direction):
  parity.assert_all_pass(parity.divergence_rows(direction))


def test_divergence_comparison_sees_a_detached_target(torch, monkeypatch):
  # The released code never detaches the KL target; a stop_gradient on it keeps the value but loses the
  # target's gradient, which the gradient row must catch.
  original = teaching.divergence
  monkeypatch.setattr(teaching, "divergence",
                      lambda target, *a, **kw: original(jax.lax.stop_gradient(target), *a, **kw))
  value, grads = parity.divergence_rows("target_to_student")
  assert value.passed and not grads.passed and "target" in grads.detail


def test_ema_teacher_is_the_torch_ema_in_float64(torch):
  parity.assert_all_pass(parity.ema_update_rows())


def test_ema_comparison_sees_the_swapped_convention(torch, monkeypatch):
  # optax.incremental_update(new, old, step_size) weighs `new` by step_size: passing keep instead of 1 - keep
  # (teacher <- 0.7 teacher + 0.3 student instead of 0.3 teacher + 0.7 student) must fail.
  from iptnet_jax.parity.reference import iptnet_torch
  original = iptnet_torch.ema_update
  monkeypatch.setattr(iptnet_torch, "ema_update", lambda t, s, keep: original(t, s, 1.0 - keep))
  assert not any(r.passed for r in parity.ema_update_rows())


@pytest.mark.slow  # compiles the iPTNet joint step
def test_lm_phase_of_the_joint_step_tracks_torch_adam_clip_and_ema(torch):
  # Adam (lr 5e-4, no decay) on the LM, its gradient clipped to norm 1 in the step, the EMA teacher (keep 0.3),
  # SM untouched (no loss in an LM phase): 5 steps against the released code's LM phase in torch.
  ours, ref = parity._iptnet_lm_trajectories()
  assert ref.grad_norms.min() > parity.IPTNET_LM["clip_norm"]  # clipping is active at every step
  parity.assert_all_pass(parity.iptnet_lm_adam_clip_rows() + parity.iptnet_ema_rows())
  assert ours.sm_moved == 0.0


def test_report_lists_the_iptnet_components():
  assert {"iptnet.propagation", "iptnet.divergence", "iptnet.ema"} <= set(parity.COMPONENTS)
