"""iptnet_jax.cpu_threefry: the unrolled threefry lowering on CPU draws the same bits without a while loop."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iptnet_jax import cpu_threefry


def _compiled_draws():
  """A fresh jit (so it lowers under the current rule) drawing raw bits, a uniform and a flax dropout mask."""

  def draws(key):
    bits_key, uniform_key, dropout_key = jax.random.split(key, 3)
    mask = nn.Dropout(0.2).apply({}, jnp.ones((16, 33, 8)), deterministic=False, rngs={"dropout": dropout_key})
    return jax.random.bits(bits_key, (7, 129)), jax.random.uniform(uniform_key, (1000,)), mask

  return jax.jit(draws).lower(jax.random.key(3)).compile()


def test_unrolled_lowering_draws_the_same_bits_without_a_loop():
  if jax.default_backend() != "cpu":
    pytest.skip("the rule is CPU-only")
  if cpu_threefry._threefry_module() is None:
    # This jax already lowers threefry unrolled on CPU (jax-ml/jax#37872): what the backport provides.
    assert "while" not in _compiled_draws().as_text()
    pytest.skip("this jax has no rolled CPU rule to replace")
  with cpu_threefry.lowering(unrolled=False):
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


def test_train_and_evaluate_turns_it_on(monkeypatch, tmp_path):
  """The seam applies the backport before any trainer builds a step."""
  import ml_collections

  from iptnet_jax import train

  calls = []
  monkeypatch.setattr(cpu_threefry, "use_unrolled_threefry_on_cpu", lambda: calls.append(1))
  config = ml_collections.ConfigDict({"task": "no such task"})
  with pytest.raises(ValueError, match="config.task"):
    train.train_and_evaluate(config, tmp_path)
  assert calls == [1]
