"""Run output: metrics as TensorBoard event files and JSON lines, progress, and result tables.

The writers follow `clu.metric_writers.MetricWriter`'s interface (`write_scalars(step, scalars)`,
`write_hparams`, `flush`, `close`), the one the flax examples and scenic log through, without depending on clu:
clu 0.0.12 (its latest release) imports TensorFlow as soon as `clu.metric_writers` is imported, a dependency of
several hundred MB for two writers. TensorBoard's event files come from tensorboardX (TensorBoard's format
without TensorFlow).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import struct
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from iptnet_jax import fileio
from iptnet_jax.fileio import write_error


class JsonlWriter:
  """One JSON object per `write_scalars` call, appended and flushed, so a killed run keeps what it logged.

  Each row is {**context, "step": step, **scalars}; `context` (run id, resume count, split, epoch, data
  source: the fields that say where a row comes from, some of them strings) is set by the loop.
  """

  def __init__(self, path: str | os.PathLike, context: Mapping | None = None):
    self.path = Path(path)
    self.context = dict(context or {})
    try:
      self._file = self.path.open("a")
    except OSError as error:
      raise write_error(self.path, error) from None

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    try:
      self._file.write(json.dumps({**self.context, "step": int(step), **scalars}, default=float) + "\n")
      self._file.flush()
    except OSError as error:
      raise write_error(self.path, error) from None

  def write_hparams(self, hparams):  # the config is in config.json beside it
    pass

  def flush(self) -> None:
    with contextlib.suppress(OSError):
      self._file.flush()

  def close(self) -> None:
    with contextlib.suppress(OSError):
      self._file.close()


def truncate_jsonl(path: str | os.PathLike, num_rows: int) -> None:
  """Keeps the first `num_rows` rows (a resumed run drops the rows logged after its checkpoint, which it
  writes again), atomically."""
  path = Path(path)
  if not path.exists():
    return
  rows = path.read_text().splitlines(keepends=True)
  if len(rows) > num_rows:
    fileio.atomic_write_text(path, "".join(rows[:num_rows]))


class TensorboardWriter:
  """TensorBoard event files: TFRecord-framed `Event` protos (tensorboardX's protos and CRC), written unbuffered,
  so that a full disk fails at the write that hit it (tensorboardX's own writer buffers, fails at exit and
  retries from an atexit hook). `purge_step`: a resumed run's first step; TensorBoard then hides the events an
  interrupted run wrote at or after it (they are written again)."""

  def __init__(self, logdir: str | os.PathLike, purge_step: int | None = None):
    from tensorboardX.proto import event_pb2, summary_pb2
    from tensorboardX.record_writer import masked_crc32c

    self._event, self._summary, self._crc = event_pb2, summary_pb2, masked_crc32c
    self.logdir = Path(logdir)
    self.path = self.logdir / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
    try:
      self.logdir.mkdir(parents=True, exist_ok=True)
      self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as error:
      raise write_error(self.logdir, error) from None
    self._write(event_pb2.Event(wall_time=time.time(), step=purge_step or 0, file_version="brain.Event:2"))
    if purge_step is not None:
      self._write(event_pb2.Event(wall_time=time.time(), step=purge_step,
                                  session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

  def _write(self, event) -> None:
    data = event.SerializeToString()
    header = struct.pack("Q", len(data))
    record = header + struct.pack("I", self._crc(header)) + data + struct.pack("I", self._crc(data))
    try:
      os.write(self._fd, record)
    except OSError as error:
      raise write_error(self.path, error) from None

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    values = [self._summary.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
    self._write(self._event.Event(wall_time=time.time(), step=int(step), summary=self._summary.Summary(value=values)))

  def write_hparams(self, hparams: Mapping) -> None:  # the config is in config.json beside the event files
    pass

  def flush(self) -> None:
    pass  # unbuffered

  def close(self) -> None:
    with contextlib.suppress(OSError):
      os.close(self._fd)


class NullWriter:
  """The writers' interface, writing nothing (the other processes of a multi-host run)."""

  def __init__(self, context: Mapping | None = None):
    self.context = dict(context or {})

  def write_scalars(self, step, scalars) -> None:
    pass

  def write_hparams(self, hparams) -> None:
    pass

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


def is_interactive(stream) -> bool:
  return hasattr(stream, "isatty") and stream.isatty()


class Progress:
  """A tqdm bar (step rate, ETA) while a phase runs on a terminal; one plain line per finished phase always
  (so logs of batch jobs read the same as the terminal)."""

  def __init__(self, label: str, total_epochs: int, stream=None):
    self.label = label
    self.total_epochs = total_epochs
    self.stream = stream or sys.stdout
    self._bar = None

  def start_phase(self, epoch: int, total: int | None, initial: int = 0) -> None:
    if not is_interactive(self.stream):
      return
    import tqdm

    self._bar = tqdm.tqdm(total=total, initial=initial, desc=f"{self.label} epoch {epoch}/{self.total_epochs}",
                          file=self.stream, leave=False, unit="step", dynamic_ncols=True)

  def step(self) -> None:
    if self._bar is not None:
      self._bar.update()

  def end_phase(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def line(self, epoch: int, metrics: Mapping, seconds: float) -> None:
    self.end_phase()
    parts = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    self.stream.write(f"{self.label} epoch {epoch}/{self.total_epochs} {parts} ({seconds:.0f}s)\n")
    self.stream.flush()


def format_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
  """A fixed-width text table; floats shown with 2 decimals (callers pass percentages)."""

  def cell(value):
    if isinstance(value, float):
      return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)

  text_rows = [[cell(v) for v in row] for row in rows]
  widths = [max(len(h), *(len(r[i]) for r in text_rows)) for i, h in enumerate(headers)]
  line = lambda values: "  ".join(v.rjust(w) for v, w in zip(values, widths))
  rule = "  ".join("-" * w for w in widths)
  return "\n".join([line(headers), rule, *(line(r) for r in text_rows)])
