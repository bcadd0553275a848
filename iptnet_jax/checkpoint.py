"""Checkpoints with orbax (the only module that imports orbax, so an API change stays local).

* `BestCheckpoint`: one folder per split holding the single best parameters pytree plus JSON metadata; the loop
  saves only when the selection metric improves, and the preservation policy drops the previous one.
* `StateCheckpoint`: the latest full training state (parameters, optimizer state with the EMA teachers, step,
  rng) plus the loop's JSON record (position in the schedule and the data order, best-so-far, finished
  splits), from which a rerun resumes exactly.

Saves are synchronous: an error (a full disk, a read-only folder) is raised at the save that hit it, not at
the end of the run, and is reported as one line naming the folder; orbax's temporary folder is removed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import sys
import threading
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from iptnet_jax import fileio
from iptnet_jax.errors import InputError


class CheckpointMissingError(InputError, FileNotFoundError):
  """A folder given as a run's checkpoints holds none (a wrong path, or a run that never saved)."""


_SPACE_MARGIN = 256 * 1024  # bytes for orbax's metadata files and the JSON record


def _root_os_error(error: BaseException) -> OSError | None:
  """The OS error behind an orbax failure: an OSError in the exception chain, or tensorstore's
  "... [os_error_code='28']" inside a ValueError."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError):
      return error
    code = re.search(r"os_error_code='(\d+)'", str(error))
    if code:
      return OSError(int(code.group(1)), os.strerror(int(code.group(1))))
    error = error.__cause__ or error.__context__
  return None


class _DropOrbaxLogs(logging.Filter):
  """orbax logs a failed write's traceback from each of its worker threads before raising it; the loop reports
  the error once, as one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "/orbax/" not in record.pathname


class _DropAsyncioLogs(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return record.name != "asyncio"


def _silence_failed_write_aftermath() -> None:
  """After a failed save, orbax's remaining write coroutines fail again on their closed event loop (tracebacks
  from worker threads, asyncio's "exception was never retrieved"): echoes of the error already reported. The
  run is stopping with that error, so they are dropped instead of burying its one line."""
  for handler in logging.getLogger("absl").handlers + logging.getLogger().handlers:
    handler.addFilter(_DropAsyncioLogs())


_hooks_installed = False


def _drop_closed_loop_echoes() -> None:
  """Drops "Event loop is closed" errors that orbax's write threads raise once a save has failed (installed once,
  before the first save: the native threads may report them before the failure reaches us)."""
  global _hooks_installed
  if _hooks_installed:
    return
  _hooks_installed = True
  echo = lambda error: isinstance(error, RuntimeError) and "Event loop is closed" in str(error)
  thread_hook, except_hook = threading.excepthook, sys.excepthook
  # Python threads report through threading.excepthook; tensorstore's native threads through sys.excepthook.
  threading.excepthook = lambda args: None if echo(args.exc_value) else thread_hook(args)
  sys.excepthook = lambda kind, error, tb: None if echo(error) else except_hook(kind, error, tb)


@contextlib.contextmanager
def _quiet_orbax():
  _drop_closed_loop_echoes()
  handlers = logging.getLogger("absl").handlers + logging.getLogger().handlers
  drop = _DropOrbaxLogs()
  for handler in handlers:
    handler.addFilter(drop)
  try:
    yield
  finally:
    for handler in handlers:
      handler.removeFilter(drop)


def _manager(directory: Path, keep: int) -> ocp.CheckpointManager:
  try:
    return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
        create=True, preservation_policy=ocp.checkpoint_managers.LatestN(keep), enable_async_checkpointing=False,
        cleanup_tmp_directories=True))
  except Exception as error:  # orbax wraps the OSError of mkdir
    os_error = _root_os_error(error)
    if os_error is None:
      raise
    raise fileio.write_error(directory, os_error) from None


def _remove_temporaries(directory: Path) -> None:
  for tmp in directory.glob("*.orbax-checkpoint-tmp*"):
    shutil.rmtree(tmp, ignore_errors=True)


def _is_key(x) -> bool:
  return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _keys_as_data(tree):
  """Typed PRNG keys as their uint32 data (orbax stores plain arrays); `_data_as_keys` undoes it."""
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _data_as_keys(tree, like):
  return jax.tree.map(lambda x, ref: jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref)) if _is_key(ref)
                      else x, tree, like)


