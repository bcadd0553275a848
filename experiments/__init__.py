"""Experiment scripts (`.venv/bin/python experiments/NAME.py ...`, each docstring has its command); a package so that
tests and benchmarks import them as modules."""
