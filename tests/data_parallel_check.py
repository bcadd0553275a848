"""Run by iptnet_data_parallel_test.py in a subprocess with 8 simulated CPU devices (the device count must be
set before jax starts). Trains the joint step a few steps on a 1-device mesh and on an 8-device mesh from the
same state and batches (iptnet_fixtures.train_joint_steps: SGD, see there why), and prints the largest
differences as JSON."""

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

from iptnet_jax.iptnet import step as step_lib  # noqa: E402

losses_1, params_1, devices_1 = fx.train_joint_steps(step_lib.make_mesh(1))
losses_8, params_8, devices_8 = fx.train_joint_steps(step_lib.make_mesh(8))
param_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(params_1), jax.tree.leaves(params_8)))
print(json.dumps({"device_count": jax.device_count(), "devices": [devices_1, devices_8], "losses_1": losses_1,
                  "losses_8": losses_8, "max_param_diff": param_diff}))
