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
from iptnet_jax.datasets import input_pipeline
from iptnet_jax.iptnet import step as step_lib
from iptnet_jax.iptnet import train as iptnet_train
from iptnet_jax.lm import train as lm_train

LM_LR = 5e-3
STEPS = 3


# Leaves whose gradient is analytically zero (a softmax is shift-invariant: the attention key bias, the start /
# end logit biases): Adam turns the float rounding noise there into full +-lr steps of either sign, which differ
# between any two programs (iptnet_fixtures.train_joint_steps says the same).
SHIFT_INVARIANT = ("['feature_encoder']['attention_block']['key']['conv1d']['bias']",
                   "['predictor']['start_block_2']['conv1d']['bias']", "['predictor']['end_block_2']['conv1d']['bias']")


def _max_relative_difference(a, b) -> float:
  return max(float(np.linalg.norm(np.asarray(x) - np.asarray(y)) / max(np.linalg.norm(np.asarray(y)), 1e-12))
             for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b))
             if jax.tree_util.keystr(path) not in SHIFT_INVARIANT)


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
        joint_state, constants, input_pipeline.joint_batch(step_lib.LM_ONLY, lm=lm_batch, feature_dim=fx.FEATURE_DIM))
    lm_state, lm_metrics = lm_step(lm_state, constants, input_pipeline.lm_device_fields(lm_batch))
    np.testing.assert_allclose(float(joint_metrics["lm_supervised"]), float(lm_metrics["loss"]), rtol=1e-5)
  # Compared as displacements from the start, so that a small difference in the updates is not hidden by the
  # size of the parameters.
  lm_moved = jax.tree.map(lambda p, p0: np.asarray(p) - p0, jax.device_get(lm_state.params), initial_lm)
  joint_moved = jax.tree.map(lambda p, p0: np.asarray(p) - p0, jax.device_get(joint_state.params["lm"]), initial_lm)
  assert min(np.linalg.norm(x) for x in jax.tree.leaves(lm_moved)) > 0  # every LM leaf moved
  # Measured: 4e-6; with train.eps=1e-6 instead of iPTNet's 1e-8 it is 0.76, weight decay 0.01: 0.63, clip 0.5: 0.02.
  assert _max_relative_difference(joint_moved, lm_moved) < 1e-3


def test_lm_alone_schedule_is_lm_passes_only():
  # lm_warmup_epochs + (epochs - sm_warmup_epochs) LM passes, no SM phase (paper Fig. 5's baseline).
  phases = iptnet_train.schedule(epochs=12, sm_warmup_epochs=5, lm_warmup_epochs=2, use_lm=True, joint=False)
  assert phases == [step_lib.LM_ONLY] * 9
