"""The SM epoch of benchmarks/sm.py under settings the trainer could change, timed in the same rounds.

  base           config_defaults: batch 1, TVSUM_BUCKETS (64-step grid), flax nn.Dropout (threefry, 32 bits per
                 element)
  grid32         buckets every 32 steps (less padding, more compiled shapes)
  bitdrop        dropout masks from 1 random bit per element (32 masks per threefry word) instead of a 32-bit
                 uniform per element; same Bernoulli(0.5) distribution, different random stream
  bitdrop+grid32 both
  rolled-threefry the base step compiled with jax 0.10's rolled threefry loop on CPU, i.e. without
                 iptnet_jax.cpu_threefry (same random bits, so the same parameters)
  bf16           model.compute_dtype = bfloat16 (attention and fc1 in bf16, BUILD.md 'Mixed precision'); for
                 GPUs and TPUs, shown on every device
  b4             4 videos per step (10 Adam steps per epoch instead of 40): changes the optimisation, shown
                 for scale only

`bitdrop` is measured by swapping the `nn` namespace that iptnet_jax/sm/model.py reads `Dropout` from while
the variant's step is traced (nothing in iptnet_jax is edited); `BitDropout` is the proposed replacement.
"""

from __future__ import annotations

import contextlib
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks import common, sm
from iptnet_jax import config_defaults, cpu_threefry
from iptnet_jax.sm import model as sm_model

GRID32 = tuple(range(32, 1024 + 1, 32))


class BitDropout(nn.Module):
  """Inverted dropout drawing 1 random bit per element for rate 0.5 and 8 bits otherwise (keep probability
  rounded to a multiple of 1/256), from uint32 words: 32 (or 4) elements per generated word."""

  rate: float
  rng_collection: str = "dropout"

  @nn.compact
  def __call__(self, x, deterministic: bool):
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    size = math.prod(x.shape)
    per_word = 32 if self.rate == 0.5 else 4
    words = jax.random.bits(self.make_rng(self.rng_collection), (-(-size // per_word),), jnp.uint32)
    if per_word == 32:
      kept = (words[:, None] >> jnp.arange(32, dtype=jnp.uint32)) & 1
      kept = kept.reshape(-1)[:size].reshape(x.shape) == 1
    else:
      bytes_ = (words[:, None] >> jnp.arange(0, 32, 8, dtype=jnp.uint32)) & 255
      kept = bytes_.reshape(-1)[:size].reshape(x.shape) < jnp.uint32(round(keep * 256))
    return jnp.where(kept, x / keep, jnp.zeros_like(x))


class _LinenWith:
  """flax.linen with some attributes replaced."""

  def __init__(self, **overrides):
    self._overrides = overrides

  def __getattr__(self, name):
    return self._overrides[name] if name in self._overrides else getattr(nn, name)


@contextlib.contextmanager
def patch_dropout(module):
  """While active, `module.nn.Dropout` (a model file that reads flax.linen as `nn`) is BitDropout."""
  original = module.nn
  module.nn = _LinenWith(Dropout=BitDropout)
  try:
    yield
  finally:
    module.nn = original


def bit_dropout_in_sm_model():
  return patch_dropout(sm_model)


def _within(context, fn):
  def run():
    with context():
      return fn()
  return run


def run(args) -> tuple[list[common.Row], dict]:
  examples = sm.tvsum_like_examples(args.sm_videos, seed=args.seed, min_len=args.sm_min_len, max_len=args.sm_max_len)
  variants = {
      "base": sm.OursSM(examples, seed=args.seed),
      "grid32": sm.OursSM(examples, buckets=GRID32, seed=args.seed),
      "bitdrop": sm.OursSM(examples, seed=args.seed),
      "bitdrop+grid32": sm.OursSM(examples, buckets=GRID32, seed=args.seed),
      "rolled-threefry": sm.OursSM(examples, seed=args.seed),
      "bf16": sm.OursSM(examples, seed=args.seed, compute_dtype="bfloat16"),
      "b4": sm.OursSM(examples, batch_size=4, seed=args.seed),
  }
  # Variants whose step is traced (and compiled, on its first call) inside a context.
  contexts = {"bitdrop": bit_dropout_in_sm_model, "bitdrop+grid32": bit_dropout_in_sm_model,
              "rolled-threefry": lambda: cpu_threefry.lowering(unrolled=False)}
  compile_s = {}
  for name, v in variants.items():
    with contexts.get(name, contextlib.nullcontext)():
      compile_s[name] = v.compile_times()
  runners = {name: (_within(contexts[name], v.epoch) if name in contexts else v.epoch)
             for name, v in variants.items()}
  timings = common.interleaved(runners, repeats=args.repeats, warmup=1)
  base = timings["base"].median
  useful = variants["base"].useful_flops().total
  rows = []
  for name, v in variants.items():
    t = timings[name].median
    executed = v.executed_flops().total
    rows.append(common.Row(
        "sm-variants", f"SM epoch, {name}", len(examples) / t, "videos/s", f"{base / t:.2f}x base",
        f"{t:.3g} s/epoch; {len(compile_s[name])} shapes, compile {sum(compile_s[name].values()):.0f} s; "
        f"padding +{executed / useful - 1:.0%} FLOPs; {timings[name].spread()}"
        + ("" if name == "base" else f"; {common.paired_ratio(timings['base'], timings[name])}")))
  record = {"timings": {k: v.to_json() for k, v in timings.items()},
            "compile_s": {k: {str(s): c for s, c in v.items()} for k, v in compile_s.items()},
            "buckets": {k: list(v.buckets) for k, v in variants.items()},
            "batch_size": {k: v.batch_size for k, v in variants.items()}}
  return rows, record
