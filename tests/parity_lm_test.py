"""LM parity with the PyTorch restatement of VSLNet (iptnet_jax/parity/reference/vslnet_torch.py), and
upstream-checkpoint porting for VSLNet.

The porting checks need no torch; the parity checks skip without it (`pip install torch==2.13.0`). Comparisons
and tolerances are the ones `python -m iptnet_jax.parity` reports (iptnet_jax/parity/); the default-size and
no-positional-table forward cases and the loss case with upstream's padding are in the report only (same code
paths, compile time).
"""

import jax
import numpy as np
import pytest

from iptnet_jax import parity
from iptnet_jax.lm import porting
from iptnet_jax.lm.model import VSLNet

SMALL = dict(num_words=12, num_chars=9, word_dim=6, dim=8, num_heads=2, max_pos_len=16, char_dim=4,
             char_channels=(2, 3, 4, 5), visual_dim=10)


def _model(**overrides):
  return VSLNet(**{**SMALL, **overrides})


def _state_dict(model, seed=0):
  """A random upstream-layout state_dict for `model` (word and char PAD rows zero, as upstream keeps them)."""
  rng = np.random.default_rng(seed)
  state = {k: rng.normal(size=shape).astype(np.float32) for k, (_, _, shape) in porting.vslnet_key_map(model).items()}
  state[porting.VSLNET_PAD_KEY] = np.zeros((1, SMALL["word_dim"]), np.float32)
  state[porting.VSLNET_CHAR_KEY][0] = 0.0
  return state


def _mismatch(state, model) -> str:
  with pytest.raises(porting.StateDictMismatchError) as err:
    porting.vslnet_variables_from_state_dict(state, model)
  return str(err.value)


# ---------------------------------------------------------------------------------------------------
# Porting (no torch needed)

def test_key_map_has_the_upstream_names_and_layouts():
  key_map = porting.vslnet_key_map(_model())
  d, w = SMALL["dim"], SMALL["word_dim"]
  expected = {
      "embedding_net.word_emb.unk_vec": (("params", "embedding_net", "word_emb", "unk_vec"), (1, w)),
      "embedding_net.word_emb.glove_vec": (("constants", "embedding_net", "word_emb", "glove_vec"),
                                           (SMALL["num_words"] - 2, w)),
      "embedding_net.char_emb.char_emb.weight": (("params", "embedding_net", "char_emb", "char_emb", "embedding"),
                                                 (9, 4)),
      "embedding_net.char_emb.char_convs.3.0.weight": (
          ("params", "embedding_net", "char_emb", "char_convs_3", "kernel"), (5, 4, 1, 4)),
      "embedding_net.linear.conv1d.weight": (("params", "embedding_net", "linear", "conv1d", "kernel"),
                                             (d, w + 14, 1)),
      "video_affine.linear.conv1d.bias": (("params", "video_affine", "linear", "conv1d", "bias"), (d,)),
      "feature_encoder.pos_embedding.position_embeddings.weight": (
          ("params", "feature_encoder", "pos_embedding", "position_embeddings", "embedding"), (16, d)),
      "feature_encoder.conv_block.depthwise_separable_conv.2.0.weight": (
          ("params", "feature_encoder", "conv_block", "depthwise_separable_conv_2", "depthwise_conv", "kernel"),
          (d, 1, 7)),
      "feature_encoder.conv_block.depthwise_separable_conv.2.1.weight": (
          ("params", "feature_encoder", "conv_block", "depthwise_separable_conv_2", "pointwise_conv", "kernel"),
          (d, d, 1)),
      "feature_encoder.conv_block.layer_norms.1.weight": (
          ("params", "feature_encoder", "conv_block", "layer_norms_1", "scale"), (d,)),
      "feature_encoder.attention_block.out_layer.conv1d.weight": (
          ("params", "feature_encoder", "attention_block", "out_layer", "conv1d", "kernel"), (d, d, 1)),
      "feature_encoder.attention_block.layer_norm2.bias": (
          ("params", "feature_encoder", "attention_block", "layer_norm2", "bias"), (d,)),
      "cq_attention.w4mlu": (("params", "cq_attention", "w4mlu"), (1, 1, d)),
      "cq_attention.cqa_linear.conv1d.weight": (("params", "cq_attention", "cqa_linear", "conv1d", "kernel"),
                                                (d, 4 * d, 1)),
      "cq_concat.weighted_pool.weight": (("params", "cq_concat", "weighted_pool", "weight"), (d, 1)),
      "cq_concat.conv1d.conv1d.weight": (("params", "cq_concat", "conv1d", "conv1d", "kernel"), (d, 2 * d, 1)),
      "highlight_layer.conv1d.conv1d.weight": (("params", "highlight_layer", "conv1d", "conv1d", "kernel"),
                                               (1, d, 1)),
      "predictor.end_encoder.lstm.weight_hh_l0": (("params", "predictor", "end_encoder", "lstm", "weight_hh_l0"),
                                                  (4 * d, d)),
      "predictor.start_encoder.lstm.bias_ih_l0": (("params", "predictor", "start_encoder", "lstm", "bias_ih_l0"),
                                                  (4 * d,)),
      "predictor.start_block.2.conv1d.weight": (("params", "predictor", "start_block_2", "conv1d", "kernel"),
                                                (1, d, 1)),
  }
  for key, (path, shape) in expected.items():
    assert key_map[key][0] == path and tuple(key_map[key][2]) == shape, key
  assert len(key_map) == 74  # upstream VSLNet (rnn) has 75 keys; pad_vec has no variable
  assert porting.VSLNET_PAD_KEY not in key_map


