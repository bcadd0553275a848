"""Upstream PyTorch checkpoints -> our Flax variables (and back): DSNet anchor-free (SM) and VSLNet (LM).

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

VSLNet, PyTorch version (LM), `vslnet_variables_from_state_dict` / `load_vslnet_checkpoint`:

Upstream (26hzhang/VSLNet, main_t7.py) saves `torch.save(model.state_dict(), '<model_dir>/<name>_<step>.t7')`.
The key -> Flax path table and the value transforms are in the docstring of `iptnet_jax.lm.model`; the map is
derived mechanically from the configured model's variable tree (`vslnet_torch_key`): `name_{i}` submodules
become ModuleList / Sequential indices (`char_convs_{i}` -> `char_convs.{i}.0`, `depthwise_conv` /
`pointwise_conv` -> `0` / `1`, `start_block_{0,2}` -> `start_block.{0,2}`), and `kernel`, `scale`,
`embedding` become `weight`. Values: 1x1 Conv1d weights (out, in, 1) -> Dense kernels (in, out); the depthwise
Conv1d (d, 1, k) -> (k, 1, d); char Conv2d (out, Dc, 1, k) -> (1, k, Dc, out); everything else is copied.
Which keys exist depends on the configuration (predictor type, positional table, char kernels), so a VSLNet
port always takes the configured model (or its variable shapes) and checks, before converting anything, the
key set against the model's and every shape against the model's, naming each offending key.

Keys that cannot map one to one, where our module differs:
  embedding_net.word_emb.pad_vec   no variable: our PAD row is a constant zero. The key must be present and
                                   all zero (upstream never trains it); a non-zero PAD row is an error.
  embedding_net.char_emb.char_emb.weight   row 0 (char PAD) must be all zero as well: upstream's
                                   nn.Embedding(padding_idx=0) keeps it zero, and our model zeroes PAD lookups,
                                   so a non-zero row would give other outputs than upstream's.
  embedding_net.word_emb.glove_vec the frozen GloVe rows go to the 'constants' collection
                                   (constants/embedding_net/word_emb/glove_vec), not to 'params'.
  *.pos_embedding.position_embeddings.weight   absent from models built with position_embedding=False (the
                                   iPTNet LM): such a model cannot take an upstream checkpoint (unexpected key).
  embedding_net.word_emb.word_emb.weight       upstream VSLNet built without word vectors (a trainable
                                   nn.Embedding): no counterpart (our word table is always PAD/UNK/GloVe).
  predictor.encoder.*, predictor.{start,end}_layer_norm.*   the 'transformer' predictor: maps only into a
                                   model with model.predictor='transformer'.
The released iPTNet LM ("LocNets": DSNet-style attention without biases, char kernels (1, 3, 3)) is a
different network; its checkpoints fail with their keys listed.

This module never imports torch at import time; `load_torch_checkpoint` imports it when called (and jax only
when a VSLNet module's variable shapes are needed).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping

import numpy as np

from iptnet_jax.errors import InputError, MissingDependencyError

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
# Containers under which training scripts commonly nest a state_dict (upstream DSNet uses none).
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


class StateDictMismatchError(InputError):
  """A state_dict whose keys or shapes do not fit DSNetAF; the message lists every offending key."""


class CheckpointNotFoundError(InputError, FileNotFoundError):
  """`init_from` (or a checkpoint path) names no checkpoint file; the message gives the path looked for."""


def _to_numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
    value = value.detach().cpu()
    if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16
      value = value.float()
    value = value.numpy()
  return np.asarray(value)


def _normalise_keys(state_dict: Mapping, aliases: Mapping[str, str] = _KEY_ALIASES) -> dict[str, np.ndarray]:
  """Plain {key: array}: DataParallel's 'module.' prefix stripped, aliases renamed."""
  keys = list(state_dict)
  prefix = "module."
  strip = bool(keys) and all(k.startswith(prefix) for k in keys)
  out = {}
  for key, value in state_dict.items():
    name = key[len(prefix):] if strip else key
    name = aliases.get(name, name)
    if name in out:
      raise StateDictMismatchError(f"state_dict holds {name!r} twice (as {key!r} and under another spelling)")
    out[name] = _to_numpy(value)
  return out


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


def _flatten(tree: Mapping, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, prefix + (key,)))
    else:
      flat[prefix + (key,)] = value
  return flat


