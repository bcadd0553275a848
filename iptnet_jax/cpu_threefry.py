"""Threefry on XLA:CPU without the rolled loop: a backport of jax-ml/jax#37872 to the jax versions before it.

Every `jax.random` draw, so every dropout mask, runs the threefry2x32 hash. Up to that change jax lowered the
hash on CPU as a 5-iteration while loop (to keep compile times down under XLA:CPU's old runtime); XLA does not
fuse across a while loop, so each draw writes its two uint32 counter arrays to memory on every round, and each
dropout site becomes a loop of its own. With the thunk runtime the unrolled lowering that other platforms use
compiles as fast and runs faster, and upstream switched CPU to it. The random bits are identical, so results do
not change; only the HLO does.

`python -m benchmarks.run --only lm,sm-variants` times the same steps compiled both ways in the same rounds
(rows 'rolled threefry'); the figures measured on 2 CPU cores are in BUILD.md, 'Dropout randomness on CPU'.

`train_and_evaluate` calls `use_unrolled_threefry_on_cpu()`; call it yourself before the first jit when you
build steps by hand. It changes how jax lowers the primitive for every later compilation in the process.
"""

from __future__ import annotations

import contextlib

_unrolled_by_us = False  # whether use_unrolled_threefry_on_cpu has replaced jax's rolled rule (and not restored it)


def _threefry_module():
  """jax's threefry module when it still has the rolled CPU rule, else None (jax with #37872, or a layout this
  backport does not know: both keep jax's own lowering)."""
  try:
    from jax._src.random import threefry2x32
  except ImportError:
    return None
  if not hasattr(threefry2x32, "_threefry2x32_cpu_lowering_rule"):
    return None
  return threefry2x32


def use_unrolled_threefry_on_cpu(unrolled: bool = True) -> bool:
  """Lowers threefry2x32 on CPU unrolled (`unrolled=False` restores jax's rolled rule).

  Returns whether this jax has the rolled rule to replace; when it does not, nothing is changed (newer jax
  already lowers the hash unrolled). Affects compilations from now on, not executables already compiled.
  """
  global _unrolled_by_us
  threefry = _threefry_module()
  if threefry is None:
    return False
  from jax._src.interpreters import mlir

  if unrolled:
    # The rule jax uses on every other platform, registered as upstream does after #37872.
    mlir.register_lowering(threefry.threefry2x32_p, threefry._threefry2x32_lowering_rule, platform="cpu",
                           inline=False)
  else:
    mlir.register_lowering(threefry.threefry2x32_p, threefry._threefry2x32_cpu_lowering_rule, platform="cpu")
  _unrolled_by_us = unrolled
  return True


@contextlib.contextmanager
def lowering(*, unrolled: bool):
  """While active, compilations lower threefry on CPU unrolled or (False) with jax's rolled loop; the rule in
  force before is restored on exit. For measuring one against the other in one process."""
  before = _unrolled_by_us
  use_unrolled_threefry_on_cpu(unrolled)
  try:
    yield
  finally:
    use_unrolled_threefry_on_cpu(before)


def describe() -> str:
  """How threefry is lowered on CPU now, for benchmark headers."""
  if _threefry_module() is None:
    return "jax's own lowering (no rolled CPU rule in this jax)"
  return "unrolled (iptnet_jax.cpu_threefry)" if _unrolled_by_us else "jax's rolled loop"
