"""iPTNet's LM phases train the LM as the LM trainer does (issue 21, item 4).

The joint step's LM_ONLY branch (iPTNet's LM warm-up, and every phase of the `:lm_alone` schedule) against the
LM trainer's step with the released iPTNet LM recipe (`train.optimizer="adam"`, eps 1e-8, no weight decay, the
same clip): same initial parameters, same batches, dropout off (the two draw their dropout keys differently), so
the parameters must agree step for step.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import iptnet_fixtures as fx
from iptnet_jax.iptnet import batches
from iptnet_jax.iptnet import step as step_lib
from iptnet_jax.iptnet import train as iptnet_train
from iptnet_jax.lm import train as lm_train

LM_LR = 5e-3
STEPS = 3


def _max_relative_difference(a, b) -> float:
  return max(float(np.linalg.norm(np.asarray(x) - np.asarray(y)) / max(np.linalg.norm(np.asarray(y)), 1e-12))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.slow  # compiles the joint step (minutes on 2 busy CPU cores)
def test_lm_only_phase_steps_are_the_lm_trainers_adam_steps():
  sm, lm = fx.models()
  lm = dataclasses.replace(lm, drop_rate=0.0)
  joint_tx = step_lib.make_optimizer(1e-3, 1e-5, LM_LR, teacher_keep=0.3)
  joint_step = step_lib.make_joint_step(sm, lm, joint_tx, step_lib.JointSettings(radius=3),
                                        sources=(step_lib.LM_ONLY,))
  joint_state, constants = fx.init_state(sm, lm, joint_tx)
  initial_lm = jax.device_get(joint_state.params["lm"])

  train_config = ml_collections.ConfigDict(dict(optimizer="adam", lr=LM_LR, b1=0.9, b2=0.999, eps=1e-8,
                                                weight_decay=0.0, clip_norm=1.0))
  lm_tx = lm_train.make_optimizer(train_config, total_steps=STEPS)
  lm_step = lm_train.make_train_step(lm, lm_tx, highlight_lambda=5.0)
  lm_params = jax.tree.map(jnp.asarray, initial_lm)
  lm_state = lm_train.TrainState(step=jnp.zeros((), jnp.int32), params=lm_params, opt_state=lm_tx.init(lm_params),
                                 rng=jax.random.key(0))
  for i in range(STEPS):
    lm_batch = fx.lm_batch(np.random.default_rng(i))
    joint_state, joint_metrics = joint_step(
        joint_state, constants, batches.joint_batch(step_lib.LM_ONLY, lm=lm_batch, feature_dim=fx.FEATURE_DIM))
    lm_state, lm_metrics = lm_step(lm_state, constants, lm_train.device_fields(lm_batch))
    np.testing.assert_allclose(float(joint_metrics["lm_supervised"]), float(lm_metrics["loss"]), rtol=1e-5)
  moved = _max_relative_difference(jax.device_get(lm_state.params), initial_lm)
  assert moved > 1e-3, moved  # the steps did move the LM
  assert _max_relative_difference(jax.device_get(joint_state.params["lm"]), jax.device_get(lm_state.params)) < 1e-4


def test_lm_alone_schedule_is_lm_passes_only():
  # lm_warmup_epochs + (epochs - sm_warmup_epochs) LM passes, no SM phase (paper Fig. 5's baseline).
  phases = iptnet_train.schedule(epochs=12, sm_warmup_epochs=5, lm_warmup_epochs=2, use_lm=True, joint=False)
  assert phases == [step_lib.LM_ONLY] * 9
