"""SM (DSNet anchor-free) training speed: our jitted, bucketed step vs DSNet's PyTorch eager batch-1 loop.

Data: `num_videos` TVSum-like videos, lengths T drawn uniformly in [49, 323] with a fixed seed, 1024-d
Gaussian features, a binary keyshot-like target (random 2-4 s shots up to ~15 % of the video), and the
anchor-free labels of iptnet_jax.datasets.anchor_free_labels. Labels are computed once for both sides (DSNet
recomputes its knapsack target on every step; that host work is left out of both).

Ours: iptnet_jax.sm.train (make_model / make_optimizer / init_params / make_train_step, the config defaults
of config_defaults.sm_config: batch 1, TVSUM_BUCKETS), one epoch = iterate_sm_batches over the shuffled
videos, host padding included, then waiting for the last step.

Reference: iptnet_jax/parity/reference/dsnet_torch.py (the parity restatement of DSNet-AF with its losses),
trained as DSNet's loop does: one video per step, model.train(), forward, losses, zero_grad, backward,
Adam(lr 5e-5, weight_decay 1e-5) step, losses read back with .item().

FLOPs: benchmarks.flops on each video's own length (no padding) = the useful work; the floor is that at the
matmul peak measured in the same rounds (benchmarks.peak).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common, flops, peak
from iptnet_jax import config_defaults
from iptnet_jax.datasets import anchor_free_labels, input_pipeline, summarization
from iptnet_jax.sm import anchor_free
from iptnet_jax.sm import train as sm_train

MIN_LEN, MAX_LEN = 49, 323  # TVSum's range of steps (2 fps)
FEATURE_DIM = 1024


def tvsum_like_examples(num_videos: int = 40, seed: int = 0, min_len: int = MIN_LEN, max_len: int = MAX_LEN,
                        feature_dim: int = FEATURE_DIM) -> list[summarization.TrainingExample]:
  rng = np.random.default_rng(seed)
  examples = []
  for i in range(num_videos):
    length = int(rng.integers(min_len, max_len + 1))
    features = rng.standard_normal((length, feature_dim), dtype=np.float32)
    bounds = np.cumsum(np.r_[0, rng.integers(4, 9, length)])  # shots of 4-8 steps (2-4 s at 2 fps)
    bounds = np.r_[bounds[bounds < length], length]
    shots = list(zip(bounds[:-1], bounds[1:]))
    target = np.zeros(length, np.float32)
    for s in rng.permutation(len(shots)):
      lo, hi = shots[s]
      if target.sum() + (hi - lo) > 0.15 * length and target.any():
        continue
      target[lo:hi] = 1.0
    offsets = anchor_free_labels.offset_labels(target)
    examples.append(summarization.TrainingExample(f"video_{i}", features, target, offsets,
                                                  anchor_free_labels.centerness_labels(target, offsets)))
  return examples


def _state(model, tx, feature_dim, seed):
  init_rng, train_rng = jax.random.split(jax.random.key(seed))
  params = sm_train.init_params(model, init_rng, feature_dim)
  return sm_train.TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=train_rng)


@dataclasses.dataclass
class OursSM:
  """Our trainer's step and loop, with the batching/bucket settings under test."""

  examples: Sequence[summarization.TrainingExample]
  batch_size: int = 1
  buckets: tuple[int, ...] = config_defaults.TVSUM_BUCKETS
  seed: int = 0
  compute_dtype: str = "float32"  # config.model.compute_dtype

  def __post_init__(self):
    config = config_defaults.sm_config()
    config.model.compute_dtype = self.compute_dtype
    self.config = config
    model = sm_train.make_model(config)
    tx = sm_train.make_optimizer(config.train.lr, config.train.weight_decay)
    self.state = _state(model, tx, self.examples[0].features.shape[1], self.seed)
    self.step = sm_train.make_train_step(model, tx, config.train.lambda_reg, config.train.lambda_ctr)
    self.model, self.tx = model, tx
    self.shuffle = np.random.default_rng(self.seed)

  def batches(self, rng=None):
    return input_pipeline.iterate_sm_batches(self.examples, self.batch_size, self.buckets, with_labels=True, rng=rng)

  def epoch(self) -> float:
    start = time.perf_counter()
    losses = None
    for batch in self.batches(self.shuffle):
      self.state, losses = self.step(self.state, input_pipeline.sm_device_fields(batch))
    jax.block_until_ready((self.state, losses))
    return time.perf_counter() - start

  def padded_lengths(self) -> list[int]:
    """Bucket length of every step of an epoch (order-independent at batch 1)."""
    return [batch["features"].shape[1] for batch in self.batches()]

  def shapes(self) -> list[tuple]:
    """The distinct batch shapes of one epoch (each one compiled executable)."""
    return sorted({batch["features"].shape for batch in self.batches()})

  def compile_times(self) -> dict[tuple, float]:
    """Seconds to trace, lower and compile the step for each distinct shape of an epoch (jit's AOT path)."""
    out = {}
    seen = set()
    for batch in self.batches():
      shape = batch["features"].shape
      if shape in seen:
        continue
      seen.add(shape)
      start = time.perf_counter()
      self.step.lower(self.state, input_pipeline.sm_device_fields(batch)).compile()
      out[shape] = time.perf_counter() - start
    return out

  def useful_flops(self) -> flops.FlopCount:
    return flops.sm_epoch_train(e.features.shape[0] for e in self.examples)

  def executed_flops(self) -> flops.FlopCount:
    total = flops.FlopCount()
    for batch in self.batches():
      total = total + flops.dsnet_af_train(batch["features"].shape[1], batch=batch["features"].shape[0])
    return total


