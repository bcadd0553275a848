"""TVSum-I3D (real I3D features + official TVSum annotation, KTS shots), DSNet's 5 canonical TVSum splits,
SM alone (DSNet anchor-free = the paper's iPTNet-L ablation), keyshot F1.

DSNet's yml names eccv16_dataset_tvsum_google_pool5.h5; data.h5_renames reads the same videos (video_1..50,
same keys) from the TVSum-I3D file instead. Build the file first (BUILD.md, 'TVSum-I3D benchmark'):
  python -m iptnet_jax.datasets.tvsum_i3d --out ~/.cache/iptnet_jax/tvsum_i3d --domain-splits
  python -m iptnet_jax.main --config=configs/tvsum_i3d.py --workdir=/tmp/tvsum_i3d_f1
or run everything (build if missing, train, print floor and F1) with experiments/tvsum_i3d_report.py.

Variant `:rgbflow` reads the rgb+flow (2048-d) file (build it with --features rgb+flow).
The data folder defaults to $IPTNET_TVSUM_I3D_DIR or ~/.cache/iptnet_jax/tvsum_i3d (never the repository).
Training hyper-parameters are DSNet's (lr 5e-5, batch 1, weight decay 1e-5, 300 epochs); the report command
takes --epochs for shorter runs.
"""

from configs import common
from iptnet_jax import config_defaults
from iptnet_jax.datasets.builders import tvsum_i3d

DSNET_TVSUM_H5 = "eccv16_dataset_tvsum_google_pool5.h5"
FEATURES = {"rgb": "rgb", "rgbflow": "rgb+flow"}
VARIANTS = tuple(FEATURES)


def get_config(variant: str = "rgb"):
  variant = common.variant(variant, VARIANTS, __file__)
  config = config_defaults.sm_config()
  config.data.dataset_dir = common.tvsum_i3d_dir()
  config.data.split_file = str(tvsum_i3d.default_shared_dir() / "vsumm/splits/dsnet/tvsum.yml")
  config.data.default_h5 = ""
  config.data.h5_renames = f"{DSNET_TVSUM_H5}={tvsum_i3d.output_name(FEATURES[variant], 'kts')}"
  config.data.buckets = (64, 128, 192, 256, 320, 384)  # T = 49..323 steps of 2 s
  config.eval.protocol = "fscore"
  config.eval.metric = "avg"  # TVSum: mean F1 over the 20 users (DSNet's 'auto' rule gives the same)
  config.eval.random_seeds = 20
  return config
