"""Training the SM alone (DSNet anchor-free; the paper's iPTNet-L ablation) on every split of a split file.

Per split: Adam with coupled L2 (torch.optim.Adam(weight_decay=...)), one jitted, donated train step per
padded batch, evaluation after every epoch, the best parameters kept with orbax, per-epoch metrics as JSON
lines in the workdir. Model selection: on the split's val_keys when the split file has them, else DSNet's
convention (the best epoch on the test videos, which is optimistic; the output says which was used).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from iptnet_jax import checkpoint, config_defaults, porting, run_log
from iptnet_jax.datasets import splits as splits_lib
from iptnet_jax.datasets import summarization, synthetic_vsumm
from iptnet_jax.sm import anchor_free, inference
from iptnet_jax.sm import model as sm_model


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  rng: jax.Array


def make_optimizer(lr: float, weight_decay: float) -> optax.GradientTransformation:
  """torch.optim.Adam with weight_decay: the L2 term is added to the gradient before the Adam moments."""
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.scale_by_adam(), optax.scale(-lr))


def make_model(config: ml_collections.ConfigDict) -> sm_model.DSNetAF:
  return sm_model.DSNetAF(num_hidden=config.model.num_hidden, num_heads=config.model.num_heads,
                          attention_dim=config.model.attention_dim, dropout_rate=config.model.dropout_rate,
                          dtype=jnp.dtype(config.model.get("compute_dtype", "float32")))


def init_params(model: sm_model.DSNetAF, rng: jax.Array, feature_dim: int) -> dict:
  dummy = jnp.zeros((1, 8, feature_dim), jnp.float32)
  return jax.jit(lambda key: model.init(key, dummy, jnp.ones((1, 8)), deterministic=True))(rng)["params"]


def make_train_step(model: sm_model.DSNetAF, tx: optax.GradientTransformation, lambda_reg: float,
                    lambda_ctr: float):
  """The jitted step (state, batch) -> (state, losses); the state's buffers are donated."""

  def train_step(state: TrainState, batch: dict):
    dropout_rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      outputs = model.apply({"params": params}, batch["features"], batch["mask"], deterministic=False,
                            rngs={"dropout": dropout_rng})
      losses = anchor_free.anchor_free_losses(outputs, batch, lambda_reg, lambda_ctr)
      return losses["total"], losses

    grads, losses = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), losses

  return jax.jit(train_step, donate_argnums=0)


@dataclasses.dataclass
class SplitResult:
  index: int
  selected_epoch: int
  selection: str  # "val" or "test (DSNet convention)"
  test_score: float  # at the selected epoch
  val_score: float | None
  last_test_score: float  # at the last epoch: no selection on test, so no optimism
  random_score: float
  random_score_std: float
  checkpoint_dir: str


def resolve_data(config: ml_collections.ConfigDict, workdir: Path) -> tuple[Path, Path]:
  """(dataset_dir, split_file), generating the synthetic dataset into the workdir if configured."""
  if config.data.source == "synthetic":
    spec = synthetic_vsumm.SyntheticSpec(**config.data.synthetic.to_dict())
    h5_path, split_path = synthetic_vsumm.ensure_synthetic_dataset(workdir / "synthetic_data", spec)
    logging.info("synthetic data: %s (generated; not comparable with published numbers)", h5_path)
    return h5_path.parent, split_path
  return Path(config.data.dataset_dir), Path(config.data.split_file)


def _epoch_losses(loss_history: list[dict]) -> dict[str, float]:
  history = jax.device_get(loss_history)
  means = {f"loss_{k}": float(np.mean([h[k] for h in history])) for k in history[0]}
  if not all(math.isfinite(v) for v in means.values()):
    raise FloatingPointError(f"non-finite training loss {means}; lower config.train.lr or check the features")
  return means


