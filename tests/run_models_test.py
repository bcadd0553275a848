"""Reading a finished run back (iptnet_jax.run_models), on the generated runs of tests/workdir_fixtures.py: the
models of a split with the checkpoints' facts, the LM student beside its split, and one line naming what is
missing."""

import json
import shutil

import jax
import numpy as np
import pytest

from iptnet_jax import run_models
from workdir_fixtures import DIM


def test_an_iptnet_split_reads_back_its_sm_with_shift_head_and_its_lm_student(finished_runs):
  workdir = finished_runs["iptnet"]
  assert run_models.split_indices(workdir) == [0, 1]
  run = run_models.load_run(workdir, 1, need_lm=True)
  assert (run.task, run.split, run.run_id, run.finished, run.feature_dim) == ("iptnet", 1, "test", True, DIM)
  assert run.sm.has_shift_head and run.lm_config is run.config.lm
  assert run.sm.metadata == {"epoch": 3, "model": "teacher", "score": 0.5}
  assert run.lm.checkpoint_dir == workdir / "checkpoints" / "split_1_lm" and run.lm.metadata == {"epoch": 2, "steps": 9}
  source = run.source()
  assert source["sm_checkpoint"] == {"dir": str(workdir / "checkpoints" / "split_1"), "epoch": 3, "model": "teacher",
                                     "score": 0.5}
  assert run_models.load_run(workdir).split == 0  # the first split by default
  other = run_models.load_run(workdir, 0)
  assert not np.array_equal(other.sm.params["base_model"]["Q"]["kernel"], run.sm.params["base_model"]["Q"]["kernel"])


def test_the_lm_student_round_trips_beside_its_split(finished_runs, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished_runs["iptnet"], workdir)
  run = run_models.load_run(workdir, 0, need_lm=True)
  scaled = jax.tree.map(lambda x: np.asarray(x) * 2, run.lm.variables)
  folder = run_models.save_lm_student(workdir / "checkpoints" / "split_0", scaled, {"epoch": 5})
  assert folder == workdir / "checkpoints" / "split_0_lm"
  again = run_models.load_run(workdir, 0, need_lm=True)
  jax.tree.map(np.testing.assert_array_equal, again.lm.variables, scaled)
  assert again.lm.metadata == {"epoch": 5}


def test_what_a_run_lacks_is_one_line_naming_it(finished_runs, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished_runs["iptnet"], workdir)
  shutil.rmtree(workdir / "checkpoints" / "split_1_lm")
  assert run_models.load_run(workdir, 1).lm is None  # an unfinished split: the SM alone
  with pytest.raises(run_models.RunReadError, match=r"split_1_lm: no LM checkpoint \(the split has not finished"):
    run_models.load_run(workdir, 1, need_lm=True)
  with pytest.raises(run_models.RunReadError, match="a SM run has no moment localizer"):
    run_models.load_run(finished_runs["sm"], need_lm=True)

  config = json.loads((workdir / "config.json").read_text())
  (workdir / "config.json").write_text(json.dumps({**config, "task": "highlight"}))
  with pytest.raises(run_models.RunReadError, match="a run of task 'highlight'; expected an SM, iPTNet or LM run"):
    run_models.load_run(workdir)
  (workdir / "config.json").write_text(json.dumps(config))
  shutil.rmtree(workdir / "checkpoints")
  with pytest.raises(run_models.RunReadError, match=r"no selected checkpoint in .*checkpoints \(did the run finish"):
    run_models.load_run(workdir)
  with pytest.raises(run_models.RunReadError, match=r"no such folder"):
    run_models.read_config(tmp_path / "missing")
  (workdir / "config.json").write_text("{not json")
  with pytest.raises(run_models.RunReadError, match=r"config.json: unreadable"):
    run_models.read_config(workdir)
