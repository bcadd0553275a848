"""Low-rank AV fusion (iptnet_jax/highlight/fusion.py) against the explicit full-tensor product."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


from iptnet_jax.highlight import fusion


def _factor_params(rng, dims, rank, width):
  """Random factors w_m^(r) (d_m + 1, d_h) laid out as the module's Dense(R * d_h) parameters."""
  params = {}
  factors = []
  for m, d in enumerate(dims):
    w = rng.normal(size=(d + 1, rank, width))
    factors.append(w)
    params[f"factor_{m}"] = {"kernel": jnp.asarray(w[:d].reshape(d, rank * width)),
                             "bias": jnp.asarray(w[d].reshape(rank * width))}
  weights = rng.normal(size=(1, rank))
  params["rank_weights"] = jnp.asarray(weights)
  params["bias"] = jnp.asarray(rng.normal(size=(width,)))
  return params, factors, weights[0]


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_low_rank_fusion_equals_the_full_tensor_product_with_its_rank_r_core(rank):
  rng = np.random.default_rng(rank)
  dv, da, width = 5, 4, 3
  with jax.enable_x64(True):
    params, factors, weights = _factor_params(rng, (dv, da), rank, width)
    # The explicit rank-R core, built by hand: W[k, i, j] = sum_r lambda_r w_v^(r)[i, k] w_a^(r)[j, k].
    core = np.zeros((width, dv + 1, da + 1))
    for r in range(rank):
      for k in range(width):
        core[k] += weights[r] * np.outer(factors[0][:, r, k], factors[1][:, r, k])
    np.testing.assert_allclose(np.asarray(fusion.full_core(params, 2, rank)), core, rtol=1e-12, atol=1e-12)
    v = jnp.asarray(rng.normal(size=(2, 7, dv)))
    a = jnp.asarray(rng.normal(size=(2, 7, da)))
    low_rank = fusion.LowRankFusion(rank=rank, features=width).apply({"params": params}, [v, a])
    full = fusion.full_tensor_fusion(jnp.asarray(core), params["bias"], [v, a])
    assert low_rank.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(low_rank), np.asarray(full), rtol=1e-10, atol=1e-10)
    # And with an explicit outer product of [v; 1] and [a; 1], no einsum shortcut.
    z_v = np.concatenate([np.asarray(v[0, 0]), [1.0]])
    z_a = np.concatenate([np.asarray(a[0, 0]), [1.0]])
    by_hand = np.array([np.sum(core[k] * np.outer(z_v, z_a)) for k in range(width)]) + np.asarray(params["bias"])
    np.testing.assert_allclose(np.asarray(low_rank[0, 0]), by_hand, rtol=1e-10)


def test_a_random_full_core_is_not_reproduced_by_rank_one():
  """The check above can fail: a generic (d+1) x (d+1) core slice has rank > 1, so R = 1 cannot match it."""
  rng = np.random.default_rng(0)
  core = rng.normal(size=(2, 4, 4))
  with jax.enable_x64(True):
    params, _, _ = _factor_params(rng, (3, 3), 1, 2)
    v, a = jnp.asarray(rng.normal(size=(1, 6, 3))), jnp.asarray(rng.normal(size=(1, 6, 3)))
    ours = fusion.LowRankFusion(rank=1, features=2).apply({"params": params}, [v, a])
    assert not np.allclose(np.asarray(ours), np.asarray(fusion.full_tensor_fusion(core, params["bias"], [v, a])))
  assert np.linalg.matrix_rank(core[0]) > 1


def test_one_modality_is_a_linear_map_and_cost_is_linear_in_rank():
  rng = np.random.default_rng(1)
  with jax.enable_x64(True):
    params, factors, weights = _factor_params(rng, (4,), 5, 3)
    x = jnp.asarray(rng.normal(size=(1, 2, 4)))
    out = fusion.LowRankFusion(rank=5, features=3).apply({"params": params}, [x])
    w = np.einsum("irk,r->ik", factors[0], weights)  # sum_r lambda_r w^(r): one (d + 1, d_h) matrix
    expected = np.concatenate([np.asarray(x), np.ones((1, 2, 1))], -1) @ w + np.asarray(params["bias"])
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-10)
  module = fusion.LowRankFusion(rank=8, features=16)
  shapes = jax.eval_shape(module.init, jax.random.key(0), [jnp.zeros((1, 2, 32)), jnp.zeros((1, 2, 32))])
  count = sum(np.prod(s.shape) for s in jax.tree.leaves(shapes))
  assert count == 2 * (32 + 1) * 8 * 16 + 8 + 16  # O(R d d_h), not the (d + 1)^2 d_h of the full core


def test_rank_must_be_positive():
  with pytest.raises(ValueError, match="rank"):
    fusion.LowRankFusion(rank=0, features=2).init(jax.random.key(0), [jnp.zeros((1, 2, 3))])
