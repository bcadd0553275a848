"""The joint step over 8 simulated CPU devices gives the losses and parameters of 1 device."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Compiles the four-branch joint step (minutes on 2 CPU cores): the full suite only, not the fast tier.
pytestmark = pytest.mark.slow


def test_eight_devices_match_one_device():
  script = Path(__file__).with_name("data_parallel_check.py")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["device_count"] == 8 and report["devices"] == [1, 8]
  np.testing.assert_allclose(report["losses_8"], report["losses_1"], rtol=1e-5)
  assert report["max_param_diff"] < 1e-5, report
