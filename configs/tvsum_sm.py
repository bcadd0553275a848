"""TVSum, DSNet's 5 canonical splits, SM alone with the plain DSNet trainer (anchor-free DSNet).

Needs eccv16_dataset_tvsum_google_pool5.h5 in data.dataset_dir (BUILD.md, 'Datasets').
  python -m iptnet_jax.main --config=configs/tvsum_sm.py --workdir=runs/tvsum_sm
"""

from configs import common
from iptnet_jax import config_defaults

VARIANTS = ()  # get_config() takes none


def get_config():
  config = config_defaults.sm_config()
  config.data.split_file = common.dsnet_split_file("tvsum")
  config.data.default_h5 = "eccv16_dataset_tvsum_google_pool5.h5"
  return config
