"""The README's first command: the full iPTNet (SM + LM + PM + TM) on the embedded synthetic data, in minutes.

  python -m iptnet_jax.main --config=configs/quickstart.py --workdir=runs/quickstart

The same data as configs/iptnet_demo.py (generated synthetic summarization videos; the real Charades-STA
annotations of ../shared/data with SYNTHETIC features), made small enough that compiling is not most of the
run:
* one padded shape for everything: the summarization videos fit one bucket (data.buckets), the LM videos,
  queries and words one bucket each, and both sources use the same batch size, so an SM batch and an LM batch
  have the same shapes (stand-ins included, datasets/input_pipeline.py) and the joint step compiles once;
* no warm-up phases: the schedule alternates LM-data and SM-data phases from the first epoch (paper §3.7 after
  the warm-ups), so only those two branches of the joint step are traced; both carry their task's supervised
  loss, so the SM and the LM learn from their own labels in every round as well as from each other;
* smaller widths (features 128 instead of 1024, attention 128, LM dim 64) and the first 300 Charades videos
  of each split.
Deviations from the paper's settings, for speed only: no warm-ups, these widths, the learning rates (SM 5e-4
instead of 1e-5, LM 1e-3 instead of 5e-4: 90 SM and 150 LM steps of 4 examples per split) and the epoch count.
The numbers are synthetic and say only that the pipeline learns: the final table prints them against the random
floors on the same test videos and queries. The two synthetic datasets share nothing (the summarization
generator's concepts are not Charades' words), so the cross-task terms have nothing to transfer here; the SM's
margin over its floor is small and varies with the split (8 test videos), the LM's is large.
`--config=configs/quickstart.py:smoke` shrinks it further (the tests use it).
"""

from configs import common
from iptnet_jax import config_defaults

VARIANTS = ("default", "smoke")
FEATURE_DIM = 128


def get_config(variant: str = "default"):
  variant = common.variant(variant, VARIANTS, __file__)
  config = config_defaults.iptnet_config(common.lm_config())
  config.data.source = "synthetic"
  config.data.default_h5 = ""
  synthetic = config.data.synthetic
  synthetic.num_videos = 40
  synthetic.feature_dim = FEATURE_DIM
  synthetic.min_steps = 40
  synthetic.max_steps = 64
  synthetic.num_splits = 2
  config.data.buckets = (64,)  # every video fits: one SM shape
  config.model.attention_dim = FEATURE_DIM  # = the feature width, as DSNet (so `export` writes DSNet's layout)
  config.model.num_heads = 4
  config.model.num_hidden = 64
  config.eval.metric = "avg"  # 20 TVSum-like users
  # A quarter of each split's training videos selects the model (32 train / 8 test videos per split -> 24 / 8 / 8):
  # the table's selection then never reads test (its 'DSNet conv.' column is the optimistic test selection).
  config.data.val_fraction = 0.25
  config.train.epochs = 15
  config.train.batch_size = 4
  config.train.lr = 5e-4  # 6 SM steps per epoch: 90 in all
  config.iptnet.sm_warmup_epochs = 0
  config.iptnet.lm_warmup_epochs = 0
  config.iptnet.lm_steps_per_phase = 10

  lm = config.lm
  lm.data.max_videos = 300
  lm.data.max_pos_len = 64
  lm.data.video_buckets = (64,)  # videos are resampled to <= 64 clips: one LM video shape
  lm.data.query_buckets = (16, 64)  # Charades-STA queries have <= 13 tokens: every batch is 16
  lm.data.char_buckets = (16,)  # and its words <= 15 characters
  lm.data.synthetic.dim = FEATURE_DIM  # the SM and the LM read each other's videos
  lm.model.dim = 64
  lm.model.num_heads = 4
  lm.train.batch_size = config.train.batch_size  # equal batch sizes: one compiled step for both sources
  lm.train.lr = 1e-3
  lm.eval.batch_size = 64

  if variant == "smoke":
    synthetic.num_videos = 12
    config.train.epochs = 2
    config.train.batch_size = lm.train.batch_size = 2
    config.iptnet.lm_steps_per_phase = 3
    config.eval.random_seeds = 2
    lm.data.max_videos = 20
  return config
