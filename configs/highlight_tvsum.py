"""TVSum highlight detection per domain (UMT's protocol: 4 train + 1 val video per domain, top-5 mAP on the
val video, mean over the 10 domains), with the low-rank audio-visual model of iptnet_jax/highlight.

    python -m iptnet_jax.main --config=configs/highlight_tvsum.py:av --workdir=/tmp/hl_tvsum_av
    (the same as --config=configs/tvsum_i3d_highlight.py:av; experiments/highlight_report.py runs the tables)

Variants (`:name`):
  av       supervised per domain (UMT), I3D rgb+flow video + PANN audio, low-rank fusion R = 8   [main row]
  video    the same without audio ('w/o audio')
  audio    the same without vision ('w/o vision')
  weak     weakly supervised (Ye et al.): video-level labels, other domains' train videos negative,
           temporal-cue margins + beta-sparsity, SGD lr 0.01 x0.1 / 50 epochs, wd 5e-4, 200 epochs, tau = 60
  weak_video  the weak regime without audio
  smoke    a few steps on generated data (tests; no data folder needed)
Ablations are config overrides of a variant, e.g. --config.model.rank=16, --config.train.clip_len=40,
--config.loss.beta=1e-2 (experiments/highlight_report.py runs the supplement's grids, selected on train-domain
cross-validation, --config.eval.cross_validate=True).

Data: the shared data folder's features/tvsum (data.root, default $IPTNET_SHARED_DATA or ../shared/data).
Selection: none on the val video; the last step of the fixed schedule is scored. Seeds: config.seeds.
"""

from configs import common
from iptnet_jax.highlight import configs as highlight_configs

VARIANTS = ("av", "video", "audio", "weak", "weak_video", "smoke")


def get_config(variant: str = "av"):
  variant = common.variant(variant, VARIANTS, __file__)
  config = highlight_configs.base_config()
  if variant in ("video", "weak_video"):
    config.data.modalities = "video"
  if variant == "audio":
    config.data.modalities = "audio"
  if variant.startswith("weak"):
    highlight_configs.weak(config)
  if variant == "smoke":
    highlight_configs.smoke(config, "tvsum")
  return config
