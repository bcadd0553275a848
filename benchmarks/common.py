"""Shared pieces of the benchmarks: result rows, timing, peak memory, environment facts."""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Row:
  """One line of the printed table (and one record of the JSON)."""

  section: str
  name: str
  value: float | None  # the median (None: nothing measured, e.g. a pending slot)
  unit: str
  ratio: str = ""  # a same-run comparison, e.g. "4.1x torch b1" or "0.62 of peak"
  detail: str = ""  # spread, sizes, notes
  extra: dict = dataclasses.field(default_factory=dict)  # JSON only

  def cells(self) -> list[str]:
    return [self.section, self.name, format_value(self.value), self.unit, self.ratio, self.detail]


def format_value(value: float | None) -> str:
  if value is None:
    return "-"
  if isinstance(value, int):
    return str(value)
  if value == 0 or 0.01 <= abs(value) < 1e5:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"
  return f"{value:.3e}"


def format_table(rows: list[Row]) -> str:
  headers = ["section", "measurement", "median", "unit", "same-run ratio", "detail"]
  cells = [r.cells() for r in rows]
  widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
  left = {0, 1, 3, 4, 5}

  def line(values):
    return "  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

  rule = "  ".join("-" * w for w in widths)
  return "\n".join([line(headers), rule, *(line(c) for c in cells)])


@dataclasses.dataclass
class Timing:
  """Wall-clock seconds of repeated runs (warm-up excluded)."""

  seconds: list[float]

  @property
  def median(self) -> float:
    return statistics.median(self.seconds)

  def spread(self) -> str:
    return f"min {min(self.seconds):.3g} max {max(self.seconds):.3g} s, n={len(self.seconds)}"

  def to_json(self) -> dict:
    return {"median_s": self.median, "seconds": self.seconds}


def paired_ratio(slow: Timing, fast: Timing) -> str:
  """slow/fast round by round (the runners of a round ran back to back, under similar load): median and range."""
  ratios = sorted(a / b for a, b in zip(slow.seconds, fast.seconds))
  return f"per-round ratio {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def interleaved(runners: Mapping[str, Callable[[], float | None]], repeats: int, warmup: int = 1,
                on_warmup: Callable[[str, float], None] | None = None) -> dict[str, Timing]:
  """Runs every runner `warmup` times, then `repeats` rounds of each runner once, round robin.

  A runner returns its own elapsed seconds (it must wait for its device work), or None to be timed here.
  Interleaving spreads load from other processes over all runners alike, so same-run ratios stay fair on a
  shared machine.
  """

  def run_once(name):
    start = time.perf_counter()
    elapsed = runners[name]()
    return time.perf_counter() - start if elapsed is None else elapsed

  for name in runners:
    for _ in range(warmup):
      elapsed = run_once(name)
      if on_warmup is not None:
        on_warmup(name, elapsed)
  out = {name: [] for name in runners}
  for _ in range(repeats):
    for name in runners:
      out[name].append(run_once(name))
  return {name: Timing(seconds) for name, seconds in out.items()}


# ------------------------------------------------------------------------------------------------- memory

def _proc_status_kib(field: str) -> int | None:
  try:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
  except OSError:
    return None
  return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
  """Resets the kernel's peak-RSS counter (VmHWM) of this process; False where not allowed."""
  try:
    Path("/proc/self/clear_refs").write_text("5")
    return True
  except OSError:
    return False


def device_memory_peak() -> int | None:
  """Peak bytes in use on the default JAX device (GPU/TPU); None on CPU, whose memory is host RSS."""
  import jax

  device = jax.devices()[0]
  if device.platform == "cpu":
    return None
  stats = device.memory_stats() or {}
  return stats.get("peak_bytes_in_use")


