"""What the config files share: the data folders they read, the LM's defaults (VSLNet on Charades-STA, also the
LM inside every iPTNet config), iPTNet's ablations, and the parsing of the variants in `--config=FILE.py:VARIANTS`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from iptnet_jax.config_defaults import ConfigError
from iptnet_jax.datasets.builders.synthetic_charades import SyntheticCharadesSpec

# Relative to the working folder: the repository root in the documented commands.
SHARED_DATA = "../shared/data"


def dsnet_split_file(dataset: str) -> str:
  """DSNet's 5 canonical splits of `dataset` ('tvsum' or 'summe') in the shared data folder."""
  return f"{SHARED_DATA}/vsumm/splits/dsnet/{dataset}.yml"


def tvsum_i3d_dir() -> str:
  """Where `python -m iptnet_jax.datasets.tvsum_i3d` builds the TVSum-I3D files: $IPTNET_TVSUM_I3D_DIR, else
  ~/.cache/iptnet_jax/tvsum_i3d (never the repository: the files derive from the shared data)."""
  return os.path.expanduser(os.environ.get("IPTNET_TVSUM_I3D_DIR", "~/.cache/iptnet_jax/tvsum_i3d"))


def variants(text: str, known: Sequence[str], config_file: str) -> list[str]:
  """'a,b' -> ['a', 'b'] (empty names dropped), each one of `known`; else one ConfigError naming the config file
  (pass `__file__`) and the known names."""
  names = [name.strip() for name in text.split(",") if name.strip()]
  unknown = [name for name in names if name not in known]
  if unknown:
    raise ConfigError(f"configs/{Path(config_file).name}: unknown variant {','.join(unknown)!r}; expected "
                      f"comma-separated names among {', '.join(known)}")
  return names


def variant(text: str, known: Sequence[str], config_file: str) -> str:
  """One name of `known` (a config file whose variants do not combine); else the ConfigError of `variants`."""
  if text not in known:
    raise ConfigError(f"configs/{Path(config_file).name}: unknown variant {text!r}; expected one of "
                      f"{', '.join(known)}")
  return text


# ---------------------------------------------------------------------------------------------- iPTNet ablations

ABLATIONS = ("P", "T", "L", "lm_alone")


def apply_ablation(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """iPTNet without propagation (P), without teaching (T), without the LM (L, the SM alone through the same step),
  or the LM alone with the same LM passes (lm_alone, paper Fig. 5's baseline)."""
  field = {"P": "propagation", "T": "teaching", "L": "use_lm", "lm_alone": "joint"}[name]
  config.iptnet[field] = False
  return config


# ---------------------------------------------------------------------------------------------- LM defaults


def lm_config() -> ml_collections.ConfigDict:
  """The LM alone (VSLNet, PyTorch version, 'rnn' predictor) on Charades-STA with VSLNet's training recipe:
  configs/charades.py's default, and the LM of every iPTNet config (config_defaults.iptnet_config)."""
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
  config.data.youtube_dir = f"{SHARED_DATA}/features/youtube"  # youtube_anno.json, umt_domain_splits.json, ...
  config.data.query = "title"  # YouTube Highlights query: "title", "domain" (the domain word) or "both"
  config.data.annotation_dir = f"{SHARED_DATA}/charades_sta"  # charades_sta_{train,test}.txt + charades.json
  # GloVe 6B 50-d restricted to the Charades-STA/TVSum vocabulary (VSLNet used 840B 300-d).
  config.data.glove_path = f"{SHARED_DATA}/glove/glove.6B.50d.charades_tvsum_vocab.txt"
  config.data.feature_dir = f"{SHARED_DATA}/features/charades"  # {vid}.npy; absent here -> synthetic
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
  return config
