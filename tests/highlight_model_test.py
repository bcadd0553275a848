"""Highlight model (iptnet_jax/highlight/model.py): masks, padding invariance, single-modality variants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iptnet_jax.highlight.model import HighlightModel, masked_softmax


def _model(modalities, encoder):
  return HighlightModel(modalities=modalities, hidden=8, rank=2, encoder=encoder, num_layers=2, num_heads=2,
                        kernel_size=3, attention_features=4)


def _features(rng, length, modalities):
  dims = {"video": 6, "audio": 5}
  return {m: jnp.asarray(rng.normal(size=(1, length, dims[m])), jnp.float32) for m in modalities}


@pytest.mark.parametrize("encoder,modalities", [
    ("transformer", ("video", "audio")),
    ("conv", ("video", "audio")),
    ("none", ("video", "audio")),
    ("transformer", ("video",)),  # the 'w/o audio' row
    ("conv", ("audio",)),  # the 'w/o vision' row
])
def test_outputs_on_real_clips_do_not_depend_on_padding(encoder, modalities):
  rng = np.random.default_rng(0)
  length = 11
  model = _model(modalities, encoder)
  feats = _features(rng, length, modalities)
  mask = jnp.ones((1, length), bool)
  params = model.init(jax.random.key(0), feats, mask)["params"]
  ref = model.apply({"params": params}, feats, mask)
  for pad in (13,):
    # Garbage (not zeros) in the padded clips: the mask alone must keep them out.
    padded = {m: jnp.concatenate([x, jnp.asarray(rng.normal(size=(1, pad, x.shape[-1])) * 50, jnp.float32)], 1)
              for m, x in feats.items()}
    padded_mask = jnp.concatenate([mask, jnp.zeros((1, pad), bool)], 1)
    out = model.apply({"params": params}, padded, padded_mask)
    np.testing.assert_allclose(np.asarray(out["clip_logits"][:, :length]), np.asarray(ref["clip_logits"]),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["video_logit"]), np.asarray(ref["video_logit"]), rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(out["clip_logits"][:, length:]) == 0)
    assert np.all(np.asarray(out["attention"][:, length:]) == 0)
    assert float(jnp.sum(out["attention"])) == pytest.approx(1.0, rel=1e-5)


def test_the_padding_check_can_fail_without_the_mask():
  """Treating the padded clips as real changes the real clips' scores (the test above is not vacuous)."""
  rng = np.random.default_rng(1)
  model = _model(("video", "audio"), "transformer")
  feats = _features(rng, 9, ("video", "audio"))
  params = model.init(jax.random.key(0), feats, jnp.ones((1, 9), bool))["params"]
  ref = model.apply({"params": params}, feats, jnp.ones((1, 9), bool))["clip_logits"]
  padded = {m: jnp.concatenate([x, jnp.asarray(rng.normal(size=(1, 4, x.shape[-1])), jnp.float32)], 1)
            for m, x in feats.items()}
  wrong = model.apply({"params": params}, padded, jnp.ones((1, 13), bool))["clip_logits"][:, :9]
  assert not np.allclose(np.asarray(wrong), np.asarray(ref), atol=1e-4)


def test_batch_rows_are_independent():
  rng = np.random.default_rng(2)
  model = _model(("video", "audio"), "transformer")
  a, b = _features(rng, 7, ("video", "audio")), _features(rng, 7, ("video", "audio"))
  mask = jnp.array([[True] * 7, [True] * 4 + [False] * 3])
  both = {m: jnp.concatenate([a[m], b[m]], 0) for m in a}
  params = model.init(jax.random.key(0), both, mask)["params"]
  out = model.apply({"params": params}, both, mask)
  alone = model.apply({"params": params}, {m: b[m][:, :4] for m in b}, mask[1:, :4])
  np.testing.assert_allclose(np.asarray(out["clip_logits"][1, :4]), np.asarray(alone["clip_logits"][0]),
                             rtol=1e-4, atol=1e-5)


def test_dropout_only_in_training_mode():
  rng = np.random.default_rng(3)
  model = _model(("video",), "transformer")
  feats = _features(rng, 8, ("video",))
  mask = jnp.ones((1, 8), bool)
  params = model.init(jax.random.key(0), feats, mask)["params"]
  eval_a = model.apply({"params": params}, feats, mask)["clip_logits"]
  eval_b = model.apply({"params": params}, feats, mask)["clip_logits"]
  train = model.apply({"params": params}, feats, mask, deterministic=False, rngs={"dropout": jax.random.key(1)})
  np.testing.assert_array_equal(np.asarray(eval_a), np.asarray(eval_b))
  assert not np.allclose(np.asarray(train["clip_logits"]), np.asarray(eval_a))


def test_missing_modality_is_an_error():
  model = _model(("video", "audio"), "none")
  with pytest.raises(ValueError, match="audio"):
    model.init(jax.random.key(0), {"video": jnp.zeros((1, 3, 4))}, jnp.ones((1, 3), bool))


def test_masked_softmax_handles_an_empty_row():
  out = masked_softmax(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([[True, False], [False, False]]))
  np.testing.assert_allclose(np.asarray(out), [[1.0, 0.0], [0.0, 0.0]])