class TorchSM:
  """DSNet's eager batch-1 loop over the parity restatement (iptnet_jax/parity/reference/dsnet_torch.py)."""

  def __init__(self, examples, seed: int = 0, lr: float = 5e-5, weight_decay: float = 1e-5):
    import torch

    from iptnet_jax.parity.reference import dsnet_torch

    torch.manual_seed(seed)
    self.torch, self.ref = torch, dsnet_torch
    self.model = dsnet_torch.DSNetAF(num_feature=examples[0].features.shape[1])
    self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
    self.videos = [{"features": torch.from_numpy(e.features), "target": torch.from_numpy(e.target),
                    "offsets": torch.from_numpy(e.offsets), "centerness": torch.from_numpy(e.centerness)}
                   for e in examples]
    self.shuffle = np.random.default_rng(seed)

  def epoch(self) -> float:
    start = time.perf_counter()
    for i in self.shuffle.permutation(len(self.videos)):
      self.ref.train_step(self.model, self.optimizer, self.videos[i])
    return time.perf_counter() - start


class PeakRunner:
  """One matmul-peak sample per round, so that the peak is measured under the same load as the epochs."""

  def __init__(self, sizes=(1024, 2048), seconds: float = 0.3):
    self.sizes, self.seconds = sizes, seconds
    self.samples: list[peak.Peak] = []

  def __call__(self) -> float:
    start = time.perf_counter()
    self.samples.append(peak.measure_peak(self.sizes, samples=1, seconds=self.seconds))
    return time.perf_counter() - start

  def peak(self) -> float:
    return float(np.median([p.gflops for p in self.samples]))

  def per_source(self) -> dict:
    keys = self.samples[0].per_size
    return {k: float(np.median([p.per_size[k] for p in self.samples])) for k in keys}

  @classmethod
  def for_args(cls, args) -> PeakRunner:
    """Default sizes; small and short ones under --quick (the figure then means nothing)."""
    return cls(sizes=(256, 512), seconds=0.05) if args.quick else cls()


# ------------------------------------------------------------------------------------------------- profile

