"""Charades-STA, the LM alone (VSLNet, PyTorch version, 'rnn' predictor) with VSLNet's training recipe.

Needs the Charades-STA annotations and a GloVe text file (both in ../shared/data) and Charades I3D features in
VSLNet's layout (`{vid}.npy`, (T, 1024)) in data.feature_dir. When data.feature_dir does not exist, SYNTHETIC
features for the real annotations are generated into <workdir>/synthetic_charades (and every printed metric
says so). Relative paths are relative to the working directory (the repository root in these commands).
  python -m iptnet_jax.main --config=configs/charades.py --workdir=runs/charades
  python -m iptnet_jax.main --config=configs/charades.py:smoke --workdir=runs/charades_smoke   # ~1 min, CPU
Variant `upstream`: upstream VSLNet's padding and vocabulary scope (experiments/lm_vs_upstream.py compares them).
"""

import dataclasses

import ml_collections

from iptnet_jax.datasets.builders.synthetic_charades import SyntheticCharadesSpec


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.task = "lm"
  config.seed = 12345  # VSLNet main_t7.py
  # An upstream VSLNet (PyTorch) checkpoint to start from (iptnet_jax.lm.porting, needs torch): a .t7 / .pth state_dict
  # or upstream's model folder (its last <name>_<step>.t7). Evaluated as epoch 0; train.epochs=0 only evaluates it.
  config.init_from = ""

  config.data = ml_collections.ConfigDict()
  # "charades_sta", or "youtube_highlights": UMT's YouTube Highlights, one moment per run of highlight clips with
  # the video title as query (iptnet_jax/datasets/youtube_highlights.py); train = UMT train, test = UMT val.
  config.data.source = "charades_sta"
  config.data.youtube_dir = "../shared/data/features/youtube"  # youtube_anno.json, umt_domain_splits.json, ...
  config.data.query = "title"  # YouTube Highlights query: "title", "domain" (the domain word) or "both"
  config.data.annotation_dir = "../shared/data/charades_sta"  # charades_sta_{train,test}.txt + charades.json
  # GloVe 6B 50-d restricted to the Charades-STA/TVSum vocabulary (VSLNet used 840B 300-d).
  config.data.glove_path = "../shared/data/glove/glove.6B.50d.charades_tvsum_vocab.txt"
  config.data.feature_dir = "../shared/data/features/charades"  # {vid}.npy; absent here -> synthetic
  config.data.max_pos_len = 128
  config.data.max_videos = 0  # 0 = every video; N = the first N videos of each split
  # Which annotation lines the word and char vocabularies count: "files" (every line, so ids do not depend on
  # max_videos) or "used" (only the kept videos', as VSLNet counts the files it is given).
  config.data.vocab_scope = "files"
  # Every distinct (video, query, char) padded shape compiles its own train step (tens of seconds each on CPU,
  # mostly the dropout RNG), so the query and char buckets are coarse: Charades-STA queries have at most 13 tokens
  # and its words at most 15 characters, so every batch has query length 16 and char length 16.
  config.data.video_buckets = (32, 64, 96, 128)
  config.data.query_buckets = (16, 32, 64, 128)
  config.data.char_buckets = (16, 32)
  config.data.highlight_extension = 0.1
  config.data.synthetic = ml_collections.ConfigDict(dataclasses.asdict(SyntheticCharadesSpec()))

  config.model = ml_collections.ConfigDict()
  config.model.dim = 128
  config.model.num_heads = 8
  config.model.drop_rate = 0.2
  config.model.char_dim = 50
  config.model.char_channels = (10, 20, 30, 40)
  config.model.char_kernels = (1, 2, 3, 4)
  config.model.predictor = "rnn"  # or "transformer"
  config.model.mask_conv_padding = True  # False reproduces upstream's padding leak (lm/model.py docstring)

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 100
  config.train.batch_size = 16
  # "adamw": VSLNet's AdamW, lr decaying linearly to 0 over all steps, no warm-up; "adam": the released iPTNet
  # LM's plain Adam at a constant lr without weight decay (lm/train.py make_optimizer).
  config.train.optimizer = "adamw"
  config.train.lr = 1e-4
  config.train.b1 = 0.9
  config.train.b2 = 0.999
  config.train.eps = 1e-6
  config.train.weight_decay = 0.01  # decoupled (AdamW); not on biases and LayerNorms
  config.train.clip_norm = 1.0
  config.train.highlight_lambda = 5.0
  # The latest full state is saved at every epoch end and, when > 0, every this many steps (iptnet_jax.loop).
  config.train.checkpoint_every_steps = 0

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 64

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
  elif variant != "default":
    raise ValueError(f"configs/charades.py: unknown variant {variant!r}; expected 'default', 'smoke' or 'upstream'")
  return config
