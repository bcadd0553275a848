"""iptnet_jax.errors: every error a user can cause is an InputError, which `main` prints as one line; any other
exception (a programming error) keeps its traceback."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from iptnet_jax import errors, main, torch_checkpoint
from iptnet_jax.lm import porting as lm_porting
from iptnet_jax.sm import porting as sm_porting
from iptnet_jax.datasets import eccv16
from iptnet_jax.datasets.builders import synthetic_vsumm
from iptnet_jax.errors import InputError, MissingDependencyError
from iptnet_jax.sm import inference

REPO = Path(__file__).resolve().parents[1]
# Exceptions of the package that are not user input errors, and why.
NOT_INPUT_ERRORS = {
    "iptnet_jax.loop.RunInterrupted": "a signal stopped the run after saving it; main exits 128 + signal",
    "iptnet_jax.cpu_threefry.CpuThreefryHookError": "the backport is out of date with this jax (a programming "
                                                    "error with a config switch around it)",
}


def _package_modules() -> list[str]:
  names = []
  for path in sorted((REPO / "iptnet_jax").rglob("*.py")):
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[-1] == "__main__" or "reference" in parts:  # a program; the torch restatements (no project errors)
      continue
    names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
  return names


def test_every_exception_class_of_the_package_is_an_input_error_or_listed():
  found, stray = set(), []
  for name in _package_modules():
    module = importlib.import_module(name)
    for _, cls in inspect.getmembers(module, inspect.isclass):
      if cls.__module__ != name or not issubclass(cls, BaseException):
        continue
      qualified = f"{name}.{cls.__qualname__}"
      found.add(qualified)
      if not issubclass(cls, InputError) and qualified not in NOT_INPUT_ERRORS:
        stray.append(qualified)
  assert not stray, f"exception classes outside iptnet_jax.errors.InputError: {stray}"
  assert set(NOT_INPUT_ERRORS) <= found  # the exemptions still exist
  assert {"iptnet_jax.config_defaults.ConfigError", "iptnet_jax.torch_checkpoint.CheckpointNotFoundError",
          "iptnet_jax.datasets.builders.synthetic_vsumm.SyntheticSpecError"} <= found


def test_synthetic_spec_names_the_config_field():
  with pytest.raises(synthetic_vsumm.SyntheticSpecError,
                     match=r"^synthetic data \(config\.data\.synthetic\): num_videos=2: expected at least 5$"):
    synthetic_vsumm.SyntheticSpec(num_videos=2)
  with pytest.raises(InputError, match=r"min_steps=50: expected in \[4, max_steps=40\]"):
    synthetic_vsumm.SyntheticSpec(min_steps=50, max_steps=40)


def test_a_missing_upstream_checkpoint_is_an_input_error_and_still_a_file_not_found(tmp_path):
  for call in (lambda: sm_porting.split_checkpoint_path(tmp_path / "none.pth", "tvsum.yml", 0),
               lambda: lm_porting.vslnet_checkpoint_path(tmp_path / "none"),
               lambda: lm_porting.vslnet_checkpoint_path(tmp_path)):
    with pytest.raises(torch_checkpoint.CheckpointNotFoundError, match="init_from=") as caught:
      call()
    assert isinstance(caught.value, InputError) and isinstance(caught.value, FileNotFoundError)


def test_reading_a_torch_checkpoint_without_torch_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
  with pytest.raises(MissingDependencyError, match=r"needs torch.*\.\[parity\]") as caught:
    torch_checkpoint.load_torch_checkpoint(tmp_path / "x.pth")
  assert isinstance(caught.value, ImportError) and isinstance(caught.value, InputError)


def test_top5_map_on_a_file_without_user_scores_blames_the_file():
  steps = np.arange(3)
  video = eccv16.SummVideo(name="file.h5/video_1", features=np.zeros((3, 4), np.float32), gtscore=np.zeros(3),
                           change_points=np.array([[0, 44]]), n_frame_per_seg=np.array([45]), n_frames=45,
                           picks=steps * 15, user_summary=np.ones((2, 45), bool), user_scores=None)
  with pytest.raises(eccv16.DatasetFormatError, match=r"^file\.h5/video_1: top-5 mAP needs per-user step scores"):
    inference.video_top5_maps([video], {"file.h5/video_1": {"cls_prob": np.ones(3), "ctr_prob": np.ones(3)}})


@pytest.fixture
def parsed_flags(tmp_path):
  """main's flags parsed for the demo smoke config (in this process), restored afterwards."""
  from absl import flags

  main.parse_flags(["main", f"--config={REPO / 'configs' / 'demo.py'}:smoke", f"--workdir={tmp_path / 'run'}",
                    "--compilation_cache=none"])
  yield
  flags.FLAGS.unparse_flags()


