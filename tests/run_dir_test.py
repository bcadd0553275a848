"""One run per workdir (iptnet_jax.run_dir), through the SM demo: a rerun with another config is refused naming the
field, --overwrite starts again, folders that are not runs are neither used nor cleared, a failed start leaves
nothing behind, and a workdir another process runs is refused."""

import json

import pytest

from iptnet_jax import run_dir, train
from run_files import comparable_results, comparable_rows, smoke_config, start_main


@pytest.mark.slow  # four smoke runs in one workdir
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


@pytest.mark.slow
def test_command_line_refuses_a_changed_config_in_one_line(tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(smoke_config(), workdir)
  process = start_main(workdir, "--config.train.epochs=2")
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


def test_a_second_claim_on_a_running_workdir_is_refused_and_leaves_it_alone(tmp_path):
  workdir = tmp_path / "run"
  config = smoke_config()
  with run_dir.claimed(workdir, config) as info:  # this process "runs" here until released
    run_dir.record(info, config)
    with pytest.raises(run_dir.WorkdirBusyError, match="another process is running this run"):
      with run_dir.claimed(workdir, config, overwrite=True):
        pass
    assert (workdir / "config.json").exists()  # the refusal neither cleared nor removed the running run's folder
  run_dir.release(info)
  result = train.train_and_evaluate(config, workdir)  # released: the run goes on (and releases at its end)
  assert len(result["splits"]) == 2
  assert train.train_and_evaluate(config, workdir) == result


@pytest.mark.slow
def test_a_second_command_on_a_running_workdir_is_refused_in_one_line(tmp_path):
  workdir = tmp_path / "run"
  config = smoke_config()
  with run_dir.claimed(workdir, config) as info:
    run_dir.record(info, config)
    process = start_main(workdir)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert stderr.strip().splitlines() == [
        f"error: workdir {workdir}: another process is running this run; wait for it to end (or stop it: it saves "
        "its state and a rerun resumes)"]
    assert (workdir / "config.json").exists()
  run_dir.release(info)
