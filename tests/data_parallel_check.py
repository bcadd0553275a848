"""Run by iptnet_data_parallel_test.py in a subprocess with 8 simulated CPU devices (the device count must be
set before jax starts). Trains the joint step a few steps on a 1-device mesh and on an 8-device mesh from the
same state and batches, and prints the largest differences as JSON.

The optimizer is plain SGD (with the same per-module gating and EMA teachers as training): Adam divides each
gradient element by its own RMS, so parameters whose gradient is analytically zero (attention key biases,
span-logit biases: softmax is shift-invariant) take full +-lr steps on the sign of rounding noise, which
differs with the reduction order across devices. SGD keeps parameter differences proportional to gradient
differences, which is what this check is about; the losses are the same either way."""

import json
import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)

import iptnet_fixtures as fx  # noqa: E402
import optax  # noqa: E402

from iptnet_jax.iptnet import step as step_lib  # noqa: E402
from iptnet_jax.iptnet import teaching  # noqa: E402


def run(num_devices: int):
  mesh = step_lib.make_mesh(num_devices)
  sm, lm = fx.models()
  tx = teaching.per_module({name: optax.chain(optax.sgd(0.05), teaching.ema_teacher(0.3)) for name in ("sm", "lm")})
  step = step_lib.make_joint_step(sm, lm, tx, step_lib.JointSettings(radius=3), mesh=mesh)
  state, constants = fx.init_state(sm, lm, tx)
  state, constants = step_lib.replicate(state, mesh), step_lib.replicate(constants, mesh)
  losses = []
  for i, source in enumerate([step_lib.SM_ONLY, step_lib.LM_DATA, step_lib.SM_DATA, step_lib.LM_ONLY, step_lib.SM_DATA]):
    batch = step_lib.shard_batch(fx.joint(source, np.random.default_rng(i), batch_size=8), mesh)
    state, metrics = step(state, constants, batch)
    losses.append(float(metrics["total"]))
  return losses, jax.device_get(state.params), len(state.params["sm"]["fc_cls"]["bias"].sharding.device_set)


losses_1, params_1, devices_1 = run(1)
losses_8, params_8, devices_8 = run(8)
param_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(params_1), jax.tree.leaves(params_8)))
print(json.dumps({"device_count": jax.device_count(), "devices": [devices_1, devices_8], "losses_1": losses_1,
                  "losses_8": losses_8, "max_param_diff": param_diff}))
