"""iptnet_jax.lm.lstm: the hand-written backward pass equals JAX's autodiff of the plain LSTM scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iptnet_jax.lm.lstm import lstm_recurrence


def scan_recurrence(input_gates, weight_hh):
  """The same LSTM recurrence written plainly (torch nn.LSTM equations), differentiated by JAX."""

  def step(carry, gates_t):
    h_prev, c_prev = carry
    i, f, g, o = jnp.split(gates_t + h_prev @ weight_hh.T, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c_prev + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h

  zeros = jnp.zeros(input_gates.shape[1:2] + weight_hh.shape[1:], input_gates.dtype)
  return jax.lax.scan(step, (zeros, zeros), input_gates)[1]


def _inputs(dtype, length=9, batch=3, hidden=5, seed=0):
  rng = np.random.default_rng(seed)
  input_gates = rng.normal(size=(length, batch, 4 * hidden)).astype(dtype)
  weight_hh = rng.uniform(-0.8, 0.8, size=(4 * hidden, hidden)).astype(dtype)
  # A cotangent on every step, as the span logits give: gradients flow in at each step and through the carry.
  cotangent = rng.normal(size=(length, batch, hidden)).astype(dtype)
  return input_gates, weight_hh, cotangent


def _value_and_grads(fn, input_gates, weight_hh, cotangent):
  hs, vjp = jax.vjp(fn, input_gates, weight_hh)
  return (hs,) + vjp(cotangent)


@pytest.fixture
def float64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def test_backward_equals_autodiff_of_the_scan_in_float64(float64):
  args = _inputs(np.float64)
  got = jax.jit(lambda *a: _value_and_grads(lstm_recurrence, *a))(*args)
  want = jax.jit(lambda *a: _value_and_grads(scan_recurrence, *a))(*args)
  for name, g, w in zip(("hidden states", "d input_gates", "d weight_hh"), got, want):
    assert g.dtype == jnp.float64
    np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=name)
  # Both gradients are non-trivial (the loop carries gradient back to the first step).
  assert np.abs(np.asarray(got[1][0])).max() > 1e-3
  assert np.abs(np.asarray(got[2])).max() > 1e-2


def test_float32_agrees_to_rounding_and_grad_composes():
  input_gates, weight_hh, cotangent = _inputs(np.float32, length=64, batch=16, hidden=32)
  got = jax.jit(lambda *a: _value_and_grads(lstm_recurrence, *a))(input_gates, weight_hh, cotangent)
  want = jax.jit(lambda *a: _value_and_grads(scan_recurrence, *a))(input_gates, weight_hh, cotangent)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
  # Under jax.grad of a scalar loss and under vmap, as the train step uses it.
  loss = lambda fn: lambda ig, w: jnp.sum(jnp.sin(fn(ig, w)))
  grads = jax.jit(jax.vmap(jax.grad(loss(lstm_recurrence), argnums=(0, 1)), in_axes=(1, None)))
  grads_ref = jax.jit(jax.vmap(jax.grad(loss(scan_recurrence), argnums=(0, 1)), in_axes=(1, None)))
  batched = input_gates[:, :, None]  # vmap over the batch axis, each call a batch of one
  for g, w in zip(grads(batched, weight_hh), grads_ref(batched, weight_hh)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
