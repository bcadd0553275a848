"""The one seam between the command line and the trainers: `train_and_evaluate(config, workdir)`."""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections

TASKS = ("sm", "lm", "iptnet")
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Runs the trainer that `config.task` names and returns its results."""
  from iptnet_jax import cpu_threefry

  cpu_threefry.use_unrolled_threefry_on_cpu()  # same random bits, faster dropout on CPU (its docstring)
  if config.task == "sm":
    from iptnet_jax.sm.train import train_and_evaluate_sm
    return train_and_evaluate_sm(config, workdir)
  if config.task == "lm":
    from iptnet_jax.lm.train import train_and_evaluate_lm
    return train_and_evaluate_lm(config, workdir)
  if config.task == "iptnet":
    from iptnet_jax.iptnet.train import train_and_evaluate_iptnet
    return train_and_evaluate_iptnet(config, workdir)
  raise ValueError(f"config.task={config.task!r}: expected one of {TASKS}")
