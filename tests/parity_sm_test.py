"""SM parity with the PyTorch restatement of anchor-free DSNet, and upstream-checkpoint porting.

The porting checks need no torch; the parity checks skip without it (`pip install torch==2.13.0`).
Comparisons and tolerances are the ones `python -m iptnet_jax.parity` reports (iptnet_jax/parity/).
"""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from iptnet_jax import parity, torch_checkpoint
from iptnet_jax.sm import porting
from iptnet_jax.sm import model as sm_model


def _numpy_state_dict(feature_dim=32, attention_dim=32, num_hidden=8, seed=0):
  rng = np.random.default_rng(seed)
  return {k: rng.normal(size=s).astype(np.float32)
          for k, s in porting.expected_shapes(feature_dim, attention_dim, num_hidden).items()}


def _param_shapes(feature_dim=32, num_hidden=8, num_heads=4):
  model = sm_model.DSNetAF(num_hidden=num_hidden, num_heads=num_heads, attention_dim=feature_dim)
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 4, feature_dim)), jnp.ones((1, 4)),
                                           deterministic=True))["params"]


def _mismatch_message(state_dict, **kw) -> str:
  with pytest.raises(porting.StateDictMismatchError) as err:
    porting.dsnet_af_params_from_state_dict(state_dict, **kw)
  return str(err.value)


# ---------------------------------------------------------------------------------------------------
# Porting (no torch needed)

def test_port_fills_every_param_with_transposed_linear_weights():
  state = _numpy_state_dict()
  params = porting.dsnet_af_params_from_state_dict(state, reference_params=_param_shapes())
  assert jax.tree.structure(params) == jax.tree.structure(_param_shapes())
  np.testing.assert_array_equal(params["base_model"]["Q"]["kernel"], state["base_model.Q.weight"].T)
  np.testing.assert_array_equal(params["base_model"]["fc"]["kernel"], state["base_model.fc.0.weight"].T)
  np.testing.assert_array_equal(params["fc1_linear"]["kernel"], state["fc1.0.weight"].T)
  np.testing.assert_array_equal(params["fc1_norm"]["scale"], state["fc1.3.weight"])
  np.testing.assert_array_equal(params["fc_loc"]["kernel"], state["fc_loc.weight"].T)
  back = porting.dsnet_af_state_dict_from_params(params)
  assert back.keys() == state.keys()
  for key in state:
    np.testing.assert_array_equal(back[key], state[key])


def test_missing_and_unexpected_keys_are_named_in_one_error():
  state = _numpy_state_dict()
  del state["fc1.3.bias"]
  state["fc2.weight"] = np.zeros((8, 8), np.float32)
  message = _mismatch_message(state)
  assert "missing keys: ['fc1.3.bias']" in message
  assert "unexpected keys: ['fc2.weight']" in message


def test_wrong_shape_is_named_with_got_and_expected():
  state = _numpy_state_dict()
  state["fc_loc.weight"] = np.zeros((3, 8), np.float32)
  message = _mismatch_message(state)
  assert "fc_loc.weight: got (3, 8), expected (2, 8)" in message


def test_checkpoint_wider_than_configured_model_is_named():
  message = _mismatch_message(_numpy_state_dict(num_hidden=16), reference_params=_param_shapes(num_hidden=8))
  assert "fc1.0.weight -> fc1_linear/kernel: checkpoint gives (32, 16)" in message


def test_dataparallel_prefix_and_flat_projection_key_are_accepted():
  state = _numpy_state_dict()
  renamed = {("base_model.fc.weight" if k == "base_model.fc.0.weight" else k): v for k, v in state.items()}
  prefixed = {f"module.{k}": v for k, v in renamed.items()}
  params = porting.dsnet_af_params_from_state_dict(prefixed)
  np.testing.assert_array_equal(params["base_model"]["fc"]["kernel"], state["base_model.fc.0.weight"].T)


