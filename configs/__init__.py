"""The run configurations: `python -m iptnet_jax.main --config=configs/FILE.py[:VARIANTS]`.

A package so that config files import each other and their shared pieces (configs/common.py) as modules; each
file's docstring lists its variants, and `VARIANTS` holds their names.
"""
