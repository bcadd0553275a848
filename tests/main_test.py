"""The command line: every user-caused error is one line `error: ...` and a non-zero exit, nothing left behind."""

import subprocess
import sys
from pathlib import Path

import pytest

from configs import demo, iptnet_demo
from iptnet_jax import config_defaults, train
from iptnet_jax.lm import train as lm_train

REPO = Path(__file__).resolve().parents[1]


def run_main(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "iptnet_jax.main", *args], cwd=REPO, capture_output=True, text=True,
                        timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [
    (["--config=README.md"], "error: --config: README.md, line "),
    (["--config=configs/no_such_config.py"], "error: --config: OSError: [Errno 2] No such file or directory: "
                                             "'configs/no_such_config.py'"),
    (["--config=configs/demo.py:bogus"], "error: --config: configs/demo.py: unknown variant 'bogus'; expected one of "
                                        "default, smoke"),
    (["--config=configs/demo.py:smoke", "--config.train.lrr=1"],
     "error: --config.train.lrr: the config has no such field ('lrr' Did you mean \"lr\" instead of \"lrr\"?)"),
    (["--config=configs/demo.py:smoke", "--config.train.lr=abc"],
     "error: --config.train.lr=abc: could not convert string to float: 'abc'"),
    (["--config=configs/demo.py:smoke", "--config.task=foo"],
     "error: config.task='foo': expected one of sm, lm, iptnet, highlight"),
    (["--config=configs/demo.py:smoke", "--config.seed=-5"], "error: config.seed=-5: expected a non-negative integer"),
])
def test_bad_command_lines_are_one_line(tmp_path, args, expected):
  result = run_main(*args, f"--workdir={tmp_path / 'run'}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr  # one line
  assert result.stderr.strip().startswith(expected), result.stderr
  assert not (tmp_path / "run").exists()


def test_iptnet_names_the_lm_field_and_refuses_missing_devices(tmp_path):
  config = iptnet_demo.get_config("smoke")
  config.lm.train.batch_size = 0
  with pytest.raises(lm_train.LMConfigError, match=r"^config\.lm\.train\.batch_size=0: expected at least 1$"):
    train.train_and_evaluate(config, tmp_path / "run")
  config = iptnet_demo.get_config("smoke")
  config.iptnet.num_devices = 3  # the test machine has one CPU device unless a test simulates more
  import jax
  if jax.device_count() < 3:
    with pytest.raises(config_defaults.ConfigError, match=r"config\.iptnet\.num_devices=3: expected at most the"):
      train.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seed", [-5, -1])
def test_seed_must_be_a_non_negative_integer(tmp_path, seed):
  config = demo.get_config("smoke")
  config.seed = seed
  with pytest.raises(config_defaults.ConfigError, match=r"config\.seed="):
    train.train_and_evaluate(config, tmp_path / "run")
