"""Training iPTNet: the schedule of paper §3.7 over the one joint step, per split of the summarization data.

Schedule (`schedule`): optional LM warm-up epochs (the released code runs 2), SM-only warm-up epochs, then
collaborative rounds until the SM epoch budget (config.train.epochs) is spent; a round reads only LM data
(config.lm.data.source: Charades-STA or YouTube Highlights, iptnet.lm_steps_per_phase batches, a pass or
several, or one pass when 0) and then only SM data (one epoch). Non-mixing:
every batch comes from one source. After every SM epoch the SM student and the SM teacher are scored and
the better of the two, if it beats the best so far, is kept (the released code saves whichever of the
two improves). Model selection: the split's val_keys when present, else DSNet's convention (the best epoch
on test), stated in the output. At the end the LM student is scored on the LM data's test split.

Ablations (config.iptnet): propagation=False is iPTNet-P, teaching=False is iPTNet-T, use_lm=False is
iPTNet-L (SM alone, through the same step).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from iptnet_jax import config_defaults, loop, run_dir, run_log, run_models
from iptnet_jax.datasets import input_pipeline, summarization
from iptnet_jax.datasets import splits as splits_lib
from iptnet_jax.iptnet import teaching
from iptnet_jax.iptnet import step as step_lib
from iptnet_jax.lm import highlight_map
from iptnet_jax.lm import train as lm_train
from iptnet_jax.lm.model import init_variables
from iptnet_jax.sm import inference
from iptnet_jax.sm import model as sm_model
from iptnet_jax.sm import train as sm_train
from iptnet_jax.vsumm import rank_correlation


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
  # Kendall's tau / Spearman's rho (Otani et al. 2019) of the selected model's step importance on test
  test_tau: float = float("nan")
  test_rho: float = float("nan")
  # DSNet's convention (the best epoch and model on test), reported beside the selection above
  dsnet_test_score: float = float("nan")
  dsnet_epoch: int = 0
  dsnet_model: str = "student"
  dsnet_test_tau: float = float("nan")
  dsnet_test_rho: float = float("nan")
  random_tau: float = float("nan")  # uniform random step scores on the same test videos
  random_rho: float = float("nan")
  num_train_videos: int = 0
  num_val_videos: int = 0
  num_test_videos: int = 0
  lm_highlight: dict | None = None  # YouTube Highlights LM data: UMT's per-domain mAP of the LM's highlight scores


class _Loaded:
  """Everything that does not change between splits."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: Path):
    dataset_dir, self.split_file = sm_train.resolve_data(config, workdir)
    all_splits = splits_lib.load_splits(self.split_file, dataset_dir, config.data.default_h5 or None,
                                        splits_lib.parse_h5_renames(config.data.h5_renames))
    self.splits = [splits_lib.carve_validation(all_splits[i], config.data.val_fraction, config.data.val_seed)
                   for i in config_defaults.parse_split_selection(config.data.splits, len(all_splits))]
    self.videos = summarization.load_split_videos(self.splits)
    self.feature_dim = summarization.check_feature_widths(self.videos)
    self.lm_data = None
    if config.iptnet.use_lm:
      self.lm_data = lm_train.load_lm_data(config.lm, workdir)
      lm_dim = self.lm_data.feature_dim
      if lm_dim != self.feature_dim:
        # The SM runs on LM videos and the LM on SM videos (no adapter, as in the paper's code).
        raise config_defaults.ConfigError(
            f"feature widths differ: summarization videos {self.feature_dim}, LM videos {lm_dim} "
            "(config.lm.data.synthetic.dim for synthetic ones); iPTNet needs one width")

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
    self.buckets = tuple(config.data.buckets)
    self.lm_predict_fn = lm_train.make_predict_fn(self.lm) if self.lm_data is not None else None
    # YouTube Highlights as LM data: the LM is also scored as a highlight detector (UMT's per-domain mAP)
    self.lm_highlight_fn = (highlight_map.make_highlight_fn(self.lm)
                            if self.lm_data is not None and getattr(self.lm_data, "source", "") == "youtube_highlights"
                            else None)
    self.standin_shapes = input_pipeline.standin_shapes(config)


def _phases(sources: list[int]) -> list[loop.Phase]:
  """The schedule's sources as loop phases: an SM pass is an SM epoch, evaluated after; an LM pass is not
  evaluated and carries the number of the SM epochs done before it."""
  phases, sm_epoch = [], 0
  for source in sources:
    sm = source in (step_lib.SM_ONLY, step_lib.SM_DATA)
    sm_epoch += sm
    phases.append(loop.Phase(sm_epoch, step_lib.SOURCE_NAMES[source], evaluate=sm))
  return phases


