"""What every parity component shares: tolerances, the Row type and the component registry, the comparison
helpers, training-trajectory rows, and the report (`python -m iptnet_jax.parity`). The torch restatements
themselves are the modules of `iptnet_jax.parity.reference`, imported where a comparison needs them."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable, Mapping

import jax
import numpy as np

from iptnet_jax import run_log

FORWARD_LAYER_TOL = 1e-5  # max-abs, each stage of the forward pass
FORWARD_NETWORK_TOL = 1e-4  # max-abs, the network's outputs (probabilities and offsets)
LOSS_TOL = 1e-4  # relative, loss values and gradients
TRAJECTORY_LOSS_TOL = 1e-4  # relative, per-step losses along a short training run
SGD_PARAM_TOL = 1e-4  # relative, per-leaf parameter displacement after the run
# Adam divides each gradient element by its own running RMS, so float rounding in small gradient elements
# reaches the update undamped; 1e-3 still separates coupled L2 from AdamW or no decay by > 100x.
ADAM_PARAM_TOL = 1e-3


# What every torch-less path of the parity tooling says (the reference package's ImportError, the report's exit 2).
INSTALL_HINT = ("the parity references need PyTorch: `pip install 'iptnet_jax[parity]'` (torch==2.13.0, CPU "
                "build), or `.venv/bin/pip install -e '.[parity]'` in a source checkout")


@dataclasses.dataclass(frozen=True)
class Row:
  component: str
  max_abs: float
  rel: float
  tol: float
  criterion: str  # "max-abs", "rel" or "max-abs/scale": which error is held to `tol`
  detail: str = ""
  scale: float = 1.0  # "max-abs/scale": max(1, max |ref|)

  @property
  def error(self) -> float:
    if self.criterion == "max-abs/scale":
      return self.max_abs / self.scale
    return self.max_abs if self.criterion == "max-abs" else self.rel

  @property
  def passed(self) -> bool:
    return math.isfinite(self.error) and self.error <= self.tol


COMPONENTS: dict[str, Callable[[], list[Row]]] = {}
NOTES: list[str] = []  # what the cases in the component names are; printed above the table


def register(name: str):
  def add(fn):
    if name in COMPONENTS:
      raise ValueError(f"parity component {name!r} registered twice")
    COMPONENTS[name] = fn
    return fn
  return add


# ----------------------------------------------------------------------------------------------------
# Comparison helpers

def _flat(tree) -> dict[str, np.ndarray]:
  if isinstance(tree, Mapping):
    return {f"{k}/{sub}" if sub else str(k): v for k, t in tree.items() for sub, v in _flat(t).items()}
  return {"": np.asarray(tree, np.float64)}


def _relative(diff_norm: float, ref_norm: float) -> float:
  if ref_norm == 0.0:
    return 0.0 if diff_norm == 0.0 else math.inf
  return diff_norm / ref_norm


def compare(component: str, ours, ref, tol: float, criterion: str = "max-abs") -> Row:
  """One row for two arrays, or for two trees with the same leaves (the worst leaf's relative error).

  criterion "max-abs/scale" holds max-abs / max(1, max |ref|) to `tol`: max-abs for tensors of magnitude <= 1,
  relative to the largest magnitude beyond (float32 rounding grows with the magnitude)."""
  ours, ref = _flat(ours), _flat(ref)
  if ours.keys() != ref.keys():
    raise ValueError(f"{component}: different leaves {sorted(ours.keys() ^ ref.keys())}")
  max_abs, worst_rel, worst_leaf = 0.0, 0.0, ""
  for name in sorted(ref):
    a, b = ours[name], ref[name]
    if a.shape != b.shape:
      raise ValueError(f"{component}/{name}: shapes {a.shape} vs {b.shape}")
    diff = a - b
    max_abs = max(max_abs, float(np.max(np.abs(diff), initial=0.0)))
    rel = _relative(float(np.linalg.norm(diff)), float(np.linalg.norm(b)))
    if rel >= worst_rel:
      worst_rel, worst_leaf = rel, name
  detail = f"worst leaf {worst_leaf}" if len(ref) > 1 else ""
  scale = 1.0
  if criterion == "max-abs/scale":
    scale = max([1.0] + [float(np.max(np.abs(b), initial=0.0)) for b in ref.values()])
    detail = f"{detail}; max |ref| {scale:.3g}".lstrip("; ")
  return Row(component, max_abs, worst_rel, tol, criterion, detail, scale)


# ----------------------------------------------------------------------------------------------------
# Training trajectories (SM and LM)

@dataclasses.dataclass(frozen=True)
class Trajectory:
  losses: np.ndarray  # (steps, 4): cls, loc, ctr, total
  start: dict  # params before the first step
  end: dict  # params after the last step


def trajectory_rows(tag: str, ours: Trajectory, ref: Trajectory, param_tol: float) -> list[Row]:
  displacement = lambda t: jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, t.end, t.start)
  loss_rel = np.abs(ours.losses - ref.losses) / np.abs(ref.losses)
  steps = len(ref.losses)
  return [
      Row(f"{tag} losses, {steps} steps", float(np.max(np.abs(ours.losses - ref.losses))), float(loss_rel.max()),
          TRAJECTORY_LOSS_TOL, "rel", "worst step and term"),
      compare(f"{tag} param displacement", displacement(ours), displacement(ref), param_tol, "rel"),
  ]


# ----------------------------------------------------------------------------------------------------
# Report

def full_precision():
  """Context: float32 matmuls in JAX (no TF32 / bf16 passes on GPU or TPU) and in torch; one torch thread (the
  restatements run many tiny ops, where intra-op threads cost several times more than they save)."""
  import torch  # noqa: PLC0415
  torch.set_float32_matmul_precision("highest")
  torch.set_num_threads(1)
  return jax.default_matmul_precision("float32")


def run(names: list[str]) -> list[Row]:
  unknown = [n for n in names if n not in COMPONENTS]
  if unknown:
    raise KeyError(f"unknown parity components {unknown}; known: {sorted(COMPONENTS)}")
  rows = []
  with full_precision():
    for name in names:
      rows += COMPONENTS[name]()
  return rows


def format_rows(rows: list[Row]) -> str:
  table = [[r.component, f"{r.max_abs:.2e}", f"{r.rel:.2e}", f"{r.criterion} <= {r.tol:.0e}",
            "pass" if r.passed else "FAIL", r.detail] for r in rows]
  return run_log.format_table(["component", "max-abs error", "relative error", "tolerance", "result", "note"],
                              table)


def assert_all_pass(rows: list[Row]) -> None:
  """Raises AssertionError listing the rows out of tolerance (the parity tests' check)."""
  failed = [r for r in rows if not r.passed]
  if failed:
    raise AssertionError("\n" + format_rows(failed))


def main(argv: list[str] | None = None) -> int:
  description = sys.modules[__package__].__doc__.split("\n\n")[0]  # the package docstring's first paragraph
  parser = argparse.ArgumentParser(prog="python -m iptnet_jax.parity", description=description)
  parser.add_argument("--only", default="", help="comma-separated component names (default: all)")
  parser.add_argument("--list", action="store_true", help="list the registered components and exit")
  args = parser.parse_args(argv)
  if args.list:
    print("\n".join(COMPONENTS))
    return 0
  names = [n for n in args.only.split(",") if n] or list(COMPONENTS)
  try:
    import torch  # noqa: PLC0415
  except ImportError:
    print(f"python -m iptnet_jax.parity: {INSTALL_HINT}", file=sys.stderr)
    return 2
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch.__version__} on cpu; float32, "
        f"matmul precision float32 on both sides, dropout off")
  rows = run(names)
  print("\n".join(NOTES) + "\n")
  print(format_rows(rows))
  failed = [r.component for r in rows if not r.passed]
  print(f"\n{len(rows) - len(failed)}/{len(rows)} within tolerance" + (f"; FAILED: {failed}" if failed else ""))
  return 1 if failed else 0
