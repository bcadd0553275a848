"""The seam between the command line and the trainers (iptnet_jax.train): the task dispatch, config.cpu_threefry
applied before any trainer runs, the plots after training, and the compilation cache folder."""

import jax
import ml_collections
import pytest

from iptnet_jax import config_defaults, cpu_threefry, plots, train


def _train_with(monkeypatch, tmp_path, **fields):
  """train_and_evaluate on a config with an unknown task (it stops after the threefry switch); the switch's
  argument."""
  calls = []
  monkeypatch.setattr(cpu_threefry, "use_unrolled_threefry_on_cpu", calls.append)
  with pytest.raises(config_defaults.ConfigError, match="config.task"):
    train.train_and_evaluate(ml_collections.ConfigDict({"task": "no such task", **fields}), tmp_path)
  return calls


def test_train_and_evaluate_follows_config_cpu_threefry(monkeypatch, tmp_path):
  """The seam applies the backport before any trainer builds a step, as config.cpu_threefry says."""
  assert config_defaults.sm_config().cpu_threefry is True
  assert _train_with(monkeypatch, tmp_path) == [True]  # LM / highlight configs have no field: the default
  assert _train_with(monkeypatch, tmp_path, cpu_threefry=True) == [True]
  assert _train_with(monkeypatch, tmp_path, cpu_threefry=False) == [False]
  with pytest.raises(config_defaults.ConfigError, match=r"^config\.cpu_threefry='no': expected True or False$"):
    train.train_and_evaluate(ml_collections.ConfigDict({"task": "sm", "cpu_threefry": "no"}), tmp_path)


@pytest.mark.parametrize("task, plotted", [("sm", True), ("highlight", False)])
def test_the_task_names_the_trainer_and_plots_follow_its_results(monkeypatch, tmp_path, task, plotted):
  from iptnet_jax.highlight import train as highlight_train
  from iptnet_jax.sm import train as sm_train

  calls = []
  trainer = lambda config, workdir, overwrite: calls.append((config.task, workdir, overwrite)) or {"mean": 1.0}
  monkeypatch.setattr(sm_train, "train_and_evaluate_sm", trainer)
  monkeypatch.setattr(highlight_train, "train_and_evaluate_highlight", trainer)
  monkeypatch.setattr(cpu_threefry, "use_unrolled_threefry_on_cpu", lambda on: None)
  monkeypatch.setattr(plots, "after_training", lambda workdir: calls.append(("plots", workdir)) or [])
  config = ml_collections.ConfigDict({"task": task})
  assert train.train_and_evaluate(config, tmp_path, overwrite=True) == {"mean": 1.0}
  assert calls == [(task, tmp_path, True)] + ([("plots", tmp_path)] if plotted else [])  # no PNGs for highlight
  calls.clear()
  train.train_and_evaluate(config, tmp_path, plots=False)
  assert calls == [(task, tmp_path, False)]


def test_compilation_cache_folder_choice(monkeypatch, tmp_path):
  session_cache = jax.config.jax_compilation_cache_dir
  try:
    assert train.enable_compilation_cache("none") is None
    assert jax.config.jax_compilation_cache_dir == session_cache  # 'none' leaves the setting alone
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "env"))
    assert train.enable_compilation_cache(None) == str(tmp_path / "env")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert train.enable_compilation_cache(None) == str(tmp_path / ".cache/iptnet_jax/jax_cache")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / ".cache/iptnet_jax/jax_cache")
  finally:
    jax.config.update("jax_compilation_cache_dir", session_cache)
