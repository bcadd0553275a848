"""iPTNet on the embedded synthetic data: synthetic summarization videos (configs/demo.py) + Charades-STA's real
annotations with SYNTHETIC features for a subset of its videos. Nothing to download.
  python -m iptnet_jax.main --config=configs/iptnet_demo.py --workdir=runs/iptnet_demo
Variants, comma-separated: smoke (seconds; the tests use it), and ablations P, T, L, lm_alone (configs/tvsum.py),
e.g. --config=configs/iptnet_demo.py:smoke,T
"""

from configs import common, demo
from iptnet_jax import config_defaults

VARIANTS = ("smoke", *common.ABLATIONS)


def get_config(variants: str = ""):
  names = common.variants(variants, VARIANTS, __file__)
  sm_demo = demo.get_config("smoke" if "smoke" in names else "default")
  config = config_defaults.iptnet_config(common.lm_config())
  config.data, config.model, config.eval = sm_demo.data, sm_demo.model, sm_demo.eval
  config.train.batch_size = sm_demo.train.batch_size
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
      common.apply_ablation(config, name)
  return config