def test_port_transforms_values_and_round_trips():
  model = _model()
  state = _state_dict(model)
  variables = porting.vslnet_variables_from_state_dict(state, model)
  shapes = porting.vslnet_variable_shapes(model)
  assert jax.tree.structure(variables) == jax.tree.structure(jax.tree.map(lambda s: 0, shapes))
  params = variables["params"]
  conv = state["feature_encoder.conv_block.depthwise_separable_conv.0.0.weight"]  # (d, 1, 7)
  np.testing.assert_array_equal(params["feature_encoder"]["conv_block"]["depthwise_separable_conv_0"]
                                ["depthwise_conv"]["kernel"][:, 0, :], conv[:, 0, :].T)
  char = state["embedding_net.char_emb.char_convs.2.0.weight"]  # (out, Dc, 1, k)
  np.testing.assert_array_equal(params["embedding_net"]["char_emb"]["char_convs_2"]["kernel"][0],
                                char[:, :, 0, :].transpose(2, 1, 0))
  dense = state["cq_concat.conv1d.conv1d.weight"]  # (out, in, 1)
  np.testing.assert_array_equal(params["cq_concat"]["conv1d"]["conv1d"]["kernel"], dense[:, :, 0].T)
  np.testing.assert_array_equal(params["predictor"]["end_encoder"]["lstm"]["weight_ih_l0"],
                                state["predictor.end_encoder.lstm.weight_ih_l0"])
  np.testing.assert_array_equal(variables["constants"]["embedding_net"]["word_emb"]["glove_vec"],
                                state[porting.VSLNET_GLOVE_KEY])
  back = porting.vslnet_state_dict_from_variables(variables)
  assert back.keys() == state.keys()
  for key in state:
    np.testing.assert_array_equal(back[key], state[key])


def test_missing_unexpected_and_misshapen_keys_are_named_in_one_error():
  model = _model()
  state = _state_dict(model)
  del state["cq_attention.w4C"]
  state["embedding_net.word_emb.word_emb.weight"] = np.zeros((12, 6), np.float32)
  state["predictor.start_block.0.conv1d.weight"] = np.zeros((8, 17, 1), np.float32)
  message = _mismatch(state, model)
  assert "missing keys: ['cq_attention.w4C']" in message
  assert "unexpected keys: ['embedding_net.word_emb.word_emb.weight']" in message
  assert ("predictor.start_block.0.conv1d.weight -> params/predictor/start_block_0/conv1d/kernel: checkpoint has "
          "(8, 17, 1), the configured model needs (8, 16, 1)") in message
  assert "without word vectors" in message


def test_wider_checkpoint_names_the_sizes_it_was_built_with():
  message = _mismatch(_state_dict(_model(dim=12, num_heads=2)), _model())
  assert "video_affine.linear.conv1d.weight -> params/video_affine/linear/conv1d/kernel" in message
  assert "'model.dim': 12" in message


def test_positional_table_cannot_map_into_a_model_without_one():
  message = _mismatch(_state_dict(_model()), _model(position_embedding=False))
  assert "unexpected keys: ['feature_encoder.pos_embedding.position_embeddings.weight']" in message
  assert "model.position_embedding=False" in message
  # The other way round: a checkpoint without the table for a model with one.
  message = _mismatch(_state_dict(_model(position_embedding=False)), _model())
  assert "missing keys: ['feature_encoder.pos_embedding.position_embeddings.weight']" in message


def test_pad_row_must_be_present_and_zero():
  model = _model()
  state = _state_dict(model)
  state[porting.VSLNET_PAD_KEY] = np.full((1, 6), 0.5, np.float32)
  assert "embedding_net.word_emb.pad_vec is not zero" in _mismatch(state, model)
  del state[porting.VSLNET_PAD_KEY]
  assert "missing keys: ['embedding_net.word_emb.pad_vec']" in _mismatch(state, model)


