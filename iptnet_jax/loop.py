"""The one training loop of the project: SM, LM and iPTNet are tasks that plug into it.

A task is a list of units (a split of the summarization data; the one LM run). A unit says how to build its
state, its schedule (`Phase`s: one pass over one data source each), its batches, its jitted step, how to
evaluate and which parameters are candidates for model selection, and what its result is. The loop owns the
rest, once for all tasks:

* epochs and steps, evaluation after the phases that ask for it, model selection (the best score so far over
  the candidates of each evaluation; ties keep the earlier model unless the unit prefers later ones, as
  VSLNet), the best parameters per unit (`checkpoint.BestCheckpoint`);
* exact resume: the latest full state (`checkpoint.StateCheckpoint`: params, optimizer state with the EMA
  teachers, step, rng) and the loop's record (position in the schedule, the data-order generator's state at
  the start of the phase, the losses of the phase so far, best-so-far, last evaluation, finished units,
  logged rows) are saved at every phase end and every `checkpoint_every_steps` steps. A rerun restores them,
  replays the phase's data order to the saved position, drops the metric rows logged after the save and ends
  with the same metrics, selections and checkpoints as an uninterrupted run (bit for bit on CPU). Finished
  units are not retrained. SIGTERM / SIGINT save at the current step and stop (`RunInterrupted`);
* metric rows (JSON lines + TensorBoard, `run_log`), progress, the final table and `results.json` (by the
  task's `report`);
* clean failures: a non-finite loss term or parameter stops the run naming unit, epoch, step, term and the
  learning rates (`TrainingDiverged`), before anything non-finite is saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from iptnet_jax import checkpoint, fileio, run_dir, run_log
from iptnet_jax.errors import InputError

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"


class TrainingDiverged(InputError):
  """A loss term or a parameter became NaN / inf: the message names where and the learning rates."""


class RunInterrupted(Exception):
  """SIGTERM / SIGINT stopped the run after saving its state; rerunning the same command resumes it."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum


@dataclasses.dataclass(frozen=True)
class Phase:
  epoch: int  # the epoch number reported (0: the starting point, evaluated without training)
  source: str | None = None  # the joint step's data source (iPTNet); None for the SM and LM trainers
  train: bool = True
  evaluate: bool = True


