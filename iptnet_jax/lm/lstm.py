"""The LSTM recurrence of VSLNet's span predictor, with a hand-written backward pass.

torch nn.LSTM's cell with gates (i, f, g, o): i, f, o = sigmoid, g = tanh, c_t = f c_{t-1} + i g, h_t = o tanh(c_t),
gates_t = input_gates_t + h_{t-1} W_hh^T. Only the recurrence is here; the input projection (x W_ih^T + biases) is
one matmul over all steps outside it and is differentiated by JAX as usual.

Why a custom VJP: differentiating `lax.scan` makes every step of the backward loop also accumulate dW_hh
(an outer product and an add of a (4H, H) matrix per step), and XLA:CPU runs each loop step as a sequence of
small kernels. Here the backward loop only carries dh and dc and emits each step's gate gradients; dW_hh is
then one (4H, T*B) x (T*B, H) matmul after the loop. Same mathematics, a different summation order (float32
results agree to rounding, tests/lm_lstm_test.py). Kept because it is measurably faster than autodiff of the same
scan: `python -m benchmarks.run --only handwritten` times both in the same rounds, the recurrence alone at
VSLNet's sizes (batch 16, 64 steps, H = 128: 1.4-1.5x) and the whole LM train epoch (1.1-1.2x); figures in
BUILD.md, 'Dropout randomness on CPU'.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _cell(gates: jax.Array, c_prev: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Activated gates (i, f, g, o concatenated), new cell state, new hidden state."""
  i, f, g, o = jnp.split(gates, 4, axis=-1)
  i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
  c = f * c_prev + i * g
  return jnp.concatenate([i, f, g, o], axis=-1), c, o * jnp.tanh(c)


def _forward(input_gates: jax.Array, weight_hh: jax.Array):
  batch, hidden = input_gates.shape[1], weight_hh.shape[1]

  def step(carry, gates_t):
    h_prev, c_prev = carry
    activated, c, h = _cell(gates_t + h_prev @ weight_hh.T, c_prev)
    return (h, c), (h, c, activated)

  zeros = jnp.zeros((batch, hidden), input_gates.dtype)
  _, (hs, cs, activated) = jax.lax.scan(step, (zeros, zeros), input_gates)
  return hs, (hs, cs, activated, weight_hh)


@jax.custom_vjp
def lstm_recurrence(input_gates: jax.Array, weight_hh: jax.Array) -> jax.Array:
  """Hidden states (T, B, H) of the LSTM from zero state, given time-major input gates (T, B, 4H) (input
  projection and both biases already added) and weight_hh (4H, H) in torch's layout."""
  return _forward(input_gates, weight_hh)[0]


def _backward(residuals, d_hs: jax.Array):
  hs, cs, activated, weight_hh = residuals
  first = jnp.zeros_like(hs[:1])
  h_prev = jnp.concatenate([first, hs[:-1]], axis=0)
  c_prev = jnp.concatenate([first, cs[:-1]], axis=0)

  def step(carry, inputs):
    dh_next, dc_next = carry
    d_h, c, c_before, gates = inputs
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    dh = d_h + dh_next
    tanh_c = jnp.tanh(c)
    dc = dh * o * (1.0 - tanh_c * tanh_c) + dc_next
    # Gradients with respect to the pre-activation gates, in torch's (i, f, g, o) order.
    d_gates = jnp.concatenate([dc * g * i * (1.0 - i), dc * c_before * f * (1.0 - f), dc * i * (1.0 - g * g),
                               dh * tanh_c * o * (1.0 - o)], axis=-1)
    return (d_gates @ weight_hh, dc * f), d_gates

  zeros = jnp.zeros_like(hs[0])
  _, d_gates = jax.lax.scan(step, (zeros, zeros), (d_hs, cs, c_prev, activated), reverse=True)
  d_weight_hh = jnp.einsum("tbg,tbh->gh", d_gates, h_prev)
  return d_gates, d_weight_hh


lstm_recurrence.defvjp(_forward, _backward)
