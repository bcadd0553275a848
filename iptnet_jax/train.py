"""The one seam between the command line and the trainers: `train_and_evaluate(config, workdir)`."""

from __future__ import annotations

from pathlib import Path

import ml_collections

TASKS = ("sm", "lm", "iptnet")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Runs the trainer that `config.task` names and returns its results."""
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
