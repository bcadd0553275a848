"""Test-wide JAX settings: CPU only, fast compiles."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

# Compile time dominates these small tests; XLA's optimisation passes buy nothing here.
jax.config.update("jax_disable_most_optimizations", True)
