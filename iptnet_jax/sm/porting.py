"""Upstream DSNet anchor-free (PyTorch) checkpoints -> our Flax DSNetAF params (and back).

DSNet anchor-free (SM), `dsnet_af_params_from_state_dict` / `load_dsnet_af_checkpoint`:

Upstream (li-plus/DSNet, src/anchor_free/train.py) saves `torch.save(model.state_dict(), path)` for
`DSNetAF(base_model='attention', ...)`, so a checkpoint is a plain state_dict with these keys:

  torch key                         shape     Flax path                        value transform
  base_model.{Q,K,V}.weight         (A, D)    base_model/{Q,K,V}/kernel        transpose
  base_model.fc.0.weight            (D, A)    base_model/fc/kernel             transpose
  layer_norm.{weight,bias}          (D,)      layer_norm/{scale,bias}          -
  fc1.0.{weight,bias}               (H, D)    fc1_linear/{kernel,bias}         transpose (weight)
  fc1.3.{weight,bias}               (H,)      fc1_norm/{scale,bias}            -
  fc_{cls,ctr}.{weight,bias}        (1, H)    fc_{cls,ctr}/{kernel,bias}       transpose (weight)
  fc_loc.{weight,bias}              (2, H)    fc_loc/{kernel,bias}             transpose (weight)

(D features, A attention width = D upstream, H hidden.) The attention output projection is
`nn.Sequential(Linear, Dropout)` upstream, hence `base_model.fc.0.weight`; the flattened spelling
`base_model.fc.weight` is accepted as an alias. fc1 is `Sequential(Linear, ReLU, Dropout, LayerNorm)`,
hence indices 0 and 3. The number of attention heads is not stored in a checkpoint: upstream uses 8, and
the model that receives the parameters must be configured the same (model.num_heads).

Before any value is converted, the key set and every shape are checked; a mismatch raises one
`StateDictMismatchError` listing the missing keys, the unexpected keys and the shape mismatches.
Checkpoints of the other upstream base models (lstm, bilstm, gcn, linear) therefore fail with their
keys listed as unexpected: they have no counterpart in our attention-only model.

Reading the checkpoint file is `iptnet_jax.torch_checkpoint`'s (torch imported only then).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from iptnet_jax.torch_checkpoint import (CheckpointNotFoundError, StateDictMismatchError, flatten, key_problems,
                                         load_torch_checkpoint, normalise_keys)

# Flax path -> (torch key, transpose?) for every parameter of DSNetAF.
_PARAM_MAP: dict[tuple[str, ...], tuple[str, bool]] = {
    ("base_model", "Q", "kernel"): ("base_model.Q.weight", True),
    ("base_model", "K", "kernel"): ("base_model.K.weight", True),
    ("base_model", "V", "kernel"): ("base_model.V.weight", True),
    ("base_model", "fc", "kernel"): ("base_model.fc.0.weight", True),
    ("layer_norm", "scale"): ("layer_norm.weight", False),
    ("layer_norm", "bias"): ("layer_norm.bias", False),
    ("fc1_linear", "kernel"): ("fc1.0.weight", True),
    ("fc1_linear", "bias"): ("fc1.0.bias", False),
    ("fc1_norm", "scale"): ("fc1.3.weight", False),
    ("fc1_norm", "bias"): ("fc1.3.bias", False),
    ("fc_cls", "kernel"): ("fc_cls.weight", True),
    ("fc_cls", "bias"): ("fc_cls.bias", False),
    ("fc_loc", "kernel"): ("fc_loc.weight", True),
    ("fc_loc", "bias"): ("fc_loc.bias", False),
    ("fc_ctr", "kernel"): ("fc_ctr.weight", True),
    ("fc_ctr", "bias"): ("fc_ctr.bias", False),
}
DSNET_AF_KEYS: tuple[str, ...] = tuple(key for key, _ in _PARAM_MAP.values())
# Other spellings of the same tensor -> the upstream key.
_KEY_ALIASES = {"base_model.fc.weight": "base_model.fc.0.weight"}



def expected_shapes(feature_dim: int, attention_dim: int, num_hidden: int) -> dict[str, tuple[int, ...]]:
  """The torch shape of every DSNet-AF state_dict entry."""
  d, a, h = feature_dim, attention_dim, num_hidden
  return {
      "base_model.Q.weight": (a, d), "base_model.K.weight": (a, d), "base_model.V.weight": (a, d),
      "base_model.fc.0.weight": (d, a),
      "layer_norm.weight": (d,), "layer_norm.bias": (d,),
      "fc1.0.weight": (h, d), "fc1.0.bias": (h,),
      "fc1.3.weight": (h,), "fc1.3.bias": (h,),
      "fc_cls.weight": (1, h), "fc_cls.bias": (1,),
      "fc_loc.weight": (2, h), "fc_loc.bias": (2,),
      "fc_ctr.weight": (1, h), "fc_ctr.bias": (1,),
  }


def _check(state: dict[str, np.ndarray], reference_params: Mapping | None) -> None:
  """Raises one StateDictMismatchError naming every missing / unexpected key and every bad shape."""
  missing, _, problems = key_problems(state, DSNET_AF_KEYS)
  if not missing:
    # Widths are read off the checkpoint; every other tensor must agree with them.
    first_dim = lambda key: (state[key].shape[:1] or (0,))[0]
    want = expected_shapes(first_dim("layer_norm.weight"), first_dim("base_model.Q.weight"),
                           first_dim("fc1.0.weight"))
    bad = [f"{k}: got {tuple(state[k].shape)}, expected {want[k]}" for k in DSNET_AF_KEYS
           if tuple(state[k].shape) != want[k]]
    if not bad and reference_params is not None:
      flat_ref = flatten(reference_params)
      for path, (key, transpose) in _PARAM_MAP.items():
        shape = state[key].shape[::-1] if transpose else state[key].shape
        ref = flat_ref.get(path)
        ref_shape = None if ref is None else tuple(ref.shape if hasattr(ref, "shape") else np.shape(ref))
        if ref_shape != tuple(shape):
          bad.append(f"{key} -> {'/'.join(path)}: checkpoint gives {tuple(shape)}, the configured model has "
                     f"{ref_shape}")
    if bad:
      problems.append("shape mismatches: " + "; ".join(bad))
  if problems:
    raise StateDictMismatchError("state_dict does not fit DSNetAF(base_model='attention'): " + " | ".join(problems))


def dsnet_af_params_from_state_dict(state_dict: Mapping, reference_params: Mapping | None = None) -> dict:
  """Flax params of `iptnet_jax.sm.model.DSNetAF` from an upstream DSNet-AF state_dict.

  `state_dict` maps upstream keys to torch tensors or numpy arrays. With `reference_params` (e.g. the
  freshly initialised params of the configured model) every ported shape must also equal the
  configured model's, so a config / checkpoint disagreement (num_hidden, feature width) is caught here.
  Values are converted to float32. Returns a nested dict of numpy arrays, ready for `model.apply`.
  """
  state = normalise_keys(state_dict, _KEY_ALIASES)
  _check(state, reference_params)
  params: dict = {}
  for path, (key, transpose) in _PARAM_MAP.items():
    value = state[key].astype(np.float32)
    node = params
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = np.ascontiguousarray(value.T if transpose else value)
  return params


def dsnet_af_state_dict_from_params(params: Mapping) -> dict[str, np.ndarray]:
  """The inverse: upstream state_dict (numpy values) from our Flax params."""
  flat = flatten(params)
  missing = ["/".join(p) for p in _PARAM_MAP if p not in flat]
  unexpected = sorted("/".join(p) for p in flat if p not in _PARAM_MAP)
  if missing or unexpected:
    raise StateDictMismatchError(f"params do not fit DSNetAF: missing {missing}, unexpected {unexpected}")
  return {key: np.ascontiguousarray(np.asarray(flat[path]).T if transpose else np.asarray(flat[path]))
          for path, (key, transpose) in _PARAM_MAP.items()}


def split_checkpoint_path(init_from: str | os.PathLike, split_file: str | os.PathLike, split_index: int) -> str:
  """The checkpoint file for one split, from a `--config.init_from` value.

  Upstream trains one model per split and saves `<model_dir>/checkpoint/<split file name>.<index>.pt`
  (e.g. `models/pretrain_af_basic/checkpoint/tvsum.yml.0.pt`). `init_from` may be:
  * a path containing `{split}`, formatted with the split index;
  * an upstream model_dir, or its `checkpoint/` folder: the upstream file name is appended;
  * a single file, used for every split.
  """
  init_from = os.fspath(init_from)
  if "{split}" in init_from:
    path = init_from.format(split=split_index)
  elif os.path.isdir(init_from):
    name = f"{os.path.basename(os.fspath(split_file))}.{split_index}.pt"
    nested = os.path.join(init_from, "checkpoint", name)
    path = nested if os.path.isfile(nested) else os.path.join(init_from, name)
  else:
    path = init_from
  if not os.path.isfile(path):
    raise CheckpointNotFoundError(f"init_from={init_from!r}: no checkpoint file {path} for split {split_index}")
  return path


def load_dsnet_af_checkpoint(path: str | os.PathLike, reference_params: Mapping | None = None) -> dict:
  """Flax DSNetAF params from an upstream DSNet-AF `.pth`; what `--config.init_from=PATH` should call."""
  try:
    return dsnet_af_params_from_state_dict(load_torch_checkpoint(path), reference_params)
  except StateDictMismatchError as err:
    raise StateDictMismatchError(f"{os.fspath(path)}: {err}") from None
