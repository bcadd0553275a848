"""Training the SM alone (DSNet anchor-free; the paper's iPTNet-L ablation) on every split of a split file.

Per split: Adam with coupled L2 (torch.optim.Adam(weight_decay=...)), one jitted, donated train step per
padded batch, evaluation after every epoch, the best parameters kept with orbax, per-epoch metrics as JSON
lines in the workdir. Model selection: on the split's val_keys when the split file has them, else DSNet's
convention (the best epoch on the test videos, which is optimistic; the output says which was used).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from iptnet_jax import config_defaults, loop, run_dir, run_log
from iptnet_jax.datasets import splits as splits_lib
from iptnet_jax.datasets import eccv16, input_pipeline, summarization
from iptnet_jax.datasets.builders import synthetic_vsumm
from iptnet_jax.sm import anchor_free, inference, porting
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


class _Split(loop.Unit):
  """One split: DSNet's epochs over the split's training videos, evaluated after every epoch."""

  def __init__(self, task: "SMTask", split: splits_lib.Split):
    config = task.config
    self.task, self.split, self.config = task, split, config
    self.name, self.label, self.context = f"split_{split.index}", f"split {split.index}", {"split": split.index}
    self.train_videos = [task.videos[r] for r in split.train]
    self.val_videos = [task.videos[r] for r in split.val]
    self.test_videos = [task.videos[r] for r in split.test]
    self.examples = summarization.training_examples(self.train_videos, config.eval.proportion)
    if not self.examples:
      raise eccv16.DatasetFormatError(f"{task.split_file}: split {split.index}: no training video has a non-empty "
                                      "keyshot target (every gtscore is constant or every shot too long)")
    # The starting point (e.g. an upstream checkpoint's F1) is evaluated as epoch 0.
    start = [loop.Phase(0, train=False)] if config.init_from or config.train.epochs == 0 else []
    self.phases = start + [loop.Phase(epoch) for epoch in range(1, config.train.epochs + 1)]
    self.total_epochs = config.train.epochs
    self.learning_rates = {"train.lr": config.train.lr}
    self.loss_prefix = "loss_"
    self.selection = "val" if self.val_videos else "test (DSNet convention)"

  def init_state(self) -> TrainState:
    config, task = self.config, self.task
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed + self.split.index))
    params = init_params(task.model, init_rng, task.feature_dim)
    if config.init_from:
      path = porting.split_checkpoint_path(config.init_from, task.split_file, self.split.index)
      params = jax.tree.map(jnp.asarray, porting.load_dsnet_af_checkpoint(path, reference_params=params))
      print(f"split {self.split.index}: initial parameters from {path}")
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=task.tx.init(params), rng=train_rng)

  def data_rng(self) -> np.random.Generator:
    return np.random.default_rng(self.config.seed + self.split.index)

  def batches(self, phase, rng):
    for batch in input_pipeline.iterate_sm_batches(self.examples, self.config.train.batch_size, self.task.buckets,
                                               with_labels=True, rng=rng):
      yield input_pipeline.sm_device_fields(batch)

  def num_batches(self, phase) -> int:
    return math.ceil(len(self.examples) / self.config.train.batch_size)

  def train_step(self, state, batch):
    return self.task.train_step(state, batch)

  def _score(self, params, videos) -> float:
    config = self.config
    preds = inference.predict_videos(self.task.predict_fn, params, videos, config.eval.batch_size, self.task.buckets)
    return inference.split_score(videos, preds, protocol=config.eval.protocol, nms_thresh=config.eval.nms_thresh,
                                 proportion=config.eval.proportion, metric=config.eval.metric)

  def evaluate(self, state, phase, losses) -> loop.Evaluation:
    protocol = self.config.eval.protocol
    test_score = self._score(state.params, self.test_videos)
    val_score = self._score(state.params, self.val_videos) if self.val_videos else None
    shown = {k: v for k, v in losses.items() if k == "loss_total"} | {f"test_{protocol}": test_score * 100}
    if val_score is not None:
      shown[f"val_{protocol}"] = val_score * 100
    selected = val_score if val_score is not None else test_score
    return loop.Evaluation({"test_score": test_score, "val_score": val_score}, shown,
                           {"model": (selected, lambda: state.params)})

  def finish(self, state, outcome: loop.Outcome) -> dict:
    config = self.config
    floor, floor_std = (inference.random_floor(self.test_videos, num_seeds=config.eval.random_seeds,
                                               metric=config.eval.metric, protocol=config.eval.protocol,
                                               seed=config.seed)
                        if config.eval.random_seeds else (float("nan"), float("nan")))
    best = outcome.best["metrics"]
    return dataclasses.asdict(SplitResult(
        self.split.index, outcome.best["epoch"], self.selection, best["test_score"], best["val_score"],
        outcome.last["test_score"], floor, floor_std, outcome.checkpoint_dir))


class SMTask(loop.Task):
  """SM-only training on every selected split of a split file."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: Path):
    self.config = config
    dataset_dir, self.split_file = resolve_data(config, workdir)
    all_splits = splits_lib.load_splits(self.split_file, dataset_dir, config.data.default_h5 or None,
                                        splits_lib.parse_h5_renames(config.data.h5_renames))
    self.splits = [splits_lib.carve_validation(all_splits[i], config.data.val_fraction, config.data.val_seed)
                   for i in config_defaults.parse_split_selection(config.data.splits, len(all_splits))]
    self.videos = summarization.load_split_videos(self.splits)  # every input is checked before training
    self.feature_dim = summarization.check_feature_widths(self.videos)
    self.units = [_Split(self, split) for split in self.splits]
    # Built once: the jitted functions compile once per shape for the whole run, not once per split.
    self.model = make_model(config)
    self.tx = make_optimizer(config.train.lr, config.train.weight_decay)
    self.train_step = make_train_step(self.model, self.tx, config.train.lambda_reg, config.train.lambda_ctr)
    self.predict_fn = inference.make_predict_fn(self.model)
    self.buckets = tuple(config.data.buckets)

  def num_units(self) -> int:
    return len(self.units)

  def unit(self, index: int) -> loop.Unit:
    return self.units[index]

  def report(self, results: list[dict]) -> dict:
    config = self.config
    rows = [[r["index"], r["selected_epoch"], r["selection"], r["test_score"] * 100, r["last_test_score"] * 100,
             r["random_score"] * 100] for r in results]
    mean = lambda key: float(np.mean([r[key] for r in results]))
    rows.append(["mean", "", "", mean("test_score") * 100, mean("last_test_score") * 100,
                 mean("random_score") * 100])
    synthetic = " [synthetic data]" if config.data.source == "synthetic" else ""
    label = "F1" if config.eval.protocol == "fscore" else "top-5 mAP"
    print(f"\n{label} (%) per split{synthetic}; random = mean score of random step scores over "
          f"{config.eval.random_seeds} seeds (same shots)")
    print(run_log.format_table(["split", "epoch", "selected on", f"test {label}", f"last-epoch {label}",
                                f"random {label}"], rows))
    return {"protocol": config.eval.protocol, "splits": results, "mean_test_score": mean("test_score"),
            "mean_last_test_score": mean("last_test_score"), "mean_random_score": mean("random_score"),
            "synthetic": bool(synthetic)}


def train_and_evaluate_sm(config: ml_collections.ConfigDict, workdir: str | Path, overwrite: bool = False) -> dict:
  """Trains and evaluates on every selected split (resuming a run interrupted in `workdir`); returns
  {'splits': [...], 'mean_test_score': ...}, also written to results.json."""
  config_defaults.validate(config)
  with run_dir.claimed(workdir, config, overwrite) as info:
    task = SMTask(config, info.workdir)
    run_dir.record(info, config)
  print(f"SM-only training (DSNet anchor-free, iPTNet-L) on {task.split_file}: {len(task.splits)} split(s), "
        f"{len(task.videos)} videos, devices: {jax.devices()}")
  return loop.run(task, info, config.train.checkpoint_every_steps)
