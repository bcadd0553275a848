"""Training the LM alone (VSLNet on Charades-STA) with VSLNet's recipe (reference_spec.md §3.3-3.5).

* Optimizer: clip_by_global_norm(1.0), then AdamW (lr 1e-4 decaying linearly to 0 over all steps, no warmup,
  b1 0.9, b2 0.999, eps 1e-6, decoupled weight decay 0.01 on every parameter except biases and LayerNorms:
  torch's `no_decay = ['bias', 'layer_norm', 'LayerNorm']` name rule applied to the Flax path). The frozen
  GloVe rows are in the 'constants' collection, so they are neither differentiated nor seen by the optimizer.
  This is torch.optim.AdamW's update (tests/parity_lm_test.py checks it step by step). Upstream's
  `transformers.AdamW` adds eps to sqrt(v) BEFORE bias correction, so its effective eps is eps / sqrt(1 - b2^t)
  (~3e-5 at step 1): parameters whose gradients are ~1e-4 (the LSTM's recurrent weights at init) move up to
  ~25% less per step early in training. Trajectories therefore differ from upstream's on those parameters.
* One jitted train step per padded (video, query, char) bucket shape; the state is donated.
* After every epoch: evaluation on the test split (R1@{0.3,0.5,0.7}, mIoU through `lm.span`), one JSON line in
  <workdir>/metrics.jsonl, and the best parameters by test R1@0.7 kept with orbax (VSLNet selects on the test
  set too, keeping later checkpoints on ties). Metrics from synthetic features are printed with the prefix
  "[synthetic features]".
* When config.data.feature_dir does not exist, synthetic features for the real annotations are generated into
  <workdir>/synthetic_charades (`datasets.builders.synthetic_charades`), and the run says so.
* `config.init_from`: start from an upstream VSLNet (PyTorch) checkpoint, a `.t7` / `.pth` state_dict or
  upstream's model folder (its last `<name>_<step>.t7`), ported by `iptnet_jax.lm.porting` (needs torch; keys and
  shapes are checked against the configured model, a mismatch names the key). Its GloVe rows must equal the
  dataset's (same vocabulary). The loaded model is evaluated before training, as epoch 0; with
  train.epochs=0 that is all the run does.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from iptnet_jax import config_defaults, loop, run_dir, run_log
from iptnet_jax.datasets import charades_sta, clip_features, input_pipeline
from iptnet_jax.datasets.builders import synthetic_charades
from iptnet_jax.datasets.input_pipeline import bucket_length
from iptnet_jax.errors import InputError
from iptnet_jax.lm import losses as lm_losses
from iptnet_jax.lm import porting, span
from iptnet_jax.lm.model import VSLNet, init_variables

METRIC_NAMES = ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU")
SYNTHETIC_TAG = "[synthetic features]"
LM_SOURCES = ("charades_sta", "youtube_highlights")
SOURCE_TITLES = {"charades_sta": "Charades-STA", "youtube_highlights": "YouTube Highlights"}


class LMConfigError(InputError):
  """A configuration value outside its allowed range."""


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  rng: jax.Array


def check_lm_config(config: ml_collections.ConfigDict, prefix: str = "") -> None:
  """Raises LMConfigError naming the first bad field; `prefix` is where the LM config sits in the run's config
  ("lm." inside an iPTNet config)."""

  def require(ok, field, expected):
    if not ok:
      value = config
      for part in field.split("."):
        value = value[part]
      raise LMConfigError(f"config.{prefix}{field}={value!r}: expected {expected}")

  if not prefix:
    require(config.task == "lm", "task", "'lm'")
    require(config_defaults.is_seed(config.seed), "seed", "a non-negative integer")
  require(config.data.get("source", "charades_sta") in LM_SOURCES, "data.source", f"one of {', '.join(LM_SOURCES)}")
  require(config.data.get("query", "title") in ("title", "domain", "both"), "data.query",
          "'title', 'domain' or 'both'")
  require(config.data.max_pos_len >= 1, "data.max_pos_len", "a positive length")
  require(config.data.max_videos >= 0, "data.max_videos", "0 (all) or a positive count")
  require(config.data.get("vocab_scope", "files") in charades_sta.VOCAB_SCOPES, "data.vocab_scope",
          f"one of {', '.join(charades_sta.VOCAB_SCOPES)}")
  for field in ("video_buckets", "query_buckets", "char_buckets"):
    buckets = tuple(config.data[field])
    require(bool(buckets) and all(b > 0 for b in buckets) and all(a < b for a, b in zip(buckets, buckets[1:])),
            f"data.{field}", "positive, strictly increasing lengths")
  for field in ("video_buckets", "query_buckets"):  # videos and queries are capped at max_pos_len
    require(bucket_length(config.data.max_pos_len, config.data[field]) == config.data.max_pos_len,
            f"data.{field}", f"buckets that pad no sequence beyond data.max_pos_len={config.data.max_pos_len} (the "
            "positional table's size), e.g. ending with it")
  require(config.model.dim > 0 and config.model.dim % config.model.num_heads == 0, "model.dim",
          f"a positive multiple of model.num_heads={config.model.num_heads}")
  require(0 <= config.model.drop_rate < 1, "model.drop_rate", "a rate in [0, 1)")
  require(len(config.model.char_channels) == len(config.model.char_kernels), "model.char_channels",
          "one channel count per entry of model.char_kernels")
  require(config.model.predictor in ("rnn", "transformer"), "model.predictor", "'rnn' or 'transformer'")
  require(config.train.epochs >= 0, "train.epochs", "0 (evaluate the initial model only) or more")
  require(config.train.batch_size >= 1, "train.batch_size", "at least 1")
  require(config_defaults.is_positive_finite(config.train.lr), "train.lr", "a finite, positive learning rate")
  require(config.train.get("checkpoint_every_steps", 0) >= 0, "train.checkpoint_every_steps",
          "0 (epoch ends only) or a positive step count")
  require(config.train.weight_decay >= 0, "train.weight_decay", "non-negative")
  require(config.train.get("optimizer", "adamw") in OPTIMIZERS, "train.optimizer", f"one of {', '.join(OPTIMIZERS)}")
  require(config.train.clip_norm > 0, "train.clip_norm", "a positive norm")
  require(config.eval.batch_size >= 1, "eval.batch_size", "at least 1")


def make_model(config: ml_collections.ConfigDict, word_vectors: np.ndarray, num_chars: int,
               visual_dim: int) -> VSLNet:
  m = config.model
  return VSLNet(num_words=word_vectors.shape[0], num_chars=num_chars, word_dim=word_vectors.shape[1], dim=m.dim,
                num_heads=m.num_heads, drop_rate=m.drop_rate, max_pos_len=config.data.max_pos_len,
                char_dim=m.char_dim, char_channels=tuple(m.char_channels), char_kernels=tuple(m.char_kernels),
                visual_dim=visual_dim, predictor_type=m.predictor, mask_conv_padding=m.mask_conv_padding,
                position_embedding=m.get("position_embedding", True))


def weight_decay_mask(params) -> dict:
  """True where AdamW decays: torch's rule, no decay for names containing 'bias' or 'layer_norm'."""

  def decays(path, _):
    names = [str(getattr(entry, "key", entry)) for entry in path]
    return not any("bias" in name or "layer_norm" in name.lower() for name in names)

  return jax.tree_util.tree_map_with_path(decays, params)


