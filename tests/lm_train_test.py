"""Tests for iptnet_jax/lm/train.py and configs/charades.py: optimizer rules and a short end-to-end run."""

import contextlib
import io
import json
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import charades
from iptnet_jax import checkpoint
from iptnet_jax.lm import train as lm_train
from iptnet_jax.lm.model import dummy_inputs

import pinned

REPO = Path(__file__).resolve().parents[1]

def _charades_config(variant="default"):
  return charades.get_config(variant)

def test_weight_decay_mask_follows_torch_no_decay_names():
  params = {"feature_encoder": {"conv_block": {"layer_norms_0": {"scale": 1.0, "bias": 1.0},
                                               "depthwise_separable_conv_0": {"depthwise_conv": {"kernel": 1.0}}},
                                "attention_block": {"layer_norm1": {"scale": 1.0}}},
            "predictor": {"start_encoder": {"lstm": {"weight_ih_l0": 1.0, "bias_ih_l0": 1.0}},
                          "start_block_0": {"conv1d": {"kernel": 1.0, "bias": 1.0}}},
            "embedding_net": {"word_emb": {"unk_vec": 1.0}}}
  mask = lm_train.weight_decay_mask(params)
  assert mask == {
      "feature_encoder": {"conv_block": {"layer_norms_0": {"scale": False, "bias": False},
                                         "depthwise_separable_conv_0": {"depthwise_conv": {"kernel": True}}},
                          "attention_block": {"layer_norm1": {"scale": False}}},
      "predictor": {"start_encoder": {"lstm": {"weight_ih_l0": True, "bias_ih_l0": False}},
                    "start_block_0": {"conv1d": {"kernel": True, "bias": False}}},
      "embedding_net": {"word_emb": {"unk_vec": True}}}

def test_decoupled_decay_and_linear_decay_to_zero():
  config = _charades_config().train
  tx = lm_train.make_optimizer(config, total_steps=2)
  params = {"dense": {"kernel": jnp.full((2,), 3.0), "bias": jnp.full((2,), 3.0)}}
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  state = tx.init(params)
  updates, state = tx.update(zero_grads, state, params)
  # Zero gradient: only AdamW's decoupled decay moves the kernel, by lr * wd * p; the bias is not decayed.
  np.testing.assert_allclose(updates["dense"]["kernel"], -1e-4 * 0.01 * 3.0, rtol=1e-5)
  np.testing.assert_array_equal(updates["dense"]["bias"], 0.0)
  updates, state = tx.update(zero_grads, state, params)
  np.testing.assert_allclose(updates["dense"]["kernel"], -0.5e-4 * 0.01 * 3.0, rtol=1e-5)
  updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
  np.testing.assert_array_equal(updates["dense"]["kernel"], 0.0)  # lr has reached 0 after total_steps

def test_adam_is_plain_adam_at_a_constant_lr_without_decay():
  config = _charades_config().train
  config.optimizer, config.lr, config.eps = "adam", 1e-3, 1e-8
  tx = lm_train.make_optimizer(config, total_steps=2)
  params = {"dense": {"kernel": jnp.full((2,), 3.0)}}
  state = tx.init(params)
  updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
  np.testing.assert_array_equal(updates["dense"]["kernel"], 0.0)  # no weight decay
  for _ in range(3):  # gradient 0.1 after the zero one; the lr stays 1e-3 past total_steps
    updates, state = tx.update({"dense": {"kernel": jnp.full((2,), 0.1)}}, state, params)
  m_hat = 0.1 * (1 - 0.9) * (1 + 0.9 + 0.9 ** 2) / (1 - 0.9 ** 4)  # Adam's bias-corrected moments after 4 steps
  v_hat = 0.01 * (1 - 0.999) * (1 + 0.999 + 0.999 ** 2) / (1 - 0.999 ** 4)
  np.testing.assert_allclose(updates["dense"]["kernel"], -1e-3 * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-5)

def test_config_rejects_unknown_optimizer_and_vocab_scope():
  for field, value in (("train.optimizer", "sgd"), ("data.vocab_scope", "all")):
    config = _charades_config()
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(lm_train.LMConfigError, match=rf"config.{field}='{value}': expected one of"):
      lm_train.check_lm_config(config)

def test_config_rejects_buckets_beyond_the_position_table():
  config = _charades_config()
  config.data.query_buckets = (24, 48)  # 128 words would pad to 144
  with pytest.raises(lm_train.LMConfigError, match="query_buckets"):
    lm_train.check_lm_config(config)
  lm_train.check_lm_config(_charades_config("smoke"))
  upstream = _charades_config("upstream")
  lm_train.check_lm_config(upstream)
  assert (upstream.model.mask_conv_padding, upstream.data.vocab_scope) == (False, "used")

