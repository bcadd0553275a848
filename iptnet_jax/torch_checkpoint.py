"""Reading upstream PyTorch checkpoints (state_dicts) for the ports of `sm.porting` (DSNet-AF) and `lm.porting`
(VSLNet): loading a `.pth` / `.t7` file, unwrapping and normalising its keys, and the errors both ports raise.

This module never imports torch at import time; `load_torch_checkpoint` imports it when called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from iptnet_jax.errors import InputError, MissingDependencyError

# Containers under which training scripts commonly nest a state_dict (upstream DSNet uses none).
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")

class StateDictMismatchError(InputError):
  """A state_dict whose keys or shapes do not fit the configured model; the message lists every offending key."""


class CheckpointNotFoundError(InputError, FileNotFoundError):
  """`init_from` (or a checkpoint path) names no checkpoint file; the message gives the path looked for."""


def to_numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
    value = value.detach().cpu()
    if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16
      value = value.float()
    value = value.numpy()
  return np.asarray(value)


def normalise_keys(state_dict: Mapping, aliases: Mapping[str, str]) -> dict[str, np.ndarray]:
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
    out[name] = to_numpy(value)
  return out

def flatten(tree: Mapping, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(flatten(value, prefix + (key,)))
    else:
      flat[prefix + (key,)] = value
  return flat


def key_problems(state: Mapping, expected) -> tuple[list[str], list[str], list[str]]:
  """(missing keys, unexpected keys, the problem lines that name them) of a state_dict against `expected`."""
  missing = [k for k in expected if k not in state]
  unexpected = sorted(k for k in state if k not in expected)
  problems = [f"{what} keys: {keys}" for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
  return missing, unexpected, problems

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
  return {str(k): to_numpy(v) for k, v in _unwrap(obj, path).items()}