def matmuls_only(length: int, shape: flops.DSNetAFShape = flops.DSNetAFShape()):
  """A jitted function running exactly the matmuls of one DSNet-AF training step at `length` (forward, and the
  backward's dW / dX products, with the same operand shapes and layouts), and nothing else; and its inputs.
  Every product gets its own operands, so XLA cannot merge identical ones."""
  t, d, a, h, o = length, shape.feature_dim, shape.attention_dim, shape.num_hidden, shape.num_outputs
  n, dh = shape.num_heads, shape.attention_dim // shape.num_heads
  products = (
      3 * [("td,da->ta", (t, d), (d, a)), ("td,ta->da", (t, d), (t, a))]  # Q, K, V forward and dW
      + [("ta,ad->td", (t, a), (a, d)), ("ta,td->ad", (t, a), (t, d)), ("td,ad->ta", (t, d), (a, d))]  # W_O
      + [("htc,hsc->hts", (n, t, dh), (n, t, dh)), ("hts,hsc->htc", (n, t, t), (n, t, dh))]  # scores, P @ V
      + [("hts,hsc->htc", (n, t, t), (n, t, dh)), ("hst,hsc->htc", (n, t, t), (n, t, dh))]  # dQ, dK
      + [("hst,hsc->htc", (n, t, t), (n, t, dh)), ("htc,hsc->hts", (n, t, dh), (n, t, dh))]  # dV, dP
      + [("td,dk->tk", (t, d), (d, h)), ("td,tk->dk", (t, d), (t, h)), ("tk,dk->td", (t, h), (d, h))]  # fc1
      + [("tk,ko->to", (t, h), (h, o)), ("tk,to->ko", (t, h), (t, o)), ("to,ko->tk", (t, o), (h, o))])  # heads
  rng = np.random.default_rng(0)  # numpy: one jitted normal per operand shape would compile ~20 times
  operands = [jax.device_put((rng.standard_normal(lhs, np.float32), rng.standard_normal(rhs, np.float32)))
              for _, lhs, rhs in products]
  specs = tuple(spec for spec, _, _ in products)

  def run(operands):
    return [jnp.einsum(spec, lhs, rhs) for spec, (lhs, rhs) in zip(specs, operands)]

  return jax.jit(run), operands


class _Repeat:
  """Calls fn `n` times and returns seconds per call (waiting for the device)."""

  def __init__(self, fn, n: int = 3):
    self.fn, self.n = fn, n

  def __call__(self) -> float:
    jax.block_until_ready(self.fn())
    start = time.perf_counter()
    for _ in range(self.n):
      out = self.fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / self.n


def profile_ours(ours: OursSM, repeats: int = 5, peak_runner: PeakRunner | None = None) -> dict:
  """Where one epoch's time goes. In each of `repeats` rounds: one epoch, one matmul-peak sample, and per bucket
  length the full step, fwd+bwd with and without dropout, fwd+bwd with 1-bit dropout masks, the step's matmuls
  alone, plus the optimizer update alone; medians over rounds (so every part is timed under the same load)."""
  from benchmarks import sm_variants

  model, tx = ours.model, ours.tx
  params = jax.tree.map(jnp.copy, ours.state.params)  # the step donates ours.state
  opt_state = tx.init(params)
  rng = jax.random.key(0)

  def grad_fn(deterministic):
    def loss(p, batch):
      out = model.apply({"params": p}, batch["features"], batch["mask"], deterministic=deterministic,
                        rngs={"dropout": rng})
      return anchor_free.anchor_free_losses(out, batch)["total"]

    return jax.jit(jax.grad(loss))

  grad_dropout, grad_plain, grad_bits = grad_fn(False), grad_fn(True), grad_fn(False)
  grads = jax.tree.map(jnp.ones_like, params)
  update = jax.jit(lambda g, s, p: tx.update(g, s, p))
  runners = {"epoch": ours.epoch, "peak": peak_runner or PeakRunner(),
             "adam": _Repeat(lambda: update(grads, opt_state, params), 5)}

  counts: dict[int, int] = {}
  for length in ours.padded_lengths():
    counts[length] = counts.get(length, 0) + 1
  for length in sorted(counts):
    example = [e for e in ours.examples if input_pipeline.bucket_length(e.features.shape[0], ours.buckets) == length][0]
    batch = jax.device_put(input_pipeline.sm_device_fields(
        input_pipeline.sm_batch([example], ours.batch_size, ours.buckets, with_labels=True)))
    holder = {"state": jax.tree.map(jnp.copy, ours.state)}

    def full_step(holder=holder, batch=batch):
      holder["state"], losses = ours.step(holder["state"], batch)
      return losses

    mm_fn, mm_inputs = matmuls_only(length)
    with sm_variants.bit_dropout_in_sm_model():  # traced here, with BitDropout
      jax.block_until_ready(grad_bits(params, batch))
    runners[f"step {length}"] = _Repeat(full_step)
    runners[f"grad {length}"] = _Repeat(lambda batch=batch: grad_dropout(params, batch))
    runners[f"grad_no_dropout {length}"] = _Repeat(lambda batch=batch: grad_plain(params, batch))
    runners[f"grad_bitdrop {length}"] = _Repeat(lambda batch=batch: grad_bits(params, batch))
    runners[f"matmuls {length}"] = _Repeat(lambda f=mm_fn, i=mm_inputs: f(i))
  timings = common.interleaved(runners, repeats=repeats, warmup=1)
  med = {k: v.median for k, v in timings.items() if k != "peak"}
  per_bucket = {length: {"videos": count, **{kind: med[f"{kind} {length}"] for kind in
                                             ("step", "grad", "grad_no_dropout", "grad_bitdrop", "matmuls")},
                         "flops": flops.dsnet_af_train(length, batch=ours.batch_size).total,
                         "matmul_flops": flops.dsnet_af_train(length, batch=ours.batch_size).matmul}
                for length, count in sorted(counts.items())}
  return {"epoch_s": med["epoch"], "peak_gflops": runners["peak"].peak(), "adam_update_s": med["adam"],
          "per_bucket": per_bucket, "useful_flops": ours.useful_flops().total}


