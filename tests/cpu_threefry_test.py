"""iptnet_jax.cpu_threefry: the unrolled threefry lowering on CPU draws the same bits without a while loop, only
on CPU, only while jax's own CPU rule is the rolled one, and loudly when a hook moved. That train_and_evaluate
follows config.cpu_threefry is tests/train_test.py."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iptnet_jax import cpu_threefry

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the rule is CPU-only")


def _compiled_draws():
  """A fresh jit (so it lowers under the current rule) drawing raw bits, a uniform and a flax dropout mask."""

  def draws(key):
    bits_key, uniform_key, dropout_key = jax.random.split(key, 3)
    mask = nn.Dropout(0.2).apply({}, jnp.ones((16, 33, 8)), deterministic=False, rngs={"dropout": dropout_key})
    return jax.random.bits(bits_key, (7, 129)), jax.random.uniform(uniform_key, (1000,)), mask

  return jax.jit(draws).lower(jax.random.key(3)).compile()


def _exported_text(platform: str) -> str:
  """StableHLO of a fresh function drawing bits, exported for `platform` (no such device needed)."""

  def bits(key):
    return jax.random.bits(key, (7, 129))

  return jax.export.export(jax.jit(bits), platforms=[platform])(jax.random.key(0)).mlir_module()


@pytest.fixture
def jax_rule():
  """Runs the test from jax's own CPU rule and puts it back afterwards, whatever the test did."""
  if cpu_threefry.cpu_rule() == cpu_threefry.UPSTREAM:
    pytest.skip("this jax has no rolled CPU rule to replace (jax-ml/jax#37872 landed)")
  with cpu_threefry.lowering(unrolled=False):
    yield


def test_unrolled_lowering_draws_the_same_bits_without_a_loop(jax_rule):
  assert cpu_threefry.describe() == "jax's rolled loop"
  rolled = _compiled_draws()
  with cpu_threefry.lowering(unrolled=True):
    assert cpu_threefry.describe() == "unrolled (iptnet_jax.cpu_threefry)"
    unrolled = _compiled_draws()
  assert cpu_threefry.describe() == "jax's rolled loop"  # the context restores the rule before it
  assert "while" in rolled.as_text()  # jax's rolled hash: one loop per draw
  assert "while" not in unrolled.as_text()
  key = jax.random.key(11)
  for got, want in zip(unrolled(key), rolled(key)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  # The uniform and the dropout mask are not degenerate (a broken hash could agree by being constant).
  _, uniform, mask = unrolled(key)
  assert 0.45 < float(jnp.mean(uniform)) < 0.55
  assert 0.7 < float(jnp.mean(mask > 0)) < 0.9


def test_only_the_cpu_lowering_changes(jax_rule):
  texts = {}
  for unrolled in (False, True):  # one call site, so the two exports carry the same source locations
    with cpu_threefry.lowering(unrolled=unrolled):
      texts[unrolled] = {platform: _exported_text(platform) for platform in ("cpu", "cuda", "tpu")}
  assert texts[False]["cuda"] == texts[True]["cuda"]
  assert texts[False]["tpu"] == texts[True]["tpu"]
  assert texts[False]["cpu"] != texts[True]["cpu"]
  assert "while" in texts[False]["cpu"] and "while" not in texts[True]["cpu"]


def test_switching_off_restores_jaxs_rule(jax_rule):
  assert cpu_threefry.use_unrolled_threefry_on_cpu(True)
  assert cpu_threefry.cpu_rule() == cpu_threefry.UNROLLED
  assert not cpu_threefry.use_unrolled_threefry_on_cpu(False)
  assert cpu_threefry.cpu_rule() == cpu_threefry.ROLLED
  assert "while" in _compiled_draws().as_text()


def test_a_jax_with_the_upstream_lowering_is_left_alone(jax_rule, monkeypatch):
  from jax._src.interpreters import mlir
  from jax._src.random import threefry2x32

  # jax-ml/jax#37872 removes the CPU-specific registration: CPU falls back to the unrolled rule of all platforms.
  monkeypatch.delitem(mlir._platform_specific_lowerings["cpu"], threefry2x32.threefry2x32_p)
  assert cpu_threefry.cpu_rule() == cpu_threefry.UPSTREAM
  assert not cpu_threefry.use_unrolled_threefry_on_cpu(True)
  assert threefry2x32.threefry2x32_p not in mlir._platform_specific_lowerings["cpu"]  # nothing registered
  assert "while" not in _compiled_draws().as_text()


@pytest.mark.parametrize("hook", ["_threefry2x32_lowering_rule", "threefry2x32_p"])
def test_a_moved_hook_fails_loudly_and_changes_nothing(jax_rule, monkeypatch, hook):
  from jax._src.random import threefry2x32

  monkeypatch.delattr(threefry2x32, hook)
  with pytest.raises(cpu_threefry.CpuThreefryHookError, match=rf"jax\._src\.random\.threefry2x32\.{hook}.*"
                                                              r"config\.cpu_threefry=False"):
    cpu_threefry.use_unrolled_threefry_on_cpu(True)
  assert not cpu_threefry.use_unrolled_threefry_on_cpu(False)  # the switch never needs the hooks
  monkeypatch.undo()
  assert cpu_threefry.cpu_rule() == cpu_threefry.ROLLED


def test_an_unknown_cpu_rule_is_not_replaced(jax_rule, monkeypatch):
  from jax._src.interpreters import mlir
  from jax._src.random import threefry2x32

  entries = mlir._platform_specific_lowerings["cpu"]
  other = mlir.LoweringRuleEntry(lambda ctx, *args: None, True)
  monkeypatch.setitem(entries, threefry2x32.threefry2x32_p, other)
  with pytest.raises(cpu_threefry.CpuThreefryHookError, match="neither jax's rolled rule"):
    cpu_threefry.use_unrolled_threefry_on_cpu(True)
  assert entries[threefry2x32.threefry2x32_p] is other