def test_char_pad_row_must_be_zero():
  # Our model zeroes PAD char lookups (upstream: padding_idx=0), so a non-zero row 0 would change the outputs.
  model = _model()
  state = _state_dict(model)
  state[porting.VSLNET_CHAR_KEY][0, 2] = 1.5
  assert ("embedding_net.char_emb.char_emb.weight[0] is not zero (max |value| 1.5): our model zeroes PAD char "
          "lookups") in _mismatch(state, model)
  state[porting.VSLNET_CHAR_KEY][0] = 0.0
  porting.vslnet_variables_from_state_dict(state, model)  # the same checkpoint with a zero PAD row ports


def test_dataparallel_prefix_is_accepted():
  model = _model()
  state = _state_dict(model)
  variables = porting.vslnet_variables_from_state_dict({f"module.{k}": v for k, v in state.items()}, model)
  np.testing.assert_array_equal(variables["params"]["cq_attention"]["w4C"], state["cq_attention.w4C"])


def test_checkpoint_path_picks_upstreams_last_step(tmp_path):
  model_dir = tmp_path / "vslnet_charades_new_128_rnn" / "model"
  model_dir.mkdir(parents=True)
  for step in (900, 1200, 150):
    (model_dir / f"vslnet_{step}.t7").touch()
  (model_dir / "configs.json").touch()
  expected = str(model_dir / "vslnet_1200.t7")
  assert porting.vslnet_checkpoint_path(model_dir) == expected
  assert porting.vslnet_checkpoint_path(model_dir.parent) == expected
  assert porting.vslnet_checkpoint_path(model_dir / "vslnet_150.t7") == str(model_dir / "vslnet_150.t7")
  with pytest.raises(FileNotFoundError, match="without upstream checkpoints"):
    porting.vslnet_checkpoint_path(tmp_path)
  with pytest.raises(FileNotFoundError, match="no such checkpoint"):
    porting.vslnet_checkpoint_path(tmp_path / "missing.t7")


# ---------------------------------------------------------------------------------------------------
# Parity with the torch restatement

@pytest.mark.parametrize("position_embedding", [True, False])
def test_restatement_state_dict_has_exactly_the_mapped_keys(torch, position_embedding):
  case = parity.LMCase("keys", **{**parity._LM_SMALL_DIMS, "max_pos_len": 16}, video_lengths=(4,),
                       query_lengths=(2,), video_bucket=4, query_bucket=2, char_len=4,
                       position_embedding=position_embedding)
  torch_model, model, _ = parity.lm_models(case)
  assert set(torch_model.state_dict()) == set(porting.vslnet_key_map(model)) | {porting.VSLNET_PAD_KEY}


def test_upstream_t7_file_loads_in_one_call(torch, tmp_path):
  torch_model, model, variables = parity.lm_models(parity.LM_SMALL)
  path = tmp_path / "model" / "vslnet_300.t7"
  path.parent.mkdir()
  torch.save(torch_model.state_dict(), path)
  loaded = porting.load_vslnet_checkpoint(porting.vslnet_checkpoint_path(tmp_path), model)
  jax.tree.map(np.testing.assert_array_equal, loaded, variables)
  with pytest.raises(porting.StateDictMismatchError, match=r"vslnet_300\.t7: .*model\.position_embedding=False"):
    porting.load_vslnet_checkpoint(path, parity.lm_model(parity.LM_NOPOS))


@pytest.mark.parametrize("case", [parity.LM_SMALL, parity.LM_LEAK, parity.LM_TRANSFORMER], ids=lambda c: c.name)
def test_each_module_and_the_network_match_torch(torch, case):
  # LM_SMALL: our default mask_conv_padding=True on a padded batch vs torch on each unpadded sample.
  # LM_LEAK: mask_conv_padding=False vs torch on the same padded batch (upstream's padding leak on both sides).
  # LM_TRANSFORMER: the transformer span predictor (the shared encoder run twice, then LayerNorms).
  rows = parity.lm_forward_rows(case)
  parity.assert_all_pass(rows)
  assert len(rows) == len(parity._LM_MODULES) + 1 + 2  # modules, network, the encoder's blocks on small inputs


def test_upstream_padding_leak_is_what_mask_conv_padding_removes(torch):
  # Our model without the mask, on a padded batch, is NOT upstream on the unpadded samples: its conv block reads
  # the padding into the last valid steps, as upstream's does (lm/model.py docstring). The per-sample comparison
  # sees that. (The LM_LEAK model and batch shapes: the compiled function of the forward test is reused.)
  import dataclasses
  torch_model, _, variables = parity.lm_models(parity.LM_SMALL)
  batch = parity.lm_batch(parity.LM_SMALL)
  ref = parity.torch_lm_intermediates(torch_model, batch, per_sample=True)
  inputs = {k: parity._padded(ref, k, batch) for k in parity._LM_TORCH_INPUTS}
  leaky = parity.lm_model(dataclasses.replace(parity.LM_SMALL, mask_conv_padding=False))
  ours = jax.device_get(parity.lm_module_fn(leaky)(variables, batch, inputs))
  n_v = int(batch["video_mask"][1].sum())  # sample 1: 21 of 32 steps
  assert np.max(np.abs(ours["start_logits"][1, :n_v] - ref[1]["start_logits"])) > 100 * parity.FORWARD_NETWORK_TOL
  # The conv block alone, on torch's input to it: 4 layers of kernel 7 reach 4 * 3 = 12 steps into the sample.
  conv = np.abs(ours["video_conv_block"][1, :n_v] - ref[1]["video_conv_block"]).max(axis=-1)
  assert conv[:n_v - 12].max() < parity.FORWARD_LAYER_TOL < conv[-1]


