"""Highlight trainer (iptnet_jax/highlight/train.py) on the project's loop: a smoke run per config on generated
data, the command line, exact resume after a crash, one run per workdir, the selection rule (cross-validation never
reads the val videos), learning, and config errors."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from iptnet_jax import checkpoint
from iptnet_jax import train as iptnet_train
from iptnet_jax.errors import InputError
from iptnet_jax.highlight import data as data_lib
from iptnet_jax.highlight import train

REPO = Path(__file__).resolve().parents[1]


def load(name, variant):
  return importlib.import_module(f"configs.{name}").get_config(variant)


def _check_results(results, workdir, domains, seeds, regime):
  on_disk = json.loads((workdir / "results.json").read_text())
  assert on_disk == json.loads(json.dumps(results))
  assert results["regime"] == regime and results["seeds"] == seeds
  assert list(results["per_domain"]) == domains
  for d in domains:
    assert len(results["per_domain_seeds"][d]) == len(seeds)
    assert 0.0 <= results["per_domain"][d] <= 1.0 and results["per_domain_std"][d] >= 0
  assert results["mean"] == pytest.approx(np.mean(list(results["per_domain"].values())))
  assert 0 <= results["random_floor"]["mean"] <= 1


def rows_of(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def without_timings(value):
  """results.json / metric rows without what legitimately differs between two runs of one config."""
  if isinstance(value, dict):
    return {k: without_timings(v) for k, v in value.items()
            if not k.endswith("seconds") and k not in ("run_id", "resume")}
  if isinstance(value, list):
    return [without_timings(v) for v in value]
  return value


@pytest.mark.slow  # an end-to-end run per config
@pytest.mark.parametrize("name,variant,regime", [
    ("tvsum_i3d_highlight", "smoke", "supervised"),
    ("highlight_tvsum", "smoke_weak", "weak"),
    ("highlight_youtube", "smoke", "supervised"),
])
def test_smoke_run_per_config_writes_results(tmp_path, name, variant, regime):
  """Through iptnet_jax.train.train_and_evaluate, as `python -m iptnet_jax.main --config=...:smoke` runs it."""
  config = load(name, "smoke")
  if variant == "smoke_weak":
    config.train.regime = "weak"
    config.train.num_others = 2
  config.data.domains = "D0,D2"
  results = iptnet_train.train_and_evaluate(config, tmp_path)
  _check_results(results, tmp_path, ["D0", "D2"], [0, 1], regime)
  assert results["metric"] == ("youtube_map" if name == "highlight_youtube" else "top5_map")
  assert results["features"]["modalities"] == (["video"] if name == "highlight_youtube" else ["video", "audio"])
  # The loop's files: one row per (domain, seed, epoch), the val score on the last epoch's row; a val run's
  # final parameters.
  rows = rows_of(tmp_path)
  epochs = config.train.epochs
  assert [(r["domain"], r["seed"], r["epoch"]) for r in rows] == [
      (d, s, e) for d in ("D0", "D2") for s in (0, 1) for e in range(1, epochs + 1)]
  last = {(r["domain"], r["seed"]): r["val"] for r in rows if "val" in r}
  assert last == {(d, s): v for d in ("D0", "D2") for s, v in zip((0, 1), results["per_domain_seeds"][d])}
  assert all(r["epoch"] == epochs for r in rows if "val" in r)
  assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"D0_seed0", "D0_seed1", "D2_seed0", "D2_seed1",
                                                                     "state"}


def test_tvsum_i3d_highlight_forwards_the_model_variants_and_keeps_the_sm():
  for variant in ("av", "video", "audio", "weak", "weak_video", "smoke"):
    assert load("tvsum_i3d_highlight", variant) == load("highlight_tvsum", variant)
  sm = load("tvsum_i3d_highlight", "sm")
  assert sm.task == "sm" and sm.eval.protocol == "top5_map" and sm.data.split_file.endswith(".yml")
  assert load("tvsum_i3d_highlight", "rgb") == sm  # the earlier name of the SM variant
  assert load("tvsum_i3d_highlight", "sm_rgbflow").data.split_file != sm.data.split_file


@pytest.mark.slow
def test_the_command_line_writes_per_domain_results(tmp_path):
  workdir = tmp_path / "run"
  command = [sys.executable, "-m", "iptnet_jax.main", "--config=configs/tvsum_i3d_highlight.py:smoke",
             f"--workdir={workdir}", "--config.data.domains=D1", "--config.seeds=0"]
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  results = json.loads((workdir / "results.json").read_text())
  assert list(results["per_domain"]) == ["D1"] and 0 <= results["per_domain"]["D1"] <= 1
  assert "val (last epoch)" in done.stdout
  again = subprocess.run(command[:-1] + ["--config.seeds=0,1"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert again.returncode != 0 and again.stderr.strip().count("\n") == 0 and "config.seeds=" in again.stderr


class _Crash(BaseException):
  """Stands for the process dying: nothing after it runs, and no except clause of the loop catches it."""


def crash_config(checkpoint_every_epochs: int = 0):
  config = load("highlight_tvsum", "smoke")
  config.data.domains = "D0,D1"
  config.train.checkpoint_every_epochs = checkpoint_every_epochs
  return config


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  train.train_and_evaluate_highlight(crash_config(), workdir)
  return workdir


@pytest.mark.slow  # two end-to-end runs and their reruns (the loop's own resume test is in the fast tier)
@pytest.mark.parametrize("every,crash_at", [(1, 7), (0, 9)])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, monkeypatch, uninterrupted, every, crash_at):
  """Killed in the middle of a unit (after 7 / 9 of the 16 steps of 2 domains x 2 seeds x 2 epochs x 2 steps),
  the rerun ends with the same results, metric rows and final parameters: with train.checkpoint_every_epochs=1
  it resumes at the last epoch end; with 0 the unfinished run is trained again from its start."""
  config = crash_config(every)
  reference = uninterrupted

  calls, original = [], train.HighlightRun.train_step

  def crashing_step(self, state, batch):
    calls.append(1)
    if len(calls) == crash_at:
      raise _Crash
    return original(self, state, batch)

  monkeypatch.setattr(train.HighlightRun, "train_step", crashing_step)
  workdir = tmp_path / "resumed"
  with pytest.raises(_Crash):
    train.train_and_evaluate_highlight(config, workdir)
  assert not (workdir / "results.json").exists()
  monkeypatch.setattr(train.HighlightRun, "train_step", original)
  resumed = train.train_and_evaluate_highlight(config, workdir)
  assert without_timings(resumed) == without_timings(json.loads((reference / "results.json").read_text()))
  assert without_timings(rows_of(workdir)) == without_timings(rows_of(reference))
  assert json.loads((workdir / "run.json").read_text())["resumes"] == 1
  for name in ("D0_seed1", "D1_seed0"):
    params = [checkpoint.BestCheckpoint(w / "checkpoints" / name).restore_saved()[0] for w in (workdir, reference)]
    jax.tree.map(np.testing.assert_array_equal, *params)  # bit for bit on CPU


def test_rerun_of_a_finished_run_trains_nothing_and_another_config_is_refused(tmp_path, monkeypatch):
  config = load("highlight_tvsum", "smoke")
  config.data.domains = "D1"
  config.seeds = "0"
  first = train.train_and_evaluate_highlight(config, tmp_path)

  def no_training(*args, **kwargs):
    raise AssertionError("a finished (domain, seed) was trained again")

  monkeypatch.setattr(train.HighlightRun, "train_step", no_training)
  assert without_timings(train.train_and_evaluate_highlight(config, tmp_path)) == without_timings(first)
  for field, value in (("model.rank", 3), ("seeds", "0,1")):
    changed = load("highlight_tvsum", "smoke")
    changed.data.domains, changed.seeds = "D1", "0"
    section, _, leaf = field.rpartition(".")
    (changed[section] if section else changed)[leaf] = value
    with pytest.raises(InputError, match=f"config.{field}="):
      train.train_and_evaluate_highlight(changed, tmp_path)


def test_cross_validation_never_reads_the_val_video(tmp_path, monkeypatch):
  config = load("highlight_tvsum", "smoke")
  config.train.epochs = 2
  config.eval.cv_epochs = "1"
  config.data.domains = "D0"
  config.seeds = "0"
  dataset = train.load_dataset(config)
  val = dataset.domain_videos("D0", "val")[0]
  poisoned = data_lib.Video(val.video_id, val.domain, {k: np.full_like(v, np.nan) for k, v in val.features.items()},
                            user_scores=np.full_like(val.user_scores, np.nan))
  dataset = data_lib.Dataset(dataset.name, {**dataset.videos, val.video_id: poisoned}, dataset.splits, dataset.metric)
  monkeypatch.setattr(train, "load_dataset", lambda config: dataset)
  config.eval.val = False
  config.eval.cross_validate = True
  results = train.train_and_evaluate_highlight(config, tmp_path / "cv")
  assert "per_domain" not in results and 0 <= results["cv"]["mean"] <= 1
  assert set(results["cv"]["at_epoch"]) == {"1"}
  folds = [r for r in rows_of(tmp_path / "cv") if "cv" in r]
  assert sorted((r["fold"], r["epoch"]) for r in folds) == [(k, e) for k in (1, 2, 3, 4) for e in (1, 2)]
  assert results["cv"]["mean"] == pytest.approx(np.mean([r["cv"] for r in folds if r["epoch"] == 2]))
  config.eval.val = True
  with pytest.raises(Exception):  # the val run does read it, and the NaN features reach the metric
    train.train_and_evaluate_highlight(config, tmp_path / "val")


@pytest.mark.slow  # a training run per regime
@pytest.mark.parametrize("regime", ["supervised", "weak"])
def test_training_reduces_the_loss_on_generated_data(tmp_path, regime):
  config = load("highlight_tvsum", "smoke")
  config.train.regime = regime
  config.train.num_others = 4 if regime == "weak" else 0
  config.train.epochs = 30
  config.train.steps_per_epoch = 2
  config.model.input_dropout = 0.0
  config.model.dropout = 0.0
  config.data.domains, config.seeds = "D0", "0"
  if regime == "weak":
    config.train.optimizer, config.train.lr = "sgd", 0.1
  train.train_and_evaluate_highlight(config, tmp_path)
  key = "train_bce" if regime == "supervised" else "train_video_bce"
  history = [r[key] for r in rows_of(tmp_path)]
  first, last = np.mean(history[:3]), np.mean(history[-3:])
  assert len(history) == 30 and last < 0.8 * first, (first, last)


@pytest.mark.slow  # an end-to-end run
def test_supervised_model_beats_the_random_floor_on_generated_data(tmp_path):
  config = load("highlight_tvsum", "smoke")
  config.data.synthetic.num_domains = 2
  config.data.synthetic.val_per_domain = 3
  config.train.epochs = 100
  config.model.input_dropout = 0.0
  config.seeds = "0"
  results = train.train_and_evaluate_highlight(config, tmp_path)
  assert results["mean"] > results["random_floor"]["mean"] + 0.1, results


@pytest.mark.parametrize("field,value,match", [
    ("model.rank", 0, "model.rank"),
    ("train.regime", "semi", "train.regime"),
    ("seeds", "0,0", "seeds"),
    ("data.modalities", "video,smell", "modalities"),
    ("eval.cv_epochs", "999", "cv_epochs"),
    ("train.checkpoint_every_epochs", -1, "checkpoint_every_epochs"),
    ("eval.smooth", 4, "eval.smooth"),
    ("eval.compare_smooth", "3,x", "compare_smooth"),
])
def test_bad_config_values_are_input_errors(tmp_path, field, value, match):
  config = load("highlight_tvsum", "smoke")
  section, _, leaf = field.rpartition(".")
  node = config if not section else config[section]
  node[leaf] = value
  with pytest.raises(InputError, match=match):
    train.train_and_evaluate_highlight(config, tmp_path)


def test_real_tvsum_reads_when_present():
  root = data_lib.default_root()
  if not (root / data_lib.TVSUM_SUBDIR / "tvsum_anno.json").is_file():
    pytest.skip(f"shared TVSum features not at {root} (docs/data.md)")
  ds = data_lib.read_tvsum(root)
  assert len(ds.videos) == 50 and list(ds.splits) and all(len(p["train"]) == 4 for p in ds.splits.values())
  v = ds.videos["kLxoNp-UchI"]  # one audio row more than video rows: truncated to the video's 64
  assert v.features["audio"].shape == (64, 2048) and v.features["video"].shape == (64, 2048)


def test_supervised_batches_with_other_domains_label_them_zero_and_weight_their_clips():
  config = load("highlight_tvsum", "smoke")
  config.train.num_others = 3
  config.loss.other_weight = 0.0
  config.loss.domain_weight = 1.0
  config.model.input_dropout = 0.0
  config.model.dropout = 0.0  # rows then do not depend on the rest of the batch
  dataset = train.load_dataset(config)
  others = train.others_for(config, dataset, "D0")
  assert {v.domain for v in others} == {"D1", "D2"}
  assert not set(dataset.splits["D0"]["val"]) & {v.video_id for v in others}
  batch = train.sample_batch(config, dataset.domain_videos("D0", "train"), others, ("video", "audio"),
                             np.random.default_rng(0))
  np.testing.assert_array_equal(batch["video_labels"], [1, 1, 1, 1, 0, 0, 0])
  trainer = train.build_trainer(config)
  state = train.create_state(trainer, {m: a.shape[-1] for m, a in batch["features"].items()}, 0)
  _, metrics = train.loss_fn(state.params, trainer.model, trainer.spec, batch, jax.random.key(1))
  # other_weight 0: the BCE is that of the own-domain rows alone.
  own = {k: (v[:4] if k != "features" else {m: a[:4] for m, a in v.items()}) for k, v in batch.items()}
  _, own_metrics = train.loss_fn(state.params, trainer.model, trainer.spec, own, jax.random.key(1))
  assert "video_bce" in metrics
  assert float(metrics["bce"]) == pytest.approx(float(own_metrics["bce"]), rel=1e-5)
  config.loss.other_weight = 1.0
  trainer = train.build_trainer(config)
  _, weighted = train.loss_fn(state.params, trainer.model, trainer.spec, batch, jax.random.key(1))
  assert float(weighted["bce"]) != pytest.approx(float(own_metrics["bce"]), rel=1e-3)


def test_cv_splits_hold_out_every_video_once():
  assert train.cv_splits(4, 0, 1) == [[0], [1], [2], [3]]
  assert train.cv_splits(4, 9, 1) == [[0], [1], [2], [3]]
  parts = train.cv_splits(11, 4, 3)
  assert len(parts) == 4 and sorted(i for p in parts for i in p) == list(range(11))
  assert {len(p) for p in parts} <= {2, 3}
  with pytest.raises(InputError, match="at least 2"):
    train.cv_splits(1, 0, 0)


def test_youtube_cross_validation_uses_k_folds_of_the_train_videos(tmp_path):
  config = load("highlight_youtube", "smoke")
  config.data.synthetic.train_per_domain = 6
  config.eval.cv_folds = 3
  config.eval.val, config.eval.cross_validate = False, True
  config.data.domains, config.seeds = "D1", "0"
  task = train.HighlightTask(config, train.load_dataset(config))
  folds = task.folds[("D1", 0)]
  assert len(folds) == 3 and sorted(i for f in folds for i in f) == list(range(6))
  results = train.train_and_evaluate_highlight(config, tmp_path)
  assert sorted(r["fold"] for r in rows_of(tmp_path) if "cv" in r) == [1, 2, 3]
  assert 0 <= results["cv"]["mean"] <= 1


def test_cv_seeds_limits_cross_validation_to_the_first_seeds(tmp_path):
  config = load("highlight_tvsum", "smoke")
  config.data.domains = "D0"
  config.eval.cross_validate = True
  config.eval.cv_seeds = 1
  config.eval.compare_smooth = "1,3"  # extra windows are scored beside the reported figure, which they leave alone
  results = train.train_and_evaluate_highlight(config, tmp_path)
  assert results["cv"]["seeds"] == [0] and results["seeds"] == [0, 1]
  assert results["val_smooth"]["1"] == pytest.approx(results["mean"])
  assert results["cv"]["smooth"]["1"] == pytest.approx(results["cv"]["mean"])
  assert 0 <= results["val_smooth"]["3"] <= 1 and 0 <= results["cv"]["smooth"]["3"] <= 1
  assert sorted({(r["kind"], r["seed"], r.get("fold")) for r in rows_of(tmp_path)}) == [
      ("cv", 0, 1), ("cv", 0, 2), ("cv", 0, 3), ("cv", 0, 4), ("val", 0, None), ("val", 1, None)]


def test_smoothing_is_a_centred_mean_over_the_clips_that_exist():
  scores = np.array([0.0, 0.0, 3.0, 0.0, 6.0])
  np.testing.assert_array_equal(train.smooth_scores(scores, 1), scores)
  np.testing.assert_allclose(train.smooth_scores(scores, 3), [0.0, 1.0, 1.0, 3.0, 3.0])
  np.testing.assert_allclose(train.smooth_scores(scores, 9), np.full(5, 1.8))  # wider than the video: its mean
  np.testing.assert_allclose(train.smooth_scores(np.full(7, 2.5), 5), np.full(7, 2.5))
