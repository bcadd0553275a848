"""TVSum highlight detection on UMT's per-domain splits (4 train + 1 val video per domain, 10 domains, top-5 mAP
on the domain's val video, mean over domains): the low-rank audio-visual model of iptnet_jax/highlight (Ye et al.,
ICCV 2021) on I3D rgb+flow video + PANN audio, or the SM alone (DSNet anchor-free) trained per domain.

    python -m iptnet_jax.main --config=configs/tvsum_i3d_highlight.py:av --workdir=/tmp/hl_tvsum_av
        -> <workdir>/results.json: "per_domain" {"VT": .., ...} (top-5 mAP in [0, 1], mean over config.seeds),
           "per_domain_std", "mean", "mean_std", "random_floor" (BUILD.md "Highlight detection")

Variants (`:name`):
  av, video, audio, weak, weak_video, smoke
           the highlight model, exactly configs/highlight_tvsum.py's variant of that name (its docstring); it reads
           the shared data folder's features/tvsum directly (data.root)
  sm       (default; also `rgb`) the SM alone per domain on the TVSum-I3D h5 (rgb, KTS shots): BUILD.md's
           "TVSum-I3D benchmark" row (65.67, best test epoch)
  sm_rgbflow  (also `rgbflow`) the same on the rgb+flow h5

SM variants: steps are ranked by DSNet's normalised cls * ctr step score; labels are each user's score above that
user's median (iptnet_jax/vsumm/highlight.py). The split file is the builder's domain yml in the data folder:
  python -m iptnet_jax.datasets.tvsum_i3d --out ~/.cache/iptnet_jax/tvsum_i3d --domain-splits
  python -m iptnet_jax.main --config=configs/tvsum_i3d_highlight.py:sm --workdir=/tmp/tvsum_i3d_hl
or run it through experiments/tvsum_i3d_report.py --only highlight, which prints the 10 domain figures.
Split i of the yml is the i-th domain of tvsum_i3d.DOMAIN_ORDER (VT VU GA MS PK PR FM BK BT DS). There is no
validation video: the SM trainer keeps DSNet's convention (the best epoch on the split's test video, optimistic, as
UMT's best-on-val); it also reports the last epoch's figure, which involves no selection.
Published on these features: UMT 83.1 mean top-5 mAP (with audio).
"""

from configs import common, highlight_tvsum
from iptnet_jax import config_defaults
from iptnet_jax.datasets.builders import tvsum_i3d

SM_FEATURES = {"sm": "rgb", "sm_rgbflow": "rgb+flow"}
SM_ALIASES = {"rgb": "sm", "rgbflow": "sm_rgbflow"}  # the names these variants had before the highlight model
VARIANTS = (*SM_FEATURES, *SM_ALIASES, *highlight_tvsum.VARIANTS)


def get_config(variant: str = "sm"):
  variant = common.variant(variant, VARIANTS, __file__)
  if variant in highlight_tvsum.VARIANTS:
    return highlight_tvsum.get_config(variant)
  h5_name = tvsum_i3d.output_name(SM_FEATURES[SM_ALIASES.get(variant, variant)], "kts")
  config = config_defaults.sm_config()
  config.data.dataset_dir = common.tvsum_i3d_dir()
  # Follows data.dataset_dir when that is overridden on the command line.
  config.data.split_file = config.data.get_ref("dataset_dir") + f"/{tvsum_i3d.domain_splits_name(h5_name)}"
  config.data.default_h5 = ""
  config.data.buckets = (64, 128, 192, 256, 320, 384)
  config.eval.protocol = "top5_map"
  config.eval.random_seeds = 100  # one val video per domain: the floor needs many draws to be stable
  config.train.epochs = 300
  return config
