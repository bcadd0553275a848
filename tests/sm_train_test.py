"""End to end: SM-only training through train_and_evaluate and the command line."""

import importlib
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from iptnet_jax import config_defaults, train
from iptnet_jax.checkpoint import BestCheckpoint
from iptnet_jax.sm import train as sm_train

import pinned

REPO = Path(__file__).resolve().parents[1]


def load_config(name: str, arg: str | None = None):
  module = importlib.import_module(f"configs.{name}")
  return module.get_config(arg) if arg else module.get_config()


@pytest.mark.slow
def test_smoke_run_trains_logs_and_keeps_the_best_checkpoint(tmp_path):
  config = load_config("demo", "smoke")
  pinned.run_smoke_on_one_cpu("demo", tmp_path)  # the command line, on one CPU: pinned.py says why
  result, records = pinned.read_run(tmp_path)

  assert [s["index"] for s in result["splits"]] == [0, 1]
  assert [(r["split"], r["epoch"]) for r in records] == [(0, 1), (0, 2), (1, 1), (1, 2)]
  for split in result["splits"]:
    epochs = [r for r in records if r["split"] == split["index"]]
    assert split["test_score"] == max(r["test_score"] for r in epochs)  # DSNet convention: best test epoch
    assert 0 <= split["test_score"] <= 1 and np.isfinite(split["random_score"])
  assert result["synthetic"] is True
  pinned.assert_matches_pinned("demo", result, records)  # the same numbers as before the shared loop

  # The kept checkpoint restores into the model's parameter structure.
  model = sm_train.make_model(config)
  abstract = jax.eval_shape(lambda: sm_train.init_params(model, jax.random.key(0),
                                                          config.data.synthetic.feature_dim))
  best = BestCheckpoint(tmp_path / "checkpoints" / "split_0")
  params, metadata = best.restore(abstract)
  best.close()
  assert metadata["epoch"] == result["splits"][0]["selected_epoch"]
  assert jax.tree.structure(params) == jax.tree.structure(abstract)


def test_training_step_reduces_the_loss_on_a_fixed_batch(tmp_path):
  from iptnet_jax.datasets import eccv16, input_pipeline, summarization
  from iptnet_jax.datasets.builders import synthetic_vsumm
  spec = synthetic_vsumm.SyntheticSpec(num_videos=5, feature_dim=16, min_steps=40, max_steps=48, num_users=3)
  h5_path, _ = synthetic_vsumm.write_synthetic_dataset(tmp_path, spec)
  loaded = eccv16.read_videos(h5_path, [f"video_{i}" for i in range(1, 6)], require_user_summary=True)
  examples = summarization.training_examples(loaded.values())
  batch = input_pipeline.sm_device_fields(input_pipeline.sm_batch(examples[:4], 4, (48,), with_labels=True))
  config = config_defaults.sm_config()
  config.model.attention_dim, config.model.num_hidden, config.model.dropout_rate = 16, 16, 0.0
  model = sm_train.make_model(config)
  tx = sm_train.make_optimizer(1e-2, 0.0)
  params = sm_train.init_params(model, jax.random.key(0), 16)
  state = sm_train.TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params, opt_state=tx.init(params),
                              rng=jax.random.key(1))
  step = sm_train.make_train_step(model, tx, 1.0, 1.0)
  losses = []
  for _ in range(15):
    state, metrics = step(state, batch)
    losses.append(float(metrics["total"]))
  assert losses[-1] < 0.7 * losses[0]
  assert int(state.step) == 15


def _run_main(*args, cwd=REPO):
  return subprocess.run([sys.executable, "-m", "iptnet_jax.main", *args], cwd=cwd, capture_output=True, text=True,
                        timeout=300)


@pytest.mark.slow  # a subprocess
def test_missing_h5_is_one_clear_error_and_leaves_no_workdir(tmp_path):
  split = tmp_path / "split.yml"
  split.write_text("- train_keys: [video_1]\n  test_keys: [video_2]\n")
  workdir = tmp_path / "run"
  result = _run_main("--config=configs/tvsum.py", f"--workdir={workdir}",
                     f"--config.data.dataset_dir={tmp_path / 'nowhere'}", f"--config.data.split_file={split}")
  assert result.returncode != 0
  assert "eccv16_dataset_tvsum_google_pool5.h5" in result.stderr and "BUILD.md" in result.stderr
  assert "Traceback" not in result.stderr
  assert not workdir.exists()


@pytest.mark.slow  # a subprocess
@pytest.mark.parametrize("override, field", [
    ("--config.train.epochs=-1", "train.epochs"),
    ("--config.eval.metric=median", "eval.metric"),
    ("--config.data.splits=7", "data.splits"),
    ("--config.model.compute_dtype=float16", "model.compute_dtype"),
])
def test_bad_config_values_name_the_field(tmp_path, override, field):
  result = _run_main("--config=configs/demo.py:smoke", f"--workdir={tmp_path}", override)
  assert result.returncode != 0 and f"config.{field}" in result.stderr and "Traceback" not in result.stderr


def test_init_from_an_upstream_checkpoint_evaluates_it_unchanged(tmp_path):
  torch = pytest.importorskip("torch")
  from iptnet_jax.sm import porting
  config = load_config("demo", "smoke")
  config.data.synthetic.num_splits = 1
  config.train.epochs = 0  # evaluate only
  model = sm_train.make_model(config)
  params = sm_train.init_params(model, jax.random.key(42), config.data.synthetic.feature_dim)
  state_dict = {k: torch.from_numpy(np.array(v)) for k, v in porting.dsnet_af_state_dict_from_params(params).items()}
  torch.save(state_dict, tmp_path / "upstream.pth")
  config.init_from = str(tmp_path / "upstream.pth")

  result = train.train_and_evaluate(config, tmp_path / "run")
  (split,) = result["splits"]
  assert split["selected_epoch"] == 0
  best = BestCheckpoint(tmp_path / "run" / "checkpoints" / "split_0")
  restored, _ = best.restore(jax.eval_shape(lambda: params))
  best.close()
  jax.tree.map(np.testing.assert_array_equal, restored, params)


@pytest.mark.slow  # a subprocess
def test_command_line_run_fills_the_persistent_compilation_cache(tmp_path):
  """`python -m iptnet_jax.main` end to end, with --compilation_cache: a rerun loads the compiled steps."""
  cache = tmp_path / "cache"
  result = _run_main("--config=configs/demo.py:smoke", f"--workdir={tmp_path / 'run'}",
                     f"--compilation_cache={cache}", "--config.data.splits=0")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "F1 (%)" in result.stdout and (tmp_path / "run" / "results.json").exists()
  assert any(cache.iterdir())
