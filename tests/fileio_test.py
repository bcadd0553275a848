"""Atomic writes (iptnet_jax.fileio): the whole file or the previous one, never a part, no temporary left behind,
and an OS error as one line naming the path."""

import errno
import json
import os

import numpy as np
import pytest

from iptnet_jax import fileio


def test_a_write_replaces_the_file_whole_with_the_usual_mode(tmp_path):
  path = tmp_path / "results.json"
  path.write_text("old")
  fileio.atomic_write_text(path, "new text")
  assert path.read_text() == "new text"
  assert os.stat(path).st_mode & 0o777 == 0o644  # not mkstemp's 0600
  assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
  path = tmp_path / "results.json"
  path.write_text("previous")

  def full_disk(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(os, "fsync", full_disk)  # after the data went to the temporary file, before the rename
  with pytest.raises(fileio.WorkdirWriteError, match=rf"^cannot write {path}: \[Errno 28\] No space left on device$"):
    fileio.atomic_write_bytes(path, b"x" * 10_000)
  assert path.read_text() == "previous"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_write_into_a_missing_folder_names_the_path(tmp_path):
  path = tmp_path / "no_such_folder" / "run.json"
  with pytest.raises(fileio.WorkdirWriteError, match=rf"^cannot write {path}: \[Errno 2\] No such file or directory$"):
    fileio.write_json(path, {})
  assert not path.parent.exists()


def test_write_json_writes_numpy_scalars_as_numbers(tmp_path):
  path = tmp_path / "results.json"
  fileio.write_json(path, {"f1": np.float32(0.5), "epochs": 3})
  assert json.loads(path.read_text()) == {"f1": 0.5, "epochs": 3}
  assert path.read_text().endswith("}\n")
