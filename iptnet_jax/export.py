"""Export a run's trained models as PyTorch state_dicts in the upstream projects' layouts.

  python -m iptnet_jax.export --workdir=W --to=torch --out=O

* SM (SM and iPTNet runs): DSNet anchor-free (li-plus/DSNet, `anchor_free/dsnet_af.py`, base model 'attention')
  as upstream saves it, `torch.save(model.state_dict())`, one file per split in upstream's model folder layout:
  O/dsnet_af/checkpoint/<split file name>.<split>.pt, so that upstream's `evaluate.py anchor-free --model-dir
  O/dsnet_af --splits <split file> --num-head H --num-hidden N` reads them (and `--config.init_from=O/dsnet_af`
  of our SM trainer). Upstream's attention is D x D, so model.attention_dim must equal the feature width.
  iPTNet's extra head (Gamma, the learned shift of the propagation, paper Alg. 1) has no place in DSNet-AF: it goes
  to O/iptnet/split_<N>.shift_head.pt (`fc_shift.{weight,bias}`, nn.Linear(H, 1)); DSNet-AF's outputs do not use it.
* LM (LM runs; the LM student of every iPTNet split): VSLNet, PyTorch version (26hzhang/VSLNet, `model/
  VSLNet_t7.py`) as `main_t7.py` saves it: O/vslnet/model/vslnet_<epoch>.t7 (iPTNet: O/vslnet/split_<N>/model/)
  beside the `configs.json` that its test mode reads (word_size, char_size, dims, max_pos_len, predictor). The
  iPTNet LM has no positional table (the released code's); upstream always adds one, so the export adds it as
  zeros (x + 0: the same outputs for the <= max_pos_len clips upstream feeds it). Upstream hard-codes the char
  CNN's channels (10, 20, 30, 40) and kernels (1, 2, 3, 4); another setting is written but flagged. The word and
  char ids are this project's (`vocab.json` beside the checkpoint): upstream's data preparation numbers words
  differently, so feed it ids through that vocabulary.
* O/export.json lists every file, the upstream constructor arguments and the run it came from.

The key maps and value transforms are `iptnet_jax.sm.porting`'s and `iptnet_jax.lm.porting`'s (the reverse of the
import used by init_from); tests/export_test.py loads each file into the upstream-shaped restatements
(`iptnet_jax.parity.reference`) with strict key checking and compares their outputs with ours. Needs torch
(`pip install -e '.[parity]'`).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iptnet_jax import fileio, run_models
from iptnet_jax.errors import InputError
from iptnet_jax.lm import porting as lm_porting
from iptnet_jax.sm import porting as sm_porting

UPSTREAM_CHAR_CHANNELS = (10, 20, 30, 40)
UPSTREAM_CHAR_KERNELS = (1, 2, 3, 4)
MANIFEST = "export.json"


class ExportError(InputError):
  """A run that cannot be written in the upstream layout (or torch missing); the message says why."""


def _torch():
  try:
    import torch
  except ImportError:
    raise ExportError("--to=torch needs PyTorch: `.venv/bin/pip install -e '.[parity]'` (CPU torch 2.13.0)") from None
  return torch


def _save(state: dict, path: Path) -> Path:
  torch = _torch()
  path.parent.mkdir(parents=True, exist_ok=True)
  tensors = collections.OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v, np.float32))) for k, v in state.items())
  tmp = path.with_name(f".{path.name}.tmp")
  try:
    torch.save(tensors, tmp)
    tmp.replace(path)
  except OSError as error:
    tmp.unlink(missing_ok=True)
    raise fileio.write_error(path, error) from None
  return path


def split_file_name(config) -> str:
  """The split file's name, which upstream puts in each split's checkpoint name."""
  if config.data.source == "synthetic":
    from iptnet_jax.datasets.builders import synthetic_vsumm

    return synthetic_vsumm.SPLIT_NAME
  return Path(config.data.split_file).name


def dsnet_af_state_dict(sm: run_models.SMPart, config) -> tuple[dict, dict, dict]:
  """(upstream DSNet-AF state_dict, the iPTNet shift head as nn.Linear keys (empty without), constructor args)."""
  attention_dim = int(np.shape(sm.params["base_model"]["Q"]["kernel"])[1])
  if attention_dim != sm.feature_dim:
    raise ExportError(f"config.model.attention_dim={attention_dim}: DSNet-AF's attention is num_feature x "
                      f"num_feature, so it must equal the feature width {sm.feature_dim} for upstream to hold it")
  params = {k: v for k, v in sm.params.items() if k != "fc_shift"}
  state = sm_porting.dsnet_af_state_dict_from_params(params)
  shift = {}
  if "fc_shift" in sm.params:
    shift = {"fc_shift.weight": np.asarray(sm.params["fc_shift"]["kernel"]).T,
             "fc_shift.bias": np.asarray(sm.params["fc_shift"]["bias"])}
  args = {"base_model": "attention", "num_feature": sm.feature_dim,
          "num_hidden": int(np.shape(sm.params["fc1_linear"]["kernel"])[1]), "num_head": int(config.model.num_heads)}
  return state, shift, args


def vslnet_state_dict(lm: run_models.LMPart) -> tuple[dict, list[str]]:
  """(upstream VSLNet state_dict, keys added as zeros): a model without positional tables gets zero tables, the
  same function for the inputs upstream feeds it."""
  state = lm_porting.vslnet_state_dict_from_variables(lm.variables)
  added = []
  if not lm.model.position_embedding:
    twin = dataclasses.replace(lm.model, position_embedding=True)
    for key, (_, _, shape) in lm_porting.vslnet_key_map(twin).items():
      if key not in state:
        state[key] = np.zeros(shape, np.float32)
        added.append(key)
  return state, added


def vslnet_configs(lm: run_models.LMPart, lm_config) -> dict:
  """What upstream main_t7.py's test mode reads from configs.json to build VSLNet(configs, word_vectors)."""
  m = lm.model
  return {"word_size": lm.num_words, "char_size": int(m.num_chars), "word_dim": int(m.word_dim),
          "video_feature_dim": int(m.visual_dim), "char_dim": int(m.char_dim), "dim": int(m.dim),
          "num_heads": int(m.num_heads), "drop_rate": float(m.drop_rate), "max_pos_len": int(m.max_pos_len),
          "predictor": m.predictor_type, "highlight_lambda": float(lm_config.train.highlight_lambda),
          "model_name": "vslnet", "task": "charades"}


