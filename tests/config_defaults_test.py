"""config_defaults.load_config_file: the experiments' one loader of config files."""

from pathlib import Path

import pytest

from iptnet_jax import config_defaults

REPO = Path(__file__).resolve().parents[1]


def test_variants_and_overrides_are_applied_relative_to_the_root():
  base = config_defaults.load_config_file("configs/tvsum_i3d_iptnet.py", root=REPO)
  config = config_defaults.load_config_file("configs/tvsum_i3d_iptnet.py:protocol,L", ["train.epochs=3"], root=REPO)
  assert not config.iptnet.use_lm and config.data.val_fraction == 0.2 and config.train.epochs == 3
  assert base.iptnet.use_lm and base.data.val_fraction == 0.0


def test_a_missing_file_or_unknown_field_is_one_config_error(tmp_path):
  with pytest.raises(config_defaults.ConfigError, match="nope.py: config file not found"):
    config_defaults.load_config_file("configs/nope.py", root=REPO)
  with pytest.raises(Exception, match="lrr"):
    config_defaults.load_config_file("configs/demo.py", ["train.lrr=1"], root=REPO)