class _Split(loop.Unit):
  """One split of the summarization data through the schedule; the LM data is shared by all splits."""

  def __init__(self, config: ml_collections.ConfigDict, split, loaded: _Loaded):
    self.config, self.split, self.loaded = config, split, loaded
    self.name, self.label, self.context = f"split_{split.index}", f"split {split.index}", {"split": split.index}
    self.train_videos = [loaded.videos[r] for r in split.train]
    self.val_videos = [loaded.videos[r] for r in split.val]
    self.test_videos = [loaded.videos[r] for r in split.test]
    self.examples = summarization.training_examples(self.train_videos, config.eval.proportion)
    self.sources = loaded.phases
    self.phases = _phases(loaded.phases)
    self.total_epochs = config.train.epochs
    self.learning_rates = {"train.lr": config.train.lr}
    if loaded.lm_data is not None:
      self.learning_rates["lm.train.lr"] = config.lm.train.lr
    self.loss_prefix = "loss_"
    self.selection = "val" if self.val_videos else "test (DSNet convention)"
    self.constants = None
    # (users, steps) per test video, for Kendall's tau / Spearman's rho; None when a video has no user scores
    self.rank_scores = ({v.name: v.user_scores.T for v in self.test_videos}
                        if all(v.user_scores is not None for v in self.test_videos) else None)

  def init_state(self) -> step_lib.JointState:
    loaded = self.loaded
    sm_rng, lm_rng, train_rng = jax.random.split(jax.random.key(self.config.seed + self.split.index), 3)
    params = {"sm": sm_train.init_params(loaded.sm, sm_rng, loaded.feature_dim), "lm": {}}
    constants = {}
    if loaded.lm_data is not None:
      lm_variables = init_variables(loaded.lm, lm_rng, loaded.lm_data.word_vectors)
      params["lm"], constants = lm_variables["params"], lm_variables["constants"]
    state = step_lib.JointState(step=jnp.zeros((), jnp.int32), params=params, opt_state=loaded.tx.init(params),
                                rng=train_rng)
    self.constants = step_lib.replicate(constants, loaded.mesh)
    return step_lib.replicate(state, loaded.mesh)

  def data_rng(self) -> np.random.Generator:
    return np.random.default_rng(self.config.seed + self.split.index)

  def batches(self, phase, rng):
    loaded = self.loaded
    return input_pipeline.joint_batches(step_lib.SOURCE_NAMES.index(phase.source), self.config, rng,
                                        feature_dim=loaded.feature_dim, shapes=loaded.standin_shapes,
                                        sm_examples=self.examples, lm_data=loaded.lm_data,
                                        lm_limit=self.config.iptnet.lm_steps_per_phase or None)

  def num_batches(self, phase) -> int:
    if phase.source in ("sm_only", "sm_data"):
      return math.ceil(len(self.examples) / self.config.train.batch_size)
    full = math.ceil(len(self.loaded.lm_data.train) / self.config.lm.train.batch_size)
    return self.config.iptnet.lm_steps_per_phase or full  # more than a pass: further reshuffled passes

  def train_step(self, state, batch):
    return self.loaded.joint_step(state, self.constants, step_lib.shard_batch(batch, self.loaded.mesh))

  def _predict(self, params_sm, videos) -> dict:
    return inference.predict_videos(self.loaded.predict_fn, params_sm, videos, self.config.eval.batch_size,
                                    self.loaded.buckets)

  def _score(self, videos, preds) -> float:
    config = self.config
    return inference.split_score(videos, preds, protocol=config.eval.protocol, nms_thresh=config.eval.nms_thresh,
                                 proportion=config.eval.proportion, metric=config.eval.metric)

  def evaluate(self, state, phase, losses) -> loop.Evaluation:
    # The SM student and the SM teacher are both candidates (the released code keeps whichever improves).
    models = {"student": state.params["sm"], "teacher": teaching.teacher_params(state.opt_state)["sm"]}
    metrics, candidates = {}, {}
    for name, params_sm in models.items():
      test_preds = self._predict(params_sm, self.test_videos)
      test_score = self._score(self.test_videos, test_preds)
      val_score = self._score(self.val_videos, self._predict(params_sm, self.val_videos)) if self.val_videos else None
      metrics[f"{name}_test_score"], metrics[f"{name}_val_score"] = test_score, val_score
      if self.rank_scores is not None:  # Otani et al.: the step importance ranked against each user's scores
        correlation = rank_correlation.dataset_rank_correlation(
            {v.name: test_preds[v.name]["cls_prob"] for v in self.test_videos}, self.rank_scores)
        metrics[f"{name}_test_tau"], metrics[f"{name}_test_rho"] = correlation.kendall_tau, correlation.spearman_rho
      candidates[name] = (val_score if val_score is not None else test_score, lambda p=params_sm: p)
    shown = {"source": phase.source, "loss": losses["loss_total"], "student": metrics["student_test_score"] * 100,
             "teacher": metrics["teacher_test_score"] * 100}
    return loop.Evaluation(metrics, shown, candidates)

  def finish(self, state, outcome: loop.Outcome) -> dict:
    config, loaded = self.config, self.loaded
    lm_test = lm_train_loss = None
    if loaded.lm_data is not None:
      lm_test = lm_train.evaluate(loaded.lm_predict_fn, {"params": state.params["lm"], "constants": self.constants},
                                  loaded.lm_data, "test", config.lm)
      last_lm = next(s for s in reversed(self.phases) if s.source in ("lm_only", "lm_data"))
      lm_train_loss = outcome.phase_losses[last_lm.source]["loss_lm_supervised"]
      # The LM student these metrics score, beside the split's SM checkpoint, for summarize / localize / export.
      run_models.save_lm_student(outcome.checkpoint_dir, {"params": state.params["lm"], "constants": self.constants},
                                 {"epoch": self.total_epochs, "steps": int(state.step), "model": "student", **lm_test})
    lm_highlight = None
    if loaded.lm_highlight_fn is not None:
      lm_highlight = highlight_map.youtube_domain_map(
          loaded.lm_highlight_fn, {"params": state.params["lm"], "constants": self.constants}, loaded.lm_data,
          "test", input_pipeline.lm_batch_options(config.lm), config.lm.eval.batch_size)
    floor, _ = (inference.random_floor(self.test_videos, num_seeds=config.eval.random_seeds,
                                       metric=config.eval.metric, protocol=config.eval.protocol, seed=config.seed)
                if config.eval.random_seeds else (float("nan"), float("nan")))
    best = outcome.best
    nan = float("nan")
    if best is None:  # the LM-alone schedule never scores the SM
      epoch, model, test, val, last = 0, "student", nan, None, nan
      at_best = {}
    else:
      model = best["candidate"]
      epoch, test, val = best["epoch"], best["metrics"][f"{model}_test_score"], best["metrics"][f"{model}_val_score"]
      last = outcome.last["student_test_score"]
      at_best = best["metrics"]
    # DSNet's convention beside the selection above: the best test score over every evaluation and both models
    # (optimistic: it selects on test); the same as the selection when the split has no validation videos.
    dsnet = max(((e["metrics"][f"{m}_test_score"], e["epoch"], m) for e in outcome.evaluations
                 for m in ("student", "teacher")), key=lambda t: t[0], default=(nan, 0, "student"))
    at_dsnet = next((e["metrics"] for e in outcome.evaluations if e["epoch"] == dsnet[1]), {})
    rank_floor = (rank_correlation.random_rank_correlation(self.rank_scores, config.seed, trials=config.eval.random_seeds)
                  if self.rank_scores is not None and config.eval.random_seeds else {})
    return dataclasses.asdict(SplitResult(
        self.split.index, epoch, model, self.selection, test, val, last, floor, lm_test, lm_train_loss,
        outcome.checkpoint_dir, test_tau=at_best.get(f"{model}_test_tau", nan),
        test_rho=at_best.get(f"{model}_test_rho", nan), dsnet_test_score=dsnet[0], dsnet_epoch=dsnet[1],
        dsnet_model=dsnet[2], dsnet_test_tau=at_dsnet.get(f"{dsnet[2]}_test_tau", nan),
        dsnet_test_rho=at_dsnet.get(f"{dsnet[2]}_test_rho", nan), random_tau=rank_floor.get("kendall_tau", nan),
        random_rho=rank_floor.get("spearman_rho", nan), num_train_videos=len(self.train_videos),
        num_val_videos=len(self.val_videos), num_test_videos=len(self.test_videos), lm_highlight=lm_highlight))