def _write_lm(run: run_models.TrainedRun, folder: Path, manifest: dict) -> None:
  lm, lm_config = run.lm, run.lm_config
  state, added = vslnet_state_dict(lm)
  epoch = int(lm.metadata.get("epoch", 0))
  path = _save(state, folder / "model" / f"vslnet_{epoch}.t7")
  configs = vslnet_configs(lm, lm_config)
  fileio.write_json(folder / "model" / "configs.json", configs)
  entry = {"file": str(path), "configs": str(folder / "model" / "configs.json"), "upstream_args": configs,
           "zero_keys_added": added, "from": str(lm.checkpoint_dir)}
  channels, kernels = tuple(lm.model.char_channels), tuple(lm.model.char_kernels)
  if channels != UPSTREAM_CHAR_CHANNELS or kernels != UPSTREAM_CHAR_KERNELS:
    entry["upstream_loadable"] = False
    entry["note"] = (f"char CNN channels {channels} / kernels {kernels}: upstream hard-codes "
                     f"{UPSTREAM_CHAR_CHANNELS} / {UPSTREAM_CHAR_KERNELS}; load it into a VSLNet built with these")
  else:
    entry["upstream_loadable"] = True
  try:
    from iptnet_jax.localize import query_vocabulary

    word_vocab, char_vocab = query_vocabulary(run)
    fileio.write_json(folder / "vocab.json", {"word_to_id": word_vocab, "char_to_id": char_vocab})
    entry["vocab"] = str(folder / "vocab.json")
  except InputError as error:  # the LM data is not where the run read it: the weights are still exported
    entry["vocab"] = f"not written: {error}"
  manifest["vslnet"].append(entry)


def export_torch(workdir: str | Path, out: str | Path) -> dict:
  workdir, out = Path(workdir), Path(out)
  _torch()
  config = run_models.read_config(workdir)
  manifest = {"workdir": str(workdir.absolute()), "task": config.get("task"), "dsnet_af": [], "iptnet_shift": [],
              "vslnet": []}
  try:
    out.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise fileio.write_error(out, error) from None
  if config.get("task") == "lm":
    run = run_models.load_run(workdir)
    manifest["run_id"] = run.run_id
    _write_lm(run, out / "vslnet", manifest)
  else:
    splits = run_models.split_indices(workdir)
    if not splits:
      run_models.load_run(workdir)  # raises, naming what is missing
    name = split_file_name(config)
    for split in splits:
      run = run_models.load_run(workdir, split)
      manifest["run_id"] = run.run_id
      state, shift, args = dsnet_af_state_dict(run.sm, config)
      path = _save(state, out / "dsnet_af" / "checkpoint" / f"{name}.{split}.pt")
      manifest["dsnet_af"].append({"split": split, "file": str(path), "upstream_args": args,
                                   "from": str(run.sm.checkpoint_dir), **run_models.brief_metadata(run.sm.metadata)})
      if shift:
        shift_path = _save(shift, out / "iptnet" / f"split_{split}.shift_head.pt")
        manifest["iptnet_shift"].append({"split": split, "file": str(shift_path),
                                         "module": f"nn.Linear({args['num_hidden']}, 1) on fc1's output"})
      if run.lm is not None:
        _write_lm(run, out / "vslnet" / f"split_{split}", manifest)
        manifest["vslnet"][-1]["split"] = split
  fileio.write_json(out / MANIFEST, manifest)
  return manifest


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m iptnet_jax.export", description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="a run's workdir")
  parser.add_argument("--to", default="torch", choices=["torch"], help="the target framework")
  parser.add_argument("--out", required=True, help="output folder")
  return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    manifest = export_torch(args.workdir, args.out)
  except InputError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  for entry in manifest["dsnet_af"]:
    print(f"DSNet-AF split {entry['split']}: {entry['file']} (DSNetAF({', '.join(f'{k}={v!r}' for k, v in entry['upstream_args'].items())}))")
  for entry in manifest["vslnet"]:
    note = "" if entry["upstream_loadable"] else f" [{entry['note']}]"
    print(f"VSLNet{' split ' + str(entry['split']) if 'split' in entry else ''}: {entry['file']}{note}")
  print(f"wrote {Path(args.out) / MANIFEST}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