def test_loss_values_and_gradients_match_torch(torch):
  # The report also compares the gradient of each term separately, and the upstream-padding case.
  rows = parity.lm_loss_rows(parity.LM_SMALL, grad_terms=("loss",))
  parity.assert_all_pass(rows)
  assert len(rows) == len(parity.LM_LOSS_TERMS) + 2


_TRAJECTORIES = {}


def _trajectory(name, make):
  if name not in _TRAJECTORIES:
    _TRAJECTORIES[name] = make()
  return _TRAJECTORIES[name]


def test_trainer_step_tracks_torch_adamw_with_clipping(torch):
  ref = _trajectory("torch", parity.torch_lm_train_trajectory)
  rows = parity.lm_adam_clip_rows(_trajectory("ours", parity.lm_train_trajectory), ref)
  parity.assert_all_pass(rows)
  assert ref.grad_norms.min() > parity.LM_TRAIN["clip_norm"]  # clipping is active at every step


@pytest.mark.parametrize("optimizer, matches", [("torch.optim.AdamW", True), ("TransformersAdamW", False)])
def test_trainer_optimizer_is_torch_adamw_not_transformers_adamw(torch, optimizer, matches):
  # One update of lm.train.make_optimizer on gradients of mixed sizes. Upstream's transformers.AdamW adds eps
  # before the bias correction (lm/train.py docstring): eps 1e-6 acts as 1e-6 / sqrt(1 - 0.999) ~ 3e-5 on the
  # first step, so parameters with gradients ~1e-4 (the LSTM's recurrent weights at VSLNet's init) move ~25% less.
  # (5 steps of the trajectory test with TransformersAdamW: worst leaf 134% off.)
  import ml_collections

  from iptnet_jax.lm import train as lm_train
  from iptnet_jax.parity.reference import vslnet_torch
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(4, 6)).astype(np.float32), "bias": rng.normal(size=(6,)).astype(np.float32)}
  grads = {"w": (rng.normal(size=(4, 6)) * np.logspace(-5, -1, 6)).astype(np.float32),
           "bias": (rng.normal(size=(6,)) * 1e-4).astype(np.float32)}
  config = ml_collections.ConfigDict(dict(parity.LM_TRAIN, clip_norm=1e3))
  tx = lm_train.make_optimizer(config, total_steps=10)
  updates, _ = tx.update(grads, tx.init(params), params)
  named = {k: torch.nn.Parameter(torch.tensor(v, dtype=torch.float64)) for k, v in params.items()}  # exact p1 - p0
  groups = [{"params": [named["w"]], "weight_decay": config.weight_decay},
            {"params": [named["bias"]], "weight_decay": 0.0}]
  kind = torch.optim.AdamW if optimizer == "torch.optim.AdamW" else vslnet_torch.TransformersAdamW
  opt = kind(groups, lr=config.lr, betas=(config.b1, config.b2), eps=config.eps)
  for k, p in named.items():
    p.grad = torch.tensor(grads[k], dtype=torch.float64)
  opt.step()
  rel = max(np.linalg.norm(np.asarray(updates[k]) - (named[k].detach().numpy() - params[k]))
            / np.linalg.norm(updates[k]) for k in params)
  assert (rel < 1e-5) if matches else (rel > 0.1), rel


def test_transformer_predictor_has_upstreams_keys(torch):
  from iptnet_jax.parity.reference import vslnet_torch
  model = _model(predictor_type="transformer")
  torch_model = vslnet_torch.VSLNet(num_chars=9, word_dim=6, char_dim=4, visual_dim=10, dim=8, num_heads=2,
                                    max_pos_len=16, drop_rate=0.0, glove_vectors=torch.zeros(10, 6),
                                    char_channels=(2, 3, 4, 5), predictor="transformer")
  assert set(torch_model.state_dict()) == set(porting.vslnet_key_map(model)) | {porting.VSLNET_PAD_KEY}


def test_report_lists_the_lm_components():
  assert {"lm.forward", "lm.losses", "lm.adam_clip"} <= set(parity.COMPONENTS)
