"""Upstream VSLNet (PyTorch) checkpoints -> our Flax VSLNet variables (and back), `vslnet_variables_from_state_dict` /
`load_vslnet_checkpoint`.

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

This module never imports torch at import time (`iptnet_jax.torch_checkpoint.load_torch_checkpoint` imports it when
called), and jax only when a VSLNet module's variable shapes are needed.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping

import numpy as np

from iptnet_jax.torch_checkpoint import (CheckpointNotFoundError, StateDictMismatchError, flatten, key_problems,
                                         load_torch_checkpoint, normalise_keys)

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
    for path, value in flatten(model_or_variables.get(collection, {})).items():
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
  missing, unexpected, problems = key_problems(state, sorted(set(key_map) | {VSLNET_PAD_KEY}))
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
  state = normalise_keys(state_dict, aliases={})
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
  flat = {(c,) + p: v for c in ("params", "constants") for p, v in flatten(variables.get(c, {})).items()}
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
