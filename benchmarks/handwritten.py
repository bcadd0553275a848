"""What the project's hand-written low-level code buys, each against the plain alternative in the same rounds.

  cpu_threefry  iptnet_jax/cpu_threefry.py (the unrolled threefry lowering on XLA:CPU) vs jax's rolled loop:
                the SM train epoch of benchmarks/sm.py and the LM train epoch of benchmarks/lm.py, each compiled
                both ways (same random bits, so the same training)
  lstm backward iptnet_jax/lm/lstm.py's hand-written VJP of the LSTM recurrence vs JAX's autodiff of the same
                lax.scan: the recurrence alone at VSLNet's sizes (batch 16, 64 steps, H = 128; forward +
                backward), and the whole LM train epoch with each

Variants are traced inside a context (the threefry rule, or the LSTM function the LM model module calls), so
nothing in iptnet_jax is edited. Ratios are 'plain / hand-written' medians with the per-round range: > 1 means
the hand-written code is faster. The detail column adds the ratio of process CPU time (all threads), per round:
on a machine shared with other processes, wall time also counts the time spent waiting for a core, CPU time
mostly does not. On a GPU or TPU the threefry rows compare identical programs (the rule is
CPU-only).
"""

from __future__ import annotations

import contextlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common, lm, sm
from iptnet_jax import cpu_threefry
from iptnet_jax.lm import lstm
from iptnet_jax.lm import model as lm_model

LSTM_SIZES = {"batch": 16, "steps": 64, "hidden": 128}  # VSLNet's predictor at a Charades-sized bucket


def lstm_autodiff(input_gates: jax.Array, weight_hh: jax.Array) -> jax.Array:
  """The recurrence of iptnet_jax.lm.lstm (its forward scan), differentiated by JAX instead of by hand."""
  return lstm._forward(input_gates, weight_hh)[0]


@contextlib.contextmanager
def lstm_by_autodiff():
  """While active, models traced from iptnet_jax.lm.model use `lstm_autodiff` for the LSTM recurrence."""
  original = lm_model.lstm_recurrence
  lm_model.lstm_recurrence = lstm_autodiff
  try:
    yield
  finally:
    lm_model.lstm_recurrence = original


def _within(context, fn):
  def run():
    with context():
      return fn()
  return run


def lstm_runner(recurrence, seed: int = 0, batch: int = 16, steps: int = 64, hidden: int = 128):
  """Jitted forward + backward of `recurrence` with a cotangent on every step (as the span logits give)."""
  rng = np.random.default_rng(seed)
  input_gates = jnp.asarray(rng.normal(size=(steps, batch, 4 * hidden)), jnp.float32)
  weight_hh = jnp.asarray(rng.uniform(-1, 1, size=(4 * hidden, hidden)) / np.sqrt(hidden), jnp.float32)
  cotangent = jnp.asarray(rng.normal(size=(steps, batch, hidden)), jnp.float32)

  @jax.jit
  def fwd_bwd(gates, weight):
    hs, vjp = jax.vjp(recurrence, gates, weight)
    return hs, vjp(cotangent)

  jax.block_until_ready(fwd_bwd(input_gates, weight_hh))  # compile outside the timing
  return sm._Repeat(lambda: fwd_bwd(input_gates, weight_hh), 10)


def run(args) -> tuple[list[common.Row], dict]:
  sizes = dict(LSTM_SIZES)
  if args.quick:
    sizes = {"batch": 4, "steps": 16, "hidden": 32}
  examples = sm.tvsum_like_examples(args.sm_videos, seed=args.seed, min_len=args.sm_min_len,
                                    max_len=args.sm_max_len)
  samples = lm.charades_like_samples(args.lm_samples, seed=args.seed)
  rolled = lambda: cpu_threefry.lowering(unrolled=False)
  variants = {  # name -> (runner object with .epoch, context its step is traced and run in)
      "SM epoch": (sm.OursSM(examples, seed=args.seed), contextlib.nullcontext),
      "SM epoch, rolled threefry": (sm.OursSM(examples, seed=args.seed), rolled),
      "LM epoch": (lm.OursLM(samples, batch_size=16, seed=args.seed), contextlib.nullcontext),
      "LM epoch, rolled threefry": (lm.OursLM(samples, batch_size=16, seed=args.seed), rolled),
      "LM epoch, LSTM by autodiff": (lm.OursLM(samples, batch_size=16, seed=args.seed), lstm_by_autodiff),
  }
  runners = {name: _within(context, runner.epoch) for name, (runner, context) in variants.items()}
  runners["LSTM fwd+bwd, hand-written VJP"] = lstm_runner(lstm.lstm_recurrence, args.seed, **sizes)
  runners["LSTM fwd+bwd, autodiff of the scan"] = lstm_runner(lstm_autodiff, args.seed, **sizes)
  cpu_seconds = {name: [] for name in runners}

  def with_cpu_time(name, fn):
    def run():
      start = time.process_time()
      wall = fn()
      cpu_seconds[name].append(time.process_time() - start)
      return wall
    return run

  warmups = {}
  timings = common.interleaved({k: with_cpu_time(k, f) for k, f in runners.items()}, repeats=args.repeats,
                               warmup=1, on_warmup=lambda name, s: warmups.setdefault(name, s))
  cpu_seconds = {k: v[1:] for k, v in cpu_seconds.items()}  # without the warm-up (compiling) run

  def cpu_ratio(plain: str, fast: str) -> str:
    ratios = sorted(a / b for a, b in zip(cpu_seconds[plain], cpu_seconds[fast]))
    return f"CPU-time ratio {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"

  def ratio_row(name: str, plain: str, fast: str, value: float, unit: str, what: str) -> common.Row:
    t_plain, t_fast = timings[plain].median, timings[fast].median
    return common.Row("handwritten", name, value, unit, f"{what} {t_plain / t_fast:.2f}x",
                      f"{t_fast:.3g} vs {t_plain:.3g} s; {common.paired_ratio(timings[plain], timings[fast])}; "
                      f"{cpu_ratio(plain, fast)}; first (compiling) pass {warmups[fast]:.1f} vs "
                      f"{warmups[plain]:.1f} s")

  rows = [
      ratio_row("SM train epoch, cpu_threefry", "SM epoch, rolled threefry", "SM epoch",
                len(examples) / timings["SM epoch"].median, "videos/s", "vs rolled threefry:"),
      ratio_row("LM train epoch b16, cpu_threefry", "LM epoch, rolled threefry", "LM epoch",
                len(samples) / timings["LM epoch"].median, "samples/s", "vs rolled threefry:"),
      ratio_row("LM train epoch b16, hand-written LSTM VJP", "LM epoch, LSTM by autodiff", "LM epoch",
                len(samples) / timings["LM epoch"].median, "samples/s", "vs autodiff LSTM:"),
      ratio_row(f"LSTM recurrence fwd+bwd (B {sizes['batch']}, T {sizes['steps']}, H {sizes['hidden']}), "
                "hand-written VJP", "LSTM fwd+bwd, autodiff of the scan", "LSTM fwd+bwd, hand-written VJP",
                timings["LSTM fwd+bwd, hand-written VJP"].median, "s", "vs autodiff:"),
  ]
  record = {"timings": {k: v.to_json() for k, v in timings.items()}, "cpu_s": cpu_seconds, "warmup_s": warmups,
            "lstm_sizes": sizes,
            "threefry_on_cpu": cpu_threefry.describe()}
  return rows, record
