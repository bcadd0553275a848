"""Command line: python -m iptnet_jax.main --config=configs/demo.py --workdir=runs/demo

This file is kept thin on purpose; everything it does is in `iptnet_jax.train.train_and_evaluate`,
which tests and notebooks call directly.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from iptnet_jax import loop, train
from iptnet_jax.config_defaults import describe_flag_error
from iptnet_jax.errors import InputError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Folder for metrics, checkpoints and generated data.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Clear the workdir (a run of this project) and start again, "
                                "instead of resuming the run it holds or refusing a different config.")
_CACHE = flags.DEFINE_string("compilation_cache", None, "Folder of JAX's persistent compilation cache (default: "
                             f"$JAX_COMPILATION_CACHE_DIR, else {train.DEFAULT_COMPILATION_CACHE}); 'none' "
                             "turns it off.")


def parse_flags(argv: list[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except Exception as error:  # noqa: BLE001 - everything here comes from the command line or the config file
    sys.exit(f"error: {describe_flag_error(error, argv)}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  try:
    config = _CONFIG.value
    getattr(config, "task", None)  # ml_collections reports a config file it could not load only at first use
  except Exception as error:  # noqa: BLE001 - the config file's own failure
    sys.exit(f"error: {describe_flag_error(error, sys.argv)}")
  train.enable_compilation_cache(_CACHE.value)
  try:
    train.train_and_evaluate(config, _WORKDIR.value, overwrite=_OVERWRITE.value)
  except loop.RunInterrupted as stopped:
    print(stopped, file=sys.stderr)
    sys.exit(128 + stopped.signum)  # the shell's convention for a process ended by a signal
  except InputError as error:
    # The project's own input checks already say which file / field is wrong and what was expected; a
    # traceback adds nothing to that. Any other exception is a programming error and keeps its traceback.
    sys.exit(f"error: {error}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=parse_flags)