def test_main_prints_an_input_error_as_one_line(parsed_flags, monkeypatch):
  def refuse(config, workdir, overwrite=False):
    raise synthetic_vsumm.SyntheticSpecError("synthetic data (config.data.synthetic): num_videos=2: expected "
                                             "at least 5")

  monkeypatch.setattr(main.train, "train_and_evaluate", refuse)
  with pytest.raises(SystemExit) as stopped:
    main.main(["main"])
  assert stopped.value.code == "error: synthetic data (config.data.synthetic): num_videos=2: expected at least 5"


def test_main_keeps_the_traceback_of_a_programming_error(parsed_flags, monkeypatch):
  def broken(config, workdir, overwrite=False):
    raise ValueError("operands could not be broadcast together")  # a plain ValueError is not the user's fault

  monkeypatch.setattr(main.train, "train_and_evaluate", broken)
  with pytest.raises(ValueError, match="broadcast"):
    main.main(["main"])


@pytest.mark.slow
def test_command_line_stops_on_a_bad_synthetic_spec_with_one_line(tmp_path):
  result = subprocess.run([sys.executable, "-m", "iptnet_jax.main", "--config=configs/demo.py:smoke",
                           "--config.data.synthetic.num_videos=2", f"--workdir={tmp_path / 'run'}",
                           "--compilation_cache=none"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip() == ("error: synthetic data (config.data.synthetic): num_videos=2: expected at "
                                   "least 5"), result.stderr


def test_errors_module_documents_the_base_class():
  assert issubclass(errors.InputError, ValueError)  # callers that catch ValueError keep working
  assert issubclass(errors.MissingDependencyError, ImportError)


def test_an_empty_checkpoint_folder_is_an_input_error_naming_the_folder(tmp_path):
  from iptnet_jax import checkpoint

  with pytest.raises(checkpoint.CheckpointMissingError, match=f"{tmp_path}: no checkpoint") as caught:
    checkpoint.BestCheckpoint(tmp_path).restore_saved()
  assert isinstance(caught.value, InputError) and isinstance(caught.value, FileNotFoundError)


def test_a_missing_domain_split_file_is_an_input_error(tmp_path):
  from iptnet_jax.vsumm import highlight

  with pytest.raises(highlight.DomainSplitsNotFoundError, match="umt_domain_splits.json") as caught:
    highlight.domain_splits(tmp_path / "umt_domain_splits.json")
  assert isinstance(caught.value, InputError) and isinstance(caught.value, FileNotFoundError)


def test_a_batch_the_devices_do_not_divide_is_an_input_error():
  from iptnet_jax.iptnet import step

  mesh = step.make_mesh(1)
  fake = type("Mesh", (), {"size": 2})()  # two devices' worth: 3 rows do not split; no second device needed
  with pytest.raises(step.BatchShardingError, match="batch of 3 rows cannot be split over 2 devices"):
    step.shard_batch({"features": np.zeros((3, 4), np.float32)}, fake)
  assert step.shard_batch({"features": np.zeros((2, 4), np.float32)}, mesh)["features"].shape == (2, 4)
