"""iPTNet on the embedded synthetic data: synthetic summarization videos (configs/demo.py) + Charades-STA's real
annotations with SYNTHETIC features for a subset of its videos. Nothing to download.
  python -m iptnet_jax.main --config=configs/iptnet_demo.py --workdir=runs/iptnet_demo
Variants, comma-separated: smoke (seconds; the tests use it), and one ablation of P, T, L (configs/tvsum.py),
e.g. --config=configs/iptnet_demo.py:smoke,T
"""

import importlib.util
from pathlib import Path


def _sibling(name):
  spec = importlib.util.spec_from_file_location(f"config_{name}", Path(__file__).with_name(f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(variants: str = ""):
  names = [v for v in variants.split(",") if v]
  tvsum = _sibling("tvsum")
  demo = _sibling("demo").get_config("smoke" if "smoke" in names else "default")
  from iptnet_jax import config_defaults
  config = config_defaults.iptnet_config(tvsum.lm_config())
  config.data, config.model, config.eval = demo.data, demo.model, demo.eval
  config.train.batch_size = demo.train.batch_size
  config.train.lr = 1e-4
  config.train.epochs = 8
  config.iptnet.sm_warmup_epochs = 2
  config.iptnet.lm_warmup_epochs = 1
  config.iptnet.lm_steps_per_phase = 30
  config.lm.data.max_videos = 300
  config.lm.data.synthetic.dim = config.data.synthetic.feature_dim  # the SM and LM read each other's videos
  config.lm.train.batch_size = 16
  if "smoke" in names:
    config.train.epochs = 3
    config.iptnet.sm_warmup_epochs = 1
    config.iptnet.lm_steps_per_phase = 3
    config.iptnet.radius = 3
    config.lm.data.max_videos = 20
    config.lm.data.max_pos_len = 32
    config.lm.data.video_buckets = (32,)
    config.lm.data.query_buckets = (32,)
    config.lm.data.char_buckets = (16,)
    config.lm.data.synthetic.dim = config.data.synthetic.feature_dim
    config.lm.model.dim = 16
    config.lm.model.num_heads = 2
    config.lm.model.char_dim = 8
    config.lm.model.char_channels = (2, 4, 4, 6)
    config.lm.train.batch_size = 4
    config.train.batch_size = 4
  for name in names:
    if name != "smoke":
      tvsum.apply_variant(config, name)
  return config
