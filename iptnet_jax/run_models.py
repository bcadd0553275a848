"""A finished (or stopped) run read back for inference: its recorded config and its trained models.

What a workdir holds (README, 'A workdir holds one run'): `config.json`, and per unit the selected parameters in
`checkpoints/<unit>/` (`checkpoint.BestCheckpoint`):
* SM runs: `checkpoints/split_N/` the selected DSNet-AF parameters of split N;
* iPTNet runs: `checkpoints/split_N/` the selected SM (with the shift head Gamma of the propagation), and
  `checkpoints/split_N_lm/` the LM student at the end of split N's schedule, {'params', 'constants'} (the
  model the run's LM metrics were computed with; `save_lm_student`);
* LM runs: `checkpoints/lm/` the selected VSLNet {'params', 'constants'}.

`load_run(workdir, split)` rebuilds the models from the recorded config (the same `make_model` functions the
trainers use) and the widths stored in the checkpoints, so a features file of another width is refused before
anything runs. Used by `iptnet_jax.summarize`, `iptnet_jax.localize`, `iptnet_jax.export` and the plots written
after training (`iptnet_jax.plots`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import ml_collections
import numpy as np

from iptnet_jax import checkpoint, run_dir
from iptnet_jax.errors import InputError

LM_UNIT = "lm"  # the LM trainer's one unit (iptnet_jax.lm.train.LMTask.name)
LM_SUFFIX = "_lm"  # checkpoints/split_N_lm: the LM student of an iPTNet split


class RunReadError(InputError):
  """A workdir (or a part of it) that cannot be read back as a trained run; the message names the path."""


@dataclasses.dataclass
class SMPart:
  model: object  # iptnet_jax.sm.model.DSNetAF
  params: dict
  metadata: dict  # the checkpoint's: epoch, candidate model ('student' / 'teacher'), score, the epoch's metrics
  checkpoint_dir: Path
  feature_dim: int

  @property
  def has_shift_head(self) -> bool:
    return "fc_shift" in self.params


@dataclasses.dataclass
class LMPart:
  model: object  # iptnet_jax.lm.model.VSLNet
  variables: dict  # {'params', 'constants'}
  metadata: dict
  checkpoint_dir: Path
  feature_dim: int

  @property
  def num_words(self) -> int:
    return int(self.variables["constants"]["embedding_net"]["word_emb"]["glove_vec"].shape[0]) + 2


@dataclasses.dataclass
class TrainedRun:
  workdir: Path
  config: ml_collections.ConfigDict
  run_id: str
  finished: bool  # results.json exists
  split: int | None  # None for LM runs
  sm: SMPart | None
  lm: LMPart | None

  @property
  def task(self) -> str:
    return self.config.task

  @property
  def lm_config(self) -> ml_collections.ConfigDict | None:
    """The LM part of the config: the config itself for LM runs, `config.lm` for iPTNet runs."""
    if self.task == "lm":
      return self.config
    return self.config.get("lm") if self.task == "iptnet" else None

  @property
  def feature_dim(self) -> int:
    return (self.sm or self.lm).feature_dim

  def source(self) -> dict:
    """Where the predictions come from, for the JSON outputs."""
    info = {"workdir": str(self.workdir.absolute()), "run_id": self.run_id, "task": self.task,
            "finished": self.finished, "split": self.split}
    if self.sm is not None:
      info["sm_checkpoint"] = {"dir": str(self.sm.checkpoint_dir), **brief_metadata(self.sm.metadata)}
    if self.lm is not None:
      info["lm_checkpoint"] = {"dir": str(self.lm.checkpoint_dir), **brief_metadata(self.lm.metadata)}
    return info


def brief_metadata(metadata: dict) -> dict:
  """The checkpoint facts worth quoting in an output file: epoch, candidate model, score, steps."""
  return {k: metadata[k] for k in ("epoch", "model", "score", "steps") if k in metadata}


def read_config(workdir: str | Path) -> ml_collections.ConfigDict:
  workdir = Path(workdir)
  path = workdir / run_dir.CONFIG_FILE
  if not workdir.is_dir():
    raise RunReadError(f"--workdir={workdir}: no such folder (a folder written by `python -m iptnet_jax.main "
                       "--config=... --workdir=...`)")
  if not path.is_file():
    raise RunReadError(f"--workdir={workdir}: no {run_dir.CONFIG_FILE}, so it is not a run of this project")
  try:
    return ml_collections.ConfigDict(json.loads(path.read_text()))
  except (OSError, ValueError) as error:
    raise RunReadError(f"{path}: unreadable ({error})") from None


def checkpoint_units(workdir: Path) -> list[str]:
  """Unit folders under checkpoints/ that hold a saved checkpoint."""
  root = workdir / "checkpoints"
  if not root.is_dir():
    return []
  return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "state" and any(
      c.is_dir() and c.name.isdigit() for c in p.iterdir()))


def split_indices(workdir: Path) -> list[int]:
  """The splits with a selected SM checkpoint, ascending."""
  return sorted(int(name[len("split_"):]) for name in checkpoint_units(workdir)
                if name.startswith("split_") and name[len("split_"):].isdigit())


def _restore(directory: Path, what: str) -> tuple[dict, dict]:
  if not directory.is_dir() or directory.name not in checkpoint_units(directory.parents[1]):
    saved = ", ".join(checkpoint_units(directory.parents[1])) or "none"
    raise RunReadError(f"{directory}: no {what} checkpoint there (checkpoints saved in this workdir: {saved})")
  best = checkpoint.BestCheckpoint(directory)
  try:
    params, metadata = best.restore_saved()
  except (OSError, ValueError, KeyError) as error:
    raise RunReadError(f"{directory}: the {what} checkpoint is unreadable ({type(error).__name__}: {error})") from None
  finally:
    best.close()
  return params, dict(metadata or {})


def _sm_part(config: ml_collections.ConfigDict, directory: Path) -> SMPart:
  from iptnet_jax.sm import train as sm_train

  params, metadata = _restore(directory, "SM")
  try:
    feature_dim = int(np.shape(params["base_model"]["Q"]["kernel"])[0])
  except (KeyError, TypeError, IndexError):
    raise RunReadError(f"{directory}: not DSNet-AF parameters (no base_model/Q/kernel)") from None
  model = dataclasses.replace(sm_train.make_model(config), with_shift_head="fc_shift" in params)
  return SMPart(model, params, metadata, directory, feature_dim)


def _lm_part(lm_config: ml_collections.ConfigDict, directory: Path) -> LMPart:
  from iptnet_jax.lm import train as lm_train

  variables, metadata = _restore(directory, "LM")
  try:
    glove = variables["constants"]["embedding_net"]["word_emb"]["glove_vec"]
    num_chars = np.shape(variables["params"]["embedding_net"]["char_emb"]["char_emb"]["embedding"])[0]
    feature_dim = int(np.shape(variables["params"]["video_affine"]["linear"]["conv1d"]["kernel"])[0])
  except (KeyError, TypeError, IndexError):
    raise RunReadError(f"{directory}: not VSLNet variables (params + constants)") from None
  word_vectors = np.zeros((glove.shape[0] + 2, glove.shape[1]), np.float32)  # make_model reads only the shape
  model = lm_train.make_model(lm_config, word_vectors, int(num_chars), feature_dim)
  return LMPart(model, variables, metadata, directory, feature_dim)


def load_run(workdir: str | Path, split: int | None = None, *, need_sm: bool = False, need_lm: bool = False
             ) -> TrainedRun:
  """The models of `workdir`'s run: for SM / iPTNet runs those of `split` (default: the first split with a
  checkpoint), for LM runs the LM. `need_sm` / `need_lm` refuse a run without that model, naming what is there."""
  workdir = Path(workdir)
  config = read_config(workdir)
  task = config.get("task")
  run_path = workdir / run_dir.RUN_FILE
  run_id = json.loads(run_path.read_text()).get("run_id", "?") if run_path.is_file() else "?"
  finished = (workdir / "results.json").is_file()
  if task not in ("sm", "iptnet", "lm"):
    raise RunReadError(f"--workdir={workdir}: a run of task {task!r}; expected an SM, iPTNet or LM run")
  if task == "lm":
    if need_sm:
      raise RunReadError(f"--workdir={workdir}: an LM run (VSLNet alone) has no summarization module; use the "
                         "workdir of an SM or iPTNet run")
    if split is not None:
      raise RunReadError(f"--split={split}: an LM run has no splits (one LM, checkpoints/{LM_UNIT})")
    lm = _lm_part(config, workdir / "checkpoints" / LM_UNIT)
    return TrainedRun(workdir, config, run_id, finished, None, None, lm)
  splits = split_indices(workdir)
  if not splits:
    raise RunReadError(f"--workdir={workdir}: no selected checkpoint in {workdir / 'checkpoints'} (did the run "
                       "finish its first epoch?)")
  if split is None:
    split = splits[0]
  elif split not in splits:
    raise RunReadError(f"--split={split}: no checkpoint {workdir / 'checkpoints' / f'split_{split}'}; this run has "
                       f"split(s) {', '.join(map(str, splits))}")
  sm = _sm_part(config, workdir / "checkpoints" / f"split_{split}")
  lm = None
  if task == "iptnet" and config.iptnet.get("use_lm", True):
    lm_dir = workdir / "checkpoints" / f"split_{split}{LM_SUFFIX}"
    if lm_dir.is_dir() or need_lm:
      if not lm_dir.is_dir():
        raise RunReadError(f"{lm_dir}: no LM checkpoint (the split has not finished, or the run predates LM "
                           "checkpoints: rerun it with --overwrite)")
      lm = _lm_part(config.lm, lm_dir)
  elif need_lm:
    raise RunReadError(f"--workdir={workdir}: a {'SM' if task == 'sm' else 'iPTNet-L'} run has no moment "
                       "localizer; use the workdir of an LM or iPTNet run")
  return TrainedRun(workdir, config, run_id, finished, split, sm, lm)


def save_lm_student(sm_checkpoint_dir: str | Path, lm_variables: dict, metadata: dict) -> Path:
  """Saves an iPTNet split's final LM student ({'params', 'constants'}) beside the split's SM checkpoint, as
  checkpoints/split_N_lm, so that summarize / localize / export can read the LM back. Returns the folder."""
  import jax

  directory = Path(sm_checkpoint_dir).with_name(Path(sm_checkpoint_dir).name + LM_SUFFIX)
  best = checkpoint.BestCheckpoint(directory)
  with contextlib.closing(best):
    best.save(int(metadata.get("epoch", 0)), jax.device_get(lm_variables), metadata)
  return directory
