"""DSNet-AF model: parameter count, masking / padding invariance, dropout behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iptnet_jax.sm import model as sm_model


def _small_model(**kw):
  return sm_model.DSNetAF(num_hidden=16, num_heads=4, attention_dim=32, **kw)


def test_default_parameter_count_matches_dsnet():
  model = sm_model.DSNetAF()
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 1024)), jnp.ones((1, 8)),
                                             deterministic=True))
  # reference_spec.md §2.4: 4,194,304 + 2,048 + 131,200 + 256 + 129 + 258 + 129.
  assert sum(x.size for x in jax.tree.leaves(shapes["params"])) == 4_328_324


def test_outputs_in_padded_batch_equal_outputs_alone():
  model = _small_model()
  rng = np.random.default_rng(0)
  lengths = [7, 13, 4]
  videos = [rng.normal(size=(n, 24)).astype(np.float32) for n in lengths]
  params = model.init(jax.random.key(1), jnp.zeros((1, 5, 24)), jnp.ones((1, 5)), deterministic=True)["params"]

  padded = np.zeros((3, 16, 24), np.float32)
  mask = np.zeros((3, 16), np.float32)
  for i, v in enumerate(videos):
    padded[i, :len(v)] = v
    mask[i, :len(v)] = 1
  padded[:, :, :] += (mask[..., None] == 0) * 5.0  # garbage in the padding must not matter
  batched = model.apply({"params": params}, padded, mask, deterministic=True)
  for i, v in enumerate(videos):
    alone = model.apply({"params": params}, v[None], np.ones((1, len(v)), np.float32), deterministic=True)
    for key in ("cls_logits", "log_offsets", "ctr_logits"):
      np.testing.assert_allclose(batched[key][i, :len(v)], alone[key][0], atol=1e-5, rtol=1e-5)


def test_masked_keys_do_not_change_attention_but_unmasked_would():
  model = _small_model()
  x = np.random.default_rng(2).normal(size=(1, 10, 24)).astype(np.float32)
  params = model.init(jax.random.key(3), x, np.ones((1, 10)), deterministic=True)["params"]
  mask = np.ones((1, 10), np.float32)
  mask[0, 6:] = 0
  changed = x.copy()
  changed[0, 6:] *= -3
  a = model.apply({"params": params}, x, mask, deterministic=True)["cls_logits"][0, :6]
  b = model.apply({"params": params}, changed, mask, deterministic=True)["cls_logits"][0, :6]
  np.testing.assert_allclose(a, b, atol=1e-6)
  c = model.apply({"params": params}, changed, np.ones((1, 10)), deterministic=True)["cls_logits"][0, :6]
  assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3


def test_dropout_active_only_when_not_deterministic():
  model = _small_model()
  x = np.random.default_rng(4).normal(size=(1, 12, 24)).astype(np.float32)
  mask = np.ones((1, 12), np.float32)
  params = model.init(jax.random.key(5), x, mask, deterministic=True)["params"]
  det = [model.apply({"params": params}, x, mask, deterministic=True)["cls_logits"] for _ in range(2)]
  np.testing.assert_array_equal(det[0], det[1])
  train = [model.apply({"params": params}, x, mask, deterministic=False, rngs={"dropout": jax.random.key(s)})
           ["cls_logits"] for s in (6, 7)]
  assert np.abs(np.asarray(train[0]) - np.asarray(train[1])).max() > 1e-4


def test_torch_default_init_bounds():
  model = sm_model.DSNetAF(num_hidden=128, num_heads=8, attention_dim=64)
  params = model.init(jax.random.key(0), jnp.zeros((1, 4, 256)), jnp.ones((1, 4)), deterministic=True)["params"]
  kernel = np.asarray(params["fc1_linear"]["kernel"])
  bias = np.asarray(params["fc1_linear"]["bias"])
  bound = 1 / np.sqrt(256)
  assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
  assert np.abs(kernel).max() > 0.9 * bound  # uniform over the full range, not a narrow normal


def test_heads_not_divisible_is_a_clear_error():
  model = sm_model.DSNetAF(num_hidden=8, num_heads=3, attention_dim=32)
  with pytest.raises(ValueError, match="attention_dim"):
    model.init(jax.random.key(0), jnp.zeros((1, 4, 16)), jnp.ones((1, 4)), deterministic=True)


def test_bfloat16_computes_the_matmuls_in_bf16_and_stays_close_to_float32():
  """model.compute_dtype='bfloat16': same float32 parameters, bf16 dots in the compiled graph, float32 outputs
  within bf16 rounding of the float32 model's."""
  x = np.random.default_rng(3).normal(size=(2, 12, 24)).astype(np.float32)
  mask = np.ones((2, 12), np.float32)
  mask[1, 9:] = 0
  full, mixed = _small_model(), _small_model(dtype=jnp.bfloat16)
  params = full.init(jax.random.key(0), x, mask, deterministic=True)["params"]
  mixed_params = mixed.init(jax.random.key(0), x, mask, deterministic=True)["params"]
  assert jax.tree.map(lambda a: (a.shape, a.dtype), params) == jax.tree.map(lambda a: (a.shape, a.dtype),
                                                                           mixed_params)

  apply = lambda model: jax.jit(lambda p, f, m: model.apply({"params": p}, f, m, deterministic=True))
  hlo = apply(mixed).lower(params, x, mask).as_text()
  assert "bf16" in hlo and "bf16" not in apply(full).lower(params, x, mask).as_text()
  reference, approx = apply(full)(params, x, mask), apply(mixed)(params, x, mask)
  for key in ("cls_logits", "log_offsets", "ctr_logits", "hidden"):
    assert approx[key].dtype == jnp.float32, key
    error = np.abs(np.asarray(approx[key]) - np.asarray(reference[key]))[mask > 0]
    assert 0 < error.max() < 0.1, (key, error.max())  # bf16 keeps 8 bits of mantissa: ~0.4 % per rounding


def test_bfloat16_masking_still_hides_padding():
  model = _small_model(dtype=jnp.bfloat16)
  rng = np.random.default_rng(4)
  video = rng.normal(size=(6, 24)).astype(np.float32)
  params = model.init(jax.random.key(1), video[None], np.ones((1, 6)), deterministic=True)["params"]
  padded = np.concatenate([video, np.full((4, 24), 7.0, np.float32)])[None]
  mask = np.concatenate([np.ones(6), np.zeros(4)]).astype(np.float32)[None]
  alone = model.apply({"params": params}, video[None], np.ones((1, 6), np.float32), deterministic=True)
  batched = model.apply({"params": params}, padded, mask, deterministic=True)
  np.testing.assert_allclose(batched["cls_logits"][0, :6], alone["cls_logits"][0], atol=2e-2)