class PeakMemory:
  """Peak host RSS (and device memory) while the `with` body runs.

  Host: the kernel's VmHWM, reset on entry through /proc/self/clear_refs; where that is not allowed, a 2 ms
  sampler of VmRSS (which can miss short spikes; `method` says which). Device: the backend's
  peak_bytes_in_use, which cannot be reset, so it is the process peak up to the end of the body.

  Entry first collects garbage: cyclic garbage left by earlier work would otherwise be freed by a collection that
  an allocation inside the body triggers, and RSS falling by that much inside the body hides the body's own
  peak (seen in test suites: +0 MiB for a 64 MiB allocation).
  """

  def __init__(self):
    self.rss_before = 0
    self.peak_rss = 0
    self.device_peak = None
    self.method = ""
    self._stop = None
    self._thread = None

  def __enter__(self):
    gc.collect()
    self.rss_before = (_proc_status_kib("VmRSS") or 0) * 1024
    if _reset_peak_rss():
      self.method = "VmHWM"
    else:
      self.method = "sampled VmRSS"
      self._stop = threading.Event()
      self._sampled = self.rss_before

      def sample():
        while not self._stop.is_set():
          self._sampled = max(self._sampled, (_proc_status_kib("VmRSS") or 0) * 1024)
          time.sleep(0.002)

      self._thread = threading.Thread(target=sample, daemon=True)
      self._thread.start()
    return self

  def __exit__(self, *exc):
    if self._thread is not None:
      self._stop.set()
      self._thread.join()
      self.peak_rss = self._sampled
    else:
      self.peak_rss = (_proc_status_kib("VmHWM") or 0) * 1024
    self.device_peak = device_memory_peak()
    return False

  def describe(self) -> str:
    text = f"RSS peak {self.peak_rss / 2**20:.0f} MiB (+{(self.peak_rss - self.rss_before) / 2**20:.0f} over start)"
    if self.device_peak is not None:
      text += f"; device peak {self.device_peak / 2**20:.0f} MiB"
    return text

  def to_json(self) -> dict:
    return {"host_rss_peak_bytes": self.peak_rss, "host_rss_before_bytes": self.rss_before,
            "host_method": self.method, "device_peak_bytes": self.device_peak}


def with_peak_memory(fn: Callable[[], float | None], memory: dict, name: str) -> Callable[[], float | None]:
  """`fn` with its peak memory measured; the first measurement of each name is kept in `memory[name]`."""

  def run_once():
    with PeakMemory() as mem:
      elapsed = fn()
    memory.setdefault(name, mem)
    return elapsed

  return run_once


# ------------------------------------------------------------------------------------------------- environment

def cpu_threads() -> int:
  """CPUs this process may run on (what XLA's CPU thread pool sizes itself by)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def load_average() -> tuple[float, float, float] | None:
  try:
    return os.getloadavg()
  except OSError:
    return None


def cpu_model() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def environment() -> dict:
  import flax
  import jax
  import jaxlib
  import optax

  from iptnet_jax import cpu_threefry

  device = jax.devices()[0]
  info = {
      "python": sys.version.split()[0],
      "jax": jax.__version__,
      "jaxlib": jaxlib.__version__,
      "flax": flax.__version__,
      "optax": optax.__version__,
      "numpy": np.__version__,
      "backend": jax.default_backend(),
      "device_kind": device.device_kind,
      "device_count": jax.device_count(),
      "cpu": cpu_model(),
      "cpu_threads": cpu_threads(),
      "matmul_precision": str(jax.config.jax_default_matmul_precision),
      "threefry_on_cpu": cpu_threefry.describe(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
      "load_average_start": load_average(),
  }
  try:
    import torch

    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
  except ImportError:
    info["torch"] = None
  return info


def describe_environment(info: dict) -> str:
  load = info.get("load_average_start")
  load_text = "n/a" if load is None else ", ".join(f"{x:.2f}" for x in load)
  return (f"device: {info['backend']} / {info['device_kind']} x{info['device_count']} ({info['cpu']}, "
          f"{info['cpu_threads']} CPU threads)\n"
          f"versions: python {info['python']}, jax {info['jax']}, jaxlib {info['jaxlib']}, flax {info['flax']}, "
          f"optax {info['optax']}, numpy {info['numpy']}, torch {info.get('torch')} "
          f"(torch threads {info.get('torch_threads')}, OMP_WAIT_POLICY={info.get('omp_wait_policy') or 'unset'})\n"
          f"matmul precision: {info['matmul_precision']}; threefry on CPU: {info.get('threefry_on_cpu')}; "
          f"XLA_FLAGS: {info['xla_flags'] or '(none)'}; "
          f"load average at start (1/5/15 min): {load_text}")