def train_split(config: ml_collections.ConfigDict, split: splits_lib.Split, videos: dict, workdir: Path,
                writer: run_log.JsonlWriter, split_file: Path) -> SplitResult:
  train_videos = [videos[r] for r in split.train]
  val_videos = [videos[r] for r in split.val]
  test_videos = [videos[r] for r in split.test]
  examples = summarization.training_examples(train_videos, config.eval.proportion)
  if not examples:
    raise ValueError(f"split {split.index}: no training video has a non-empty keyshot target")
  feature_dims = {v.features.shape[1] for v in train_videos + val_videos + test_videos}
  if len(feature_dims) != 1:
    raise ValueError(f"split {split.index}: videos have different feature widths {sorted(feature_dims)}")

  model = make_model(config)
  tx = make_optimizer(config.train.lr, config.train.weight_decay)
  rng = jax.random.key(config.seed + split.index)
  init_rng, train_rng = jax.random.split(rng)
  params = init_params(model, init_rng, feature_dims.pop())
  if config.init_from:
    path = porting.split_checkpoint_path(config.init_from, split_file, split.index)
    params = jax.tree.map(jnp.asarray, porting.load_dsnet_af_checkpoint(path, reference_params=params))
    print(f"split {split.index}: initial parameters from {path}")
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=train_rng)
  train_step = make_train_step(model, tx, config.train.lambda_reg, config.train.lambda_ctr)
  predict_fn = inference.make_predict_fn(model)
  eval_kwargs = dict(protocol=config.eval.protocol, nms_thresh=config.eval.nms_thresh,
                     proportion=config.eval.proportion, metric=config.eval.metric)
  buckets = tuple(config.data.buckets)

  selection = "val" if val_videos else "test (DSNet convention)"
  best = checkpoint.BestCheckpoint(workdir / "checkpoints" / f"split_{split.index}")
  tracker = {"best": -1.0, "epoch": 0, "test": float("nan"), "val": None, "last_test": float("nan")}
  progress = run_log.Progress(f"split {split.index}", config.train.epochs)

  def evaluate(epoch: int, metrics: dict, start: float, train_seconds: float) -> None:
    def score_of(eval_videos):
      preds = inference.predict_videos(predict_fn, state.params, eval_videos, config.eval.batch_size, buckets)
      return inference.split_score(eval_videos, preds, **eval_kwargs)

    test_score = score_of(test_videos)
    val_score = score_of(val_videos) if val_videos else None
    selected = val_score if val_videos else test_score
    tracker["last_test"] = test_score
    if selected > tracker["best"]:
      tracker.update(best=selected, epoch=epoch, test=test_score, val=val_score)
      best.save(epoch, state.params, {"epoch": epoch, "test_score": test_score, "val_score": val_score,
                                      "split": split.index})
    writer.write({"split": split.index, "epoch": epoch, **metrics, "test_score": test_score,
                  "val_score": val_score, "train_seconds": train_seconds,
                  "eval_seconds": time.perf_counter() - start - train_seconds})
    shown = {k: v for k, v in metrics.items() if k == "loss_total"} | {f"test_{config.eval.protocol}": test_score * 100}
    if val_score is not None:
      shown[f"val_{config.eval.protocol}"] = val_score * 100
    progress.epoch_done(epoch, shown)

  shuffle_rng = np.random.default_rng(config.seed + split.index)
  num_batches = math.ceil(len(examples) / config.train.batch_size)
  try:
    if config.init_from or config.train.epochs == 0:
      evaluate(0, {}, time.perf_counter(), 0.0)  # the starting point, e.g. an upstream checkpoint's F1
    for epoch in range(1, config.train.epochs + 1):
      start = time.perf_counter()
      loss_history = []
      batches = summarization.iterate_batches(examples, config.train.batch_size, buckets, with_labels=True,
                                              rng=shuffle_rng)
      for i, batch in enumerate(batches):
        state, losses = train_step(state, summarization.device_fields(batch))
        loss_history.append(losses)
        progress.step(epoch, i + 1, num_batches)
      evaluate(epoch, _epoch_losses(loss_history), start, time.perf_counter() - start)
  finally:
    best.close()

  floor, floor_std = (inference.random_floor(test_videos, num_seeds=config.eval.random_seeds,
                                             metric=config.eval.metric, protocol=config.eval.protocol,
                                             seed=config.seed)
                      if config.eval.random_seeds else (float("nan"), float("nan")))
  return SplitResult(split.index, tracker["epoch"], selection, tracker["test"], tracker["val"],
                     tracker["last_test"], floor, floor_std, str(best.directory))


def train_and_evaluate_sm(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Trains and evaluates on every selected split; returns {'splits': [...], 'mean_test_score': ...}."""
  config_defaults.check_sm_config(config)
  workdir = Path(workdir)
  dataset_dir, split_file = resolve_data(config, workdir)
  all_splits = splits_lib.load_splits(split_file, dataset_dir, config.data.default_h5 or None,
                                      splits_lib.parse_h5_renames(config.data.h5_renames))
  chosen = [all_splits[i] for i in config_defaults.parse_split_selection(config.data.splits, len(all_splits))]
  videos = summarization.load_split_videos(chosen)  # every input is checked before the workdir is touched
  workdir.mkdir(parents=True, exist_ok=True)
  print(f"SM-only training (DSNet anchor-free, iPTNet-L) on {split_file}: {len(chosen)} split(s), "
        f"{len(videos)} videos, devices: {jax.devices()}")

  writer = run_log.JsonlWriter(workdir / "metrics.jsonl")
  try:
    results = [train_split(config, split, videos, workdir, writer, split_file) for split in chosen]
  finally:
    writer.close()

  rows = [[r.index, r.selected_epoch, r.selection, r.test_score * 100, r.last_test_score * 100,
           r.random_score * 100] for r in results]
  mean_score = float(np.mean([r.test_score for r in results]))
  mean_floor = float(np.mean([r.random_score for r in results]))
  mean_last = float(np.mean([r.last_test_score for r in results]))
  rows.append(["mean", "", "", mean_score * 100, mean_last * 100, mean_floor * 100])
  synthetic = " [synthetic data]" if config.data.source == "synthetic" else ""
  label = "F1" if config.eval.protocol == "fscore" else "top-5 mAP"
  print(f"\n{label} (%) per split{synthetic}; random = mean score of random step scores over "
        f"{config.eval.random_seeds} seeds (same shots)")
  print(run_log.format_table(["split", "epoch", "selected on", f"test {label}", f"last-epoch {label}",
                              f"random {label}"], rows))
  summary = {"protocol": config.eval.protocol, "splits": [dataclasses.asdict(r) for r in results], "mean_test_score": mean_score, "mean_last_test_score": mean_last,
             "mean_random_score": mean_floor, "synthetic": bool(synthetic)}
  (workdir / "results.json").write_text(json.dumps(summary, indent=1, default=float))
  return summary
