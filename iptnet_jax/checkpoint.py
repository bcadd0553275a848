"""Best-model checkpoints with orbax (the only module that imports orbax, so an API change stays local).

A `BestCheckpoint` keeps exactly one checkpoint in its folder: the trainer saves only when the selection
metric improves, and the preservation policy drops the previous one.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp


class BestCheckpoint:
  """One folder holding the single best parameters pytree plus JSON metadata."""

  def __init__(self, directory: str | os.PathLike):
    self.directory = Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            create=True, preservation_policy=ocp.checkpoint_managers.LatestN(1)),
    )

  def save(self, step: int, params, metadata: dict) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), metadata=ocp.args.JsonSave(metadata)))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore(self, abstract_params) -> tuple[object, dict]:
    """(params, metadata) of the kept checkpoint; `abstract_params` gives structure, shapes and dtypes."""
    self._manager.wait_until_finished()
    step = self._manager.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_params)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract), metadata=ocp.args.JsonRestore()))
    return restored.params, restored.metadata

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
