"""Offline builders and generators of datasets, each with its command line: the TVSum-I3D builder, synthetic
Charades-STA features, synthetic summarization data. They write what the readers of `iptnet_jax.datasets` read;
no reader imports them (tests/package_test.py checks it)."""
