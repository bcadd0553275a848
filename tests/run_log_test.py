"""Run output (iptnet_jax.run_log): the JSON-lines and TensorBoard metric writers, truncation on resume, progress
lines and bars, and the result tables."""

import json

import pytest

from iptnet_jax import run_log
from iptnet_jax.fileio import WorkdirWriteError
from run_files import read_scalars


def test_jsonl_rows_are_the_context_the_step_and_the_scalars_given(tmp_path):
  path = tmp_path / "metrics.jsonl"
  writer = run_log.JsonlWriter(path, {"run_id": "r", "split": 1})
  writer.write_scalars(3, {"loss": 0.5, "score": 1})
  writer.context["split"] = 2  # the loop moves the context on between units
  writer.write_scalars(4, {"loss": 0.25})
  writer.close()
  assert [json.loads(line) for line in path.read_text().splitlines()] == [
      {"run_id": "r", "split": 1, "step": 3, "loss": 0.5, "score": 1},
      {"run_id": "r", "split": 2, "step": 4, "loss": 0.25}]
  writer = run_log.JsonlWriter(path)  # a resumed run appends
  writer.write_scalars(5, {"loss": 0.125})
  writer.close()
  assert len(path.read_text().splitlines()) == 3


def test_truncation_keeps_the_first_rows_and_ignores_a_missing_file(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(5)))
  run_log.truncate_jsonl(path, 2)
  assert path.read_text() == '{"step": 0}\n{"step": 1}\n'
  run_log.truncate_jsonl(path, 7)  # fewer rows than kept: unchanged
  assert path.read_text() == '{"step": 0}\n{"step": 1}\n'
  run_log.truncate_jsonl(tmp_path / "none.jsonl", 0)
  assert not (tmp_path / "none.jsonl").exists()


def test_a_writer_in_a_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path):
  (tmp_path / "file").write_text("")
  with pytest.raises(WorkdirWriteError, match=r"cannot write .*file/metrics.jsonl: \[Errno 20\] Not a directory"):
    run_log.JsonlWriter(tmp_path / "file" / "metrics.jsonl")
  with pytest.raises(WorkdirWriteError, match=r"cannot write .*file/tensorboard"):
    run_log.TensorboardWriter(tmp_path / "file" / "tensorboard")


def test_tensorboard_events_hold_the_scalars_at_their_steps(tmp_path):
  writer = run_log.TensorboardWriter(tmp_path, purge_step=7)
  writer.write_scalars(7, {"loss": 1.5, "score": 2})
  writer.write_scalars(9, {"loss": 0.75})
  writer.close()
  assert read_scalars(tmp_path) == {"loss": [(7, 1.5), (9, 0.75)], "score": [(7, 2.0)]}


def test_tables_align_columns_and_show_floats_with_two_decimals():
  table = run_log.format_table(["model", "F1"], [["sm", 51.234], ["iptnet-long", float("nan")]])
  assert table.splitlines() == ["      model     F1",
                                "-----------  -----",
                                "         sm  51.23",
                                "iptnet-long    nan"]


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