class _Folder:
  def __init__(self, directory: str | os.PathLike, keep: int):
    self.directory = Path(directory).absolute()
    self._manager = _manager(self.directory, keep)

  def _save(self, step: int, items: dict, tree=None) -> None:
    self._check_space(tree)
    try:
      with _quiet_orbax():
        self._manager.save(step, args=ocp.args.Composite(**items), force=True)
    except Exception as error:
      _silence_failed_write_aftermath()
      os_error = _root_os_error(error)
      if os_error is None:
        raise
      _remove_temporaries(self.directory)
      raise fileio.write_error(self.directory, os_error) from None

  def _check_space(self, tree) -> None:
    """Refuses a save that cannot fit, before orbax starts writing: a write that fills the disk half way fails in
    orbax's worker threads, which then print tracebacks of their own after the error (orbax closes its event loop
    while other writes are pending). The previous checkpoint is deleted only after the new one is complete, so
    the new one needs its full size."""
    needed = sum(x.nbytes for x in jax.tree.leaves(tree)) * 1.1 + _SPACE_MARGIN if tree is not None else _SPACE_MARGIN
    try:
      free = shutil.disk_usage(self.directory).free
    except OSError as error:
      raise fileio.write_error(self.directory, error) from None
    if free < needed:
      raise fileio.WorkdirWriteError(
          f"cannot write {self.directory}: [Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)} (the checkpoint needs "
          f"about {needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free)")

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def close(self) -> None:
    with contextlib.suppress(Exception):
      self._manager.close()


class BestCheckpoint(_Folder):
  """One folder holding the single best parameters pytree plus JSON metadata."""

  def __init__(self, directory: str | os.PathLike):
    super().__init__(directory, keep=1)

  def save(self, step: int, params, metadata: dict) -> None:
    self._save(step, {"params": ocp.args.StandardSave(params), "metadata": ocp.args.JsonSave(metadata)}, params)

  def discard_after(self, step: int) -> None:
    """Deletes checkpoints saved after `step` (by a run that was interrupted before it recorded them)."""
    for kept in self._manager.all_steps():
      if kept > step:
        self._manager.delete(kept)

  def restore(self, abstract_params) -> tuple[object, dict]:
    """(params, metadata) of the kept checkpoint; `abstract_params` gives structure, shapes and dtypes."""
    step = self._manager.latest_step()
    if step is None:
      raise CheckpointMissingError(f"{self.directory}: no checkpoint in this folder (expected one saved by a finished run)")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_params)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract), metadata=ocp.args.JsonRestore()))
    return restored.params, restored.metadata

  def restore_saved(self) -> tuple[object, dict]:
    """(params, metadata) with the structure, shapes and dtypes they were saved with (host numpy arrays): for
    readers of a finished run (summarize, localize, export) that do not know the feature width in advance."""
    step = self._manager.latest_step()
    if step is None:
      raise CheckpointMissingError(f"{self.directory}: no checkpoint in this folder (expected one saved by a finished run)")
    restored = self._manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(), metadata=ocp.args.JsonRestore()))
    return restored.params, restored.metadata


class StateCheckpoint(_Folder):
  """The latest training state and the loop's record; each save replaces the previous one."""

  def __init__(self, directory: str | os.PathLike):
    super().__init__(directory, keep=1)

  def save(self, state, record: dict) -> None:
    """Saves `state` (None: between units, where there is no state to resume) and the loop's `record`."""
    step = (self.latest_step() or 0) + 1  # a save counter: orbax needs increasing steps
    items = {"record": ocp.args.JsonSave(record)}
    if state is not None:
      items["state"] = ocp.args.StandardSave(_keys_as_data(state))
    self._save(step, items, state)

  def record(self) -> dict | None:
    """The loop's record of the latest save, without reading the state; None when nothing was saved."""
    step = self.latest_step()
    if step is None:
      return None
    return self._manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore())).record

  def restore_state(self, like):
    """The saved state, with the structure, shapes, dtypes and shardings of `like` (a freshly built state)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _keys_as_data(like))
    restored = self._manager.restore(self.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract)))
    return _data_as_keys(restored.state, like)
