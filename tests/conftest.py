"""Test-wide JAX settings: CPU only, fast compiles, one compilation cache for the session."""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests (and the command-line runs they start as subprocesses, which inherit the variable) compile many of the
# same functions; a persistent cache for the session compiles each once.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="iptnet_jax_test_cache_"))

import jax  # noqa: E402

# Compile time dominates these small tests; XLA's optimisation passes buy nothing here.
jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def torch():
  """torch for the parity tests (skipped without it), with full-precision float32 matmuls on both sides."""
  torch = pytest.importorskip("torch")
  from iptnet_jax import parity

  with parity.full_precision():
    yield torch


@pytest.fixture(scope="session")
def finished_runs(tmp_path_factory):
  """{'iptnet', 'sm': workdirs as finished runs leave them (tests/workdir_fixtures.py), 'root': their folder}; one
  per session, shared by the tests of summarize, localize, export and run_models (tests that edit a run's files
  put them back)."""
  import workdir_fixtures

  root = tmp_path_factory.mktemp("finished_runs")
  return {"iptnet": workdir_fixtures.make_workdir(root, "iptnet", splits=(0, 1)),
          "sm": workdir_fixtures.make_workdir(root, "sm"), "root": root}
