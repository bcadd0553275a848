"""Threefry on XLA:CPU without the rolled loop: a backport of jax-ml/jax#37872, switched by config.cpu_threefry.

Every `jax.random` draw, so every dropout mask, runs the threefry2x32 hash. jax lowers the hash on CPU as a
5-iteration while loop (kept for compile times under XLA:CPU's old runtime); XLA does not fuse across a while
loop, so each draw writes its two uint32 counter arrays to memory on every round, and each dropout site becomes
a loop of its own. jax-ml/jax#37872 dropped the CPU-specific rule so that CPU uses the unrolled lowering of the
other platforms; it was merged on 2026-05-27 and rolled back on 2026-06-01 ("timeouts in downstream projects",
92ae354), both before the jax-v0.10.2 tag, so no release up to jax 0.11.0 (the newest tag read) has it. Which
jax lacks it is therefore decided by what is registered, not by a version number: while jax's own CPU rule is
the rolled one (`_threefry2x32_cpu_lowering_rule`), `use_unrolled_threefry_on_cpu` registers the unrolled rule
for the CPU platform; on a jax without a CPU-specific rule (the upstream change landed) it does nothing.

Where it applies: XLA:CPU compilations only. The rule is registered for platform 'cpu', so GPU and TPU
lowerings are untouched (tests/cpu_threefry_test.py exports the same function for CUDA both ways). The random
bits are identical, so results do not change; only the HLO does. It changes how jax lowers the primitive for
every later compilation in the process; `lowering(unrolled=...)` scopes it.

Failing loudly: the function patches private jax names (jax._src.random.threefry2x32.{threefry2x32_p,
_threefry2x32_lowering_rule, _threefry2x32_cpu_lowering_rule}, jax._src.interpreters.mlir.{register_lowering,
_platform_specific_lowerings}). If one has moved, or CPU's rule is neither jax's rolled rule, the unrolled one
nor absent, it raises `CpuThreefryHookError` naming the hook instead of guessing; `config.cpu_threefry=False`
runs with jax's own lowering and never touches the hooks.

Measured gain: `python -m benchmarks.run --only handwritten` (rows 'rolled threefry'); the figures are in
BUILD.md, 'Dropout randomness on CPU'.

`train_and_evaluate` calls `use_unrolled_threefry_on_cpu(config.cpu_threefry)`; call it yourself before the
first jit when you build steps by hand.
"""

from __future__ import annotations

import contextlib

UPSTREAM_CHANGE = "jax-ml/jax#37872"
# What the CPU platform's threefry2x32 lowering is, as `cpu_rule()` reports it.
ROLLED, UNROLLED, UPSTREAM = "rolled", "unrolled", "upstream"


class CpuThreefryHookError(RuntimeError):
  """A private jax name that iptnet_jax.cpu_threefry patches is missing or holds something unexpected."""


def _hooks():
  """(jax's threefry2x32 module, jax's mlir module), with every name the backport touches checked."""
  import jax

  def missing(what: str) -> CpuThreefryHookError:
    return CpuThreefryHookError(
        f"iptnet_jax.cpu_threefry: jax {jax.__version__} has no {what}, a private hook the threefry backport "
        f"({UPSTREAM_CHANGE}) patches; it changes no lowering on this jax. Run with config.cpu_threefry=False "
        "(--config.cpu_threefry=False) and update iptnet_jax/cpu_threefry.py for this jax")

  try:
    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32 as threefry
  except ImportError as err:
    raise missing(f"module {err.name or 'jax._src.random.threefry2x32 / jax._src.interpreters.mlir'}") from err
  for module, name in ((threefry, "threefry2x32_p"), (threefry, "_threefry2x32_lowering_rule"),
                       (mlir, "register_lowering"), (mlir, "_platform_specific_lowerings")):
    if not hasattr(module, name):
      raise missing(f"{module.__name__}.{name}")
  return threefry, mlir


def cpu_rule() -> str:
  """Which threefry2x32 lowering the CPU platform uses now: ROLLED (jax's loop), UNROLLED (this backport) or
  UPSTREAM (no CPU-specific rule: the unrolled lowering of every platform, as after jax-ml/jax#37872).
  Raises CpuThreefryHookError if a hook is missing or the CPU rule is something else."""
  threefry, mlir = _hooks()
  entry = mlir._platform_specific_lowerings["cpu"].get(threefry.threefry2x32_p)
  if entry is None:
    return UPSTREAM
  rule = getattr(entry, "rule", None)
  if rule is threefry._threefry2x32_lowering_rule:
    return UNROLLED
  if rule is not None and rule is getattr(threefry, "_threefry2x32_cpu_lowering_rule", None):
    return ROLLED
  raise CpuThreefryHookError(
      f"iptnet_jax.cpu_threefry: the CPU lowering of threefry2x32 is {rule!r}, neither jax's rolled rule "
      f"(_threefry2x32_cpu_lowering_rule) nor the unrolled one; not replacing it. Run with "
      "config.cpu_threefry=False and update iptnet_jax/cpu_threefry.py for this jax")


def use_unrolled_threefry_on_cpu(unrolled: bool = True) -> bool:
  """Lowers threefry2x32 on CPU unrolled; `unrolled=False` puts jax's rolled rule back if this module had
  replaced it (and otherwise touches nothing, so it is the switch to use when a hook has moved).

  Returns whether the CPU rule is now this backport's. On a jax with the upstream change nothing is changed
  (returns False). Affects compilations from now on, not executables already compiled.
  """
  if not unrolled:
    if _replaced_by_us():
      threefry, mlir = _hooks()
      mlir.register_lowering(threefry.threefry2x32_p, threefry._threefry2x32_cpu_lowering_rule, platform="cpu")
    return False
  current = cpu_rule()
  if current == UPSTREAM:
    return False
  if current == ROLLED:
    threefry, mlir = _hooks()
    # The rule jax registers for every platform (and, with the upstream change, for CPU too), out of line.
    mlir.register_lowering(threefry.threefry2x32_p, threefry._threefry2x32_lowering_rule, platform="cpu",
                           inline=False)
  return True


def _replaced_by_us() -> bool:
  try:
    return cpu_rule() == UNROLLED
  except CpuThreefryHookError:
    return False  # nothing this module could have registered


@contextlib.contextmanager
def lowering(*, unrolled: bool):
  """While active, compilations lower threefry on CPU unrolled or (False) with jax's rolled loop; the rule in
  force before is restored on exit. For measuring one against the other in one process."""
  before = _replaced_by_us()
  use_unrolled_threefry_on_cpu(unrolled)
  try:
    yield
  finally:
    use_unrolled_threefry_on_cpu(before)


def describe() -> str:
  """How threefry is lowered on CPU now, for benchmark headers."""
  try:
    current = cpu_rule()
  except CpuThreefryHookError as err:
    return f"unknown ({err})"
  return {ROLLED: "jax's rolled loop", UNROLLED: "unrolled (iptnet_jax.cpu_threefry)",
          UPSTREAM: "jax's own unrolled lowering (jax-ml/jax#37872)"}[current]
