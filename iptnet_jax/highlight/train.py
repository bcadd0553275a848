"""Highlight detection per domain: small pure pieces plus a thin driver.

Pieces (usable from any loop):
  build_trainer(config)                 -> Trainer(model, tx, loss spec, jitted train step, jitted predict)
  create_state(trainer, batch, rng)     -> {'params', 'opt_state', 'step'}
  trainer.step(state, batch, rng)       -> (state, metrics)    one jitted, donated update
  fit(trainer, config, positives, negatives, seed) -> params   a fixed schedule, no selection
  score_videos / evaluate_videos        -> per-video clip scores / the dataset's metric
  run_domain_seed, cross_validate       -> one (domain, seed) on its val videos / on its train videos

Driver: train_and_evaluate_highlight(config, workdir) -> results, also written to <workdir>/results.json:
  {"per_domain": {d: mean over seeds}, "per_domain_std": {d: sample std over seeds}, "per_domain_seeds":
   {d: [...]}, "mean": mean over domains, "mean_std": sample std over seeds of the mean over domains, "seeds", "regime",
   "features", "metric", "random_floor": {...}, optionally "cv": {...}}
Each finished (domain, seed) is kept in <workdir>/runs/<domain>/seed<k>.json; a rerun skips those (resumable).

Regimes (config.train.regime):
  'supervised'  UMT's protocol: the domain's train videos with their clip saliency (losses.clip_bce);
  'weak'        Ye et al.: video-level labels only, the domain's train videos positive and other domains'
                train videos negative; losses.video_bce + temporal-cue margins + beta-sparsity.
Both are scored the same way on the domain's val videos: TVSum top-5 mAP (vsumm/highlight.top5_map), YouTube
Highlights mAP (vsumm/highlight.mean_clip_ranking_ap), from the clip logits of the last step's parameters.

Selection rule: none on the val videos. The schedule is fixed by the config; ablations and hyper-parameters
are compared by `cross_validate` (leave one train video of the domain out, train on the others, score the
held-out one), which reads train-split annotation only.

Optimiser (config.train.optimizer): 'sgd' is Ye et al.'s (lr 0.01, x0.1 every 50 epochs, weight decay 5e-4
added to the gradient as torch.optim.SGD does, momentum 0.9: the supplement does not state it); 'adam' is
UMT's torch Adam with coupled weight decay (lr 1e-3, wd 1e-4).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from iptnet_jax.errors import InputError
from iptnet_jax.highlight import data as data_lib
from iptnet_jax.highlight import losses
from iptnet_jax.highlight.model import ENCODERS, HighlightModel
from iptnet_jax.vsumm import highlight as metrics_lib

REGIMES = ("supervised", "weak")
OPTIMIZERS = ("sgd", "adam", "adamw")


class HighlightConfigError(InputError):
  """A highlight config value outside its allowed range, or a workdir holding another config's run."""


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


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
  model: HighlightModel
  tx: optax.GradientTransformation
  spec: LossSpec
  modalities: tuple[str, ...]
  step: object  # jitted (state, batch, rng) -> (state, metrics)
  predict: object  # jitted (params, features, mask) -> clip logits
  init: object  # jitted (rng, features, mask) -> {'params', 'opt_state', 'step'}


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
  require(0 <= float(l.beta), "loss.beta", l.beta, ">= 0")
  require(0 < float(l.top_fraction) <= 1, "loss.top_fraction", l.top_fraction, "in (0, 1]")
  require(config.data.target in data_lib.TARGETS, "data.target", config.data.target, f"one of {data_lib.TARGETS}")
  require(int(config.data.eval_bucket) >= 1, "data.eval_bucket", config.data.eval_bucket, ">= 1")
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

  def step(state, batch, rng):
    rng = jax.random.fold_in(rng, state["step"])
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], model, spec, batch, rng)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, metrics

  def predict(params, features, mask):
    return model.apply({"params": params}, features, mask, deterministic=True)["clip_logits"]

  def init(rng, features, mask):
    params = model.init({"params": rng}, features, mask)["params"]
    return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}

  return Trainer(model, tx, spec, model.modalities, jax.jit(step, donate_argnums=(0,)), jax.jit(predict),
                 jax.jit(init))


def create_state(trainer: Trainer, batch, rng: jax.Array) -> dict:
  return trainer.init(rng, batch["features"], batch["mask"])


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


