"""The training loop (iptnet_jax.loop) through the SM demo: exact resume after a crash, SIGKILL or SIGTERM, metric
files, divergence and full-disk failures. One run per workdir is tests/run_dir_test.py."""

import errno
import json
import signal
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from iptnet_jax import checkpoint, loop, train
from iptnet_jax.fileio import WorkdirWriteError
from iptnet_jax.sm import train as sm_train
from run_files import EPOCHS, comparable_results, comparable_rows, read_scalars, smoke_config, start_main


def best_params(workdir: Path, split: int):
  best = checkpoint.BestCheckpoint(workdir / "checkpoints" / f"split_{split}")
  try:
    params, metadata = best.restore(best_abstract())
  finally:
    best.close()
  return params, metadata


def best_abstract():
  config = smoke_config()
  model = sm_train.make_model(config)
  return jax.eval_shape(lambda: sm_train.init_params(model, jax.random.key(0), config.data.synthetic.feature_dim))


def assert_same_run(workdir: Path, reference: Path) -> None:
  assert comparable_results(workdir) == comparable_results(reference)
  assert comparable_rows(workdir) == comparable_rows(reference)
  for split in (0, 1):
    (params, metadata), (ref_params, ref_metadata) = best_params(workdir, split), best_params(reference, split)
    assert metadata == ref_metadata
    jax.tree.map(np.testing.assert_array_equal, params, ref_params)  # bit for bit on CPU


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
  """An uninterrupted run of the configuration the interrupted runs use."""
  workdir = tmp_path_factory.mktemp("reference")
  train.train_and_evaluate(smoke_config(), workdir)
  return workdir


@pytest.fixture(scope="module")
def command_reference(tmp_path_factory) -> Path:
  """The same, run by the command line as the killed runs are (the test process's XLA flags may differ)."""
  workdir = tmp_path_factory.mktemp("command_reference") / "run"
  process = start_main(workdir)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr
  return workdir


class _Crash(BaseException):
  """Stands for the process dying: nothing after it runs, and no except clause of the loop catches it."""


@pytest.mark.slow  # end-to-end runs and their reruns
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resume_after_a_crash_at_a_random_step_equals_an_uninterrupted_run(tmp_path, reference, monkeypatch, seed):
  total_steps = 2 * EPOCHS * 2  # 2 splits x EPOCHS epochs x 2 batches
  crash_at = int(np.random.default_rng(seed).integers(1, total_steps))
  calls = []
  original = sm_train._Split.train_step

  def crashing_step(self, state, batch):
    calls.append(1)
    if len(calls) == crash_at:
      raise _Crash
    return original(self, state, batch)

  monkeypatch.setattr(sm_train._Split, "train_step", crashing_step)
  with pytest.raises(_Crash):
    train.train_and_evaluate(smoke_config(), tmp_path)
  assert not (tmp_path / "results.json").exists()
  monkeypatch.setattr(sm_train._Split, "train_step", original)

  train.train_and_evaluate(smoke_config(), tmp_path)
  assert_same_run(tmp_path, reference)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert len({(r["split"], r["epoch"]) for r in rows}) == len(rows)  # no row twice
  assert {r["resume"] for r in rows} <= {0, 1} and len({r["run_id"] for r in rows}) == 1
  assert json.loads((tmp_path / "run.json").read_text())["resumes"] == 1


def _wait_for_rows(process: subprocess.Popen, workdir: Path, rows: int, timeout: float = 300) -> None:
  deadline = time.monotonic() + timeout
  metrics = workdir / "metrics.jsonl"
  while time.monotonic() < deadline:
    if metrics.exists() and len(metrics.read_text().splitlines()) >= rows:
      return
    assert process.poll() is None, process.communicate()
    time.sleep(0.01)
  raise AssertionError(f"no {rows} metric rows within {timeout} s")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_killed_command_resumes_to_the_uninterrupted_results(tmp_path, command_reference, how):
  """`kill -9` (nothing saved at the kill) and SIGTERM (saved at the current step, exit 143) during the second
  split; rerunning the same command ends with the uninterrupted run's results, rows and checkpoints."""
  workdir = tmp_path / "run"
  process = start_main(workdir)
  _wait_for_rows(process, workdir, EPOCHS + 1)  # split 0 done, split 1 under way
  time.sleep(float(np.random.default_rng().uniform(0, 0.05)))
  process.send_signal(getattr(signal, how))
  _, stderr = process.communicate(timeout=120)
  if how == "SIGKILL":
    assert process.returncode == -signal.SIGKILL
  else:
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM at split 1" in stderr and "rerun the same command to resume" in stderr
  assert not (workdir / "results.json").exists()

  process = start_main(workdir)
  stdout, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr
  assert "resuming the run" in stdout
  assert_same_run(workdir, command_reference)


