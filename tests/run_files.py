"""What the tests of the training loop, run_dir and run_log share: the SM demo's smoke config as they run it,
the command line they start, and readers of a run's files (results and metric rows without what legitimately
differs between runs, TensorBoard scalars)."""

import json
import subprocess
import sys
from pathlib import Path

from configs import demo

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4


def smoke_config(**train_fields):
  config = demo.get_config("smoke")
  config.train.epochs = EPOCHS
  config.train.checkpoint_every_steps = 1
  for name, value in train_fields.items():
    config.train[name] = value
  return config


def start_main(workdir: Path, *args: str, **popen) -> subprocess.Popen:
  """`python -m iptnet_jax.main` on smoke_config's settings in `workdir`, started, not waited for."""
  command = [sys.executable, "-m", "iptnet_jax.main", "--config=configs/demo.py:smoke", f"--workdir={workdir}",
             f"--config.train.epochs={EPOCHS}", "--config.train.checkpoint_every_steps=1", *args]
  return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def comparable_results(workdir: Path) -> dict:
  results = json.loads((workdir / "results.json").read_text())
  for split in results["splits"]:
    assert Path(split.pop("checkpoint_dir")) == workdir.absolute() / "checkpoints" / f"split_{split['index']}"
  return results


def comparable_rows(workdir: Path) -> list[dict]:
  """metrics.jsonl without what legitimately differs between runs: timings, run id, resume count."""
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if not k.endswith("_seconds") and k not in ("run_id", "resume")} for r in rows]


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
  """Scalars of TensorBoard event files: TFRecord framing (length, crc, Event proto, crc), read here directly."""
  from tensorboardX.proto import event_pb2

  scalars = {}
  for path in sorted(logdir.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      length = int.from_bytes(data[offset:offset + 8], "little")
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars
