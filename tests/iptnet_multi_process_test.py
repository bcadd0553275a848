"""The joint step run by two jax.distributed processes (2 simulated CPU devices each, gloo collectives) gives
the losses and parameters of a one-device run: shard_batch's multi-process path (each process hands over its
own rows of the global batch) and the cross-process gradient reduction, as a multi-host pod would use them."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Compiles the four-branch joint step (minutes on 2 CPU cores): the full suite only, not the fast tier.
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("multi_process_check.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _load(path: Path) -> dict:
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


def test_two_processes_match_one_device(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  port = _free_port()
  commands = [[sys.executable, str(SCRIPT), "--num_processes=2", f"--process_id={i}", f"--port={port}",
               f"--out={tmp_path / f'process_{i}.npz'}"] for i in range(2)]
  commands.append([sys.executable, str(SCRIPT), "--num_processes=1", f"--out={tmp_path / 'single.npz'}"])
  procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
           for c in commands]
  try:
    outputs = [p.communicate(timeout=600) for p in procs]
  finally:
    for p in procs:
      p.kill()
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]

  single = _load(tmp_path / "single.npz")
  assert int(single["process_count"]) == 1 and int(single["devices"]) == 1
  for i in range(2):
    run = _load(tmp_path / f"process_{i}.npz")
    assert int(run["process_count"]) == 2 and int(run["local_devices"]) == 2 and int(run["devices"]) == 4
    np.testing.assert_allclose(run["losses"], single["losses"], rtol=1e-5)
    names = sorted(k for k in single if k.startswith("param:"))
    assert names and names == sorted(k for k in run if k.startswith("param:"))
    diff = max(float(np.max(np.abs(run[k] - single[k]))) for k in names)
    assert diff < 1e-5, (i, diff)
