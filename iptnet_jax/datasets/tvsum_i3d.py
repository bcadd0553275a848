"""`python -m iptnet_jax.datasets.tvsum_i3d ...`, the documented command of the TVSum-I3D builder, which lives in
`iptnet_jax.datasets.builders.tvsum_i3d` (import that): this module only forwards the command line to it."""

if __name__ == "__main__":
  import runpy

  runpy.run_module("iptnet_jax.datasets.builders.tvsum_i3d", run_name="__main__", alter_sys=True)
