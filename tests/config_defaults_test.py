"""config_defaults: `parse_config_flags`, the one way a tool other than main takes a config (main's syntax,
ml_collections.config_flags), and `validate`, the one check of a config."""

from pathlib import Path

import pytest

from configs import charades, demo, highlight_tvsum, iptnet_demo
from iptnet_jax import config_defaults
from iptnet_jax.highlight.train import HighlightConfigError
from iptnet_jax.lm.train import LMConfigError

REPO = Path(__file__).resolve().parents[1]


def test_the_config_arguments_come_out_of_the_command_line_in_any_order():
  argv = ["run", "--config.train.epochs=3", "--workdir", "w", "--config", "configs/tvsum_i3d_iptnet.py:protocol,L",
          "--config.data.buckets=(384,)", "-v"]
  config_args, rest = config_defaults.parse_config_flags(argv, root=REPO)
  assert rest == ["run", "--workdir", "w", "-v"]
  assert config_args.path == str(REPO / "configs/tvsum_i3d_iptnet.py") and config_args.variants == "protocol,L"
  config = config_args.load()
  assert not config.iptnet.use_lm and config.data.val_fraction == 0.2  # the variants
  assert config.train.epochs == 3 and config.data.buckets == (384,)  # the overrides, typed as the fields
  # Other variants with the same overrides (an experiment adds each run's own).
  smoke = config_args.load("smoke")
  assert smoke.iptnet.use_lm and smoke.data.val_fraction == 0.0 and smoke.train.epochs == 3
  assert config_defaults.parse_config_flags(["x"], default="configs/demo.py:smoke")[0].spec == "configs/demo.py:smoke"


def test_overrides_set_nested_fields_of_a_config_built_in_code():
  config_args, _ = config_defaults.parse_config_flags(["--config.lm.model.dim=24", "--config.train.lr=1",
                                                       "--config.iptnet.variant=paper"])
  config = config_args.apply(iptnet_demo.get_config("smoke"))
  assert config.lm.model.dim == 24 and config.iptnet.variant == "paper"
  assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
  untouched = iptnet_demo.get_config("smoke")
  assert config_defaults.ConfigArgs(None).apply(untouched) is untouched


@pytest.mark.parametrize("argv, message", [
    (["--config=configs/demo.py:smoke", "--config.train.lrr=1"],
     "--config.train.lrr: the config has no such field ('lrr' Did you mean \"lr\" instead of \"lrr\"?)"),
    (["--config=configs/demo.py:smoke", "--config.train.lr=abc"],
     "--config.train.lr=abc: could not convert string to float: 'abc'"),
    (["--config=configs/demo.py:smoke", "--config.train.epochs=1.5"],
     "--config.train.epochs=1.5: invalid literal for int() with base 10: '1.5'"),
    (["--config=configs/demo.py:bogus"], "--config: configs/demo.py: unknown variant 'bogus'; expected one of "
                                        "default, smoke"),
    (["--config=configs/iptnet_demo.py:smoke,Q"], "--config: configs/iptnet_demo.py: unknown variant 'Q'; expected "
                                                 "comma-separated names among smoke, P, T, L, lm_alone"),
    (["--config=configs/nope.py"], "--config: OSError: [Errno 2] No such file or directory: '"),
    (["--config.train.lr=1"], "--config: expected a config file, e.g. --config=configs/demo.py"),
])
def test_a_bad_file_variant_field_or_value_is_one_line(argv, message):
  with pytest.raises(config_defaults.ConfigError) as caught:
    config_defaults.parse_config_flags(argv, root=REPO)[0].load()
  assert str(caught.value).startswith(message) and "\n" not in str(caught.value), str(caught.value)


def test_an_override_needs_a_value():
  with pytest.raises(config_defaults.ConfigError, match=r"^--config\.train\.lr: expected --config\.FIELD=VALUE"):
    config_defaults.parse_config_flags(["--config.train.lr", "1"])


@pytest.mark.parametrize("task, field, value, error, match", [
    ("sm", "train.lr", -1.0, config_defaults.ConfigError, r"^config\.train\.lr=-1\.0: expected a finite"),
    ("sm", "data.buckets", ("48",), config_defaults.ConfigError, r"^config\.data\.buckets=\('48',\): expected"),
    ("iptnet", "iptnet.radius", -1, config_defaults.ConfigError, r"^config\.iptnet\.radius=-1: expected"),
    ("iptnet", "lm.model.drop_rate", 1.5, LMConfigError, r"^config\.lm\.model\.drop_rate=1\.5: expected"),
    ("lm", "train.batch_size", 0, LMConfigError, r"^config\.train\.batch_size=0: expected at least 1"),
    ("highlight", "model.rank", 0, HighlightConfigError, r"^config\.model\.rank=0: expected >= 1"),
])
def test_validate_checks_the_config_of_its_task(task, field, value, error, match):
  config = {"sm": demo, "iptnet": iptnet_demo, "lm": charades, "highlight": highlight_tvsum}[task].get_config("smoke")
  assert config.task == task
  config_defaults.validate(config)
  *parents, leaf = field.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(error, match=match):
    config_defaults.validate(config)


def test_validate_refuses_an_unknown_task():
  config = demo.get_config("smoke")
  config.task = "nope"
  with pytest.raises(config_defaults.ConfigError, match=r"^config\.task='nope': expected one of sm, lm, iptnet"):
    config_defaults.validate(config)


def test_validate_is_the_only_public_check():
  checks = [name for name in vars(config_defaults) if name.startswith(("check", "validate"))]
  assert checks == ["validate"]