OPTIMIZERS = ("adamw", "adam")


def make_optimizer(train_config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """clip_by_global_norm(clip_norm), then train.optimizer:

  * "adamw" (VSLNet's recipe, the default): AdamW with decoupled weight decay on the `weight_decay_mask`
    leaves, lr decaying linearly to 0 over `total_steps`;
  * "adam" (the released iPTNet LM's recipe, as iPTNet's LM phases run it): plain Adam at the constant lr, no
    weight decay; with train.eps=1e-8 it is iPTNet's LM update (`iptnet.step.make_optimizer`).
  """
  kind = train_config.get("optimizer", "adamw")
  clip = optax.clip_by_global_norm(train_config.clip_norm)
  if kind == "adam":
    return optax.chain(clip, optax.scale_by_adam(b1=train_config.b1, b2=train_config.b2, eps=train_config.eps),
                       optax.scale(-train_config.lr))
  schedule = optax.linear_schedule(train_config.lr, 0.0, max(total_steps, 1))
  return optax.chain(
      clip,
      optax.adamw(schedule, b1=train_config.b1, b2=train_config.b2, eps=train_config.eps,
                  weight_decay=train_config.weight_decay, mask=weight_decay_mask))


def make_train_step(model: VSLNet, tx: optax.GradientTransformation, highlight_lambda: float):
  """The jitted step (state, constants, batch) -> (state, metrics); the state's buffers are donated."""

  def train_step(state: TrainState, constants: dict, batch: dict):
    dropout_rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      outputs = model.apply({"params": params, "constants": constants}, *(batch[k] for k in input_pipeline.LM_MODEL_INPUTS),
                            deterministic=False, rngs={"dropout": dropout_rng})
      return lm_losses.vslnet_loss(outputs, batch, highlight_lambda)

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return jax.jit(train_step, donate_argnums=0)


def make_predict_fn(model: VSLNet):
  """Jitted (variables, batch) -> (start_logits, end_logits), without dropout."""

  def predict(variables, batch):
    outputs = model.apply(variables, *(batch[k] for k in input_pipeline.LM_MODEL_INPUTS), deterministic=True)
    return outputs["start_logits"], outputs["end_logits"]

  return jax.jit(predict)


def evaluate(predict_fn, variables: dict, dataset: charades_sta.CharadesSTA, split: str,
             config: ml_collections.ConfigDict) -> dict[str, float]:
  """R1@{0.3,0.5,0.7} and mIoU (%) on a split, VSLNet's inference (`span.predict_spans`) and IoU."""
  ious = []
  for batch in dataset.batches(split, config.eval.batch_size, shuffle=False, **input_pipeline.lm_batch_options(config)):
    start_logits, end_logits = jax.device_get(predict_fn(variables, input_pipeline.lm_device_fields(batch)))
    real = batch["example_mask"] > 0
    start_index, end_index = span.predict_spans(start_logits[real], end_logits[real], batch["video_mask"][real])
    start_time, end_time = span.index_to_time(start_index, end_index, batch["num_units"][real],
                                              batch["duration"][real])
    gt = np.stack([batch["gt_start"][real], batch["gt_end"][real]], axis=1)
    ious.append(span.temporal_iou(np.stack([start_time, end_time], axis=1), gt))
  return span.moment_metrics(np.concatenate(ious))


def random_baseline(samples) -> dict[str, float]:
  """The exact expected metrics of uniformly random valid spans on the same queries."""
  return span.expected_random_span_metrics([s.num_units for s in samples], [s.duration for s in samples],
                                           [[s.start, s.end] for s in samples])


def resolve_feature_dir(config: ml_collections.ConfigDict, workdir: Path) -> Path:
  """config.data.feature_dir if it exists, else synthetic features generated into <workdir>/synthetic_charades."""
  feature_dir = Path(config.data.feature_dir)
  if feature_dir.is_dir():
    return feature_dir
  out_dir = workdir / "synthetic_charades"
  spec = synthetic_charades.SyntheticCharadesSpec(**config.data.synthetic.to_dict())
  max_videos = config.data.max_videos or None
  marker = clip_features.read_synthetic_marker(out_dir) if out_dir.is_dir() else None
  reusable = (marker is not None and marker.get("complete") and marker.get("parameters") == dataclasses.asdict(spec)
              and (marker.get("max_videos") is None or (max_videos is not None and marker["max_videos"] >= max_videos)))
  if reusable:
    print(f"{SYNTHETIC_TAG} Charades features not found at {feature_dir}: reusing the SYNTHETIC features in {out_dir}")
  else:
    print(f"{SYNTHETIC_TAG} Charades features not found at {feature_dir}: generating SYNTHETIC features for the "
          f"real Charades-STA annotations into {out_dir} (seed {spec.seed}, dim {spec.dim}"
          f"{f', first {max_videos} videos per split' if max_videos else ''}); metrics will not be comparable to "
          "published numbers", flush=True)
    synthetic_charades.generate(config.data.annotation_dir, out_dir, spec, max_videos=max_videos)
  return out_dir


def load_initial_variables(path: str, variables: dict, word_vectors: np.ndarray, glove_path: str) -> dict:
  """{'params', 'constants'} from an upstream VSLNet checkpoint file, checked against `variables` (the configured
  model's); its GloVe rows must be the dataset's, or word ids would index other words."""
  loaded = porting.load_vslnet_checkpoint(path, variables)
  glove = loaded["constants"]["embedding_net"]["word_emb"]["glove_vec"]
  diff = np.abs(glove - np.asarray(word_vectors, np.float32)[2:]).max(axis=1)
  if np.any(diff > 1e-5):
    row = int(np.argmax(diff > 1e-5)) + 2
    raise porting.StateDictMismatchError(
        f"{path}: {porting.VSLNET_GLOVE_KEY} differs from the word vectors of {glove_path} for this vocabulary "
        f"(first at word id {row}, max |diff| {float(diff.max()):.3g}): the checkpoint was trained with another "
        "vocabulary or GloVe file, so our word ids would index other words")
  print(f"LM: initial parameters from {path}")
  return jax.tree.map(jnp.asarray, loaded)


def load_lm_data(config: ml_collections.ConfigDict, workdir: Path):
  """The LM's moment samples from config.data.source, with the CharadesSTA interface (train / test samples,
  vocabularies, batches): Charades-STA (synthetic features for its real annotations when the features are
  absent) or YouTube Highlights (UMT's train ids as train, its val ids as test)."""
  source = config.data.get("source", "charades_sta")
  if source == "youtube_highlights":
    from iptnet_jax.datasets import youtube_highlights

    return youtube_highlights.load_youtube_highlights(
        *youtube_highlights.default_paths(config.data.youtube_dir), config.data.glove_path,
        query=config.data.query, max_pos_len=config.data.max_pos_len)
  feature_dir = resolve_feature_dir(config, workdir)
  return charades_sta.load_charades_sta(config.data.annotation_dir, config.data.glove_path, feature_dir,
                                        max_pos_len=config.data.max_pos_len,
                                        max_videos=config.data.max_videos or None,
                                        vocab_scope=config.data.get("vocab_scope", "files"))


def lm_data_summary(dataset) -> dict:
  """results.json's "lm_data": which data the LM trained on (source, synthetic or not, sample counts, ...)."""
  from iptnet_jax.datasets import youtube_highlights

  return youtube_highlights.lm_data_summary(dataset)


class LMTask(loop.Task, loop.Unit):
  """VSLNet on Charades-STA: one unit (the train split's epochs), evaluated on test after every epoch."""

  name, context = "lm", {}
  ties_prefer_later = True  # VSLNet keeps the later checkpoint on ties of test R1@0.7

  def __init__(self, config: ml_collections.ConfigDict, workdir: Path, init_path: str | None):
    self.config, self.init_path = config, init_path
    self.dataset = dataset = load_lm_data(config, workdir)
    self.source_title = SOURCE_TITLES[config.data.get("source", "charades_sta")]
    if not dataset.train or not dataset.test:
      raise charades_sta.CharadesDataError(f"{self.source_title}: need training and test queries, got "
                                           f"{len(dataset.train)} and {len(dataset.test)}")
    self.tag = f"{SYNTHETIC_TAG} " if dataset.synthetic else ""
    self.label = f"{self.tag}LM"
    self.visual_dim = dataset.train[0].video().shape[1]
    self.model = make_model(config, dataset.word_vectors, dataset.num_chars, self.visual_dim)
    self.steps_per_epoch = math.ceil(len(dataset.train) / config.train.batch_size)
    self.tx = make_optimizer(config.train, config.train.epochs * self.steps_per_epoch)
    self._train_step = make_train_step(self.model, self.tx, config.train.highlight_lambda)
    self.predict_fn = make_predict_fn(self.model)
    # The starting point (e.g. an upstream checkpoint's metrics) is evaluated as epoch 0.
    start = [loop.Phase(0, train=False)] if init_path is not None or config.train.epochs == 0 else []
    self.phases = start + [loop.Phase(epoch) for epoch in range(1, config.train.epochs + 1)]
    self.total_epochs = config.train.epochs
    self.learning_rates = {"train.lr": config.train.lr}
    self.constants = None

  # Task: the LM run is its own single unit.
  def num_units(self) -> int:
    return 1

  def unit(self, index: int) -> loop.Unit:
    return self

  def init_state(self) -> TrainState:
    config, dataset = self.config, self.dataset
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    variables = init_variables(self.model, init_rng, dataset.word_vectors)
    if self.init_path is not None:
      variables = load_initial_variables(self.init_path, variables, dataset.word_vectors, config.data.glove_path)
    self.constants = variables["constants"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                      opt_state=self.tx.init(variables["params"]), rng=train_rng)

  def data_rng(self) -> np.random.Generator:
    return np.random.default_rng(self.config.seed)

  def batches(self, phase, rng):
    for batch in self.dataset.batches("train", self.config.train.batch_size, shuffle=True, rng=rng,
                                      **input_pipeline.lm_batch_options(self.config)):
      yield input_pipeline.lm_device_fields(batch)

  def num_batches(self, phase) -> int:
    return self.steps_per_epoch

  def train_step(self, state, batch):
    return self._train_step(state, self.constants, batch)

  def evaluate(self, state, phase, losses) -> loop.Evaluation:
    metrics = evaluate(self.predict_fn, {"params": state.params, "constants": self.constants}, self.dataset, "test",
                       self.config)
    shown = ({"loss": losses["loss"]} if losses else {}) | metrics
    logged = {f"test_{k}": v for k, v in metrics.items()} | {"synthetic": self.dataset.synthetic}
    return loop.Evaluation(logged, shown, {"model": (metrics["R1@0.7"], lambda: {
        "params": state.params, "constants": self.constants})})

  def finish(self, state, outcome: loop.Outcome) -> dict:
    dataset = self.dataset
    strip = lambda metrics: {k: metrics[f"test_{k}"] for k in METRIC_NAMES}
    return {"best_epoch": outcome.best["epoch"], "best": strip(outcome.best["metrics"]),
            "last": strip(outcome.last), "random_baseline": random_baseline(dataset.test),
            "synthetic": dataset.synthetic, "features": dataset.describe_features(),
            "num_train": len(dataset.train), "num_test": len(dataset.test), "steps": int(state.step),
            "num_words": dataset.num_words, "word_dim": dataset.word_dim, "num_chars": dataset.num_chars,
            "visual_dim": self.visual_dim, "checkpoint_dir": outcome.checkpoint_dir,
            "lm_data": lm_data_summary(dataset)}

  def report(self, results: list[dict]) -> dict:
    summary = results[0]
    best, last, baseline = summary["best"], summary["last"], summary["random_baseline"]
    rows = [[f"best (epoch {summary['best_epoch']}, test R1@0.7)", *(best[k] for k in METRIC_NAMES)],
            [f"last (epoch {self.config.train.epochs})", *(last[k] for k in METRIC_NAMES)],
            ["random span (expected)", *(baseline[k] for k in METRIC_NAMES)]]
    print(f"\n{self.tag}{self.source_title} test, {summary['num_test']} queries, % ({summary['features']})")
    print(run_log.format_table(["", *METRIC_NAMES], rows))
    return summary


def train_and_evaluate_lm(config: ml_collections.ConfigDict, workdir: str | Path, overwrite: bool = False) -> dict:
  """Trains VSLNet on Charades-STA train, evaluates on test every epoch (resuming a run interrupted in
  `workdir`); returns the summary it also writes to <workdir>/results.json: best (by test R1@0.7) and last
  metrics, the random-span baseline, and the run facts."""
  check_lm_config(config)
  # The checkpoint file is resolved before any data is read, so that a wrong path fails at once.
  init_path = porting.vslnet_checkpoint_path(config.init_from) if config.get("init_from") else None
  with run_dir.claimed(workdir, config, overwrite) as info:
    task = LMTask(config, info.workdir, init_path)
    run_dir.record(info, config)
  dataset = task.dataset
  print(f"{task.tag}LM training (VSLNet) on {task.source_title}: {len(dataset.train)} train / {len(dataset.test)} test "
        f"queries, {dataset.num_words} words ({dataset.word_dim}-d GloVe), {dataset.num_chars} chars; "
        f"{dataset.describe_features()}; devices: {jax.devices()}", flush=True)
  return loop.run(task, info, config.train.get("checkpoint_every_steps", 0))
