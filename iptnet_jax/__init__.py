"""iptnet_jax: a JAX/Flax reimplementation of iPTNet (CVPR 2022)."""

__version__ = "0.1.0"
