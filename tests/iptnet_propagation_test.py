"""PM kernel vs a plain-loop restatement of Algorithm 1, in float64, at edges and next to padding."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iptnet_jax.iptnet import propagation


def loop_propagation(scores, features, length, shift, radius, variant, alpha=0.5, sigma=4.0):
  """One sequence, plain Python loops over steps and windows."""
  def cos(a, b):
    return float(np.dot(a, b) / (max(np.linalg.norm(a), 1e-8) * max(np.linalg.norm(b), 1e-8)))

  aggregated = []
  for i in range(length):
    window = range(max(0, i - radius), min(length - 1, i + radius) + 1)
    terms = [cos(features[i], features[j]) * scores[j] for j in window]
    aggregated.append(scores[i] + alpha * sum(terms) if variant == "released" else sum(terms) / len(terms))
  out = []
  for i in range(length):
    window = list(range(max(0, i - radius), min(length - 1, i + radius) + 1))
    best = window[int(np.argmax([aggregated[j] for j in window]))]
    out.append(aggregated[i] * math.exp(-((best - i) ** 2) / (2 * sigma ** 2)) + shift[i])
  return np.array(out)


@pytest.fixture(autouse=True)
def float64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


@pytest.mark.parametrize("variant", propagation.VARIANTS)
@pytest.mark.parametrize("radius", [0, 2, 10])
def test_kernel_equals_loop_in_float64(variant, radius):
  rng = np.random.default_rng(radius)
  lengths = [25, 3, 14, 1]  # longer than, shorter than and equal to windows; a one-step sequence
  width = 25
  scores = rng.uniform(size=(4, width))
  features = rng.normal(size=(4, width, 6))
  features[0, 5] = 0.0  # a zero feature vector: cos uses the clamped norm
  shift = rng.normal(size=(4, width))
  mask = (np.arange(width)[None] < np.array(lengths)[:, None]).astype(np.float64)
  scores_noisy = np.where(mask > 0, scores, 100.0)  # junk in the padding must not leak in
  got = np.asarray(propagation.propagate(jnp.asarray(scores_noisy), jnp.asarray(features), jnp.asarray(mask),
                                         jnp.asarray(shift), radius=radius, variant=variant))
  for b, n in enumerate(lengths):
    expected = loop_propagation(scores[b], features[b], n, shift[b], radius, variant)
    np.testing.assert_allclose(got[b, :n], expected, rtol=0, atol=1e-10)
    assert not got[b, n:].any()


def test_gradient_flows_to_scores_features_and_shift_but_not_through_the_offset():
  rng = np.random.default_rng(0)
  scores, feats, shift = rng.uniform(size=(1, 12)), rng.normal(size=(1, 12, 4)), rng.normal(size=(1, 12))
  mask = np.ones((1, 12))
  fn = lambda s, f, z: propagation.propagate(s, f, mask, z, radius=3).sum()
  gs, gf, gz = jax.grad(fn, argnums=(0, 1, 2))(scores, feats, shift)
  np.testing.assert_allclose(gz, np.ones((1, 12)))  # the shift enters additively
  assert np.abs(gs).sum() > 0 and np.abs(gf).sum() > 0 and np.isfinite(gf).all()
  # Finite differences agree: the argmax offset is piecewise constant, so it contributes nothing.
  eps = 1e-6
  bumped = scores.copy()
  bumped[0, 4] += eps
  numeric = (fn(bumped, feats, shift) - fn(scores, feats, shift)) / eps
  np.testing.assert_allclose(gs[0, 4], numeric, rtol=1e-4)


def test_jit_and_bad_arguments():
  s = jnp.ones((2, 8))
  out = jax.jit(lambda s: propagation.propagate(s, jnp.ones((2, 8, 3)), jnp.ones((2, 8)), radius=2))(s)
  assert out.shape == (2, 8)
  with pytest.raises(ValueError, match="variant"):
    propagation.propagate(s, jnp.ones((2, 8, 3)), jnp.ones((2, 8)), variant="nope")


def test_zero_feature_vectors_give_finite_gradients():
  feats = np.zeros((1, 6, 4))
  feats[0, :3] = np.random.default_rng(1).normal(size=(3, 4))
  grad = jax.grad(lambda f: propagation.propagate(jnp.ones((1, 6)), f, jnp.ones((1, 6)), radius=2).sum())(feats)
  assert np.isfinite(grad).all()
