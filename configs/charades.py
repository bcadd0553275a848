"""Charades-STA, the LM alone (VSLNet, PyTorch version, 'rnn' predictor) with VSLNet's training recipe.

Needs the Charades-STA annotations and a GloVe text file (both in ../shared/data) and Charades I3D features in
VSLNet's layout (`{vid}.npy`, (T, 1024)) in data.feature_dir. When data.feature_dir does not exist, SYNTHETIC
features for the real annotations are generated into <workdir>/synthetic_charades (and every printed metric
says so). Relative paths are relative to the working directory (the repository root in these commands).
  python -m iptnet_jax.main --config=configs/charades.py --workdir=runs/charades
  python -m iptnet_jax.main --config=configs/charades.py:smoke --workdir=runs/charades_smoke   # ~1 min, CPU
Variant `upstream`: upstream VSLNet's padding and vocabulary scope (experiments/lm_vs_upstream.py compares them).
The fields and their defaults are configs/common.py's `lm_config`.
"""

import ml_collections

from configs import common

VARIANTS = ("default", "smoke", "upstream")


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
  variant = common.variant(variant, VARIANTS, __file__)
  config = common.lm_config()
  if variant == "smoke":
    # The first videos of each split, tiny dims and a single padded shape (videos resampled to <= 32 clips):
    # under a minute on 2 CPU cores.
    config.data.max_videos = 100
    config.data.max_pos_len = 32
    config.data.video_buckets = (32,)
    config.data.query_buckets = (16, 32)
    config.data.char_buckets = (16,)
    config.data.synthetic.dim = 64
    config.model.dim = 32
    config.model.num_heads = 4
    config.model.char_dim = 16
    config.model.char_channels = (4, 8, 8, 12)
    config.train.epochs = 5
    config.train.batch_size = 8
    config.train.lr = 4e-3
  elif variant == "upstream":
    # 26hzhang/VSLNet's own choices where this project deliberately differs (BUILD.md, 'Moment localization vs
    # upstream VSLNet', has what each measured): the depthwise convolutions see the padded steps, and the
    # vocabularies count only the annotation lines of the videos in use.
    config.model.mask_conv_padding = False
    config.data.vocab_scope = "used"
  return config
