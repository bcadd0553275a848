"""This machine's float32 matmul peak, measured with the same libraries the benchmarks compare.

Square (n, n) @ (n, n) products, jitted in JAX (at the configured matmul precision) and in PyTorch eager
(when installed), each size repeated for about `seconds` per sample; the per-size figure is the median of
the samples. The peak is the best median over sizes and libraries, so neither side is judged against a
figure the other's BLAS cannot reach.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np

DEFAULT_SIZES = (512, 1024, 2048)


@dataclasses.dataclass
class Peak:
  gflops: float  # the peak: best per-size median
  source: str  # e.g. "jax n=1024"
  per_size: dict  # {"jax n=1024": median GFLOP/s, ...}

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def _samples(run, flops: float, samples: int, seconds: float) -> list[float]:
  run()  # warm-up (and compile)
  start = time.perf_counter()
  run()
  once = max(time.perf_counter() - start, 1e-6)
  reps = max(1, int(seconds / once))
  rates = []
  for _ in range(samples):
    start = time.perf_counter()
    for _ in range(reps):
      run()
    rates.append(flops * reps / (time.perf_counter() - start) / 1e9)
  return rates


def jax_matmul_gflops(n: int, samples: int = 5, seconds: float = 0.2) -> float:
  import jax
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  f = jax.jit(lambda x, y: x @ y)
  return statistics.median(_samples(lambda: f(a, b).block_until_ready(), 2.0 * n ** 3, samples, seconds))


def torch_matmul_gflops(n: int, samples: int = 5, seconds: float = 0.2) -> float | None:
  try:
    import torch
  except ImportError:
    return None
  rng = np.random.default_rng(0)
  a = torch.from_numpy(rng.standard_normal((n, n), np.float32))
  b = torch.from_numpy(rng.standard_normal((n, n), np.float32))
  out = torch.empty(n, n)
  return statistics.median(_samples(lambda: torch.matmul(a, b, out=out), 2.0 * n ** 3, samples, seconds))


def measure_peak(sizes=DEFAULT_SIZES, samples: int = 5, seconds: float = 0.2, with_torch: bool = True) -> Peak:
  per_size = {}
  for n in sizes:
    per_size[f"jax n={n}"] = jax_matmul_gflops(n, samples, seconds)
    if with_torch:
      rate = torch_matmul_gflops(n, samples, seconds)
      if rate is not None:
        per_size[f"torch n={n}"] = rate
  source = max(per_size, key=per_size.get)
  return Peak(per_size[source], source, per_size)