class IPTNetTask(loop.Task):
  def __init__(self, config: ml_collections.ConfigDict, workdir: Path):
    self.config = config
    self.loaded = _Loaded(config, workdir)
    self.units = [_Split(config, split, self.loaded) for split in self.loaded.splits]
    self.name = ablation_name(config)

  def num_units(self) -> int:
    return len(self.units)

  def unit(self, index: int) -> loop.Unit:
    return self.units[index]

  def report(self, results: list[dict]) -> dict:
    config, loaded, name = self.config, self.loaded, self.name
    label = "F1" if config.eval.protocol == "fscore" else "top-5 mAP"
    # tau / rho need per-user step scores (TVSum has them; synthetic and SumMe files do not): no NaN columns
    ranked = all(math.isfinite(r["test_tau"]) for r in results)
    keys = ("test_score", "dsnet_test_score", "last_test_score", "random_score",
            *(("test_tau", "test_rho", "random_tau", "random_rho") if ranked else ()))
    scale = {k: 100 if k.endswith("score") else 1 for k in keys}
    rows = [[r["index"], r["selected_epoch"], r["selected_model"], r["selection"],
             *(r[k] * scale[k] for k in keys)] for r in results]
    mean = lambda key: float(np.mean([r[key] for r in results]))
    rows.append(["mean", "", "", "", *(mean(k) * scale[k] for k in keys)])
    synthetic = " [synthetic summarization data]" if config.data.source == "synthetic" else ""
    if config.iptnet.joint:
      print(f"\n{name}: {label} (%) per split{synthetic}; 'DSNet conv.' = best epoch and model on test (optimistic)"
            + ("; tau / rho: Kendall / Spearman of the step importance with the users (Otani et al.)" if ranked else ""))
      print(run_log.format_table(["split", "epoch", "model", "selected on", f"test {label}",
                                  f"DSNet conv. {label}", f"last-epoch {label}", f"random {label}",
                                  *(("tau", "rho", "random tau", "random rho") if ranked else ())], rows))
    else:  # the LM-alone schedule never trains or scores the SM
      print(f"\n{name}: the SM is not trained; LM results only")
    lm_means = lm_random = None
    if loaded.lm_data is not None:
      lm_means = {k: float(np.mean([r["lm_test"][k] for r in results])) for k in results[0]["lm_test"]}
      lm_means["train_loss"] = float(np.mean([r["lm_train_loss"] for r in results]))
      lm_random = lm_train.random_baseline(loaded.lm_data.test)  # the LM's floor, as the LM trainer's table has
      tag = f"{lm_train.SYNTHETIC_TAG} " if loaded.lm_data.synthetic else ""
      title = lm_train.SOURCE_TITLES[config.lm.data.get("source", "charades_sta")]
      print(f"{tag}LM student on {title} test (mean over splits): "
            + ", ".join(f"{k} {v:.2f}" for k, v in lm_means.items()))
      print(f"{tag}random span (expected) on the same {len(loaded.lm_data.test)} test queries: "
            + ", ".join(f"{k} {lm_random[k]:.2f}" for k in lm_train.METRIC_NAMES))
    lm_highlight = None
    if results and results[0].get("lm_highlight"):
      domains = results[0]["lm_highlight"]["per_domain"]
      lm_highlight = {"per_domain": {d: float(np.mean([r["lm_highlight"]["per_domain"][d] for r in results]))
                                     for d in domains}}
      lm_highlight["mean"] = float(np.mean(list(lm_highlight["per_domain"].values())))
      print("LM student as a highlight detector on YouTube Highlights val (UMT mAP %, mean over splits): "
            + ", ".join(f"{d} {v * 100:.2f}" for d, v in lm_highlight["per_domain"].items())
            + f"; mean {lm_highlight['mean'] * 100:.2f}")
    return {"method": name, "protocol": config.eval.protocol, "splits": results,
            "mean_test_score": mean("test_score"), "mean_last_test_score": mean("last_test_score"),
            "mean_random_score": mean("random_score"), "mean_dsnet_test_score": mean("dsnet_test_score"),
            **{f"mean_{k}": mean(k) for k in ("test_tau", "test_rho", "random_tau", "random_rho")},
            "lm_test": lm_means, "lm_random": lm_random, "lm_highlight": lm_highlight,
            "lm_synthetic": bool(loaded.lm_data is not None and loaded.lm_data.synthetic),
            "lm_data": lm_train.lm_data_summary(loaded.lm_data) if loaded.lm_data is not None else None,
            "synthetic": bool(synthetic)}