# ------------------------------------------------------------------------------------------------- section

def run(args) -> tuple[list[common.Row], dict]:
  examples = tvsum_like_examples(args.sm_videos, seed=args.seed, min_len=args.sm_min_len, max_len=args.sm_max_len)
  lengths = [e.features.shape[0] for e in examples]
  ours = OursSM(examples, seed=args.seed)
  rows: list[common.Row] = []
  record: dict = {"lengths": lengths}

  shapes = ours.shapes()
  compile_times = ours.compile_times()
  record["compile_s"] = {str(k): v for k, v in compile_times.items()}

  runners = {"ours": ours.epoch, "peak": PeakRunner.for_args(args)}
  torch_sm = None
  if not args.no_torch:
    torch_sm = TorchSM(examples, seed=args.seed)
    runners["torch"] = torch_sm.epoch
  memory = {}
  warmups = {}
  timings = common.interleaved(
      {name: (common.with_peak_memory(fn, memory, name) if name != "peak" else fn) for name, fn in runners.items()},
      repeats=args.repeats, warmup=1, on_warmup=lambda name, s: warmups.setdefault(name, s))
  peak_gflops = runners["peak"].peak()
  record["peak"] = {"gflops": peak_gflops, "per_source": runners["peak"].per_source()}
  useful = ours.useful_flops()
  executed = ours.executed_flops()
  floor_s = useful.total / (peak_gflops * 1e9)
  record.update(useful_flops=useful.total, executed_flops=executed.total, floor_s=floor_s,
                timings={k: v.to_json() for k, v in timings.items()},
                warmup_s=warmups, memory={k: m.to_json() for k, m in memory.items()})

  n = len(examples)
  peak_src = max(record["peak"]["per_source"], key=record["peak"]["per_source"].get)
  rows.append(common.Row("sm", "matmul peak (float32)", peak_gflops, "GFLOP/s", "",
                         f"best median over {', '.join(f'{k} {v:.0f}' for k, v in record['peak']['per_source'].items())}"
                         f" ({peak_src}); sampled once per round",
                         extra=record["peak"]))
  t_ours = timings["ours"].median
  rows.append(common.Row("sm", "train epoch, ours (jit, bucketed, b1)", n / t_ours, "videos/s",
                         f"{t_ours / floor_s:.2f}x floor",
                         f"{t_ours:.3g} s/epoch of {n} videos; {timings['ours'].spread()}"))
  rows.append(common.Row("sm", "  achieved (useful FLOPs)", useful.total / t_ours / 1e9, "GFLOP/s",
                         f"{floor_s / t_ours:.2f} of peak",
                         f"{useful.total / 1e9:.1f} GFLOP useful, {executed.total / 1e9:.1f} GFLOP executed "
                         f"(padding +{executed.total / useful.total - 1:.0%})"))
  rows.append(common.Row("sm", "  FLOP floor at peak", floor_s, "s/epoch", "", "useful FLOPs / measured peak"))
  if torch_sm is not None:
    t_torch = timings["torch"].median
    rows.append(common.Row("sm", "train epoch, torch eager b1 (DSNet loop)", n / t_torch, "videos/s",
                           f"ours {t_torch / t_ours:.2f}x faster",
                           f"{t_torch:.3g} s/epoch; {timings['torch'].spread()}; "
                           f"{common.paired_ratio(timings['torch'], timings['ours'])}"))
    rows.append(common.Row("sm", "  achieved (useful FLOPs)", useful.total / t_torch / 1e9, "GFLOP/s",
                           f"{floor_s / t_torch:.2f} of peak", f"{t_torch / floor_s:.2f}x floor"))
  total_compile = sum(compile_times.values())
  rows.append(common.Row("sm", "compile, ours (trace+lower+compile)", total_compile, "s",
                         "", f"{len(shapes)} distinct shapes per epoch "
                         f"({', '.join(str(s[1]) for s in shapes)}); per shape "
                         f"{min(compile_times.values()):.2f}-{max(compile_times.values()):.2f} s; first epoch "
                         f"{warmups['ours']:.2f} s"))
  for name in ("ours", "torch"):
    if name in memory:
      rows.append(common.Row("sm", f"peak memory, {name} epoch", memory[name].peak_rss / 2**20, "MiB RSS",
                             "", memory[name].describe(), extra=memory[name].to_json()))

  if args.profile:
    prof = profile_ours(ours, repeats=args.repeats if args.quick else max(3, args.repeats),
                        peak_runner=PeakRunner.for_args(args))
    record["profile"] = prof
    rows += profile_rows(prof)
  return rows, record


