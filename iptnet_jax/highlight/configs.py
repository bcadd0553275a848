"""Config builders shared by configs/highlight_tvsum.py and configs/highlight_youtube.py (defaults: TVSum, UMT's
supervised per-domain regime; `weak` switches to Ye et al.'s weakly supervised schedule; `smoke` shrinks a
config to a few steps on generated data)."""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.task = "highlight"
  config.seeds = "0,1,2"

  config.data = ml_collections.ConfigDict()
  config.data.source = "tvsum"  # 'tvsum' | 'youtube' | 'synthetic'
  config.data.root = ""  # the shared data folder; '' = $IPTNET_SHARED_DATA or ../shared/data
  config.data.modalities = "video,audio"
  config.data.video_streams = "rgb+flow"  # UMT concatenates I3D rgb and flow (T, 2048)
  config.data.target = "mean_score"  # UMT's (sum - 20) / 80; 'vote': fraction of users above their median
  config.data.domains = "all"
  config.data.eval_bucket = 64  # val videos are zero-padded to a multiple of this many clips
  config.data.synthetic = ml_collections.ConfigDict(dict(
      num_domains=3, train_per_domain=4, val_per_domain=1, min_clips=20, max_clips=70, video_dim=16,
      audio_dim=8, kind="tvsum", seed=0))

  config.model = ml_collections.ConfigDict()
  config.model.hidden = 128
  config.model.rank = 8  # the supplement's best R
  config.model.encoder = "transformer"
  config.model.num_layers = 1
  config.model.num_heads = 4
  config.model.kernel_size = 3
  config.model.input_dropout = 0.5  # UMT's UniModalEncoder drops 50 % of the input features
  config.model.dropout = 0.1
  config.model.attention_features = 64

  config.train = ml_collections.ConfigDict()
  config.train.regime = "supervised"
  # 20 epochs x 5 steps: the best of 5 / 10 / 20 / 40 epochs by leave-one-train-video-out CV (seed 0,
  # transformer: 48.2 / 53.1 / 56.1 / 54.6; experiments/highlight_report.py docstring has the command).
  config.train.epochs = 20
  config.train.steps_per_epoch = 5
  config.train.batch_size = 4  # a domain's 4 train videos in every step
  # Other domains' train videos per step: the weak regime's negatives; in the supervised regime extra
  # clip-supervised videos (weight loss.other_weight) and, with loss.domain_weight > 0, topic negatives.
  config.train.num_others = 0
  config.train.clip_len = 60  # tau consecutive clips per video and step (Ye et al.: 60); 0 = whole videos
  config.train.optimizer = "adam"  # UMT: Adam lr 1e-3, weight decay 1e-4
  config.train.lr = 1e-3
  config.train.momentum = 0.9
  config.train.weight_decay = 1e-4
  config.train.lr_decay_every_epochs = 0
  config.train.lr_decay = 0.1
  config.train.grad_clip = 0.0
  # The loop saves the full state at the end of every this many epochs (0: at the end of each run only; one
  # epoch of a few steps costs less than a save) and every checkpoint_every_steps steps (0: off); SIGTERM saves.
  config.train.checkpoint_every_epochs = 0
  config.train.checkpoint_every_steps = 0

  config.loss = ml_collections.ConfigDict()
  config.loss.rank_weight = 0.0
  config.loss.rank_margin = 1.0
  config.loss.video_weight = 1.0
  config.loss.cue_weight = 1.0
  config.loss.var_margin = 0.05
  config.loss.score_margin = 0.5
  config.loss.top_fraction = 0.125
  config.loss.beta = 1e-4  # the supplement's best of 1e-4 ... 1e-1
  config.loss.other_weight = 1.0
  config.loss.domain_weight = 0.0

  config.eval = ml_collections.ConfigDict()
  config.eval.val = True
  config.eval.cross_validate = False  # cross-validation on each domain's train videos: the selection signal
  config.eval.cv_folds = 0  # 0: leave one train video out; k: k folds
  config.eval.cv_seeds = 0  # > 0: cross-validate only the first that many of config.seeds (0: all)
  config.eval.cv_epochs = ""  # e.g. '50,100': cross-validation also scores the held-out video at these epochs
  # > 0: also score the val videos every this many epochs ("val_curve"; results' "best_val_epoch_optimistic",
  # UMT's best-epoch protocol, for comparison with the anchors only; never used for selection).
  config.eval.val_curve_every = 0
  config.eval.random_draws = 100
  # Moving average over this many clips (odd) on the clip scores before the metric (1: none); compare_smooth,
  # e.g. '3,5': also score these windows (logged, their CV / val means in results.json; never the reported figure).
  config.eval.smooth = 1
  config.eval.compare_smooth = ""
  return config


def weak(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Ye et al.'s weakly supervised schedule (supplement)."""
  config.train.regime = "weak"
  config.train.optimizer = "sgd"
  config.train.lr = 0.01
  config.train.momentum = 0.9  # not stated in the supplement
  config.train.weight_decay = 5e-4
  config.train.lr_decay_every_epochs = 50
  config.train.lr_decay = 0.1
  config.train.epochs = 200
  config.train.steps_per_epoch = 1
  config.train.num_others = 8  # negatives: other domains' train videos
  config.train.clip_len = 60
  return config


def smoke(config: ml_collections.ConfigDict, kind: str = "tvsum") -> ml_collections.ConfigDict:
  """A few steps of tiny widths on generated data (tests; no data folder needed)."""
  config.data.source = "synthetic"
  config.data.synthetic.kind = kind
  config.seeds = "0,1"
  config.model.hidden = 16
  config.model.rank = 2
  config.model.num_heads = 2
  config.model.attention_features = 8
  config.train.epochs = 2
  config.train.steps_per_epoch = 2
  config.train.clip_len = 16
  config.data.eval_bucket = 16
  config.eval.random_draws = 5
  return config
