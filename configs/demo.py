"""The embedded default: SM alone on generated synthetic videos, a few minutes on 2 CPU cores.

Nothing to download: the first run writes the synthetic eccv16 h5 and split file into <workdir>/synthetic_data.
  python -m iptnet_jax.main --config=configs/demo.py --workdir=runs/demo
`--config=configs/demo.py:smoke` shrinks it to seconds (used by the tests).
"""

from configs import common
from iptnet_jax import config_defaults

VARIANTS = ("default", "smoke")


def get_config(variant: str = "default"):
  variant = common.variant(variant, VARIANTS, __file__)
  config = config_defaults.sm_config()
  config.data.source = "synthetic"
  config.data.default_h5 = ""
  config.data.synthetic.num_videos = 30
  config.data.synthetic.min_steps = 60
  config.data.synthetic.max_steps = 160
  config.data.buckets = (64, 96, 128, 160)
  config.train.epochs = 8
  config.train.batch_size = 4
  config.train.lr = 1e-4
  config.eval.metric = "avg"  # 20 TVSum-like users
  if variant == "smoke":
    config.data.synthetic.num_videos = 10
    config.data.synthetic.feature_dim = 64
    config.data.synthetic.num_users = 5
    config.data.synthetic.min_steps = 40  # 15 % of 600+ frames holds a few 2-10 step shots
    config.data.synthetic.max_steps = 60
    config.data.synthetic.num_splits = 2
    config.data.buckets = (48, 64)
    config.model.attention_dim = 64
    config.model.num_hidden = 32
    config.train.epochs = 2
    config.eval.random_seeds = 2
  return config