def train_and_evaluate_iptnet(config: ml_collections.ConfigDict, workdir: str | Path, overwrite: bool = False
                              ) -> dict:
  """Trains iPTNet (or an ablation) on every selected split (resuming a run interrupted in `workdir`); returns
  and writes the summary."""
  config_defaults.validate(config)
  if config.iptnet.distributed:  # multi-host (BUILD.md): explicit coordinator, or detected from the cluster
    c = config.iptnet
    jax.distributed.initialize(coordinator_address=c.coordinator_address or None,
                               num_processes=None if c.num_processes < 0 else c.num_processes,
                               process_id=None if c.process_id < 0 else c.process_id)
  with run_dir.claimed(workdir, config, overwrite) as info:
    task = IPTNetTask(config, info.workdir)
    run_dir.record(info, config)
  loaded = task.loaded
  lm_note = ""
  if loaded.lm_data is not None:
    title = lm_train.SOURCE_TITLES[config.lm.data.get("source", "charades_sta")]
    lm_note = f"; LM data: {title}, {len(loaded.lm_data.train)} queries, {loaded.lm_data.describe_features()}"
  print(f"{task.name} on {loaded.split_file}: {len(loaded.splits)} split(s), {len(loaded.videos)} summarization "
        f"videos{lm_note}; {jax.device_count()} device(s) ({jax.devices()[0].platform})", flush=True)
  return loop.run(task, info, config.train.checkpoint_every_steps)
