"""TVSum, DSNet's 5 canonical splits, SM alone with the plain DSNet trainer (anchor-free DSNet).

Needs eccv16_dataset_tvsum_google_pool5.h5 in data.dataset_dir (BUILD.md, 'Datasets').
  python -m iptnet_jax.main --config=configs/tvsum_sm.py --workdir=runs/tvsum_sm
"""

from iptnet_jax import config_defaults


def get_config():
  config = config_defaults.sm_config()
  config.data.split_file = "../shared/data/vsumm/splits/dsnet/tvsum.yml"
  config.data.default_h5 = "eccv16_dataset_tvsum_google_pool5.h5"
  return config
