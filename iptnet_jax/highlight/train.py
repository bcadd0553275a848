"""Highlight detection per domain on the project's training loop (iptnet_jax/loop.py).

Pieces:
  build_trainer(config)                      -> Trainer(model, tx, loss spec, jitted train step, predict, init)
  create_state(trainer, feature_dims, seed)  -> TrainState(step, params, opt_state, rng)
  trainer.step(state, batch)                 -> (state, metrics)    one jitted, donated update
  sample_batch, score_videos, evaluate_scores, random_floor, cv_splits
Loop: every (domain, seed) is a `HighlightRun` unit (a 'val' run), and with eval.cross_validate every fold of
the first eval.cv_seeds seeds is one too (a 'cv' run); `HighlightTask` lists them and reports. An epoch is
train.steps_per_epoch steps (the loop's phase); a run is evaluated after its last epoch (and at eval.cv_epochs /
every eval.val_curve_every epochs). The loop gives the rest: one run per workdir (run_dir: another config is
refused), exact resume of an interrupted command (finished runs are not retrained; the state is saved at the end
of every train.checkpoint_every_epochs-th epoch, 0 = at the end of each run only, since one epoch costs less than
a save, and on SIGTERM), <workdir>/metrics.jsonl (one row per epoch: train_* losses, and val / cv when scored),
TensorBoard files, checkpoints/<domain>_seed<k> (a val run's final parameters) and results.json:
  {"per_domain": {d: mean over seeds}, "per_domain_std": {d: sample std over seeds}, "per_domain_seeds":
   {d: [...]}, "mean": mean over domains, "mean_std": sample std over seeds of the mean over domains, "seeds", "regime",
   "features", "metric", "random_floor": {...}, "train_seconds", optionally "cv": {...} and
   "best_val_epoch_optimistic": {...}}

Regimes (config.train.regime):
  'supervised'  UMT's protocol: the domain's train videos with their clip saliency (losses.clip_bce);
  'weak'        Ye et al.: video-level labels only, the domain's train videos positive and other domains'
                train videos negative; losses.video_bce + temporal-cue margins + beta-sparsity.
Both are scored the same way on the domain's val videos: TVSum top-5 mAP (vsumm/highlight.top5_map), YouTube
Highlights mAP (vsumm/highlight.mean_clip_ranking_ap), from the clip logits of the last step's parameters.

Selection rule: none on the val videos. The schedule is fixed by the config; ablations and hyper-parameters
are compared by cross-validation on the domain's train videos (eval.cv_folds = 0: leave one train video out,
TVSum's 4 train videos give 4 folds; k: k folds of a seeded permutation), which reads train-split annotation
only: a fold trains on the domain's other train videos (and, when used, the other domains' train videos, as the
val run does) and scores its held-out ones. The CV figure is the mean over folds.

Optimiser (config.train.optimizer): 'sgd' is Ye et al.'s (lr 0.01, x0.1 every 50 epochs, weight decay 5e-4
added to the gradient as torch.optim.SGD does, momentum 0.9: the supplement does not state it); 'adam' is
UMT's torch Adam with coupled weight decay (lr 1e-3, wd 1e-4).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from iptnet_jax import config_defaults, loop, run_dir, run_log
from iptnet_jax.errors import InputError
from iptnet_jax.highlight import data as data_lib
from iptnet_jax.highlight import losses
from iptnet_jax.highlight.model import ENCODERS, HighlightModel
from iptnet_jax.vsumm import highlight as metrics_lib

REGIMES = ("supervised", "weak")
OPTIMIZERS = ("sgd", "adam", "adamw")


class HighlightConfigError(InputError):
  """A highlight config value outside its allowed range."""


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """The static loss settings (hashable: part of the jitted step's identity)."""

  regime: str = "supervised"
  rank_weight: float = 0.0
  rank_margin: float = 1.0
  video_weight: float = 1.0
  cue_weight: float = 1.0
  var_margin: float = 0.05
  score_margin: float = 0.5
  top_fraction: float = 0.125
  beta: float = 1e-4
  other_weight: float = 1.0
  domain_weight: float = 0.0


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  rng: jax.Array  # dropout: folded with the step in every update


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
  model: HighlightModel
  tx: optax.GradientTransformation
  spec: LossSpec
  modalities: tuple[str, ...]
  step: object  # jitted (state, batch) -> (state, metrics), the state donated
  predict: object  # jitted (params, features, mask) -> clip logits
  init: object  # jitted (init key, dropout key, features, mask) -> TrainState


# ---------------------------------------------------------------------------------------------- config


def check_config(config: ml_collections.ConfigDict) -> None:
  def require(ok, field, value, expected):
    if not ok:
      raise HighlightConfigError(f"config.{field}={value!r}: expected {expected}")

  t, m, l = config.train, config.model, config.loss
  require(t.regime in REGIMES, "train.regime", t.regime, f"one of {REGIMES}")
  require(t.optimizer in OPTIMIZERS, "train.optimizer", t.optimizer, f"one of {OPTIMIZERS}")
  require(m.encoder in ENCODERS, "model.encoder", m.encoder, f"one of {ENCODERS}")
  require(int(m.rank) >= 1, "model.rank", m.rank, ">= 1")
  require(int(m.hidden) >= 1 and int(m.hidden) % int(m.num_heads) == 0, "model.hidden", m.hidden,
          f"a positive multiple of model.num_heads={m.num_heads}")
  require(int(t.epochs) >= 1, "train.epochs", t.epochs, ">= 1")
  require(int(t.steps_per_epoch) >= 1, "train.steps_per_epoch", t.steps_per_epoch, ">= 1")
  require(int(t.batch_size) >= 1, "train.batch_size", t.batch_size, ">= 1")
  require(int(t.clip_len) >= 0, "train.clip_len", t.clip_len, ">= 0 (0: whole videos)")
  require(int(t.num_others) >= (1 if t.regime == "weak" else 0), "train.num_others", t.num_others,
          ">= 1 in the weak regime (its negatives), >= 0 otherwise")
  require(float(t.lr) > 0, "train.lr", t.lr, "> 0")
  require(int(t.checkpoint_every_epochs) >= 0, "train.checkpoint_every_epochs", t.checkpoint_every_epochs,
          ">= 0 (0: at the end of each run only)")
  require(int(t.checkpoint_every_steps) >= 0, "train.checkpoint_every_steps", t.checkpoint_every_steps,
          ">= 0 (0: epoch ends only)")
  require(0 <= float(l.beta), "loss.beta", l.beta, ">= 0")
  require(0 < float(l.top_fraction) <= 1, "loss.top_fraction", l.top_fraction, "in (0, 1]")
  require(config.data.target in data_lib.TARGETS, "data.target", config.data.target, f"one of {data_lib.TARGETS}")
  require(int(config.data.eval_bucket) >= 1, "data.eval_bucket", config.data.eval_bucket, ">= 1")
  smooth_windows(config)
  seeds(config)
  data_lib.parse_modalities(config.data.modalities)


def seeds(config) -> tuple[int, ...]:
  try:
    values = tuple(int(s) for s in str(config.seeds).replace(" ", "").split(",") if s != "")
  except ValueError:
    values = ()
  if not values or len(set(values)) != len(values):
    raise HighlightConfigError(f"config.seeds={config.seeds!r}: expected distinct integers, e.g. '0,1,2'")
  return values


def loss_spec(config) -> LossSpec:
  l = config.loss
  return LossSpec(config.train.regime, float(l.rank_weight), float(l.rank_margin), float(l.video_weight),
                  float(l.cue_weight), float(l.var_margin), float(l.score_margin), float(l.top_fraction),
                  float(l.beta), float(l.other_weight), float(l.domain_weight))


def model_from_config(config) -> HighlightModel:
  m = config.model
  return HighlightModel(modalities=data_lib.parse_modalities(config.data.modalities), hidden=int(m.hidden),
                        rank=int(m.rank), encoder=m.encoder, num_layers=int(m.num_layers),
                        num_heads=int(m.num_heads), kernel_size=int(m.kernel_size),
                        input_dropout=float(m.input_dropout), dropout=float(m.dropout),
                        attention_features=int(m.attention_features))


def optimizer_from_config(config) -> optax.GradientTransformation:
  t = config.train
  steps_per_epoch = int(t.steps_per_epoch)
  if int(t.lr_decay_every_epochs) > 0:
    # Step decay x lr_decay every N epochs (Ye et al.: x0.1 every 50 epochs).
    schedule = optax.exponential_decay(float(t.lr), transition_steps=int(t.lr_decay_every_epochs) * steps_per_epoch,
                                       decay_rate=float(t.lr_decay), staircase=True)
  else:
    schedule = optax.constant_schedule(float(t.lr))
  parts = [optax.clip_by_global_norm(float(t.grad_clip))] if float(t.grad_clip) > 0 else []
  if t.optimizer == "sgd":  # torch.optim.SGD(weight_decay=wd, momentum=m): wd * params added to the gradient
    parts += [optax.add_decayed_weights(float(t.weight_decay)), optax.sgd(schedule, momentum=float(t.momentum))]
  elif t.optimizer == "adam":  # torch.optim.Adam(weight_decay=wd): coupled L2, UMT's optimiser
    parts += [optax.add_decayed_weights(float(t.weight_decay)), optax.scale_by_adam(),
              optax.scale_by_learning_rate(schedule)]
  else:
    parts += [optax.adamw(schedule, weight_decay=float(t.weight_decay))]
  return optax.chain(*parts)


# ---------------------------------------------------------------------------------------------- pieces


def loss_fn(params, model: HighlightModel, spec: LossSpec, batch, rng):
  out = model.apply({"params": params}, batch["features"], batch["mask"], deterministic=False,
                    rngs={"dropout": rng})
  mask = batch["mask"]
  if spec.regime == "supervised":
    # Clips of other domains' train videos (train.num_others > 0) count with weight loss.other_weight.
    own = batch["video_labels"] > 0.5
    weights = mask * jnp.where(own, 1.0, spec.other_weight)[:, None]
    bce = losses.clip_bce(out["clip_logits"], batch["targets"], weights)
    terms = {"bce": bce}
    loss = bce
    if spec.rank_weight > 0:
      terms["rank"] = losses.pairwise_hinge(out["clip_logits"], batch["targets"], mask, spec.rank_margin)
      loss = loss + spec.rank_weight * terms["rank"]
    if spec.domain_weight > 0:  # the weak regime's video-level topic label as an auxiliary task
      terms["video_bce"] = losses.video_bce(out["video_logit"], batch["video_labels"])
      loss = loss + spec.domain_weight * terms["video_bce"]
  else:
    labels = batch["video_labels"]
    terms = {"video_bce": losses.video_bce(out["video_logit"], labels)}
    terms.update(losses.temporal_cue_terms(out["clip_logits"], mask, labels, var_margin=spec.var_margin,
                                           score_margin=spec.score_margin, top_fraction=spec.top_fraction))
    loss = (spec.video_weight * terms["video_bce"] + spec.cue_weight * (terms["var"] + terms["score"]) +
            spec.beta * terms["sparsity"])
  return loss, dict(terms, loss=loss)


def build_trainer(config) -> Trainer:
  check_config(config)
  model = model_from_config(config)
  tx = optimizer_from_config(config)
  spec = loss_spec(config)

  def step(state: TrainState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, model, spec, batch, rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  def predict(params, features, mask):
    return model.apply({"params": params}, features, mask, deterministic=True)["clip_logits"]

  def init(init_key, dropout_key, features, mask):
    params = model.init({"params": init_key}, features, mask)["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=dropout_key)

  return Trainer(model, tx, spec, model.modalities, jax.jit(step, donate_argnums=(0,)), jax.jit(predict),
                 jax.jit(init))


def create_state(trainer: Trainer, feature_dims: Mapping[str, int], seed: int) -> TrainState:
  """A fresh state: parameters from the seed's first key, dropout from its second (the shapes depend on the
  feature widths only, so a dummy 8-clip input builds them)."""
  init_key, dropout_key = jax.random.split(jax.random.key(seed))
  features = {m: jnp.zeros((1, 8, int(feature_dims[m])), jnp.float32) for m in trainer.modalities}
  return trainer.init(init_key, dropout_key, features, jnp.ones((1, 8), bool))


def _cycle(items: Sequence, count: int, rng: np.random.Generator) -> list:
  """`count` items: whole random permutations of `items` back to back (each appears at least once when
  len(items) <= count), so a batch keeps its shape when a fold has fewer videos."""
  out = []
  while len(out) < count:
    out.extend(items[i] for i in rng.permutation(len(items)))
  return out[:count]


def sample_batch(config, positives: Sequence[data_lib.Video], negatives: Sequence[data_lib.Video],
                 modalities, rng: np.random.Generator) -> dict:
  t = config.train
  chosen = _cycle(positives, int(t.batch_size), rng)
  labels = [1.0] * len(chosen)
  if int(t.num_others) > 0:
    chosen += _cycle(negatives, int(t.num_others), rng)
    labels += [0.0] * int(t.num_others)
  clip_len = int(t.clip_len)
  if clip_len > 0:
    length, starts = clip_len, data_lib.random_starts(chosen, clip_len, rng)
  else:
    pool = list(positives) + list(negatives if int(t.num_others) > 0 else [])
    length = data_lib.bucket_length(max(v.num_clips for v in pool), int(config.data.eval_bucket))
    starts = None
  return data_lib.make_batch(chosen, modalities, length, target=config.data.target, video_labels=labels,
                             starts=starts)


def score_videos(trainer: Trainer, params, videos: Sequence[data_lib.Video], bucket: int) -> dict[str, np.ndarray]:
  """{video_id: (T,) clip logits}, each video alone, zero-padded to a multiple of `bucket` clips."""
  out = {}
  for video in videos:
    batch = data_lib.make_batch([video], trainer.modalities, data_lib.bucket_length(video.num_clips, bucket),
                                target=None)
    logits = trainer.predict(params, batch["features"], batch["mask"])
    out[video.video_id] = np.asarray(jax.device_get(logits))[0, :video.num_clips].astype(np.float64)
  return out


def smooth_scores(scores: np.ndarray, window: int) -> np.ndarray:
  """Centred moving average over `window` (odd) clips, over the clips that exist near the ends; 1 = as is.
  Highlights span several 2-s clips, so a lone high clip is more likely noise than a highlight."""
  if window <= 1:
    return scores
  half, index = window // 2, np.arange(len(scores))
  sums = np.concatenate([[0.0], np.cumsum(scores, dtype=np.float64)])
  lo, hi = np.maximum(index - half, 0), np.minimum(index + half + 1, len(scores))
  return (sums[hi] - sums[lo]) / (hi - lo)


def smooth_windows(config) -> tuple[int, tuple[int, ...]]:
  """(eval.smooth, eval.compare_smooth): the reported window and the extra windows also scored."""
  def odd(value, field):
    if value < 1 or value % 2 == 0:
      raise HighlightConfigError(f"config.eval.{field}: expected odd windows >= 1, got {value}")
    return value

  try:
    extra = tuple(int(w) for w in str(config.eval.compare_smooth).replace(" ", "").split(",") if w)
  except ValueError:
    raise HighlightConfigError(f"config.eval.compare_smooth={config.eval.compare_smooth!r}: expected e.g. '3,5'") from None
  return odd(int(config.eval.smooth), "smooth"), tuple(odd(w, "compare_smooth") for w in extra)


def evaluate_scores(metric: str, scores: Mapping[str, np.ndarray], videos: Sequence[data_lib.Video]) -> float:
  by_id = {v.video_id: v for v in videos}
  if metric == "top5_map":
    return metrics_lib.mean_top5_map(scores, {k: by_id[k].user_scores for k in scores})
  if metric == "youtube_map":
    return metrics_lib.mean_clip_ranking_ap(scores, {k: by_id[k].labels for k in scores})
  raise HighlightConfigError(f"metric {metric!r}: expected top5_map or youtube_map")


def negatives_for(dataset: data_lib.Dataset, domain: str) -> list[data_lib.Video]:
  """The train videos of every other domain: the weak regime's negatives (Ye et al.: other topics' videos
  negative), the supervised regime's extra videos when train.num_others > 0. Never a val video."""
  return [v for d in dataset.splits if d != domain for v in dataset.domain_videos(d, "train")]


def others_for(config, dataset: data_lib.Dataset, domain: str) -> list[data_lib.Video]:
  return negatives_for(dataset, domain) if int(config.train.num_others) > 0 else []


def cv_splits(count: int, folds: int, seed: int) -> list[list[int]]:
  """Held-out index lists: one per video (folds = 0 or >= count), else `folds` near-equal parts of a seeded
  permutation. Every index is held out exactly once."""
  if count < 2:
    raise HighlightConfigError(f"cross-validation needs at least 2 train videos in a domain, got {count}")
  if folds <= 0 or folds >= count:
    return [[i] for i in range(count)]
  order = np.random.default_rng(seed).permutation(count)
  return [sorted(int(i) for i in part) for part in np.array_split(order, folds)]


def cv_epochs(config) -> tuple[int, ...]:
  """config.eval.cv_epochs: '20,50' -> the epochs at which cross-validation also scores the held-out video."""
  text = str(config.eval.get("cv_epochs", "")).replace(" ", "")
  try:
    epochs = tuple(sorted({int(e) for e in text.split(",") if e}))
  except ValueError:
    epochs = (-1,)
  if any(e < 1 or e > int(config.train.epochs) for e in epochs):
    raise HighlightConfigError(f"config.eval.cv_epochs={text!r}: expected epochs in 1..{config.train.epochs}")
  return epochs


def _run_seed(seed: int, domain: str, fold: int = 0) -> int:
  digest = hashlib.sha256(f"{seed}/{domain}/{fold}".encode()).digest()
  return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def random_floor(dataset: data_lib.Dataset, domains: Sequence[str], draws: int, seed: int = 0) -> dict:
  """Uniform random clip scores on the same val videos: per domain mean over draws; the mean row's std is
  the std over draws of the mean over domains."""
  rng = np.random.default_rng(seed)
  table = np.zeros((draws, len(domains)))
  for i in range(draws):
    for j, domain in enumerate(domains):
      val = dataset.domain_videos(domain, "val")
      table[i, j] = evaluate_scores(dataset.metric, {v.video_id: rng.random(v.num_clips) for v in val}, val)
  return {"per_domain": dict(zip(domains, table.mean(axis=0).tolist())), "mean": float(table.mean()),
          "std": float(table.mean(axis=1).std()), "draws": draws}


# ---------------------------------------------------------------------------------------------- driver


def load_dataset(config) -> data_lib.Dataset:
  modalities = data_lib.parse_modalities(config.data.modalities)
  if config.data.source == "synthetic":
    s = config.data.synthetic
    return data_lib.synthetic_dataset(num_domains=int(s.num_domains), train_per_domain=int(s.train_per_domain),
                                      val_per_domain=int(s.val_per_domain), min_clips=int(s.min_clips),
                                      max_clips=int(s.max_clips), video_dim=int(s.video_dim),
                                      audio_dim=int(s.audio_dim), kind=s.kind, seed=int(s.seed))
  if config.data.source == "tvsum":
    return data_lib.read_tvsum(config.data.root or None, modalities=modalities,
                               video_streams=config.data.video_streams)
  if config.data.source == "youtube":
    if "audio" in modalities:
      raise HighlightConfigError("data.modalities: YouTube Highlights has video features only; use 'video'")
    return data_lib.read_youtube(config.data.root or None)
  raise HighlightConfigError(f"config.data.source={config.data.source!r}: expected tvsum, youtube or synthetic")


def selected_domains(config, dataset: data_lib.Dataset) -> list[str]:
  order = [d for d in data_lib.TVSUM_DOMAINS + data_lib.YOUTUBE_DOMAINS if d in dataset.splits]
  order += [d for d in dataset.splits if d not in order]
  if config.data.domains in ("", "all"):
    return order
  wanted = [d.strip() for d in str(config.data.domains).split(",") if d.strip()]
  unknown = [d for d in wanted if d not in dataset.splits]
  if unknown:
    raise HighlightConfigError(f"config.data.domains: unknown {unknown}; the split file has {order}")
  return wanted


def _std(values) -> float:
  """Sample standard deviation over seeds (ddof 1); 0 for a single seed."""
  values = np.asarray(values, np.float64)
  return float(values.std(ddof=1)) if values.size > 1 else 0.0


def _summary(per_seed: Mapping[str, Sequence[float]], seed_list: Sequence[int]) -> dict:
  domains = list(per_seed)
  table = np.array([per_seed[d] for d in domains])  # (domains, seeds)
  return {"per_domain": {d: float(np.mean(per_seed[d])) for d in domains},
          "per_domain_std": {d: _std(per_seed[d]) for d in domains},
          "per_domain_seeds": {d: [float(x) for x in per_seed[d]] for d in domains},
          "mean": float(table.mean()), "mean_std": _std(table.mean(axis=0)), "seeds": list(seed_list)}




# ---------------------------------------------------------------------------------------------- the loop's task


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One training run: a domain's val run (fold 0) or the k-th cross-validation fold of its train videos."""

  kind: str  # 'val' | 'cv'
  domain: str
  seed: int
  fold: int = 0  # 1-based for 'cv'

  @property
  def name(self) -> str:  # the folder under checkpoints/ and tensorboard/
    return f"{self.domain}_seed{self.seed}" + (f"_fold{self.fold}" if self.kind == "cv" else "")


class HighlightRun(loop.Unit):
  """One (domain, seed[, fold]): trains a fresh model on its train videos for the configured epochs; a 'val' run
  scores the domain's val videos, a 'cv' run the fold's held-out train videos. The reported figure is the last
  epoch's; a val run's final parameters are kept as checkpoints/<name> (the only candidate: no selection)."""

  loss_prefix = "train_"

  def __init__(self, task: "HighlightTask", spec: RunSpec):
    self.task, self.spec, config = task, spec, task.config
    self.name = spec.name
    self.label = f"{spec.domain} seed {spec.seed}" + (f" cv fold {spec.fold}" if spec.kind == "cv" else "")
    self.context = {"domain": spec.domain, "seed": spec.seed, "kind": spec.kind,
                    **({"fold": spec.fold} if spec.kind == "cv" else {})}
    dataset, epochs = task.dataset, int(config.train.epochs)
    train = dataset.domain_videos(spec.domain, "train")
    if spec.kind == "val":
      self.positives, self.scored = train, dataset.domain_videos(spec.domain, "val")
      points = set(range(task.curve_every, epochs + 1, task.curve_every)) if task.curve_every > 0 else set()
    else:
      held_out = set(task.folds[(spec.domain, spec.seed)][spec.fold - 1])
      self.positives = [v for i, v in enumerate(train) if i not in held_out]
      self.scored = [train[i] for i in sorted(held_out)]
      points = set(cv_epochs(config))
    self.negatives = others_for(config, dataset, spec.domain)
    self.phases = [loop.Phase(e, evaluate=e == epochs or e in points) for e in range(1, epochs + 1)]
    self.total_epochs = epochs
    self.learning_rates = {"train.lr": float(config.train.lr)}
    self.save_every_phases = int(config.train.checkpoint_every_epochs)
    self.run_seed = _run_seed(spec.seed, spec.domain, fold=spec.fold)
    self._started = time.perf_counter()

  def init_state(self) -> TrainState:
    self._started = time.perf_counter()
    return create_state(self.task.trainer, self.task.feature_dims, self.run_seed)

  def data_rng(self) -> np.random.Generator:
    return np.random.default_rng(self.run_seed)

  def batches(self, phase, rng):
    for _ in range(int(self.task.config.train.steps_per_epoch)):
      yield sample_batch(self.task.config, self.positives, self.negatives, self.task.trainer.modalities, rng)

  def num_batches(self, phase) -> int:
    return int(self.task.config.train.steps_per_epoch)

  def train_step(self, state, batch):
    return self.task.trainer.step(state, batch)

  def evaluate(self, state, phase, losses) -> loop.Evaluation:
    task = self.task
    logits = score_videos(task.trainer, state.params, self.scored, task.bucket)

    def metric(window):
      return evaluate_scores(task.dataset.metric, {k: smooth_scores(v, window) for k, v in logits.items()},
                             self.scored)

    key = self.spec.kind  # 'val' or 'cv'
    score = metric(task.smooth)
    # Other smoothing windows of the same scores, for their comparison by CV; never the reported figure.
    metrics = {key: score, **{f"{key}_smooth{w}": metric(w) for w in task.compare_smooth}}
    shown = {"loss": losses.get("train_loss", float("nan")), f"{key} {task.dataset.metric}": 100 * score}
    final = phase.epoch == self.total_epochs and self.spec.kind == "val"
    return loop.Evaluation(metrics, shown, {"final": (score, lambda: state.params)} if final else {})

  def finish(self, state, outcome: loop.Outcome) -> dict:
    key = self.spec.kind
    return {**dataclasses.asdict(self.spec), "score": outcome.last[key],
            "smooth": {str(w): outcome.last[f"{key}_smooth{w}"] for w in self.task.compare_smooth},
            "at_epoch": {str(e["epoch"]): e["metrics"][key] for e in outcome.evaluations},
            "final_train": outcome.phase_losses.get("train", {}), "steps": int(state.step),
            "seconds": time.perf_counter() - self._started}


class HighlightTask(loop.Task):
  """Every selected domain x seed as a val run, plus the cross-validation folds of the first eval.cv_seeds seeds
  when eval.cross_validate; the report aggregates them into results.json (module docstring)."""

  def __init__(self, config: ml_collections.ConfigDict, dataset: data_lib.Dataset):
    self.config, self.dataset = config, dataset
    self.domains = selected_domains(config, dataset)
    self.seeds = seeds(config)
    cv_count = int(config.eval.cv_seeds)
    self.cv_seeds = self.seeds[:cv_count] if cv_count > 0 else self.seeds
    self.curve_every = int(config.eval.val_curve_every)
    self.bucket = int(config.data.eval_bucket)
    self.smooth, self.compare_smooth = smooth_windows(config)
    self.trainer = build_trainer(config)
    first = next(iter(dataset.videos.values()))
    self.feature_dims = {m: int(first.features[m].shape[1]) for m in self.trainer.modalities}
    self.folds, self.specs = {}, []
    for domain in self.domains:
      if int(config.train.num_others) > 0 and not others_for(config, dataset, domain):
        raise HighlightConfigError("train.num_others > 0 needs other domains' train videos")
      for seed in self.seeds:
        if config.eval.val:
          self.specs.append(RunSpec("val", domain, seed))
        if config.eval.cross_validate and seed in self.cv_seeds:
          folds = cv_splits(len(dataset.splits[domain]["train"]), int(config.eval.cv_folds),
                            _run_seed(seed, domain))
          self.folds[(domain, seed)] = folds
          self.specs += [RunSpec("cv", domain, seed, k + 1) for k in range(len(folds))]

  def num_units(self) -> int:
    return len(self.specs)

  def unit(self, index: int) -> loop.Unit:
    return HighlightRun(self, self.specs[index])

  def report(self, results: list[dict]) -> dict:
    config, dataset = self.config, self.dataset
    out = {"regime": config.train.regime, "dataset": dataset.name, "metric": dataset.metric,
           "features": {"modalities": list(self.trainer.modalities),
                        "video_streams": config.data.video_streams if "video" in self.trainer.modalities else None},
           "selection": "none: last step of a fixed schedule; the val videos are only scored",
           "seeds": list(self.seeds), "domains": self.domains,
           "train_seconds": float(sum(r["seconds"] for r in results))}
    val = [r for r in results if r["kind"] == "val"]
    if val:
      by = {(r["domain"], r["seed"]): r for r in val}
      out.update(_summary({d: [by[d, s]["score"] for s in self.seeds] for d in self.domains}, self.seeds))
      if self.curve_every > 0:
        # UMT's reporting protocol (best val epoch, its EvalHook), for comparison with the anchors only: it
        # selects on the val video, so it is optimistic and never our reported figure.
        out["best_val_epoch_optimistic"] = _summary(
            {d: [max(by[d, s]["at_epoch"].values()) for s in self.seeds] for d in self.domains}, self.seeds)
      out["random_floor"] = random_floor(dataset, self.domains, int(config.eval.random_draws))
    cv = [r for r in results if r["kind"] == "cv"]
    if cv:
      def fold_mean(domain, seed, epoch=None):
        rows = [r for r in cv if r["domain"] == domain and r["seed"] == seed]
        return float(np.mean([r["score"] if epoch is None else r["at_epoch"][epoch] for r in rows]))

      out["cv"] = _summary({d: [fold_mean(d, s) for s in self.cv_seeds] for d in self.domains}, self.cv_seeds)
      out["cv"]["at_epoch"] = {
          str(e): _summary({d: [fold_mean(d, s, str(e)) for s in self.cv_seeds] for d in self.domains},
                           self.cv_seeds)["mean"] for e in cv_epochs(config)}
      out["cv"]["smooth"] = {
          str(w): float(np.mean([fold_mean_smooth(cv, d, s, str(w)) for d in self.domains for s in self.cv_seeds]))
          for w in self.compare_smooth}
    if val and self.compare_smooth:
      out["val_smooth"] = {str(w): float(np.mean([r["smooth"][str(w)] for r in val])) for w in self.compare_smooth}
    print(format_table(out))
    return out


def fold_mean_smooth(cv_results, domain, seed, window: str) -> float:
  return float(np.mean([r["smooth"][window] for r in cv_results if r["domain"] == domain and r["seed"] == seed]))


def format_table(results: Mapping) -> str:
  """Per domain: mean ± std over seeds (%), then the mean row; the CV and optimistic figures when present."""
  rows = []
  for name, label in (("per_domain", "val (last epoch)"), ("best_val_epoch_optimistic", "best val epoch"),
                      ("cv", "train-video CV")):
    part = results if name == "per_domain" else results.get(name)
    if part is None or "per_domain" not in part:
      continue
    rows.append([label, *(f"{100 * part['per_domain'][d]:.2f}±{100 * part['per_domain_std'][d]:.1f}"
                          for d in results["domains"]), f"{100 * part['mean']:.2f}±{100 * part['mean_std']:.2f}"])
  if "random_floor" in results:
    floor = results["random_floor"]
    rows.append(["random floor", *(f"{100 * floor['per_domain'][d]:.2f}" for d in results["domains"]),
                 f"{100 * floor['mean']:.2f}±{100 * floor['std']:.2f}"])
  title = (f"\n{results['dataset']} highlight detection ({results['regime']}, {'+'.join(results['features']['modalities'])}"
           f"), {results['metric']} (%), mean ± sample std over seeds {results['seeds']}")
  return title + "\n" + run_log.format_table(["", *results["domains"], "mean"], rows)


def train_and_evaluate_highlight(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                                 overwrite: bool = False) -> dict:
  """Trains and scores every selected domain x seed on the project's loop (iptnet_jax.loop: one run per workdir,
  exact resume, metrics.jsonl, checkpoints); writes and returns <workdir>/results.json."""
  config_defaults.validate(config)
  cv_epochs(config)
  with run_dir.claimed(workdir, config, overwrite) as info:
    dataset = load_dataset(config)
    task = HighlightTask(config, dataset)
    run_dir.record(info, config)
  print(f"highlight detection ({config.train.regime}) on {dataset.name}: {len(task.domains)} domain(s) x "
        f"{len(task.seeds)} seed(s), {task.num_units()} run(s); devices: {jax.devices()}", flush=True)
  return loop.run(task, info, int(config.train.checkpoint_every_steps))
