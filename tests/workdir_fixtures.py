"""Workdirs of finished runs for the tests of the commands that read them (summarize, localize, export,
run_models): written the way the trainers write them (config.json + orbax checkpoints of freshly initialised
models, no training), with features and Charades-STA-shaped annotations generated here. The `finished_runs`
fixture (tests/conftest.py) builds one iPTNet run (splits 0 and 1) and one SM run per session."""

import json
from pathlib import Path

import numpy as np

from configs import quickstart
from iptnet_jax import run_dir, run_models
from iptnet_jax.datasets import charades_sta, text

REPO = Path(__file__).resolve().parents[1]
DIM = 16
WORDS = ["a", "person", "opens", "the", "door", "closes", "window", "sits", "on", "chair", "is", "eating", "food"]
SENTENCES = ["a person opens the door.", "the person closes the window.", "a person sits on the chair.",
             "person is eating food.", "a person opens the window.", "the person sits on a chair."]


def _config(task: str):
  config = quickstart.get_config("smoke")
  config.data.synthetic.feature_dim = DIM
  config.model.attention_dim = DIM
  config.lm.data.synthetic.dim = DIM
  config.lm.model.dim = 8
  config.lm.model.num_heads = 2
  config.lm.model.char_dim = 4
  if task == "sm":  # an SM run's config: the SM fields, task 'sm'
    config.task = "sm"
  return config


def _write_annotations(root: Path) -> None:
  """Charades-STA's files for a few generated videos, and a GloVe text file of the words."""
  (root / "charades").mkdir(parents=True)
  for split, vids in (("train", ["V1", "V2", "V3"]), ("test", ["V4"])):
    lines = [f"{vid} {1.0 + i}  {6.0 + i}##{SENTENCES[(k + i) % len(SENTENCES)]}"
             for k, vid in enumerate(vids) for i in range(2)]
    (root / "charades" / f"charades_sta_{split}.txt").write_text("\n".join(lines) + "\n")
  (root / "charades" / "charades.json").write_text(json.dumps(
      {f"V{i}": {"subset": "x", "duration": 30.0} for i in range(1, 5)}))
  rng = np.random.default_rng(0)
  (root / "glove.txt").write_text("".join(f"{w} " + " ".join(f"{x:.5f}" for x in rng.normal(size=6)) + "\n"
                                          for w in WORDS + ["."]))


def _vocabulary(root: Path):
  annotations = charades_sta.load_split_annotations(root / "charades")
  words, chars = text.count_tokens([a.words for s in charades_sta.SPLITS for a in annotations[s]])
  glove, dim = text.load_glove(root / "glove.txt", keep=set(words))
  word_vocab, vectors = text.build_word_vocab(words, glove, dim)
  return word_vocab, text.build_char_vocab(chars), vectors


def make_workdir(root: Path, task: str = "iptnet", splits=(0,)) -> Path:
  """A workdir as a finished run leaves it: config.json, run.json, results.json, selected checkpoints."""
  import dataclasses

  import jax

  from iptnet_jax import checkpoint
  from iptnet_jax.lm import train as lm_train
  from iptnet_jax.lm.model import init_variables
  from iptnet_jax.sm import train as sm_train

  workdir = root / f"run_{task}"
  data = root / "data"
  if not data.exists():
    _write_annotations(data)
  config = _config(task)
  config.lm.data.annotation_dir = str(data / "charades")
  config.lm.data.glove_path = str(data / "glove.txt")
  workdir.mkdir(parents=True)
  (workdir / run_dir.CONFIG_FILE).write_text(json.dumps(run_dir.config_as_dict(config)))
  (workdir / run_dir.RUN_FILE).write_text(json.dumps({"run_id": "test", "resumes": 0}))
  (workdir / "results.json").write_text("{}")
  model = dataclasses.replace(sm_train.make_model(config), with_shift_head=task == "iptnet")
  for split in splits:
    params = jax.device_get(sm_train.init_params(model, jax.random.key(split), DIM))
    best = checkpoint.BestCheckpoint(workdir / "checkpoints" / f"split_{split}")
    best.save(3, params, {"epoch": 3, "model": "teacher", "score": 0.5})
    best.close()
    if task == "iptnet":
      _, char_vocab, vectors = _vocabulary(data)
      lm = lm_train.make_model(config.lm, vectors, len(char_vocab), DIM)
      variables = init_variables(lm, jax.random.key(10 + split), vectors)
      run_models.save_lm_student(workdir / "checkpoints" / f"split_{split}", variables, {"epoch": 2, "steps": 9})
  return workdir


def features_file(path: Path, steps: int = 50, dim: int = DIM, seed: int = 0) -> Path:
  """A (steps, dim) float32 .npy of random features."""
  np.save(path, np.random.default_rng(seed).normal(size=(steps, dim)).astype(np.float32))
  return path


def error_line(capsys, main, argv) -> str:
  """The one stderr line of a command that refused its input (exit 1)."""
  assert main(argv) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and "\n" not in err, err
  return err


