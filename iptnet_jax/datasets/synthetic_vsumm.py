"""`python -m iptnet_jax.datasets.synthetic_vsumm ...`, the documented command of the synthetic summarization data generator, which lives in
`iptnet_jax.datasets.builders.synthetic_vsumm` (import that): this module only forwards the command line to it."""

if __name__ == "__main__":
  import runpy

  runpy.run_module("iptnet_jax.datasets.builders.synthetic_vsumm", run_name="__main__", alter_sys=True)