def fit(trainer: Trainer, config, positives: Sequence[data_lib.Video], negatives: Sequence[data_lib.Video],
        seed: int, *, log_every: int = 0, callback=None, callback_epochs: Sequence[int] = ()
        ) -> tuple[dict, list[dict]]:
  """Trains a fresh model for the configured schedule; returns the last parameters and per-epoch means.
  `callback(epoch, params)` runs after each epoch in `callback_epochs` (1-based; used on train folds only)."""
  if int(config.train.num_others) > 0 and not negatives:
    raise HighlightConfigError("train.num_others > 0 needs other domains' train videos")
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed)
  init_key, step_key = jax.random.split(key)
  state = None
  history = []
  for epoch in range(int(config.train.epochs)):
    epoch_metrics = []
    for _ in range(int(config.train.steps_per_epoch)):
      batch = sample_batch(config, positives, negatives, trainer.modalities, rng)
      if state is None:
        state = create_state(trainer, batch, init_key)
      state, metrics = trainer.step(state, batch, step_key)
      epoch_metrics.append(metrics)
    means = {k: float(np.mean([float(m[k]) for m in epoch_metrics])) for k in epoch_metrics[0]}
    if not math.isfinite(means["loss"]):
      raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}: {means}")
    history.append(means)
    if callback is not None and epoch + 1 in callback_epochs:
      callback(epoch + 1, state["params"])
    if log_every and (epoch + 1) % log_every == 0:
      print(f"  epoch {epoch + 1}: " + " ".join(f"{k} {v:.4f}" for k, v in means.items()), flush=True)
  return state["params"], history


def score_videos(trainer: Trainer, params, videos: Sequence[data_lib.Video], bucket: int) -> dict[str, np.ndarray]:
  """{video_id: (T,) clip logits}, each video alone, zero-padded to a multiple of `bucket` clips."""
  out = {}
  for video in videos:
    batch = data_lib.make_batch([video], trainer.modalities, data_lib.bucket_length(video.num_clips, bucket),
                                target=None)
    logits = trainer.predict(params, batch["features"], batch["mask"])
    out[video.video_id] = np.asarray(jax.device_get(logits))[0, :video.num_clips].astype(np.float64)
  return out


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


def run_domain_seed(trainer: Trainer, config, dataset: data_lib.Dataset, domain: str, seed: int) -> dict:
  start = time.perf_counter()
  positives = dataset.domain_videos(domain, "train")
  negatives = others_for(config, dataset, domain)
  val = dataset.domain_videos(domain, "val")
  bucket = int(config.data.eval_bucket)
  every = int(config.eval.get("val_curve_every", 0))
  curve = {}

  def track(epoch, params):  # measurement only: the reported "val" is the last epoch's, whatever the curve says
    curve[str(epoch)] = evaluate_scores(dataset.metric, score_videos(trainer, params, val, bucket), val)

  epochs = tuple(range(every, int(config.train.epochs) + 1, every)) if every > 0 else ()
  params, history = fit(trainer, config, positives, negatives, _run_seed(seed, domain), callback=track,
                        callback_epochs=epochs)
  scores = score_videos(trainer, params, val, bucket)
  record = {"domain": domain, "seed": seed, "val": evaluate_scores(dataset.metric, scores, val),
            "final_train": history[-1], "seconds": time.perf_counter() - start}
  if curve:
    record["val_curve"] = curve
  return record


def cross_validate(trainer: Trainer, config, dataset: data_lib.Dataset, domain: str, seed: int) -> dict:
  """Cross-validation on the domain's train split only: each fold's held-out train videos are scored by a model
  trained on the domain's other train videos (others, when used: the other domains' train videos, as for val).
  eval.cv_folds = 0: leave one video out (TVSum's 4 train videos: 4 folds); k > 0: k folds of a seeded
  permutation (YouTube Highlights' 19..67 train videos). The score is the mean over folds of the metric on
  the fold's held-out videos."""
  train = dataset.domain_videos(domain, "train")
  negatives = others_for(config, dataset, domain)
  bucket = int(config.data.eval_bucket)
  epochs = cv_epochs(config)
  folds, at_epoch = [], {e: [] for e in epochs}
  for k, held_out in enumerate(cv_splits(len(train), int(config.eval.get("cv_folds", 0)), _run_seed(seed, domain))):
    held = [train[i] for i in held_out]
    rest = [v for i, v in enumerate(train) if i not in set(held_out)]

    def score(epoch, params, held=held):
      at_epoch[epoch].append(evaluate_scores(dataset.metric, score_videos(trainer, params, held, bucket), held))

    params, _ = fit(trainer, config, rest, negatives, _run_seed(seed, domain, fold=k + 1), callback=score,
                    callback_epochs=epochs)
    folds.append(evaluate_scores(dataset.metric, score_videos(trainer, params, held, bucket), held))
  return {"domain": domain, "seed": seed, "folds": folds, "cv": float(np.mean(folds)),
          "cv_at_epoch": {str(e): float(np.mean(v)) for e, v in at_epoch.items()}}


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


