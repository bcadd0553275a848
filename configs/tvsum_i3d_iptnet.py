"""iPTNet on TVSum-I3D (real I3D rgb features, KTS shots, DSNet's 5 TVSum splits) with Charades-STA as LM data.

Charades I3D features are not shipped: when lm.data.feature_dir is absent, SYNTHETIC features for the real
Charades-STA annotations are generated into the workdir (1024-d, like the rgb stream), and every LM figure
says so. Build the TVSum-I3D file first (configs/tvsum_i3d.py's docstring), then:
  python -m iptnet_jax.main --config=configs/tvsum_i3d_iptnet.py --workdir=/tmp/tvsum_i3d_iptnet
Variants, comma-separated: one ablation of P, T, L, or lm_alone (paper Fig. 5's baseline); e.g. ":T".
"""

import importlib.util
from pathlib import Path


def _sibling(name):
  spec = importlib.util.spec_from_file_location(f"config_{name}", Path(__file__).with_name(f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(variants: str = ""):
  from iptnet_jax import config_defaults
  tvsum = _sibling("tvsum")
  sm_only = _sibling("tvsum_i3d").get_config("rgb")
  config = config_defaults.iptnet_config(tvsum.lm_config())
  config.data, config.eval = sm_only.data, sm_only.eval
  config.train.epochs = 30
  config.iptnet.sm_warmup_epochs = 5
  config.iptnet.lm_steps_per_phase = 200  # batches of 16 Charades queries per LM phase
  for name in filter(None, variants.split(",")):
    tvsum.apply_variant(config, name)
  return config
