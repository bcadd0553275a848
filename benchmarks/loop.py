"""The training loop's cost: one epoch of a unit through `iptnet_jax.loop.run` vs the bare step loop over the same
batches (same jitted step, same state, interleaved rounds).

Rows per trainer (the SM alone on the demo's synthetic videos; the joint iPTNet step on the iPTNet demo's smoke
sizes with 40 videos, an sm_data pass of 8 steps):
  * steps: the loop's own `train_seconds` of the epoch (the step loop plus its end-of-epoch finiteness check)
    against the bare loop; the loop must not slow the steps (same-run ratio >= 0.97);
  * epoch: the whole `loop.run` call (the epoch plus the state checkpoint, the metric rows and the record),
    the per-epoch price of exact resume.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from benchmarks import common
from iptnet_jax import loop, run_dir


class _OnePhase(loop.Unit):
  """A unit's first training phase alone, without evaluation (what is timed is training)."""

  def __init__(self, unit: loop.Unit, phase: loop.Phase):
    self.inner = unit
    self.initial = unit.init_state()  # built (and its init functions compiled) once, outside the timings
    self.name, self.label, self.context = unit.name, unit.label, unit.context
    self.phases = [phase]
    self.total_epochs, self.learning_rates, self.loss_prefix = 1, unit.learning_rates, unit.loss_prefix

  def init_state(self):
    return jax.tree.map(jnp.copy, self.initial)  # a fresh copy: the step donates its state

  def data_rng(self):
    return self.inner.data_rng()

  def batches(self, phase, rng):
    return self.inner.batches(phase, rng)

  def num_batches(self, phase):
    return self.inner.num_batches(phase)

  def train_step(self, state, batch):
    return self.inner.train_step(state, batch)

  def finish(self, state, outcome):
    return {}


class _OneUnitTask(loop.Task):
  def __init__(self, unit: loop.Unit):
    self._unit = unit

  def num_units(self):
    return 1

  def unit(self, index):
    return self._unit

  def report(self, results):
    return {}


def _measure(name: str, config, make_task, phase: loop.Phase, repeats: int) -> tuple[list[common.Row], dict]:
  scratch = Path(tempfile.mkdtemp(prefix="iptnet_loop_bench_"))
  try:
    task = make_task(config, scratch / "data")
    unit = _OnePhase(task.unit(0), phase)
    state_holder = {"state": unit.init_state()}
    loop_train_seconds = []

    def bare():
      state = state_holder["state"]
      start = time.perf_counter()
      steps = 0
      for batch in unit.batches(phase, unit.data_rng()):
        state, metrics = unit.train_step(state, batch)
        steps += 1
      jax.block_until_ready((state, metrics))
      state_holder["state"] = state
      return time.perf_counter() - start

    def through_loop():
      workdir = scratch / f"run_{len(loop_train_seconds)}"
      with run_dir.claimed(workdir, config) as info:
        run_dir.record(info, config)
      start = time.perf_counter()
      loop.run(_OneUnitTask(unit), info)
      elapsed = time.perf_counter() - start
      row = json.loads((workdir / loop.METRICS_FILE).read_text().splitlines()[-1])
      loop_train_seconds.append(row["train_seconds"])
      shutil.rmtree(workdir)
      return elapsed

    timings = common.interleaved({"bare": bare, "loop": through_loop}, repeats=repeats, warmup=1)
    loop_train_seconds = loop_train_seconds[1:]  # the warm-up round
    steps = common.Timing(loop_train_seconds)
    bare_t, epoch_t = timings["bare"], timings["loop"]
    steps_ratio = bare_t.median / steps.median
    rows = [
        common.Row("loop", f"{name}: step loop inside loop.run", steps.median, "s/epoch",
                   f"{steps_ratio:.3f} of bare speed (goal >= 0.97); {common.paired_ratio(steps, bare_t)}",
                   f"bare {bare_t.median:.3g} s; {steps.spread()}"),
        common.Row("loop", f"{name}: loop.run epoch incl. state save + rows", epoch_t.median, "s/epoch",
                   f"{epoch_t.median / bare_t.median:.2f}x bare", epoch_t.spread()),
    ]
    return rows, {"bare": bare_t.to_json(), "loop_steps": steps.to_json(), "loop_epoch": epoch_t.to_json(),
                  "steps_ratio": steps_ratio}
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def run(args) -> tuple[list[common.Row], dict]:
  from configs import demo, iptnet_demo
  from iptnet_jax.iptnet import train as iptnet_train
  from iptnet_jax.sm import train as sm_train

  repeats = max(args.repeats, 3)
  sm_config = demo.get_config("smoke" if args.quick else "default")
  sm_rows, sm_record = _measure("SM (demo)", sm_config, sm_train.SMTask, loop.Phase(1, evaluate=False), repeats)
  joint_config = iptnet_demo.get_config("smoke")
  joint_config.data.synthetic.num_videos = 10 if args.quick else 40  # 8 steps of 4 videos per sm_data pass
  joint_rows, joint_record = _measure("joint sm_data (iPTNet demo smoke)", joint_config, iptnet_train.IPTNetTask,
                                      loop.Phase(1, "sm_data", evaluate=False), repeats)
  return sm_rows + joint_rows, {"sm": sm_record, "joint": joint_record}
