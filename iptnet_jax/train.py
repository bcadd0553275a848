"""The one seam between the command line and the trainers: `train_and_evaluate(config, workdir)`."""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections

from iptnet_jax.config_defaults import TASKS, ConfigError
DEFAULT_COMPILATION_CACHE = "~/.cache/iptnet_jax/jax_cache"


def enable_compilation_cache(folder: str | None = None) -> str | None:
  """Turns on JAX's persistent compilation cache in `folder` (None: $JAX_COMPILATION_CACHE_DIR, else
  DEFAULT_COMPILATION_CACHE; 'none': off) and returns the folder used. On 2 CPU cores the joint iPTNet step
  takes minutes to compile per bucket shape; with the cache a second run (another split file, an ablation, a
  rerun) loads the executables instead."""
  folder = folder or os.environ.get("JAX_COMPILATION_CACHE_DIR") or DEFAULT_COMPILATION_CACHE
  if folder.lower() == "none":
    return None
  import jax

  folder = str(Path(folder).expanduser())
  jax.config.update("jax_compilation_cache_dir", folder)
  return folder


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, overwrite: bool = False,
                       plots: bool = True) -> dict:
  """Runs the trainer that `config.task` names in `workdir` and returns its results; with `plots`, then writes
  the run's PNGs (`iptnet_jax.plots.after_training`).

  The workdir belongs to one run (`iptnet_jax.run_dir`): rerunning the same config resumes it where it stopped
  (`iptnet_jax.loop`), another config is refused unless `overwrite`, which clears the workdir first.
  """
  from iptnet_jax import cpu_threefry

  # Same random bits, faster dropout on XLA:CPU (cpu_threefry's docstring); False keeps jax's own lowering.
  # Configs without the field (the LM and highlight configs) get the default of config_defaults.sm_config.
  unrolled_threefry = config.get("cpu_threefry", True)
  if not isinstance(unrolled_threefry, bool):
    raise ConfigError(f"config.cpu_threefry={unrolled_threefry!r}: expected True or False")
  cpu_threefry.use_unrolled_threefry_on_cpu(unrolled_threefry)
  if config.task == "sm":
    from iptnet_jax.sm.train import train_and_evaluate_sm as trainer
  elif config.task == "lm":
    from iptnet_jax.lm.train import train_and_evaluate_lm as trainer
  elif config.task == "iptnet":
    from iptnet_jax.iptnet.train import train_and_evaluate_iptnet as trainer
  elif config.task == "highlight":  # the low-rank audio-visual highlight detector (Ye et al., ICCV 2021)
    from iptnet_jax.highlight.train import train_and_evaluate_highlight as trainer
  else:
    raise ConfigError(f"config.task={config.task!r}: expected one of {', '.join(TASKS)}")
  results = trainer(config, workdir, overwrite)
  if plots and config.task != "highlight":
    import jax

    if jax.process_index() == 0:  # one process writes files, as the metric rows
      from iptnet_jax import plots as plots_lib

      # PNGs of the training curves and of three test videos' importance maps per split, in <workdir>/plots;
      # a failure there is one warning line (results.json is already written).
      plots_lib.after_training(workdir)
  return results