def test_split_checkpoint_path_follows_upstream_layout(tmp_path):
  (tmp_path / "checkpoint").mkdir()
  for i in (0, 1):
    (tmp_path / "checkpoint" / f"tvsum.yml.{i}.pt").touch()
  split_file = "/anywhere/splits/tvsum.yml"
  assert porting.split_checkpoint_path(tmp_path, split_file, 1) == str(tmp_path / "checkpoint" / "tvsum.yml.1.pt")
  template = str(tmp_path / "checkpoint" / "tvsum.yml.{split}.pt")
  assert porting.split_checkpoint_path(template, split_file, 0) == str(tmp_path / "checkpoint" / "tvsum.yml.0.pt")
  single = tmp_path / "checkpoint" / "tvsum.yml.0.pt"
  assert porting.split_checkpoint_path(single, split_file, 4) == str(single)
  with pytest.raises(FileNotFoundError, match=r"tvsum\.yml\.2\.pt"):
    porting.split_checkpoint_path(tmp_path, split_file, 2)


@pytest.mark.slow  # a subprocess
def test_importing_porting_does_not_import_torch():
  code = "import sys, iptnet_jax.sm.porting, iptnet_jax.lm.porting; assert 'torch' not in sys.modules"
  subprocess.run([sys.executable, "-c", code], check=True)


def test_loading_a_checkpoint_without_torch_says_how_to_install_it(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
  with pytest.raises(ImportError, match=r"torch==2\.13\.0"):
    torch_checkpoint.load_torch_checkpoint(tmp_path / "model.pth")


# ---------------------------------------------------------------------------------------------------
# Parity with the torch restatement

@pytest.mark.parametrize("case", [parity.SM_SMALL, parity.SM_DSNET], ids=lambda c: c.name)
def test_forward_in_padded_batch_matches_torch_on_each_unpadded_video(torch, case):
  rows = parity.sm_forward_rows(case)
  parity.assert_all_pass(rows)
  assert len(rows) == 7  # 6 stages + the network outputs


def test_torch_checkpoint_file_ports_plain_or_wrapped(torch, tmp_path):
  torch_model, _, params = parity.sm_models(parity.SM_SMALL)
  torch.save(torch_model.state_dict(), tmp_path / "plain.pth")
  torch.save({"epoch": 3, "state_dict": torch_model.state_dict()}, tmp_path / "wrapped.pth")
  for name in ("plain.pth", "wrapped.pth"):
    loaded = porting.load_dsnet_af_checkpoint(tmp_path / name)
    jax.tree.map(np.testing.assert_array_equal, loaded, params)
  torch.save({"epoch": 3, "best_f1": 0.6}, tmp_path / "not_weights.pth")
  with pytest.raises(porting.StateDictMismatchError, match="not a plain state_dict"):
    porting.load_dsnet_af_checkpoint(tmp_path / "not_weights.pth")


def test_loss_values_and_gradients_match_torch(torch):
  # The full-width case (sm.losses[dsnet]) is in `python -m iptnet_jax.parity`; here it would double the
  # compile time for the same code paths (the head split at full width is covered by the forward test).
  rows = parity.sm_loss_rows(parity.SM_SMALL)
  parity.assert_all_pass(rows)
  assert len(rows) == 2 * len(parity.LOSS_TERMS)


def test_sgd_trajectory_matches_torch_sgd(torch):
  parity.assert_all_pass(parity.sm_sgd_rows())


def test_make_optimizer_trajectory_matches_torch_adam_with_weight_decay(torch):
  parity.assert_all_pass(parity.sm_adam_rows())


def test_decoupled_weight_decay_is_caught_by_the_adam_comparison(torch):
  # AdamW (decay applied outside the moments) must not pass for torch's coupled-L2 Adam: this is what the
  # Adam row guards against, and it shows the tolerance is tight enough to see it.
  adamw = optax.adamw(parity.ADAM_LR, eps=1e-8, weight_decay=parity.ADAM_WEIGHT_DECAY)
  rows = parity.sm_adam_rows(steps=3, tx=adamw, label="adamw")
  assert not any(r.passed for r in rows)


def test_report_lists_the_sm_components():
  assert {"sm.forward", "sm.losses", "sm.sgd", "sm.adam"} <= set(parity.COMPONENTS)
