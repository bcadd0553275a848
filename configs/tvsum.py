"""TVSum, DSNet's 5 canonical splits, SM alone (DSNet anchor-free = the paper's iPTNet-L ablation).

Needs eccv16_dataset_tvsum_google_pool5.h5 in data.dataset_dir (BUILD.md, 'Datasets').
  python -m iptnet_jax.main --config=configs/tvsum.py --workdir=runs/tvsum
"""

from iptnet_jax import config_defaults


def get_config():
  config = config_defaults.sm_config()
  config.data.split_file = "../shared/data/vsumm/splits/dsnet/tvsum.yml"
  config.data.default_h5 = "eccv16_dataset_tvsum_google_pool5.h5"
  return config
