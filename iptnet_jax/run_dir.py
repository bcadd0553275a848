"""A workdir belongs to one run: it records the config the run started with, and a rerun with another config is
refused (naming the first differing field) unless the user asks for `--overwrite`.

Files: `config.json` (the full config, written once), `run.json` (run id, how many times the run was resumed).
One process at a time: the run holds an exclusive lock on the workdir folder (`fcntl.flock`, released when the
run ends or its process dies, even by SIGKILL); a second command on the same workdir is refused while the first
runs, so two processes never write one run's checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path

import ml_collections

from iptnet_jax import fileio
from iptnet_jax.errors import InputError

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"


class WorkdirError(InputError):
  """The workdir cannot hold this run (another run's files, a path that is a file, a config change)."""


class WorkdirBusyError(WorkdirError):
  """Another process is running in the workdir."""


def config_as_dict(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def _flatten(tree, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{name}."))
    else:
      flat[name] = value
  return flat


def first_difference(recorded: dict, current: dict) -> tuple[str, object, object] | None:
  """(field, recorded value, current value) of the first field, in config order, that differs; '<absent>'
  stands for a field that one side does not have."""
  old, new = _flatten(recorded), _flatten(current)
  for field in [*new, *(k for k in old if k not in new)]:
    if old.get(field, "<absent>") != new.get(field, "<absent>"):
      return field, old.get(field, "<absent>"), new.get(field, "<absent>")
  return None


@dataclasses.dataclass
class RunInfo:
  workdir: Path
  run_id: str
  resumes: int  # 0 for a fresh run, n for its n-th rerun
  created: bool  # the workdir did not exist before this run
  lock_fd: int | None = dataclasses.field(default=None, repr=False)  # the workdir's flock, held while it runs


def _lock(workdir: Path) -> int:
  fd = os.open(workdir, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    raise WorkdirBusyError(f"workdir {workdir}: another process is running this run; wait for it to end (or stop "
                           "it: it saves its state and a rerun resumes)") from None
  return fd


def release(info: RunInfo) -> None:
  """Releases the workdir's lock (the run ended); closing the folder's descriptor drops the flock."""
  if info.lock_fd is not None:
    os.close(info.lock_fd)
    info.lock_fd = None


def _check_folder(workdir: Path) -> None:
  for parent in [workdir, *workdir.parents]:
    if parent.exists():
      if not parent.is_dir():
        what = "is a file" if parent == workdir else f"is under {parent}, which is a file"
        raise WorkdirError(f"workdir {workdir}: {what}; expected a folder (or a path where one can be made)")
      return


def check(workdir: str | Path, config: ml_collections.ConfigDict, overwrite: bool = False) -> None:
  """Refuses, before any data is read, a workdir that holds another run or a different config."""
  workdir = Path(workdir)
  _check_folder(workdir)
  if overwrite or not workdir.exists():
    return
  recorded_path = workdir / CONFIG_FILE
  if not recorded_path.exists():
    if any(workdir.iterdir()):
      raise WorkdirError(f"workdir {workdir} holds files but no {CONFIG_FILE}, so it is not a run of this project "
                         "(or of an older version); use another --workdir, or --overwrite to clear it")
    return
  try:
    recorded = json.loads(recorded_path.read_text())
  except (OSError, ValueError) as error:
    raise WorkdirError(f"{recorded_path}: unreadable ({error}); use --overwrite to start the run again") from None
  difference = first_difference(recorded, config_as_dict(config))
  if difference is not None:
    field, old, new = difference
    raise WorkdirError(f"workdir {workdir} belongs to a run with config.{field}={old!r}, this command has "
                       f"config.{field}={new!r}; rerun with the same config to resume it, use another --workdir, "
                       "or --overwrite to clear it and start again")


def clear(workdir: Path) -> None:
  """Empties a run's workdir (--overwrite). Only a folder this project made (it has config.json) or an empty one is
  cleared, so a mistyped --workdir cannot wipe unrelated files."""
  if not workdir.exists():
    return
  if any(workdir.iterdir()) and not (workdir / CONFIG_FILE).exists():
    raise WorkdirError(f"--overwrite: {workdir} has no {CONFIG_FILE}, so it is not a run of this project; not "
                       "clearing it (remove it yourself if you mean to)")
  print(f"--overwrite: clearing {workdir}", flush=True)
  for entry in workdir.iterdir():
    if entry.is_dir() and not entry.is_symlink():
      shutil.rmtree(entry)
    else:
      entry.unlink()


@contextlib.contextmanager
def claimed(workdir: str | Path, config: ml_collections.ConfigDict, overwrite: bool = False):
  """Checks and takes the workdir for this run; yields a RunInfo. Used around the data setup: if setup fails
  in a workdir this call created, the workdir is removed again, so a failed start leaves nothing behind."""
  workdir = Path(workdir)
  check(workdir, config, overwrite)
  created = not workdir.exists()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise fileio.write_error(workdir, error) from None
  lock_fd = _lock(workdir)  # busy: refused before anything is cleared or removed (the folder is the other's)
  info = None
  try:
    check(workdir, config, overwrite)  # again under the lock: a run may have started here since the first check
    if overwrite:
      clear(workdir)
    run_path = workdir / RUN_FILE
    if run_path.exists():
      run = json.loads(run_path.read_text())
      info = RunInfo(workdir, run["run_id"], run["resumes"] + 1, created, lock_fd)
    else:
      info = RunInfo(workdir, uuid.uuid4().hex[:12], 0, created, lock_fd)
    yield info
  except BaseException:
    if created:
      shutil.rmtree(workdir, ignore_errors=True)
    os.close(lock_fd)
    if info is not None:
      info.lock_fd = None
    raise


def record(info: RunInfo, config: ml_collections.ConfigDict) -> None:
  """Writes config.json (first start only) and run.json (every start); call once the setup succeeded."""
  if not (info.workdir / CONFIG_FILE).exists():
    fileio.write_json(info.workdir / CONFIG_FILE, config_as_dict(config))
  fileio.write_json(info.workdir / RUN_FILE, {"run_id": info.run_id, "resumes": info.resumes})