def test_tensorboard_event_files_and_rows_per_split(reference):
  rows = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
  assert [(r["split"], r["epoch"]) for r in rows] == [(s, e) for s in (0, 1) for e in range(1, EPOCHS + 1)]
  for split in (0, 1):
    scalars = read_scalars(reference / "tensorboard" / f"split_{split}")
    split_rows = [r for r in rows if r["split"] == split]
    assert scalars["test_score"] == [(r["step"], pytest.approx(r["test_score"])) for r in split_rows]
    assert scalars["loss_total"] == [(r["step"], pytest.approx(r["loss_total"])) for r in split_rows]


def test_divergence_stops_naming_where_and_the_learning_rate_and_saves_no_nan(tmp_path):
  with pytest.raises(loop.TrainingDiverged) as raised:
    train.train_and_evaluate(smoke_config(lr=1e6), tmp_path)
  message = str(raised.value)
  assert message.startswith("training diverged at split 0, epoch ")
  assert "config.train.lr=1000000.0" in message and "lower the learning rate" in message
  assert "loss term '" in message or "parameters became non-finite" in message
  states = checkpoint.StateCheckpoint(tmp_path / "checkpoints" / "state")
  try:
    record = states.record()
    if record is not None and "phase" in record:  # a state was saved before the divergence: it is finite
      like = sm_train.SMTask(smoke_config(lr=1e6), tmp_path).unit(0).init_state()
      state = states.restore_state(like)
      assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))
      assert all(np.isfinite(v) for h in record["history"] for v in h.values())
  finally:
    states.close()


@pytest.mark.parametrize("lr", [float("inf"), float("nan"), 0.0, -1e-4])
def test_learning_rates_must_be_finite_and_positive(tmp_path, lr):
  with pytest.raises(Exception, match=r"config\.train\.lr=.*: expected a finite, positive learning rate"):
    train.train_and_evaluate(smoke_config(lr=lr), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def _no_temporaries(workdir: Path) -> list[Path]:
  return [p for p in workdir.rglob("*") if p.name.endswith(".tmp") or "orbax-checkpoint-tmp" in p.name]


def test_a_failing_checkpoint_write_stops_with_one_line_and_no_temporaries(tmp_path, monkeypatch):
  original = ocp.CheckpointManager.save
  calls = []

  def failing_save(self, step, *args, **kwargs):
    calls.append(step)
    if len(calls) == 3:
      # What orbax raises when the disk fills: the OSError wrapped in its own error.
      try:
        raise OSError(errno.ENOSPC, "No space left on device")
      except OSError as error:
        raise RuntimeError("orbax: save failed") from error
    return original(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", failing_save)
  with pytest.raises(WorkdirWriteError, match=r"cannot write .*/checkpoints/(state|split_0): \[Errno 28\] No space "
                     r"left on device"):
    train.train_and_evaluate(smoke_config(), tmp_path)
  assert _no_temporaries(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path):
  mount = tmp_path / "disk"
  mount.mkdir()
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True)
  if result.returncode != 0:
    pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
  try:
    yield mount
  finally:
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_stops_the_command_with_one_line_and_no_temporaries(tiny_disk):
  workdir = tiny_disk / "run"
  process = start_main(workdir, "--config.train.epochs=30")
  _, stderr = process.communicate(timeout=300)
  lines = stderr.strip().splitlines()
  assert process.returncode == 1, stderr
  assert lines[-1].startswith(f"error: cannot write {workdir}") and "No space left on device" in lines[-1], stderr
  assert "Traceback" not in stderr
  assert _no_temporaries(tiny_disk) == []