def profile_rows(prof: dict) -> list[common.Row]:
  """Splits the profile's epoch into parts that add up to it; each step part is the per-bucket median, weighted by
  the number of videos in the bucket."""
  buckets = prof["per_bucket"]
  total = lambda key: sum(b[key] * b["videos"] for b in buckets.values())
  epoch_s, peak_flops = prof["epoch_s"], prof["peak_gflops"] * 1e9
  floor_s = prof["useful_flops"] / peak_flops
  executed_floor = total("flops") / peak_flops
  matmul_floor = total("matmul_flops") / peak_flops
  parts = [
      ("useful FLOPs at the matmul peak (floor)", floor_s, ""),
      ("padding to buckets, at peak", executed_floor - floor_s, ""),
      ("matmuls at the step's shapes, beyond peak", total("matmuls") - matmul_floor,
       "the step's matmuls run alone: thin (T x 1024) and per-head products are slower than the square peak"),
      ("softmax, LayerNorm, losses, copies (no dropout)", total("grad_no_dropout") - total("matmuls")
       - (executed_floor - matmul_floor), ""),
      ("dropout masks (threefry, 32 bits per element)", total("grad") - total("grad_no_dropout"),
       f"with 1-bit masks: {total('grad_bitdrop') - total('grad_no_dropout'):.3g} s"),
      ("optimizer + state update", total("step") - total("grad"),
       f"Adam update alone {prof['adam_update_s'] * 1e3:.1f} ms x {sum(b['videos'] for b in buckets.values())}"),
      ("host loop (batching, transfer, dispatch)", epoch_s - total("step"), "epoch minus its steps timed alone"),
  ]
  rows = [common.Row("sm-profile", "epoch (profile rounds)", epoch_s, "s", "1.00",
                     f"peak in these rounds {prof['peak_gflops']:.0f} GFLOP/s")]
  for name, seconds, detail in parts:
    rows.append(common.Row("sm-profile", f"  {name}", seconds, "s", f"{seconds / epoch_s:.2f}", detail))
  detail = "; ".join(f"T={length}: {b['videos']}x {b['step'] * 1e3:.0f} ms, fwd+bwd "
                     f"{b['flops'] / b['grad'] / 1e9:.0f} GFLOP/s, matmuls alone "
                     f"{b['matmul_flops'] / b['matmuls'] / 1e9:.0f} GFLOP/s" for length, b in buckets.items())
  rows.append(common.Row("sm-profile", "per bucket", None, "", "", detail))
  return rows