@pytest.mark.slow  # an end-to-end run of the command line
def test_smoke_run_on_synthetic_features_beats_random_spans():
  config = _charades_config("smoke")
  if not (REPO / config.data.annotation_dir).is_dir() or not (REPO / config.data.glove_path).is_file():
    pytest.skip(f"Charades-STA annotations / GloVe not found under {REPO.parent / 'shared' / 'data'}")
  with tempfile.TemporaryDirectory() as workdir:
    # The command line on one CPU (pinned.py says why), without Charades features: SYNTHETIC ones are generated.
    done = pinned.run_smoke_on_one_cpu("charades", workdir)
    printed = done.stdout + done.stderr
    result, records = pinned.read_run(workdir)

    assert result["synthetic"]
    assert "generating SYNTHETIC features" in printed
    epoch_lines = [line for line in printed.splitlines() if "LM epoch" in line]
    assert len(epoch_lines) == config.train.epochs
    assert all(line.startswith("[synthetic features]") and "R1@0.7" in line for line in epoch_lines)
    assert "random span (expected)" in printed

    best, baseline = result["best"], result["random_baseline"]
    assert best["mIoU"] > baseline["mIoU"] + 8.0, (best, baseline)
    assert best["R1@0.5"] > baseline["R1@0.5"] + 8.0, (best, baseline)
    assert result["best"]["R1@0.7"] == max(r["test_R1@0.7"] for r in records)

    assert [r["epoch"] for r in records] == list(range(1, config.train.epochs + 1))
    assert all(r["synthetic"] and np.isfinite(r["loss"]) for r in records)
    pinned.assert_matches_pinned("charades", result, records)  # the same numbers as before the shared loop
    assert records[-1]["loss"] < records[0]["loss"]

    # The kept checkpoint is the best epoch's {'params', 'constants'}.
    model = lm_train.make_model(config, np.zeros((result["num_words"], result["word_dim"]), np.float32),
                                result["num_chars"], result["visual_dim"])
    abstract = jax.eval_shape(lambda key: model.init(
        key, *dummy_inputs(model, video_len=2, query_len=2, char_len=4), deterministic=True), jax.random.key(0))
    kept = checkpoint.BestCheckpoint(result["checkpoint_dir"])
    try:
      variables, metadata = kept.restore(abstract)
    finally:
      kept.close()
    assert metadata["epoch"] == result["best_epoch"]
    assert metadata["test_R1@0.7"] == best["R1@0.7"]
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(variables))
    assert jax.tree.structure(variables) == jax.tree.structure(abstract)

@pytest.mark.slow  # an end-to-end evaluation run of an upstream checkpoint
def test_upstream_checkpoint_is_evaluated_as_epoch_0_and_kept_unchanged():
  try:
    import torch
  except ImportError:
    pytest.skip("reading a PyTorch checkpoint needs torch")
  from iptnet_jax.lm import porting
  from iptnet_jax.datasets import charades_sta
  from iptnet_jax.lm.model import init_variables
  config = _charades_config("smoke")
  config.data.annotation_dir = str(REPO / config.data.annotation_dir)
  config.data.glove_path = str(REPO / config.data.glove_path)
  if not Path(config.data.annotation_dir).is_dir() or not Path(config.data.glove_path).is_file():
    pytest.skip(f"Charades-STA annotations / GloVe not found under {REPO.parent / 'shared' / 'data'}")
  config.data.feature_dir = "/nonexistent/charades_features"
  config.data.max_videos = 20
  config.train.epochs = 0  # evaluate the checkpoint only
  with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(io.StringIO()) as stdout:
    # An "upstream" checkpoint of the configured model, in upstream's layout and folder naming.
    feature_dir = lm_train.resolve_feature_dir(config, Path(workdir))
    dataset = charades_sta.load_charades_sta(config.data.annotation_dir, config.data.glove_path, feature_dir,
                                             max_pos_len=config.data.max_pos_len, max_videos=20)
    model = lm_train.make_model(config, dataset.word_vectors, dataset.num_chars, dataset.feature_dim)
    variables = init_variables(model, jax.random.key(7), dataset.word_vectors)
    state_dict = porting.vslnet_state_dict_from_variables(jax.device_get(variables))
    model_dir = Path(workdir) / "ckpt_t7" / "vslnet_charades_new_32_rnn" / "model"
    model_dir.mkdir(parents=True)
    torch.save({k: torch.tensor(v) for k, v in state_dict.items()}, model_dir / "vslnet_40.t7")
    config.init_from = str(model_dir.parent)

    run = Path(workdir) / "run"  # a workdir holds one run and nothing else
    result = lm_train.train_and_evaluate_lm(config, run)
    assert f"initial parameters from {model_dir / 'vslnet_40.t7'}" in stdout.getvalue()
    assert result["best_epoch"] == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0]
    kept = checkpoint.BestCheckpoint(result["checkpoint_dir"])
    try:
      restored, _ = kept.restore(jax.eval_shape(lambda: variables))
    finally:
      kept.close()
    jax.tree.map(np.testing.assert_array_equal, restored, jax.device_get(variables))

    # Word vectors of another vocabulary: refused, naming the key.
    state_dict[porting.VSLNET_GLOVE_KEY] = state_dict[porting.VSLNET_GLOVE_KEY][::-1].copy()
    torch.save({k: torch.tensor(v) for k, v in state_dict.items()}, model_dir / "vslnet_50.t7")
    with pytest.raises(porting.StateDictMismatchError, match="embedding_net.word_emb.glove_vec differs"):
      lm_train.train_and_evaluate_lm(config, Path(workdir) / "run2")

