"""YouTube Highlights per domain (UMT's splits; 6 domains), video only (I3D RGB; the release has no audio or
flow here), UMT's mAP: every clip of a val video ranked, positives match > 0, mean over the domain's val videos.

    python -m iptnet_jax.main --config=configs/highlight_youtube.py:video --workdir=/tmp/hl_youtube

Variants: video (supervised per domain on the train videos' clip labels, BCE as UMT), weak (Ye et al.'s
weakly supervised regime: the domain's train videos positive, other domains' negative), smoke (generated data).
Split ids without features (28 in the release) are skipped. Selection: none on the val videos.
"""

from configs import common
from iptnet_jax.highlight import configs as highlight_configs

VARIANTS = ("video", "weak", "smoke")


def get_config(variant: str = "video"):
  variant = common.variant(variant, VARIANTS, __file__)
  config = highlight_configs.base_config()
  config.data.source = "youtube"
  config.data.modalities = "video"
  config.data.video_streams = "rgb"
  config.train.batch_size = 8  # 21..68 train videos per domain: 8 per step, epoch-wise permutations
  # 10 epochs x 5 steps: the best of 10 / 20 / 50 / 100 epochs by 4-fold CV on the train videos (seed 0:
  # 59.0 / 57.8 / 58.0 / 58.1).
  config.train.epochs = 10
  config.train.steps_per_epoch = 5
  config.eval.cv_folds = 4  # 19..67 train videos per domain: 4 folds rather than one per video
  if variant == "weak":
    highlight_configs.weak(config)
    config.train.steps_per_epoch = 5
  if variant == "smoke":
    highlight_configs.smoke(config, "youtube")
    config.data.modalities = "video"
    config.train.batch_size = 3
  return config
