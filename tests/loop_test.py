"""The training loop (iptnet_jax.loop) through the SM demo: exact resume after a crash, SIGKILL or SIGTERM, one run
per workdir, metric files, divergence and full-disk failures."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import demo
from iptnet_jax import checkpoint, loop, run_dir, train
from iptnet_jax.fileio import WorkdirWriteError
from iptnet_jax.sm import train as sm_train

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4


def smoke_config(**train_fields):
  config = demo.get_config("smoke")
  config.train.epochs = EPOCHS
  config.train.checkpoint_every_steps = 1
  for name, value in train_fields.items():
    config.train[name] = value
  return config


def comparable_results(workdir: Path) -> dict:
  results = json.loads((workdir / "results.json").read_text())
  for split in results["splits"]:
    assert Path(split.pop("checkpoint_dir")) == workdir.absolute() / "checkpoints" / f"split_{split['index']}"
  return results


def comparable_rows(workdir: Path) -> list[dict]:
  """metrics.jsonl without what legitimately differs between runs: timings, run id, resume count."""
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if not k.endswith("_seconds") and k not in ("run_id", "resume")} for r in rows]


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
  process = _main(workdir)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr
  return workdir


class _Crash(BaseException):
  """Stands for the process dying: nothing after it runs, and no except clause of the loop catches it."""


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


def _main(workdir: Path, *args: str, **popen) -> subprocess.Popen:
  command = [sys.executable, "-m", "iptnet_jax.main", "--config=configs/demo.py:smoke", f"--workdir={workdir}",
             f"--config.train.epochs={EPOCHS}", "--config.train.checkpoint_every_steps=1", *args]
  return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


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
  process = _main(workdir)
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

  process = _main(workdir)
  stdout, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr
  assert "resuming the run" in stdout
  assert_same_run(workdir, command_reference)


def test_rerun_with_another_config_is_refused_naming_the_field(tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(smoke_config(), workdir)
  with pytest.raises(run_dir.WorkdirError, match=r"config\.train\.epochs=4, this command has config\.train\.epochs=3"):
    train.train_and_evaluate(smoke_config(epochs=3), workdir)
  with pytest.raises(run_dir.WorkdirError, match=r"config\.model\.num_hidden"):
    config = smoke_config()
    config.model.num_hidden = 16
    train.train_and_evaluate(config, workdir)
  # A finished run rerun with its own config reports the same results without training again.
  before = (workdir / "metrics.jsonl").read_text()
  assert comparable_results(workdir) == {**train.train_and_evaluate(smoke_config(), workdir),
                                         "splits": comparable_results(workdir)["splits"]}
  assert (workdir / "metrics.jsonl").read_text() == before

  # --overwrite clears the workdir and starts again.
  result = train.train_and_evaluate(smoke_config(epochs=1), workdir, overwrite=True)
  assert [s["selected_epoch"] for s in result["splits"]] == [1, 1]
  rows = comparable_rows(workdir)
  assert [(r["split"], r["epoch"]) for r in rows] == [(0, 1), (1, 1)]
  assert json.loads((workdir / "config.json").read_text())["train"]["epochs"] == 1


def test_command_line_refuses_a_changed_config_in_one_line(tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(smoke_config(), workdir)
  process = _main(workdir, "--config.train.epochs=2")
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 1
  assert stderr.strip().splitlines() == [
      f"error: workdir {workdir} belongs to a run with config.train.epochs=4, this command has "
      "config.train.epochs=2; rerun with the same config to resume it, use another --workdir, or --overwrite to "
      "clear it and start again"]


def test_a_folder_of_other_files_or_a_file_is_not_taken_as_a_workdir(tmp_path):
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(run_dir.WorkdirError, match="holds files but no config.json"):
    train.train_and_evaluate(smoke_config(), tmp_path)
  with pytest.raises(run_dir.WorkdirError, match="not a run of this project; not clearing it"):
    train.train_and_evaluate(smoke_config(), tmp_path, overwrite=True)
  assert (tmp_path / "notes.txt").read_text() == "mine"
  with pytest.raises(run_dir.WorkdirError, match="notes.txt: is a file"):
    train.train_and_evaluate(smoke_config(), tmp_path / "notes.txt")
  with pytest.raises(run_dir.WorkdirError, match="is under .*notes.txt, which is a file"):
    train.train_and_evaluate(smoke_config(), tmp_path / "notes.txt" / "run")


def test_failed_setup_leaves_no_workdir_behind(tmp_path):
  config = smoke_config()
  config.data.splits = "0,7"  # the split file has 2
  with pytest.raises(Exception, match=r"config\.data\.splits"):
    train.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_a_second_process_on_a_running_workdir_is_refused_and_leaves_it_alone(tmp_path):
  workdir = tmp_path / "run"
  config = smoke_config()
  with run_dir.claimed(workdir, config) as info:  # this process "runs" here until released
    run_dir.record(info, config)
    with pytest.raises(run_dir.WorkdirBusyError, match="another process is running this run"):
      with run_dir.claimed(workdir, config, overwrite=True):
        pass
    process = _main(workdir)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert stderr.strip().splitlines() == [
        f"error: workdir {workdir}: another process is running this run; wait for it to end (or stop it: it saves "
        "its state and a rerun resumes)"]
    assert (workdir / "config.json").exists()  # neither refusal cleared or removed the running run's folder
  run_dir.release(info)
  result = train.train_and_evaluate(config, workdir)  # released: the run goes on (and releases at its end)
  assert len(result["splits"]) == 2
  assert train.train_and_evaluate(config, workdir) == result


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
  """Scalars of TensorBoard event files: TFRecord framing (length, crc, Event proto, crc), read here directly."""
  from tensorboardX.proto import event_pb2

  scalars = {}
  for path in sorted(logdir.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      length = int.from_bytes(data[offset:offset + 8], "little")
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


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
  process = _main(workdir, "--config.train.epochs=30")
  _, stderr = process.communicate(timeout=300)
  lines = stderr.strip().splitlines()
  assert process.returncode == 1, stderr
  assert lines[-1].startswith(f"error: cannot write {workdir}") and "No space left on device" in lines[-1], stderr
  assert "Traceback" not in stderr
  assert _no_temporaries(tiny_disk) == []


class _Stream:
  def __init__(self, tty: bool):
    self.tty, self.text = tty, ""

  def isatty(self):
    return self.tty

  def write(self, text):
    self.text += text

  def flush(self):
    pass


@pytest.mark.parametrize("tty", [False, True])
def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise(tty):
  from iptnet_jax import run_log

  stream = _Stream(tty)
  progress = run_log.Progress("split 0", 3, stream)
  progress.start_phase(1, 4)
  for _ in range(4):
    progress.step()
  progress.line(1, {"loss": 1.5}, 2.0)
  assert stream.text.endswith("split 0 epoch 1/3 loss 1.5000 (2s)\n")
  if tty:  # tqdm's bar (count of the epoch's steps, rate, ETA), then the line in its place
    assert "/4 [" in stream.text and "step/s" in stream.text
  else:
    assert stream.text == "split 0 epoch 1/3 loss 1.5000 (2s)\n"
