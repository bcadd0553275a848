"""Writing the files of a run and its generated data: atomically (temporary name, then rename; nothing
half-written is left behind), with an OS error reported as one line naming the path."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from iptnet_jax.errors import InputError


class WorkdirWriteError(InputError):
  """A file of the run could not be written (full disk, read-only folder, a path under a file)."""


def write_error(path: str | os.PathLike, error: OSError) -> WorkdirWriteError:
  reason = error.strerror or str(error)
  code = f"[Errno {error.errno}] " if error.errno else ""
  return WorkdirWriteError(f"cannot write {path}: {code}{reason}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it over `path`: a reader never sees half a
  file, and a failed write (ENOSPC, EROFS) leaves neither a temporary file nor a truncated `path`."""
  path = Path(path)
  tmp = None
  try:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, mode)  # mkstemp creates 0600
    os.replace(tmp, path)
  except OSError as error:
    if tmp is not None:
      with contextlib.suppress(OSError):
        os.unlink(tmp)
    raise write_error(path, error) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
  atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value) -> None:
  atomic_write_text(path, json.dumps(value, indent=1, default=float) + "\n")
