"""LM (VSLNet, 'rnn' predictor) training speed: ours (jit, bucketed, batch 16) vs PyTorch eager at batch 1 and 16.

Data: `num_samples` Charades-like query-moment samples: num_units = round(duration) clips with durations
log-normal around Charades-STA's median (30 s, sigma 0.3; clipped to [8, 128] clips), 1024-d Gaussian clip
features, 5-12 words of 2-10 characters, a moment covering 10-50 % of the video; vocabulary sizes of
Charades-STA (1,140 words with 300-d frozen vectors, 40 characters).

Ours: iptnet_jax.lm.train (make_model / make_optimizer / make_train_step with configs/charades.py defaults:
batch 16, its video/query/char buckets, AdamW + clip 1.0 + linear decay), batches from
iptnet_jax.datasets.input_pipeline.iterate_lm_batches (host collation included in the epoch).
Reference: iptnet_jax/parity/reference/vslnet_torch.py's VSLNet (the parity restatement, same sizes as ours) in
VSLNet's eager loop (benchmarks/torch_refs.py: AdamW + clip 1.0 + linear decay), batches padded to the batch maxima.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from configs import charades
from iptnet_jax import cpu_threefry
from iptnet_jax.datasets import charades_sta, input_pipeline
from iptnet_jax.datasets.input_pipeline import bucket_length
from iptnet_jax.lm import train as lm_train
from iptnet_jax.lm.model import init_variables

NUM_WORDS = 1140
NUM_CHARS = 40
WORD_DIM = 300  # VSLNet's GloVe 840B width (configs/charades.py reads 50-d GloVe 6B; the cost is the same order)
VISUAL_DIM = 1024


class InMemoryFeatures:
  """The part of clip_features.VideoFeatureStore that MomentSample uses, over a dict of arrays."""

  def __init__(self, features: dict[str, np.ndarray]):
    self.features = features

  def load(self, vid: str) -> np.ndarray:
    return self.features[vid]

  def path(self, vid: str) -> Path:
    return Path(f"<memory>/{vid}.npy")


CHARADES_TRAIN_SIZE = 12408


def _draw_sizes(rng: np.random.Generator, max_pos_len: int = 128):
  """(num_units, num_words, longest word, duration, word lengths) of one Charades-like sample."""
  duration = float(np.exp(rng.normal(math.log(30.0), 0.3)))
  num_units = int(np.clip(round(duration), 8, max_pos_len))
  num_words = int(rng.integers(5, 13))
  word_lengths = rng.integers(2, 11, num_words)
  return num_units, num_words, int(word_lengths.max()), duration, word_lengths


def charades_like_samples(num_samples: int, seed: int = 0, max_pos_len: int = 128,
                          visual_dim: int = VISUAL_DIM) -> list[charades_sta.MomentSample]:
  rng = np.random.default_rng(seed)
  features, samples = {}, []
  store = InMemoryFeatures(features)
  for i in range(num_samples):
    num_units, num_word, _, duration, word_lengths = _draw_sizes(rng, max_pos_len)
    vid = f"video_{i}"
    features[vid] = rng.standard_normal((num_units, visual_dim), dtype=np.float32)
    length = int(rng.integers(max(1, num_units // 10), max(2, num_units // 2) + 1))
    start_index = int(rng.integers(0, num_units - length + 1))
    end_index = start_index + length - 1
    words = tuple(f"w{j}" for j in range(num_word))
    word_ids = rng.integers(2, NUM_WORDS, num_word).astype(np.int32)
    char_ids = tuple(rng.integers(2, NUM_CHARS, int(n)).astype(np.int32) for n in word_lengths)
    unit = duration / num_units
    samples.append(charades_sta.MomentSample(i, vid, start_index * unit, (end_index + 1) * unit, duration, words,
                                             word_ids, char_ids, num_units, start_index, end_index, store))
  return samples


def word_vectors(seed: int = 0, word_dim: int = WORD_DIM) -> np.ndarray:
  vectors = np.random.default_rng(seed).standard_normal((NUM_WORDS, word_dim)).astype(np.float32)
  vectors[:2] = 0.0
  return vectors


def lm_config():
  return charades.get_config()


class OursLM:
  def __init__(self, samples, batch_size: int = 16, seed: int = 0, epochs_planned: int = 100):
    self.samples, self.batch_size = samples, batch_size
    config = lm_config()
    config.train.batch_size = batch_size
    self.config = config
    vectors = word_vectors(seed)
    model = lm_train.make_model(config, vectors, NUM_CHARS, VISUAL_DIM)
    init_rng, train_rng = jax.random.split(jax.random.key(seed))
    variables = init_variables(model, init_rng, vectors)
    self.constants = variables["constants"]
    steps = epochs_planned * math.ceil(len(samples) / batch_size)
    tx = lm_train.make_optimizer(config.train, steps)
    self.state = lm_train.TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                                     opt_state=tx.init(variables["params"]), rng=train_rng)
    self.step = lm_train.make_train_step(model, tx, config.train.highlight_lambda)
    self.options = input_pipeline.lm_batch_options(config)
    self.shuffle = np.random.default_rng(seed)

  def batches(self, rng=None):
    return input_pipeline.iterate_lm_batches(self.samples, self.batch_size, shuffle=rng is not None, rng=rng,
                                        **self.options)

  def epoch(self) -> float:
    start = time.perf_counter()
    metrics = None
    for batch in self.batches(self.shuffle):
      self.state, metrics = self.step(self.state, self.constants, input_pipeline.lm_device_fields(batch))
    jax.block_until_ready((self.state, metrics))
    return time.perf_counter() - start

  def epoch_shapes(self) -> set:
    """The distinct (video, query, char) batch shapes of one benchmark epoch."""
    return {self._shape(b) for b in self.batches()}

  def full_epoch_shapes(self, num_samples: int = CHARADES_TRAIN_SIZE, seed: int = 1) -> set:
    """The distinct shapes of one shuffled epoch of `num_samples` samples with the same length distributions
    (Charades-STA train has 12,408), from the lengths alone (no features)."""
    rng = np.random.default_rng(seed)
    units, words, chars = (np.array(x) for x in zip(*(_draw_sizes(rng)[:3] for _ in range(num_samples))))
    order = rng.permutation(num_samples)
    buckets = (self.options["video_buckets"], self.options["query_buckets"], self.options["char_buckets"])
    shapes = set()
    for first in range(0, num_samples, self.batch_size):
      rows = order[first:first + self.batch_size]
      sizes = (units[rows].max(), words[rows].max(), max(input_pipeline.MIN_CHAR_LENGTH, chars[rows].max()))
      shapes.add(tuple(bucket_length(int(n), b) for n, b in zip(sizes, buckets)))
    return shapes

  @staticmethod
  def _shape(batch):
    return (batch["video"].shape[1], batch["word_ids"].shape[1], batch["char_ids"].shape[2])

  def compile_times(self, rng_seed: int = 0) -> dict[tuple, float]:
    out = {}
    for batch in self.batches(np.random.default_rng(rng_seed)):
      shape = self._shape(batch)
      if shape in out:
        continue
      start = time.perf_counter()
      self.step.lower(self.state, self.constants, input_pipeline.lm_device_fields(batch)).compile()
      out[shape] = time.perf_counter() - start
    return out


class TorchLM:
  def __init__(self, samples, batch_size: int, seed: int = 0, epochs_planned: int = 100):
    import torch

    from benchmarks import torch_refs

    torch.manual_seed(seed)
    self.torch_refs = torch_refs
    self.samples, self.batch_size = samples, batch_size
    self.model = torch_refs.vslnet(lm_config(), word_vectors(seed), NUM_CHARS, VISUAL_DIM)
    steps = epochs_planned * math.ceil(len(samples) / batch_size)
    self.optimizer, self.scheduler = torch_refs.make_optimizer(self.model, steps)
    self.shuffle = np.random.default_rng(seed)

  def epoch(self) -> float:
    start = time.perf_counter()
    order = self.shuffle.permutation(len(self.samples))
    for first in range(0, len(order), self.batch_size):
      batch = self.torch_refs.collate([self.samples[i] for i in order[first:first + self.batch_size]])
      self.torch_refs.train_step(self.model, self.optimizer, self.scheduler, batch)
    return time.perf_counter() - start


def _component_grad(module, *inputs, **kwargs):
  """Jitted gradient (w.r.t. the module's variables and float inputs) of sum(out^2): one module's fwd+bwd."""
  variables = module.init(jax.random.key(1), *inputs, **kwargs)
  grad = jax.jit(jax.grad(lambda v, *a: jnp.sum(module.apply(v, *a, **kwargs) ** 2)))
  return lambda: grad(variables, *inputs)


def profile_lm(ours: OursLM, repeats: int) -> dict:
  """Where a batch-16 step's time goes, at the most common shape of the benchmark epoch; every part is timed in
  the same interleaved rounds (median)."""
  from benchmarks import sm_variants
  from iptnet_jax.lm import losses as lm_losses
  from iptnet_jax.lm import model as lm_model

  batches = list(ours.batches())
  shapes = [ours._shape(b) for b in batches]
  common_shape = max(set(shapes), key=shapes.count)
  batch = jax.device_put(input_pipeline.lm_device_fields(batches[shapes.index(common_shape)]))
  model = lm_train.make_model(ours.config, word_vectors(0), NUM_CHARS, VISUAL_DIM)
  params = jax.tree.map(jnp.copy, ours.state.params)
  inputs = [batch[k] for k in input_pipeline.LM_MODEL_INPUTS]

  def grad_fn(deterministic):
    def loss(p):
      out = model.apply({"params": p, "constants": ours.constants}, *inputs, deterministic=deterministic,
                        rngs={"dropout": jax.random.key(0)})
      return lm_losses.vslnet_loss(out, batch)[0]
    return jax.jit(jax.grad(loss))

  grad_dropout, grad_plain, grad_bits = grad_fn(False), grad_fn(True), grad_fn(False)
  with sm_variants.patch_dropout(lm_model):
    jax.block_until_ready(grad_bits(params))
  forward = jax.jit(lambda p: model.apply({"params": p, "constants": ours.constants}, *inputs, deterministic=True))
  tx = lm_train.make_optimizer(ours.config.train, 1000)
  opt_state, grads = tx.init(params), jax.tree.map(jnp.ones_like, params)
  update = jax.jit(lambda g, s, p: tx.update(g, s, p))
  holder = {"state": jax.tree.map(jnp.copy, ours.state)}

  def full_step():
    holder["state"], metrics = ours.step(holder["state"], ours.constants, batch)
    return metrics

  b, lv, lq = batch["video"].shape[0], batch["video"].shape[1], batch["word_ids"].shape[1]
  dim = ours.config.model.dim
  hidden = jax.random.normal(jax.random.key(2), (b, lv, dim))
  runners = {
      "step": full_step, "grad": lambda: grad_dropout(params), "grad_no_dropout": lambda: grad_plain(params),
      "grad_bitdrop": lambda: grad_bits(params), "forward": lambda: forward(params),
      "optimizer update": lambda: update(grads, opt_state, params),
      "LSTM (one of two)": _component_grad(lm_model.TorchLSTM(dim), hidden),
      "conv block, video": _component_grad(lm_model.DepthwiseSeparableConvBlock(dim, 7, 0.2), hidden,
                                           batch["video_mask"], deterministic=True),
      "char CNN": _component_grad(lm_model.CharacterEmbedding(NUM_CHARS, ours.config.model.char_dim, 0.2),
                                  batch["char_ids"], deterministic=True),
  }
  from benchmarks.sm import _Repeat

  timings = common.interleaved({k: _Repeat(f, 2) for k, f in runners.items()}, repeats=repeats, warmup=1)
  return {"shape": common_shape, "batch_size": b, **{k: v.median for k, v in timings.items()}}


def profile_rows(prof: dict) -> list[common.Row]:
  step = prof["step"]
  rows = [common.Row("lm-profile", f"step at {prof['shape']} (video, query, char), b{prof['batch_size']}", step, "s",
                     "1.00", "")]

  def part(name, seconds, detail=""):
    rows.append(common.Row("lm-profile", f"  {name}", seconds, "s", f"{seconds / step:.2f}", detail))

  part("fwd+bwd without dropout", prof["grad_no_dropout"], f"forward alone {prof['forward'] * 1e3:.0f} ms")
  part("dropout masks (threefry, 32 bits per element)", prof["grad"] - prof["grad_no_dropout"],
       f"with 8-bit masks: {(prof['grad_bitdrop'] - prof['grad_no_dropout']) * 1e3:.0f} ms")
  part("optimizer + state update", step - prof["grad"], f"update alone {prof['optimizer update'] * 1e3:.0f} ms")
  for name in ("LSTM (one of two)", "conv block, video", "char CNN"):
    rows.append(common.Row("lm-profile", f"  of which fwd+bwd {name}", prof[name], "s", f"{prof[name] / step:.2f}",
                           "module alone, same shapes"))
  return rows


def run(args) -> tuple[list[common.Row], dict]:
  samples = charades_like_samples(args.lm_samples, seed=args.seed)
  ours = OursLM(samples, batch_size=16, seed=args.seed)
  first_shapes = ours.epoch_shapes()
  full_shapes = ours.full_epoch_shapes()
  compile_times = ours.compile_times()
  # The same step compiled with jax 0.10's rolled threefry loop (without iptnet_jax.cpu_threefry): what the
  # backport buys, measured in the same rounds. Same random bits, so the same training.
  rolled = OursLM(samples, batch_size=16, seed=args.seed)

  def rolled_epoch():
    with cpu_threefry.lowering(unrolled=False):
      return rolled.epoch()

  runners = {"ours b16": ours.epoch, "ours b16, rolled threefry": rolled_epoch}
  if not args.no_torch:
    runners["torch b1"] = TorchLM(samples, 1, seed=args.seed).epoch
    runners["torch b16"] = TorchLM(samples, 16, seed=args.seed).epoch
  memory = {}
  warmups = {}
  timings = common.interleaved({k: common.with_peak_memory(f, memory, k) for k, f in runners.items()},
                               repeats=args.repeats, warmup=1, on_warmup=lambda name, s: warmups.setdefault(name, s))
  n = len(samples)
  units = [s.num_units for s in samples]
  words = [len(s.word_ids) for s in samples]
  rows = []
  t_ours = timings["ours b16"].median
  rows.append(common.Row("lm", "train epoch, ours (jit, bucketed, b16)", n / t_ours, "samples/s",
                         "", f"{n} samples, {units and min(units)}-{max(units)} clips (median "
                         f"{int(np.median(units))}), {min(words)}-{max(words)} words; {timings['ours b16'].spread()}"))
  t_rolled = timings["ours b16, rolled threefry"].median
  rows.append(common.Row("lm", "train epoch, ours b16 with jax's rolled threefry", n / t_rolled, "samples/s",
                         f"ours {t_rolled / t_ours:.2f}x faster",
                         f"without iptnet_jax.cpu_threefry; {timings['ours b16, rolled threefry'].spread()}; "
                         f"{common.paired_ratio(timings['ours b16, rolled threefry'], timings['ours b16'])}"))
  for name in ("torch b1", "torch b16"):
    if name in timings:
      t = timings[name].median
      rows.append(common.Row("lm", f"train epoch, torch eager {name[6:]}", n / t, "samples/s",
                             f"ours {t / t_ours:.2f}x faster",
                             f"{timings[name].spread()}; {common.paired_ratio(timings[name], timings['ours b16'])}"))
  total_compile = sum(compile_times.values())
  rows.append(common.Row("lm", "compile, ours (trace+lower+compile)", total_compile, "s", "",
                         f"{len(first_shapes)} distinct (video, query, char) shapes in one epoch "
                         f"({', '.join(str(s) for s in sorted(first_shapes))}), {len(full_shapes)} in a "
                         f"{CHARADES_TRAIN_SIZE}-sample epoch; per "
                         f"shape {min(compile_times.values()):.2f}-{max(compile_times.values()):.2f} s; first epoch "
                         f"{warmups['ours b16']:.2f} s"))
  for name, mem in memory.items():
    rows.append(common.Row("lm", f"peak memory, {name} epoch", mem.peak_rss / 2**20, "MiB RSS", "", mem.describe(),
                           extra=mem.to_json()))
  record = {}
  if args.profile:
    record["profile"] = profile_lm(ours, repeats=args.repeats if args.quick else max(3, args.repeats))
    rows += profile_rows(record["profile"])
  record |= {"timings": {k: v.to_json() for k, v in timings.items()}, "warmup_s": warmups,
            "compile_s": {str(k): v for k, v in compile_times.items()}, "shapes_first_epoch": sorted(first_shapes),
            "shapes_full_epoch": sorted(full_shapes), "memory": {k: m.to_json() for k, m in memory.items()},
            "num_units": units, "num_words": words}
  return rows, record