# Fields that do not change what a finished (domain, seed) record holds: a rerun may add seeds or domains, turn
# cross-validation on, or cross-validate more seeds, and still resume the workdir.
RESUMABLE_FIELDS = (("seeds",), ("verbose",), ("data", "domains"), ("eval", "cross_validate"), ("eval", "cv_seeds"))


def _identity(config_dict: dict) -> dict:
  out = json.loads(json.dumps(config_dict))
  for path in RESUMABLE_FIELDS:
    node = out
    for key in path[:-1]:
      node = node.get(key, {})
    node.pop(path[-1], None)
  return out


def _workdir(workdir, config, overwrite: bool) -> Path:
  root = Path(workdir)
  root.mkdir(parents=True, exist_ok=True)
  saved = root / "config.json"
  current = json.loads(config.to_json_best_effort())
  if saved.exists() and _identity(json.loads(saved.read_text())) != _identity(current):
    if not overwrite:
      raise HighlightConfigError(f"{root} holds a run of another config ({saved}); use another workdir or "
                                 "overwrite")
    for path in sorted(root.glob("runs/*/*.json")):
      path.unlink()
  saved.write_text(json.dumps(current, sort_keys=True, indent=1))
  return root


def _write_json(path: Path, value) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
  os.replace(tmp, path)


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


def train_and_evaluate_highlight(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                                 overwrite: bool = False) -> dict:
  """Trains and scores every selected domain for every seed; writes and returns <workdir>/results.json."""
  check_config(config)
  cv_epochs(config)
  root = _workdir(workdir, config, overwrite)
  dataset = load_dataset(config)
  domains = selected_domains(config, dataset)
  seed_list = seeds(config)
  # eval.cv_seeds > 0: cross-validate only the first that many seeds (CV costs folds x a val run).
  cv_count = int(config.eval.get("cv_seeds", 0))
  cv_seed_list = seed_list[:cv_count] if cv_count > 0 else seed_list
  trainer = build_trainer(config)
  verbose = bool(config.get("verbose", True))
  val, cv = {d: [] for d in domains}, {d: [] for d in domains}
  for domain in domains:
    for seed in seed_list:
      if config.eval.val:
        path = root / "runs" / domain / f"seed{seed}.json"
        if not path.exists():
          _write_json(path, run_domain_seed(trainer, config, dataset, domain, seed))
        record = json.loads(path.read_text())
        val[domain].append(record["val"])
        if verbose:
          print(f"{domain} seed {seed}: val {100 * record['val']:.2f} ({record['seconds']:.0f} s)", flush=True)
      if config.eval.cross_validate and seed in cv_seed_list:
        path = root / "runs" / domain / f"cv_seed{seed}.json"
        if not path.exists():
          _write_json(path, cross_validate(trainer, config, dataset, domain, seed))
        record = json.loads(path.read_text())
        cv[domain].append(record["cv"])
        if verbose:
          print(f"{domain} seed {seed}: cv {100 * record['cv']:.2f}", flush=True)
  results = {"regime": config.train.regime, "dataset": dataset.name, "metric": dataset.metric,
             "features": {"modalities": list(trainer.modalities),
                          "video_streams": config.data.video_streams if "video" in trainer.modalities else None},
             "selection": "none: last step of a fixed schedule; the val videos are only scored",
             "seeds": list(seed_list), "domains": domains}
  if config.eval.val:
    results.update(_summary(val, seed_list))
    if int(config.eval.get("val_curve_every", 0)) > 0:
      # UMT's reporting protocol (best val epoch, EvalHook), for comparison with the anchors only: it selects
      # on the val video, so it is optimistic and never our reported figure.
      best = {d: [max(json.loads((root / "runs" / d / f"seed{s}.json").read_text())["val_curve"].values())
                  for s in seed_list] for d in domains}
      results["best_val_epoch_optimistic"] = _summary(best, seed_list)
    results["random_floor"] = random_floor(dataset, domains, int(config.eval.random_draws))
  if config.eval.cross_validate:
    results["cv"] = _summary(cv, cv_seed_list)
    results["cv"]["at_epoch"] = {
        str(e): _summary({d: [json.loads((root / "runs" / d / f"cv_seed{s}.json").read_text())["cv_at_epoch"][str(e)]
                              for s in cv_seed_list] for d in domains}, cv_seed_list)["mean"]
        for e in cv_epochs(config)}
  _write_json(root / "results.json", results)
  return results
