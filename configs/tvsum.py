"""TVSum, DSNet's 5 canonical splits: full iPTNet (SM + LM with Charades-STA, PM, collaborative mean teaching).

Needs eccv16_dataset_tvsum_google_pool5.h5 in data.dataset_dir (BUILD.md, 'Datasets'). LM data: Charades-STA
from ../shared/data; Charades I3D features from lm.data.feature_dir when present, else SYNTHETIC features for
the real annotations (generated into the workdir; every LM figure then says so).
  python -m iptnet_jax.main --config=configs/tvsum.py --workdir=runs/tvsum
Variants (`--config=configs/tvsum.py:P`): iptnet (default), P (no propagation), T (no teaching), L (no LM,
the SM alone through the same step; `configs/tvsum_sm.py` is the plain DSNet trainer), lm_alone (the LM trained
alone with the same LM passes: paper Fig. 5's baseline).
"""

from configs import common
from iptnet_jax import config_defaults

VARIANTS = ("iptnet", *common.ABLATIONS)


def get_config(variant: str = "iptnet"):
  variant = common.variant(variant, VARIANTS, __file__)
  config = config_defaults.iptnet_config(common.lm_config())
  config.data.split_file = common.dsnet_split_file("tvsum")
  config.data.default_h5 = "eccv16_dataset_tvsum_google_pool5.h5"
  return config if variant == "iptnet" else common.apply_ablation(config, variant)