def _key_problems(state: Mapping, expected) -> tuple[list[str], list[str], list[str]]:
  """(missing keys, unexpected keys, the problem lines that name them) of a state_dict against `expected`."""
  missing = [k for k in expected if k not in state]
  unexpected = sorted(k for k in state if k not in expected)
  problems = [f"{what} keys: {keys}" for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
  return missing, unexpected, problems


def _check(state: dict[str, np.ndarray], reference_params: Mapping | None) -> None:
  """Raises one StateDictMismatchError naming every missing / unexpected key and every bad shape."""
  missing, _, problems = _key_problems(state, DSNET_AF_KEYS)
  if not missing:
    # Widths are read off the checkpoint; every other tensor must agree with them.
    first_dim = lambda key: (state[key].shape[:1] or (0,))[0]
    want = expected_shapes(first_dim("layer_norm.weight"), first_dim("base_model.Q.weight"),
                           first_dim("fc1.0.weight"))
    bad = [f"{k}: got {tuple(state[k].shape)}, expected {want[k]}" for k in DSNET_AF_KEYS
           if tuple(state[k].shape) != want[k]]
    if not bad and reference_params is not None:
      flat_ref = _flatten(reference_params)
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
  state = _normalise_keys(state_dict)
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
  flat = _flatten(params)
  missing = ["/".join(p) for p in _PARAM_MAP if p not in flat]
  unexpected = sorted("/".join(p) for p in flat if p not in _PARAM_MAP)
  if missing or unexpected:
    raise StateDictMismatchError(f"params do not fit DSNetAF: missing {missing}, unexpected {unexpected}")
  return {key: np.ascontiguousarray(np.asarray(flat[path]).T if transpose else np.asarray(flat[path]))
          for path, (key, transpose) in _PARAM_MAP.items()}


def _unwrap(obj, path: str) -> Mapping:
  if not isinstance(obj, Mapping):
    raise StateDictMismatchError(f"{path}: expected a state_dict (a mapping), got {type(obj).__name__}")
  if obj and all(hasattr(v, "shape") for v in obj.values()):
    return obj
  for key in _WRAPPER_KEYS:
    if isinstance(obj.get(key), Mapping):
      return _unwrap(obj[key], path)
  raise StateDictMismatchError(
      f"{path}: not a plain state_dict (some values are not tensors) and none of {list(_WRAPPER_KEYS)} holds "
      f"one; top-level keys: {sorted(map(str, obj))[:20]}")


def load_torch_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The state_dict in a torch `.pth` file, as {key: float numpy array}.

  Assumes what upstream DSNet and VSLNet write, a plain state_dict; a state_dict nested under 'state_dict',
  'model_state_dict' or 'model' (other training scripts' habit) is unwrapped. Loads with
  `weights_only=True` (tensors and containers only, no pickled code) onto the CPU.
  """
  try:
    import torch  # noqa: PLC0415  (optional dependency: only this function needs it)
  except ImportError as err:
    raise MissingDependencyError("reading a PyTorch checkpoint needs torch; install the CPU build with "
                      "`.venv/bin/pip install torch==2.13.0` (or `pip install -e '.[parity]'`)") from err
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointNotFoundError(f"no checkpoint file at {path}")
  obj = torch.load(path, map_location="cpu", weights_only=True)
  return {str(k): _to_numpy(v) for k, v in _unwrap(obj, path).items()}


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


# ----------------------------------------------------------------------------------------------------
# VSLNet (26hzhang/VSLNet, PyTorch version)

VSLNET_PAD_KEY = "embedding_net.word_emb.pad_vec"
VSLNET_GLOVE_KEY = "embedding_net.word_emb.glove_vec"
VSLNET_CHAR_KEY = "embedding_net.char_emb.char_emb.weight"  # row 0 is the char PAD row
_GLOVE_PATH = ("constants", "embedding_net", "word_emb", "glove_vec")
# Flax submodules named `<list>_<i>` that are entries of a torch ModuleList / Sequential.
_VSLNET_INDEXED = re.compile(r"^(char_convs|depthwise_separable_conv|layer_norms|start_block|end_block)_(\d+)$")
_VSLNET_SUBLAYER = {"depthwise_conv": "0", "pointwise_conv": "1"}  # the layers of one depthwise-separable conv
_VSLNET_LEAF = {"kernel": "weight", "scale": "weight", "embedding": "weight"}
_VSLNET_SUBMODULES = {"embedding_net", "video_affine", "feature_encoder", "cq_attention", "cq_concat",
                      "highlight_layer", "predictor"}

# Flax value <- torch value, and back, per kind of tensor.
_TO_FLAX = {
    "copy": lambda w: w,
    "conv1x1": lambda w: w[:, :, 0].T,  # Conv1d (out, in, 1) -> Dense (in, out)
    "depthwise": lambda w: w.transpose(2, 1, 0),  # Conv1d groups=d (d, 1, k) -> (k, 1, d)
    "conv2d": lambda w: w.transpose(2, 3, 1, 0),  # Conv2d (out, in, 1, k) -> (1, k, in, out)
}
_TO_TORCH = {
    "copy": lambda w: w,
    "conv1x1": lambda w: w.T[:, :, None],
    "depthwise": lambda w: w.transpose(2, 1, 0),
    "conv2d": lambda w: w.transpose(3, 2, 0, 1),
}


def vslnet_torch_key(path: tuple[str, ...]) -> str:
  """The upstream state_dict key of one VSLNet variable, from its Flax path (without the collection).

  ('feature_encoder', 'conv_block', 'depthwise_separable_conv_2', 'pointwise_conv', 'kernel') ->
  'feature_encoder.conv_block.depthwise_separable_conv.2.1.weight'.
  """
  if not path or path[0] not in _VSLNET_SUBMODULES:
    raise KeyError(f"{'/'.join(path)}: not a VSLNet variable (top-level modules: {sorted(_VSLNET_SUBMODULES)})")
  parts = []
  for name in path[:-1]:
    indexed = _VSLNET_INDEXED.match(name)
    if indexed:
      parts += [indexed.group(1), indexed.group(2)] + (["0"] if indexed.group(1) == "char_convs" else [])
    else:
      parts.append(_VSLNET_SUBLAYER.get(name, name))
  parts.append(_VSLNET_LEAF.get(path[-1], path[-1]))
  return ".".join(parts)


def _vslnet_kind(path: tuple[str, ...], ndim: int) -> str:
  if path[-1] != "kernel":
    return "copy"
  kinds = {2: "conv1x1", 3: "depthwise", 4: "conv2d"}
  if ndim not in kinds:
    raise KeyError(f"{'/'.join(path)}: a {ndim}-d kernel has no torch counterpart")
  return kinds[ndim]


def _shape_of(value) -> tuple[int, ...]:
  return tuple(value.shape if hasattr(value, "shape") else np.shape(value))


@functools.lru_cache(maxsize=32)
def vslnet_variable_shapes(model) -> dict:
  """{'params', 'constants'} of a `VSLNet` module as shape structs (nothing is computed; cached per
  configuration, so do not modify the result)."""
  import jax  # noqa: PLC0415  (only the VSLNet port needs jax here)

  from iptnet_jax.lm.model import dummy_inputs  # noqa: PLC0415
  inputs = dummy_inputs(model, video_len=1, query_len=1, char_len=max(model.char_kernels))
  return jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs, deterministic=True))


def _reference_variables(model_or_variables) -> dict[tuple[str, ...], tuple[int, ...]]:
  """{(collection, *path): shape} of the configured model."""
  if hasattr(model_or_variables, "init"):  # a flax Module
    model_or_variables = vslnet_variable_shapes(model_or_variables)
  if not isinstance(model_or_variables, Mapping) or "params" not in model_or_variables:
    raise TypeError("expected a VSLNet module or its variables {'params', 'constants'} (arrays or shape structs)")
  flat = {}
  for collection in ("params", "constants"):
    for path, value in _flatten(model_or_variables.get(collection, {})).items():
      flat[(collection,) + path] = _shape_of(value)
  return flat


def vslnet_key_map(model_or_variables) -> dict[str, tuple[tuple[str, ...], str, tuple[int, ...]]]:
  """torch key -> ((collection, *Flax path), value kind, expected torch shape) for a configured VSLNet.

  `embedding_net.word_emb.pad_vec` is not in the map (no variable: see the module docstring).
  """
  key_map = {}
  for path, shape in _reference_variables(model_or_variables).items():
    if path == _GLOVE_PATH:
      key_map[VSLNET_GLOVE_KEY] = (path, "copy", shape)
      continue
    if path[0] != "params":
      raise KeyError(f"{'/'.join(path)}: unexpected variable outside 'params' (only the GloVe rows are constants)")
    kind = _vslnet_kind(path[1:], len(shape))
    key_map[vslnet_torch_key(path[1:])] = (path, kind, _TO_TORCH[kind](np.broadcast_to(0.0, shape)).shape)
  return key_map


def vslnet_hparams_of_state_dict(state: Mapping) -> dict:
  """The sizes an upstream VSLNet state_dict was built with, as far as its keys and shapes tell.

  Named like our config fields (model.dim, data.max_pos_len, ...); used to explain a mismatch.
  """
  shape = lambda key: _shape_of(state[key]) if key in state else None
  found = {}
  if (s := shape("video_affine.linear.conv1d.weight")) is not None and len(s) == 3:
    found["model.dim"], found["visual_dim"] = s[0], s[1]
  if (s := shape(VSLNET_GLOVE_KEY)) is not None and len(s) == 2:
    found["num_words (incl. PAD, UNK)"], found["word_dim"] = s[0] + 2, s[1]
  if (s := shape("embedding_net.char_emb.char_emb.weight")) is not None and len(s) == 2:
    found["num_chars"], found["model.char_dim"] = s
  convs = [shape(f"embedding_net.char_emb.char_convs.{i}.0.weight") for i in range(16)]
  convs = [s for s in convs if s is not None and len(s) == 4]
  if convs:
    found["model.char_channels"] = tuple(s[0] for s in convs)
    found["model.char_kernels"] = tuple(s[3] for s in convs)
  if (s := shape("feature_encoder.pos_embedding.position_embeddings.weight")) is not None:
    found["data.max_pos_len"] = s[0]
  else:
    found["model.position_embedding"] = False
  if any(k.startswith("predictor.encoder.") for k in state):
    found["model.predictor"] = "transformer"
  elif any(k.startswith("predictor.start_encoder.") for k in state):
    found["model.predictor"] = "rnn"
  return found


def _vslnet_hints(missing: list[str], unexpected: list[str]) -> list[str]:
  hints = []
  keys = missing + unexpected
  if any(".pos_embedding." in k for k in unexpected):
    hints.append("the checkpoint has a positional table and the configured model none "
                 "(model.position_embedding=False, as the iPTNet LM): it cannot take this checkpoint")
  if any(".pos_embedding." in k for k in missing):
    hints.append("the checkpoint has no positional table: configure model.position_embedding=False")
  if "embedding_net.word_emb.word_emb.weight" in unexpected:
    hints.append("upstream VSLNet built without word vectors (a trainable nn.Embedding) has no counterpart: our "
                 "word table is always PAD / trainable UNK / frozen GloVe")
  if any(k.startswith(("predictor.encoder.", "predictor.start_encoder.")) for k in keys):
    hints.append("the checkpoint and the configured model have different predictors (model.predictor)")
  if any(k.startswith("embedding_net.char_emb.char_convs.") for k in keys):
    hints.append("the char CNN differs (model.char_kernels / model.char_channels)")
  return hints


def _nonzero_pad_row(name: str, row: np.ndarray, token: str, ours: str) -> list[str]:
  """The problem line of a PAD row that is not zero (upstream never trains one; our model cannot hold one)."""
  if not np.any(row != 0):
    return []
  return [f"{name} is not zero (max |value| {float(np.max(np.abs(row))):.3g}): {ours}, so this checkpoint's PAD "
          f"{token} cannot be reproduced"]


def _check_vslnet(state: dict[str, np.ndarray], key_map: Mapping) -> None:
  """One StateDictMismatchError naming every missing / unexpected key, bad shape and non-zero PAD row (word and
  char)."""
  missing, unexpected, problems = _key_problems(state, sorted(set(key_map) | {VSLNET_PAD_KEY}))
  bad = [f"{key} -> {'/'.join(path)}: checkpoint has {_shape_of(state[key])}, the configured model needs {want}"
         for key, (path, _, want) in key_map.items() if key in state and _shape_of(state[key]) != tuple(want)]
  if VSLNET_PAD_KEY in state:
    pad = state[VSLNET_PAD_KEY]
    unk_shape = key_map.get("embedding_net.word_emb.unk_vec", (None, None, None))[2]
    if unk_shape is not None and _shape_of(pad) != tuple(unk_shape):
      bad.append(f"{VSLNET_PAD_KEY}: checkpoint has {_shape_of(pad)}, the configured model needs {tuple(unk_shape)}")
    else:
      problems += _nonzero_pad_row(VSLNET_PAD_KEY, pad, "word", "our PAD row is a constant zero")
  char_shape = key_map.get(VSLNET_CHAR_KEY, (None, None, None))[2]
  if char_shape is not None and VSLNET_CHAR_KEY in state and _shape_of(state[VSLNET_CHAR_KEY]) == tuple(char_shape):
    problems += _nonzero_pad_row(f"{VSLNET_CHAR_KEY}[0]", state[VSLNET_CHAR_KEY][0], "char",
                                 "our model zeroes PAD char lookups")
  if bad:
    problems.append(f"{len(bad)} shape mismatches: " + "; ".join(bad))
  if problems:
    hints = _vslnet_hints(missing, unexpected)
    sizes = f" (the checkpoint's sizes: {vslnet_hparams_of_state_dict(state)})" if missing or unexpected or bad else ""
    raise StateDictMismatchError(f"state_dict does not fit the configured VSLNet{sizes}: " + " | ".join(problems)
                                 + "".join(f" | note: {h}" for h in hints))


def vslnet_variables_from_state_dict(state_dict: Mapping, model_or_variables) -> dict:
  """{'params', 'constants'} of `iptnet_jax.lm.model.VSLNet` from an upstream VSLNet (PyTorch) state_dict.

  `model_or_variables`: the configured VSLNet module, or its variables / variable shapes ({'params',
  'constants'}, e.g. from `init_variables` or `vslnet_variable_shapes`). Keys and shapes are checked against
  it before anything is converted. Values become float32 numpy arrays; the checkpoint's GloVe rows become
  constants/embedding_net/word_emb/glove_vec. Pass both collections to `model.apply`.
  """
  key_map = vslnet_key_map(model_or_variables)
  state = _normalise_keys(state_dict, aliases={})
  _check_vslnet(state, key_map)
  variables: dict = {}
  for key, (path, kind, _) in key_map.items():
    node = variables
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = np.ascontiguousarray(_TO_FLAX[kind](state[key].astype(np.float32)))
  return variables


def vslnet_state_dict_from_variables(variables: Mapping) -> dict[str, np.ndarray]:
  """The inverse: an upstream VSLNet state_dict (numpy values, PAD row included) from {'params', 'constants'}."""
  key_map = vslnet_key_map(variables)
  if VSLNET_GLOVE_KEY not in key_map:
    raise StateDictMismatchError("variables hold no constants/embedding_net/word_emb/glove_vec: an upstream "
                                 "state_dict needs the GloVe rows")
  flat = {(c,) + p: v for c in ("params", "constants") for p, v in _flatten(variables.get(c, {})).items()}
  state = {key: np.ascontiguousarray(_TO_TORCH[kind](np.array(flat[path], np.float32)))  # writable copies
           for key, (path, kind, _) in key_map.items()}
  state[VSLNET_PAD_KEY] = np.zeros_like(state["embedding_net.word_emb.unk_vec"])
  return state


def vslnet_checkpoint_path(init_from: str | os.PathLike) -> str:
  """The checkpoint file of a `--config.init_from` value for the LM.

  A file is used as is. A folder is read as upstream's model_dir (`ckpt_t7/<run>/model`, or the run folder
  holding `model/`): the `<name>_<step>.t7` with the largest step, the one upstream's test mode loads.
  """
  init_from = os.fspath(init_from)
  if os.path.isfile(init_from):
    return init_from
  if not os.path.isdir(init_from):
    raise CheckpointNotFoundError(f"init_from={init_from!r}: no such checkpoint file or folder")
  for folder in (init_from, os.path.join(init_from, "model")):
    steps = {}
    if os.path.isdir(folder):
      for name in os.listdir(folder):
        match = re.fullmatch(r"[^_]+_(\d+)\.t7", name)
        if match:
          steps[int(match.group(1))] = os.path.join(folder, name)
    if steps:
      return steps[max(steps)]
  raise CheckpointNotFoundError(f"init_from={init_from!r}: a folder without upstream checkpoints <name>_<step>.t7 "
                                "(in it or in its model/ folder)")


def load_vslnet_checkpoint(path: str | os.PathLike, model_or_variables) -> dict:
  """{'params', 'constants'} of our VSLNet from an upstream VSLNet `.t7` / `.pth` file, in one call.

  What `--config.init_from=PATH` of the LM trainer calls; see `vslnet_variables_from_state_dict`.
  """
  try:
    return vslnet_variables_from_state_dict(load_torch_checkpoint(path), model_or_variables)
  except StateDictMismatchError as err:
    raise StateDictMismatchError(f"{os.fspath(path)}: {err}") from None
