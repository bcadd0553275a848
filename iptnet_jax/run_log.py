"""Run output: per-epoch metrics as JSON lines, a progress display, and plain-text result tables."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path


class JsonlWriter:
  """Appends one JSON object per line; flushed per record so a crashed run keeps what it logged."""

  def __init__(self, path: str | os.PathLike):
    self.path = Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._file = self.path.open("a")

  def write(self, record: dict) -> None:
    self._file.write(json.dumps(record, default=float) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class Progress:
  """One status line per epoch; on a terminal, an in-place bar while the epoch runs."""

  def __init__(self, label: str, total_epochs: int, stream=None):
    self.label = label
    self.total_epochs = total_epochs
    self.stream = stream or sys.stdout
    self._interactive = self.stream.isatty()
    self._start = time.perf_counter()

  def step(self, epoch: int, done: int, total: int) -> None:
    if not self._interactive or total <= 0:
      return
    width = 24
    filled = int(width * done / total)
    self.stream.write(f"\r{self.label} epoch {epoch}/{self.total_epochs} [{'#' * filled}{'.' * (width - filled)}] "
                      f"{done}/{total}")
    self.stream.flush()

  def epoch_done(self, epoch: int, metrics: dict) -> None:
    parts = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
    elapsed = time.perf_counter() - self._start
    prefix = "\r" if self._interactive else ""
    self.stream.write(f"{prefix}{self.label} epoch {epoch}/{self.total_epochs} {parts} ({elapsed:.0f}s)\n")
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
