"""benchmarks/handwritten.py: the plain alternatives it times are the same computations as the hand-written
code, and the section runs end to end (tiny sizes, numbers meaningless)."""

import math

import jax
import numpy as np
import pytest

from benchmarks import handwritten, run
from iptnet_jax.lm import lstm
from iptnet_jax.lm import model as lm_model


def test_autodiff_lstm_computes_what_the_hand_written_vjp_computes():
  rng = np.random.default_rng(0)
  gates = rng.normal(size=(7, 3, 16)).astype(np.float32)
  weight = rng.uniform(-0.5, 0.5, size=(16, 4)).astype(np.float32)
  cotangent = rng.normal(size=(7, 3, 4)).astype(np.float32)
  results = []
  for fn in (lstm.lstm_recurrence, handwritten.lstm_autodiff):
    hs, vjp = jax.vjp(fn, gates, weight)
    results.append((hs, *vjp(cotangent)))
  for got, want in zip(*results):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_autodiff_context_swaps_the_models_lstm_and_restores_it():
  original = lm_model.lstm_recurrence
  with handwritten.lstm_by_autodiff():
    assert lm_model.lstm_recurrence is handwritten.lstm_autodiff
  assert lm_model.lstm_recurrence is original is lstm.lstm_recurrence


@pytest.mark.slow
def test_quick_run_of_the_section():
  result = run.main(["--quick", "--only", "handwritten", "--repeats", "1", "--sm-videos", "2", "--lm-samples", "4",
                     "--no-torch"])
  rows = {r["name"]: r for r in result["rows"]}
  assert {"SM train epoch, cpu_threefry", "LM train epoch b16, cpu_threefry",
          "LM train epoch b16, hand-written LSTM VJP"} <= set(rows)
  for row in rows.values():
    assert math.isfinite(row["value"]) and row["value"] > 0
    assert "x" in row["ratio"] and "CPU-time ratio" in row["detail"]
  assert len(result["sections"]["handwritten"]["cpu_s"]["LM epoch"]) == 1  # warm-up dropped
