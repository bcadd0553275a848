"""TVSum-I3D highlight detection: UMT's per-domain splits (4 train + 1 val video per TVSum domain, 10 domains),
SM alone (DSNet anchor-free) trained per domain, top-5 mAP on the domain's val video.

Steps are ranked by DSNet's normalised cls * ctr step score; labels are each user's score above that user's
median (iptnet_jax/vsumm/highlight.py). The split file is the builder's domain yml in the data folder:
  python -m iptnet_jax.datasets.tvsum_i3d --out ~/.cache/iptnet_jax/tvsum_i3d --domain-splits
  python -m iptnet_jax.main --config=configs/tvsum_i3d_highlight.py --workdir=/tmp/tvsum_i3d_hl
or run it through experiments/tvsum_i3d_report.py --only highlight, which prints the 10 domain figures.
Split i of the yml is the i-th domain of tvsum_i3d.DOMAIN_ORDER (VT VU GA MS PK PR FM BK BT DS).

There is no validation video: the trainer keeps DSNet's convention (the best epoch on the split's test video,
optimistic, as UMT's best-on-val); it also reports the last epoch's figure, which involves no selection.
Variant `:rgbflow` reads the rgb+flow file. Published on these features: UMT 83.1 mean top-5 mAP (with audio).
"""

import os

from iptnet_jax import config_defaults
from iptnet_jax.datasets import tvsum_i3d

FEATURES = {"rgb": "rgb", "rgbflow": "rgb+flow"}


def default_data_dir() -> str:
  return os.path.expanduser(os.environ.get("IPTNET_TVSUM_I3D_DIR", "~/.cache/iptnet_jax/tvsum_i3d"))


def get_config(variant: str = "rgb"):
  if variant not in FEATURES:
    raise ValueError(f"configs/tvsum_i3d_highlight.py: unknown variant {variant!r}; expected one of "
                     f"{sorted(FEATURES)}")
  h5_name = tvsum_i3d.output_name(FEATURES[variant], "kts")
  config = config_defaults.sm_config()
  config.data.dataset_dir = default_data_dir()
  # Follows data.dataset_dir when that is overridden on the command line.
  config.data.split_file = config.data.get_ref("dataset_dir") + f"/{tvsum_i3d.domain_splits_name(h5_name)}"
  config.data.default_h5 = ""
  config.data.buckets = (64, 128, 192, 256, 320, 384)
  config.eval.protocol = "top5_map"
  config.eval.random_seeds = 100  # one val video per domain: the floor needs many draws to be stable
  config.train.epochs = 300
  return config