@dataclasses.dataclass
class Evaluation:
  metrics: dict[str, Any]  # logged (JSON lines; the numbers also to TensorBoard)
  shown: dict[str, Any]  # the progress line
  # candidate name -> (selection score, a function returning the candidate's parameters to keep if selected)
  candidates: dict[str, tuple[float, Callable[[], Any]]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Outcome:
  """What the loop tracked for a unit, handed to `Unit.finish`."""

  best: dict | None  # {"score", "epoch", "candidate", "metrics"} of the selected evaluation
  last: dict | None  # the last evaluation's metrics
  phase_losses: dict[str, dict]  # the mean losses of the last phase of each source ("train" for plain epochs)
  checkpoint_dir: str
  # every evaluation in order, {"epoch", "metrics"}: for a second selection rule reported beside the first
  # (e.g. DSNet's best epoch on test beside the validation choice)
  evaluations: list[dict] = dataclasses.field(default_factory=list)


class Unit:
  """One training run of a task (a split, the LM run). Subclasses fill in the fields and methods."""

  name: str  # folder name under checkpoints/ and tensorboard/, e.g. "split_0"
  label: str  # for messages and the progress line, e.g. "split 0"
  context: dict  # fields of every metric row, e.g. {"split": 0}
  phases: list[Phase]
  total_epochs: int
  learning_rates: dict[str, float]  # config field -> value, for the divergence message
  loss_prefix: str = ""
  ties_prefer_later: bool = False
  # Phase ends at which the full state is saved: every phase (1), every n-th (n > 1), or none (0: only at the
  # unit's end, every checkpoint_every_steps steps and on SIGTERM), for units of phases so short that a save
  # costs more than the phase; a rerun replays the phases after the last save.
  save_every_phases: int = 1

  def init_state(self):
    raise NotImplementedError

  def data_rng(self) -> np.random.Generator:
    raise NotImplementedError

  def batches(self, phase: Phase, rng: np.random.Generator) -> Iterable:
    raise NotImplementedError

  def num_batches(self, phase: Phase) -> int | None:
    return None

  def train_step(self, state, batch):
    raise NotImplementedError

  def params_of(self, state):
    return state.params

  def evaluate(self, state, phase: Phase, losses: dict) -> Evaluation:
    raise NotImplementedError

  def finish(self, state, outcome: Outcome) -> dict:
    raise NotImplementedError


class Task:
  """A task: its units (built one at a time, so finished ones cost nothing on resume) and its report."""

  def num_units(self) -> int:
    raise NotImplementedError

  def unit(self, index: int) -> Unit:
    raise NotImplementedError

  def report(self, results: list[dict]) -> dict:
    """Prints the final table and returns the summary the loop writes to results.json."""
    raise NotImplementedError


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _host_history(history: list) -> list[dict]:
  """Per-step metrics as float32 numbers (as the jitted step returns them), whether they come from the device
  or from a resumed record, so that their means are the same bits either way."""
  return [{k: np.float32(v) for k, v in step.items()} for step in jax.device_get(history)]


def _mean_losses(history: list[dict], prefix: str) -> dict[str, float]:
  if not history:
    return {}
  return {f"{prefix}{k}": float(np.mean(np.asarray([h[k] for h in history], np.float32))) for k in history[0]}


class _StopFlag:
  """SIGTERM / SIGINT set a flag the loop polls after every step; a second SIGINT interrupts at once."""

  def __init__(self):
    self.signum = None

  def __call__(self, signum, frame):
    if self.signum == signal.SIGINT and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signum = signum


@contextlib.contextmanager
def _signals_stop(flag: _StopFlag):
  if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
    yield
    return
  previous = {s: signal.signal(s, flag) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


class _UnitRun:
  """The loop over one unit's phases, with its checkpoints and writers."""

  def __init__(self, unit: Unit, index: int, workdir: Path, states: checkpoint.StateCheckpoint,
               jsonl: run_log.JsonlWriter, checkpoint_every_steps: int, stop: _StopFlag, base_record: dict):
    self.unit, self.index, self.states, self.jsonl = unit, index, states, jsonl
    self.every = checkpoint_every_steps
    self.stop = stop
    self.base_record = base_record  # finished units and the logged-row count, kept in every save
    self.best_dir = workdir / "checkpoints" / unit.name
    self.last_save = None  # where the latest saved state of this unit is, for the divergence message
    jsonl.context = {"run_id": jsonl.context["run_id"], "resume": jsonl.context["resume"], **unit.context}
    self.tb_dir = workdir / "tensorboard" / unit.name

  def _record(self, phase_index: int, step_in_phase: int, rng_state: dict, history: list, tracker: dict) -> dict:
    return {**self.base_record, "unit": self.index, "phase": phase_index, "step_in_phase": step_in_phase,
            "rng": rng_state, "history": [{k: float(v) for k, v in h.items()} for h in _host_history(history)],
            **tracker}

  def _check_finite(self, state, history: list, phase: Phase, first_step: int) -> None:
    """Raises TrainingDiverged when a loss term of `history` (steps first_step.. of the phase) or a parameter is
    not finite; called before every save and evaluation."""
    unit = self.unit
    rates = ", ".join(f"config.{k}={v!r}" for k, v in unit.learning_rates.items())
    where = f"{unit.label}, epoch {phase.epoch}" + (f" ({phase.source} phase)" if phase.source else "")
    kept = (f"the last good state ({self.last_save}) is kept in {self.states.directory}" if self.last_save else
            f"nothing of {unit.label} was saved (it diverged before its first checkpoint)")
    hint = f"{kept}; lower the learning rate(s) or check the input features for NaN / inf"
    for k, losses in enumerate(_host_history(history)):
      bad = [name for name, v in losses.items() if not math.isfinite(v)]
      if bad:
        term = next((n for n in bad if n not in ("total", "loss")), bad[0])
        raise TrainingDiverged(f"training diverged at {where}, step {first_step + k + 1} of the epoch: loss term "
                               f"'{term}' is {losses[term]} ({rates}); {hint}")
    if not bool(_all_finite(unit.params_of(state))):
      raise TrainingDiverged(f"training diverged at {where}, step {first_step + len(history)} of the epoch: the "
                             f"parameters became non-finite while the loss terms were finite ({rates}); {hint}")

  def run(self, resume: dict | None) -> dict:
    unit = self.unit
    state = unit.init_state()
    rng = unit.data_rng()
    best_checkpoint = checkpoint.BestCheckpoint(self.best_dir)
    tracker = {"best": None, "last": None, "phase_losses": {}, "evaluations": []}
    start_phase, skip, history = 0, 0, []
    if resume is not None:
      state = self.states.restore_state(state)
      rng.bit_generator.state = resume["rng"]
      tracker = {k: resume.get(k, v) for k, v in tracker.items()}  # "evaluations": absent in older records
      start_phase, skip, history = resume["phase"], resume["step_in_phase"], resume["history"]
      self.last_save = "the state this run resumed from"
      # A best checkpoint saved after the record (the run died in between) is saved again on the way.
      best_checkpoint.discard_after(tracker["best"]["epoch"] if tracker["best"] else -1)
    else:  # a unit (re)started from scratch: a best checkpoint of an attempt that died before any save is stale
      best_checkpoint.discard_after(-1)
    tb = (run_log.TensorboardWriter(self.tb_dir, purge_step=int(state.step) + 1 if resume is not None else None)
          if _is_primary() else run_log.NullWriter())
    progress = run_log.Progress(unit.label, unit.total_epochs)
    unit_start = time.perf_counter()
    try:
      for p in range(start_phase, len(unit.phases)):
        phase = unit.phases[p]
        rng_state = rng.bit_generator.state  # the phase's data order is replayed from here on resume
        if p != start_phase:
          skip, history = 0, []
        start = time.perf_counter()
        if phase.train:
          progress.start_phase(phase.epoch, unit.num_batches(phase), initial=skip)
          since_save = 0
          for k, batch in enumerate(unit.batches(phase, rng)):
            if k < skip:
              continue  # done before the save this run resumed from
            state, metrics = unit.train_step(state, batch)
            history.append(metrics)
            progress.step()
            since_save += 1
            if self.stop.signum is not None or (self.every and since_save >= self.every):
              self._check_finite(state, history, phase, 0)
              self.states.save(state, self._record(p, k + 1, rng_state, history, tracker))
              self.last_save = f"epoch {phase.epoch}, step {k + 1}"
              since_save = 0
              if self.stop.signum is not None:
                progress.end_phase()
                name = signal.Signals(self.stop.signum).name
                raise RunInterrupted(f"stopped by {name} at {unit.label}, epoch {phase.epoch}, step {k + 1}: state "
                                     f"saved in {self.states.directory}; rerun the same command to resume",
                                     self.stop.signum)
        self._check_finite(state, history, phase, 0)
        losses = _mean_losses(_host_history(history), unit.loss_prefix)
        train_seconds = time.perf_counter() - start
        tracker["phase_losses"][phase.source or "train"] = losses
        row = {"phase": p, "epoch": phase.epoch, **({"source": phase.source} if phase.source else {}),
               "steps": len(history), **losses}
        shown = {}
        if phase.evaluate:
          evaluation = unit.evaluate(state, phase, losses)
          self._select(evaluation, phase, tracker, best_checkpoint)
          tracker["last"] = evaluation.metrics
          tracker["evaluations"].append({"epoch": phase.epoch, "metrics": evaluation.metrics})
          row.update(evaluation.metrics)
          shown = evaluation.shown
        row.update(train_seconds=train_seconds, eval_seconds=time.perf_counter() - start - train_seconds)
        self.jsonl.write_scalars(int(state.step), row)
        tb.write_scalars(int(state.step), {k: v for k, v in row.items() if _is_number(v) and k != "phase"})
        self.base_record["rows"] += 1
        if phase.evaluate:
          progress.line(phase.epoch, shown, time.perf_counter() - unit_start)
        every = unit.save_every_phases
        if every == 1 or (every > 1 and (p + 1) % every == 0):
          self.states.save(state, self._record(p + 1, 0, rng.bit_generator.state, [], tracker))
          self.last_save = f"end of epoch {phase.epoch}" + (f" ({phase.source} phase)" if phase.source else "")
    finally:
      progress.end_phase()
      tb.close()
      best_checkpoint.close()
    outcome = Outcome(tracker["best"], tracker["last"], tracker["phase_losses"], str(best_checkpoint.directory),
                      tracker["evaluations"])
    return unit.finish(state, outcome)

  def _select(self, evaluation: Evaluation, phase: Phase, tracker: dict, best_checkpoint) -> None:
    if not evaluation.candidates:
      return
    # The best candidate of this evaluation (the first on ties), then against the best so far.
    name = max(evaluation.candidates, key=lambda n: evaluation.candidates[n][0])
    score, params_of = evaluation.candidates[name]
    best = tracker["best"]
    if best is None or score > best["score"] or (self.unit.ties_prefer_later and score >= best["score"]):
      tracker["best"] = {"score": score, "epoch": phase.epoch, "candidate": name, "metrics": evaluation.metrics}
      best_checkpoint.save(phase.epoch, jax.device_get(params_of()),
                           {"epoch": phase.epoch, "model": name, "score": score, **evaluation.metrics})


def _is_primary() -> bool:
  """Metric rows and results are written by one process of a multi-host run (checkpoints by all, as orbax
  requires)."""
  return jax.process_index() == 0


def _is_number(value) -> bool:
  return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def run(task: Task, info: run_dir.RunInfo, checkpoint_every_steps: int = 0) -> dict:
  """Trains every unit of `task` not finished yet in `info.workdir`, then reports; returns the summary (also in
  results.json)."""
  workdir = info.workdir
  states = checkpoint.StateCheckpoint(workdir / "checkpoints" / "state")
  try:
    record = states.record()
    finished = list(record["finished"]) if record else []
    base_record = {"finished": finished, "rows": record["rows"] if record else 0}
    if _is_primary():
      run_log.truncate_jsonl(workdir / METRICS_FILE, base_record["rows"])
    if record is not None and len(finished) < task.num_units():
      print(f"resuming the run in {workdir} (resume {info.resumes}): {len(finished)} of {task.num_units()} "
            f"unit(s) finished", flush=True)
    context = {"run_id": info.run_id, "resume": info.resumes}
    jsonl = run_log.JsonlWriter(workdir / METRICS_FILE, context) if _is_primary() else run_log.NullWriter(context)
    stop = _StopFlag()
    try:
      with _signals_stop(stop):
        for index in range(len(finished), task.num_units()):
          unit = task.unit(index)
          resume = record if record is not None and record["unit"] == index and "phase" in record else None
          result = _UnitRun(unit, index, workdir, states, jsonl, checkpoint_every_steps, stop, base_record).run(resume)
          finished.append(result)
          states.save(None, {**base_record, "unit": index + 1})
    finally:
      jsonl.close()
    summary = task.report(finished)
    fileio.write_json(workdir / RESULTS_FILE, summary)
    return summary
  finally:
    states.close()
    run_dir.release(info)
