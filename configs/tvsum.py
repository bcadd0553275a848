"""TVSum, DSNet's 5 canonical splits: full iPTNet (SM + LM with Charades-STA, PM, collaborative mean teaching).

Needs eccv16_dataset_tvsum_google_pool5.h5 in data.dataset_dir (BUILD.md, 'Datasets'). LM data: Charades-STA
from ../shared/data; Charades I3D features from lm.data.feature_dir when present, else SYNTHETIC features for
the real annotations (generated into the workdir; every LM figure then says so).
  python -m iptnet_jax.main --config=configs/tvsum.py --workdir=runs/tvsum
Variants (`--config=configs/tvsum.py:P`): iptnet (default), P (no propagation), T (no teaching), L (no LM,
the SM alone through the same step; `configs/tvsum_sm.py` is the plain DSNet trainer), lm_alone (the LM trained
alone with the same LM passes: paper Fig. 5's baseline).
"""

import importlib.util
from pathlib import Path

from iptnet_jax import config_defaults


def lm_config():
  spec = importlib.util.spec_from_file_location("charades_config", Path(__file__).with_name("charades.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def apply_variant(config, variant: str):
  if variant == "P":
    config.iptnet.propagation = False
  elif variant == "T":
    config.iptnet.teaching = False
  elif variant == "L":
    config.iptnet.use_lm = False
  elif variant == "lm_alone":
    config.iptnet.joint = False
  elif variant != "iptnet":
    raise ValueError(f"unknown variant {variant!r}; expected iptnet, P, T, L or lm_alone")
  return config


def get_config(variant: str = "iptnet"):
  config = config_defaults.iptnet_config(lm_config())
  config.data.split_file = "../shared/data/vsumm/splits/dsnet/tvsum.yml"
  config.data.default_h5 = "eccv16_dataset_tvsum_google_pool5.h5"
  return apply_variant(config, variant)
