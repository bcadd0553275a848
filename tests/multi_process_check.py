"""Run by iptnet_multi_process_test.py: one process of a jax.distributed run on CPU (gloo collectives between
processes, each process with `--local_devices` simulated devices), or with --num_processes=1 the one-device
reference. Trains iptnet_fixtures.train_joint_steps on a mesh over every device of every process (each process
builds the same global batches; shard_batch hands it its own rows) and writes the losses and the parameters to
`--out` (npz, one entry per parameter path)."""

import argparse
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--num_processes", type=int, required=True)
parser.add_argument("--process_id", type=int, default=0)
parser.add_argument("--local_devices", type=int, default=2)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--out", required=True)
args = parser.parse_args()
distributed = args.num_processes > 1
if distributed:  # must be set before jax starts
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + f" --xla_force_host_platform_device_count={args.local_devices}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")

import iptnet_fixtures as fx  # noqa: E402

from iptnet_jax.iptnet import step as step_lib  # noqa: E402

if distributed:
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{args.port}", num_processes=args.num_processes,
                             process_id=args.process_id)
# The two sources in which both modules move (fewer branches: the three processes compile faster).
sources = (step_lib.LM_DATA, step_lib.SM_DATA, step_lib.SM_DATA)
losses, params, devices = fx.train_joint_steps(step_lib.make_mesh(None if distributed else 1), sources=sources)
leaves = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(x)
          for path, x in jax.tree_util.tree_leaves_with_path(params)}
np.savez(args.out, losses=np.asarray(losses), devices=devices, process_count=jax.process_count(),
         local_devices=jax.local_device_count(), **{f"param:{k}": v for k, v in leaves.items()})
if distributed:
  jax.distributed.shutdown()
