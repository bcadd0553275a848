"""The highlight detector's config builders (iptnet_jax.highlight.configs): `weak` and `smoke` change only fields
the base config defines (a misspelt field would silently add a new one), and every builder's config passes the
trainer's checks."""

import ml_collections
import pytest

from iptnet_jax.highlight import configs
from iptnet_jax.highlight import train as highlight_train


def _flat(config: ml_collections.ConfigDict, prefix: str = "") -> dict:
  out = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


@pytest.mark.parametrize("builder", [configs.weak, configs.smoke, lambda c: configs.smoke(c, "youtube")],
                         ids=["weak", "smoke", "smoke_youtube"])
def test_builders_only_set_fields_of_the_base_config(builder):
  base = configs.base_config()
  config = configs.base_config()
  config.lock()  # adding a field now raises
  builder(config)
  changed = {k for k, v in _flat(config).items() if _flat(base)[k] != v}
  assert changed and set(_flat(config)) == set(_flat(base))


def test_the_weak_schedule_and_the_smoke_shrink():
  weak = configs.weak(configs.base_config())
  assert (weak.train.regime, weak.train.optimizer, weak.train.lr, weak.train.epochs) == ("weak", "sgd", 0.01, 200)
  smoke = configs.smoke(configs.base_config(), "youtube")
  assert smoke.data.source == "synthetic" and smoke.data.synthetic.kind == "youtube"
  assert smoke.train.epochs * smoke.train.steps_per_epoch <= 4 and smoke.model.hidden <= 16


@pytest.mark.parametrize("build", [configs.base_config, lambda: configs.weak(configs.base_config()),
                                   lambda: configs.smoke(configs.base_config())], ids=["base", "weak", "smoke"])
def test_each_builder_passes_the_trainers_checks(build):
  highlight_train.check_config(build())
