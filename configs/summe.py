"""SumMe, DSNet's 5 canonical splits, SM alone. F1 is the max over users (DSNet's rule for SumMe).

Needs eccv16_dataset_summe_google_pool5.h5 in data.dataset_dir (BUILD.md, 'Datasets').
"""

from configs import common
from iptnet_jax import config_defaults

VARIANTS = ()  # get_config() takes none


def get_config():
  config = config_defaults.sm_config()
  config.data.split_file = common.dsnet_split_file("summe")
  config.data.default_h5 = "eccv16_dataset_summe_google_pool5.h5"
  return config
