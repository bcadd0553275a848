"""`python -m iptnet_jax.datasets.synthetic_charades ...`, the documented command of the synthetic Charades-STA feature generator, which lives in
`iptnet_jax.datasets.builders.synthetic_charades` (import that): this module only forwards the command line to it."""

if __name__ == "__main__":
  import runpy

  runpy.run_module("iptnet_jax.datasets.builders.synthetic_charades", run_name="__main__", alter_sys=True)
