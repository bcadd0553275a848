"""Training iPTNet: the schedule of paper §3.7 over the one joint step, per split of the summarization data.

Schedule (`schedule`): optional LM warm-up epochs (the released code runs 2), SM-only warm-up epochs, then
collaborative rounds until the SM epoch budget (config.train.epochs) is spent; a round reads only LM data
(Charades-STA, at most iptnet.lm_steps_per_phase batches) and then only SM data (one epoch). Non-mixing:
every batch comes from one source. After every SM epoch the SM student and the SM teacher are scored and
the better of the two, if it beats the best so far, is kept (the released code saves whichever of the
two improves). Model selection: the split's val_keys when present, else DSNet's convention (the best epoch
on test), stated in the output. At the end the LM student is scored on Charades-STA test.

Ablations (config.iptnet): propagation=False is iPTNet-P, teaching=False is iPTNet-T, use_lm=False is
iPTNet-L (SM alone, through the same step).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from iptnet_jax import checkpoint, config_defaults, run_log
from iptnet_jax.datasets import charades_sta, summarization
from iptnet_jax.datasets import splits as splits_lib
from iptnet_jax.iptnet import batches, teaching
from iptnet_jax.iptnet import step as step_lib
from iptnet_jax.lm import train as lm_train
from iptnet_jax.lm.model import init_variables
from iptnet_jax.sm import inference
from iptnet_jax.sm import model as sm_model
from iptnet_jax.sm import train as sm_train


def schedule(epochs: int, sm_warmup_epochs: int, lm_warmup_epochs: int, use_lm: bool, joint: bool = True
             ) -> list[int]:
  """The sequence of phases, each a data source of the joint step (one pass over that source's data).

  joint=False is the LM trained alone with the same LM passes (paper Fig. 5's baseline): LM-only phases.
  """
  if not use_lm:
    return [step_lib.SM_ONLY] * epochs
  if not joint:
    return [step_lib.LM_ONLY] * (lm_warmup_epochs + max(epochs - sm_warmup_epochs, 0))
  phases = [step_lib.LM_ONLY] * lm_warmup_epochs
  for epoch in range(epochs):
    phases += [step_lib.SM_ONLY] if epoch < sm_warmup_epochs else [step_lib.LM_DATA, step_lib.SM_DATA]
  return phases


def settings_from_config(config: ml_collections.ConfigDict) -> step_lib.JointSettings:
  c = config.iptnet
  return step_lib.JointSettings(
      lambda_reg=config.train.lambda_reg, lambda_ctr=config.train.lambda_ctr,
      highlight_lambda=config.lm.train.highlight_lambda, lm_clip_norm=config.lm.train.clip_norm,
      propagation=c.propagation, variant=c.variant, radius=c.radius, alpha=c.alpha, sigma=c.sigma,
      teaching=c.teaching, distribution=c.distribution, direction=c.direction,
      lm_teacher_dropout=c.lm_teacher_dropout, sm_teacher_dropout=c.sm_teacher_dropout)


def ablation_name(config: ml_collections.ConfigDict) -> str:
  c = config.iptnet
  if not c.use_lm:
    return "iPTNet-L (no LM)"
  if not c.joint:
    return "LM alone (no joint training)"
  missing = [name for name, on in (("P", c.propagation), ("T", c.teaching)) if not on]
  return "iPTNet" + ("-" + "".join(missing) if missing else "")


@dataclasses.dataclass
class SplitResult:
  index: int
  selected_epoch: int
  selected_model: str  # "student" or "teacher"
  selection: str
  test_score: float
  val_score: float | None
  last_test_score: float
  random_score: float
  lm_test: dict | None
  lm_train_loss: float | None  # mean LM supervised loss of the last LM phase
  checkpoint_dir: str


class _Loaded:
  """Everything that does not change between splits."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: Path):
    dataset_dir, self.split_file = sm_train.resolve_data(config, workdir)
    all_splits = splits_lib.load_splits(self.split_file, dataset_dir, config.data.default_h5 or None,
                                        splits_lib.parse_h5_renames(config.data.h5_renames))
    self.splits = [all_splits[i] for i in
                   config_defaults.parse_split_selection(config.data.splits, len(all_splits))]
    self.videos = summarization.load_split_videos(self.splits)
    dims = {v.features.shape[1] for v in self.videos.values()}
    if len(dims) != 1:
      raise ValueError(f"summarization videos have different feature widths {sorted(dims)}")
    self.feature_dim = dims.pop()
    self.lm_data = None
    if config.iptnet.use_lm:
      feature_dir = lm_train.resolve_feature_dir(config.lm, workdir)
      self.lm_data = charades_sta.load_charades_sta(
          config.lm.data.annotation_dir, config.lm.data.glove_path, feature_dir,
          max_pos_len=config.lm.data.max_pos_len, max_videos=config.lm.data.max_videos or None)
      lm_dim = self.lm_data.feature_dim
      if lm_dim != self.feature_dim:
        # The SM runs on LM videos and the LM on SM videos (no adapter, as in the paper's code).
        raise ValueError(f"feature widths differ: summarization videos {self.feature_dim}, Charades features "
                         f"{lm_dim} (config.lm.data.synthetic.dim for synthetic ones); iPTNet needs one width")

    # Built once: the jitted functions then compile once per shape for the whole run, not once per split.
    self.phases = schedule(config.train.epochs, config.iptnet.sm_warmup_epochs, config.iptnet.lm_warmup_epochs,
                           self.lm_data is not None, config.iptnet.joint)
    self.sm = dataclasses.replace(sm_train.make_model(config), with_shift_head=True)
    if self.lm_data is not None:
      self.lm = lm_train.make_model(config.lm, self.lm_data.word_vectors, self.lm_data.num_chars, self.feature_dim)
    else:  # iPTNet-L: a placeholder LM; its branches are inert and never trace it
      self.lm = lm_train.make_model(config.lm, np.zeros((2, 2), np.float32), 2, self.feature_dim)
    self.tx = step_lib.make_optimizer(config.train.lr, config.train.weight_decay, config.lm.train.lr,
                                      config.iptnet.teacher_keep)
    self.mesh = step_lib.make_mesh(config.iptnet.num_devices or None)
    self.joint_step = step_lib.make_joint_step(self.sm, self.lm, self.tx, settings_from_config(config), self.mesh,
                                               tuple(sorted(set(self.phases))))
    self.predict_fn = inference.make_predict_fn(self.sm)
    self.lm_predict_fn = lm_train.make_predict_fn(self.lm) if self.lm_data is not None else None
    lm_data_config = config.lm.data
    self.standin_shapes = batches.StandinShapes(
        sm_length=min(config.data.buckets), lm_video_length=min(lm_data_config.video_buckets),
        lm_query_length=min(lm_data_config.query_buckets), lm_char_length=min(lm_data_config.char_buckets))


def _train_split(config, split, loaded: _Loaded, workdir: Path, writer: run_log.JsonlWriter) -> SplitResult:
  train_videos = [loaded.videos[r] for r in split.train]
  val_videos = [loaded.videos[r] for r in split.val]
  test_videos = [loaded.videos[r] for r in split.test]
  examples = summarization.training_examples(train_videos, config.eval.proportion)
  lm_data, mesh, phases = loaded.lm_data, loaded.mesh, loaded.phases

  sm_rng, lm_rng, train_rng = jax.random.split(jax.random.key(config.seed + split.index), 3)
  params = {"sm": sm_train.init_params(loaded.sm, sm_rng, loaded.feature_dim), "lm": {}}
  constants = {}
  if lm_data is not None:
    lm_variables = init_variables(loaded.lm, lm_rng, lm_data.word_vectors)
    params["lm"], constants = lm_variables["params"], lm_variables["constants"]
  state = step_lib.JointState(step=jnp.zeros((), jnp.int32), params=params, opt_state=loaded.tx.init(params),
                              rng=train_rng)
  state, constants = step_lib.replicate(state, mesh), step_lib.replicate(constants, mesh)
  buckets = tuple(config.data.buckets)
  eval_kwargs = dict(protocol=config.eval.protocol, nms_thresh=config.eval.nms_thresh,
                     proportion=config.eval.proportion, metric=config.eval.metric)

  selection = "val" if val_videos else "test (DSNet convention)"
  best = checkpoint.BestCheckpoint(workdir / "checkpoints" / f"split_{split.index}")
  tracker = {"best": -1.0, "epoch": 0, "model": "student", "test": float("nan"), "val": None,
             "last_test": float("nan")}
  progress = run_log.Progress(f"split {split.index}", config.train.epochs)
  shuffle_rng = np.random.default_rng(config.seed + split.index)
  sm_epoch = 0
  lm_train_loss = None

  def score(params_sm, eval_videos):
    preds = inference.predict_videos(loaded.predict_fn, params_sm, eval_videos, config.eval.batch_size, buckets)
    return inference.split_score(eval_videos, preds, **eval_kwargs)

  def host_batches(source):
    if source in (step_lib.SM_ONLY, step_lib.SM_DATA):
      for batch in summarization.iterate_batches(examples, config.train.batch_size, buckets, with_labels=True,
                                                 rng=shuffle_rng):
        yield batches.joint_batch(source, sm=batch, feature_dim=loaded.feature_dim, shapes=loaded.standin_shapes)
    else:
      limit = config.iptnet.lm_steps_per_phase or None
      lm_batches = lm_data.batches("train", config.lm.train.batch_size, shuffle=True, rng=shuffle_rng,
                                   **lm_train.batch_options(config.lm))
      for i, batch in enumerate(lm_batches):
        if limit is not None and i >= limit:
          break
        yield batches.joint_batch(source, lm=batch, feature_dim=loaded.feature_dim, shapes=loaded.standin_shapes)

  try:
    for phase_index, source in enumerate(phases):
      start = time.perf_counter()
      history = []
      for batch in host_batches(source):
        state, metrics = loaded.joint_step(state, constants, step_lib.shard_batch(batch, mesh))
        history.append(metrics)
      losses = {f"loss_{k}": v for k, v in _mean_metrics(history).items()}
      record = {"split": split.index, "phase": phase_index, "source": step_lib.SOURCE_NAMES[source],
                "steps": len(history), **losses, "seconds": time.perf_counter() - start}
      if source in (step_lib.LM_ONLY, step_lib.LM_DATA):
        lm_train_loss = losses["loss_lm_supervised"]
      if source in (step_lib.SM_ONLY, step_lib.SM_DATA):
        sm_epoch += 1
        candidates = {"student": state.params["sm"], "teacher": teaching.teacher_params(state.opt_state)["sm"]}
        for name, params_sm in candidates.items():
          test_score = score(params_sm, test_videos)
          val_score = score(params_sm, val_videos) if val_videos else None
          record[f"{name}_test_score"], record[f"{name}_val_score"] = test_score, val_score
          if name == "student":
            tracker["last_test"] = test_score
          selected = val_score if val_videos else test_score
          if selected > tracker["best"]:
            tracker.update(best=selected, epoch=sm_epoch, model=name, test=test_score, val=val_score)
            best.save(sm_epoch, jax.device_get(params_sm),
                      {"epoch": sm_epoch, "model": name, "test_score": test_score, "val_score": val_score})
        progress.epoch_done(sm_epoch, {"source": step_lib.SOURCE_NAMES[source], "loss": losses["loss_total"],
                                       "student": record["student_test_score"] * 100,
                                       "teacher": record["teacher_test_score"] * 100})
      writer.write(record)
  finally:
    best.close()

  lm_test = None
  if lm_data is not None:
    lm_test = lm_train.evaluate(loaded.lm_predict_fn, {"params": state.params["lm"], "constants": constants},
                                lm_data, "test", config.lm)
  floor, _ = (inference.random_floor(test_videos, num_seeds=config.eval.random_seeds, metric=config.eval.metric,
                                     protocol=config.eval.protocol, seed=config.seed)
              if config.eval.random_seeds else (float("nan"), float("nan")))
  return SplitResult(split.index, tracker["epoch"], tracker["model"], selection, tracker["test"], tracker["val"],
                     tracker["last_test"], floor, lm_test, lm_train_loss, str(best.directory))


def _mean_metrics(history: list[dict]) -> dict[str, float]:
  if not history:
    return {}
  history = jax.device_get(history)
  means = {k: float(np.mean([h[k] for h in history])) for k in history[0]}
  if not all(math.isfinite(v) for v in means.values()):
    raise FloatingPointError(f"non-finite training loss {means}; lower the learning rates or check the features")
  return means


def train_and_evaluate_iptnet(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Trains iPTNet (or an ablation) on every selected split; returns and writes the summary."""
  config_defaults.check_iptnet_config(config)
  if config.iptnet.use_lm:
    lm_train.check_lm_config(config.lm)
  if config.iptnet.distributed:  # multi-host (BUILD.md): explicit coordinator, or detected from the cluster
    c = config.iptnet
    jax.distributed.initialize(coordinator_address=c.coordinator_address or None,
                               num_processes=None if c.num_processes < 0 else c.num_processes,
                               process_id=None if c.process_id < 0 else c.process_id)
  workdir = Path(workdir)
  loaded = _Loaded(config, workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  name = ablation_name(config)
  lm_note = ""
  if loaded.lm_data is not None:
    lm_note = f"; LM data: Charades-STA, {len(loaded.lm_data.train)} queries, {loaded.lm_data.describe_features()}"
  print(f"{name} on {loaded.split_file}: {len(loaded.splits)} split(s), {len(loaded.videos)} summarization videos"
        f"{lm_note}; {jax.device_count()} device(s) ({jax.devices()[0].platform})", flush=True)

  writer = run_log.JsonlWriter(workdir / "metrics.jsonl")
  try:
    results = [_train_split(config, split, loaded, workdir, writer) for split in loaded.splits]
  finally:
    writer.close()

  label = "F1" if config.eval.protocol == "fscore" else "top-5 mAP"
  rows = [[r.index, r.selected_epoch, r.selected_model, r.selection, r.test_score * 100, r.last_test_score * 100,
           r.random_score * 100] for r in results]
  mean = lambda key: float(np.mean([getattr(r, key) for r in results]))
  rows.append(["mean", "", "", "", mean("test_score") * 100, mean("last_test_score") * 100,
               mean("random_score") * 100])
  synthetic = " [synthetic summarization data]" if config.data.source == "synthetic" else ""
  if config.iptnet.joint:
    print(f"\n{name}: {label} (%) per split{synthetic}")
    print(run_log.format_table(["split", "epoch", "model", "selected on", f"test {label}", f"last-epoch {label}",
                                f"random {label}"], rows))
  else:  # the LM-alone schedule never trains or scores the SM
    print(f"\n{name}: the SM is not trained; LM results only")
  lm_means = None
  if loaded.lm_data is not None:
    lm_means = {k: float(np.mean([r.lm_test[k] for r in results])) for k in results[0].lm_test}
    lm_means["train_loss"] = float(np.mean([r.lm_train_loss for r in results]))
    tag = f"{lm_train.SYNTHETIC_TAG} " if loaded.lm_data.synthetic else ""
    print(f"{tag}LM student on Charades-STA test (mean over splits): "
          + ", ".join(f"{k} {v:.2f}" for k, v in lm_means.items()))
  summary = {"method": name, "protocol": config.eval.protocol, "splits": [dataclasses.asdict(r) for r in results],
             "mean_test_score": mean("test_score"), "mean_last_test_score": mean("last_test_score"),
             "mean_random_score": mean("random_score"), "lm_test": lm_means,
             "lm_synthetic": bool(loaded.lm_data is not None and loaded.lm_data.synthetic),
             "synthetic": bool(synthetic)}
  (workdir / "results.json").write_text(json.dumps(summary, indent=1, default=float))
  return summary
