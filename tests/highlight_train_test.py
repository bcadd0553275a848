"""Highlight trainer (iptnet_jax/highlight/train.py): a smoke run per config on generated data, resumability,
the selection rule (cross-validation never reads the val videos), learning, and config errors."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from iptnet_jax.errors import InputError
from iptnet_jax.highlight import data as data_lib
from iptnet_jax.highlight import train

REPO = Path(__file__).resolve().parents[1]


def load(name, variant):
  spec = importlib.util.spec_from_file_location(f"cfg_{name}", REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


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


@pytest.mark.parametrize("name,variant,regime", [
    ("highlight_tvsum", "smoke", "supervised"),
    ("highlight_tvsum", "smoke_weak", "weak"),
    ("highlight_youtube", "smoke", "supervised"),
])
def test_smoke_run_per_config_writes_results(tmp_path, name, variant, regime):
  config = load(name, "smoke")
  if variant == "smoke_weak":
    config.train.regime = "weak"
    config.train.num_others = 2
  config.data.domains = "D0,D2"
  results = train.train_and_evaluate_highlight(config, tmp_path)
  _check_results(results, tmp_path, ["D0", "D2"], [0, 1], regime)
  assert results["metric"] == ("youtube_map" if name == "highlight_youtube" else "top5_map")
  assert results["features"]["modalities"] == (["video"] if name == "highlight_youtube" else ["video", "audio"])
  assert sorted(p.name for p in (tmp_path / "runs" / "D0").iterdir()) == ["seed0.json", "seed1.json"]


def test_rerun_skips_finished_runs_and_another_config_is_refused(tmp_path, monkeypatch):
  config = load("highlight_tvsum", "smoke")
  config.data.domains = "D1"
  config.seeds = "0"
  first = train.train_and_evaluate_highlight(config, tmp_path)

  def no_training(*args, **kwargs):
    raise AssertionError("a finished (domain, seed) was trained again")

  monkeypatch.setattr(train, "fit", no_training)
  assert train.train_and_evaluate_highlight(config, tmp_path)["per_domain"] == first["per_domain"]
  monkeypatch.undo()
  config.seeds = "0,1"  # more seeds resume the workdir: seed 0 is kept, seed 1 trained
  more = train.train_and_evaluate_highlight(config, tmp_path)
  assert more["per_domain_seeds"]["D1"][0] == first["per_domain_seeds"]["D1"][0] and more["seeds"] == [0, 1]
  config.model.rank = 3
  with pytest.raises(InputError, match="another config"):
    train.train_and_evaluate_highlight(config, tmp_path)


def test_cross_validation_never_reads_the_val_video():
  config = load("highlight_tvsum", "smoke")
  config.train.epochs = 1
  config.eval.cv_epochs = "1"
  dataset = train.load_dataset(config)
  val = dataset.domain_videos("D0", "val")[0]
  poisoned = data_lib.Video(val.video_id, val.domain, {k: np.full_like(v, np.nan) for k, v in val.features.items()},
                            user_scores=np.full_like(val.user_scores, np.nan))
  dataset = data_lib.Dataset(dataset.name, {**dataset.videos, val.video_id: poisoned}, dataset.splits, dataset.metric)
  trainer = train.build_trainer(config)
  cv = train.cross_validate(trainer, config, dataset, "D0", 0)
  assert len(cv["folds"]) == 4 and all(0 <= f <= 1 for f in cv["folds"])
  assert cv["cv_at_epoch"]["1"] == pytest.approx(cv["cv"])  # epoch 1 is the last one here
  with pytest.raises(Exception):  # the val run does read it, and the NaN features reach the metric
    train.run_domain_seed(trainer, config, dataset, "D0", 0)


@pytest.mark.parametrize("regime", ["supervised", "weak"])
def test_training_reduces_the_loss_on_generated_data(regime):
  config = load("highlight_tvsum", "smoke")
  config.train.regime = regime
  config.train.num_others = 4 if regime == "weak" else 0
  config.train.epochs = 30
  config.train.steps_per_epoch = 2
  config.model.input_dropout = 0.0
  config.model.dropout = 0.0
  if regime == "weak":
    config.train.optimizer, config.train.lr = "sgd", 0.1
  dataset = train.load_dataset(config)
  trainer = train.build_trainer(config)
  negatives = train.others_for(config, dataset, "D0")
  _, history = train.fit(trainer, config, dataset.domain_videos("D0", "train"), negatives, seed=0)
  key = "bce" if regime == "supervised" else "video_bce"
  first, last = np.mean([h[key] for h in history[:3]]), np.mean([h[key] for h in history[-3:]])
  assert last < 0.8 * first, (first, last)


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
  state = train.create_state(trainer, batch, train.jax.random.key(0))
  _, metrics = train.loss_fn(state["params"], trainer.model, trainer.spec, batch, train.jax.random.key(1))
  # other_weight 0: the BCE is that of the own-domain rows alone.
  own = {k: (v[:4] if k != "features" else {m: a[:4] for m, a in v.items()}) for k, v in batch.items()}
  _, own_metrics = train.loss_fn(state["params"], trainer.model, trainer.spec, own, train.jax.random.key(1))
  assert "video_bce" in metrics
  assert float(metrics["bce"]) == pytest.approx(float(own_metrics["bce"]), rel=1e-5)
  config.loss.other_weight = 1.0
  trainer = train.build_trainer(config)
  _, weighted = train.loss_fn(state["params"], trainer.model, trainer.spec, batch, train.jax.random.key(1))
  assert float(weighted["bce"]) != pytest.approx(float(own_metrics["bce"]), rel=1e-3)


def test_cv_splits_hold_out_every_video_once():
  assert train.cv_splits(4, 0, 1) == [[0], [1], [2], [3]]
  assert train.cv_splits(4, 9, 1) == [[0], [1], [2], [3]]
  parts = train.cv_splits(11, 4, 3)
  assert len(parts) == 4 and sorted(i for p in parts for i in p) == list(range(11))
  assert {len(p) for p in parts} <= {2, 3}
  with pytest.raises(InputError, match="at least 2"):
    train.cv_splits(1, 0, 0)


def test_youtube_cross_validation_uses_k_folds_of_the_train_videos():
  config = load("highlight_youtube", "smoke")
  config.data.synthetic.train_per_domain = 6
  config.eval.cv_folds = 3
  dataset = train.load_dataset(config)
  cv = train.cross_validate(train.build_trainer(config), config, dataset, "D1", 0)
  assert len(cv["folds"]) == 3 and all(0 <= f <= 1 for f in cv["folds"])


def test_cv_seeds_limits_cross_validation_to_the_first_seeds(tmp_path):
  config = load("highlight_tvsum", "smoke")
  config.data.domains = "D0"
  config.eval.cross_validate = True
  config.eval.cv_seeds = 1
  results = train.train_and_evaluate_highlight(config, tmp_path)
  assert results["cv"]["seeds"] == [0] and results["seeds"] == [0, 1]
  assert sorted(p.name for p in (tmp_path / "runs" / "D0").iterdir()) == ["cv_seed0.json", "seed0.json", "seed1.json"]
