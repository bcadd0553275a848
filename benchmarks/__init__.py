"""Speed benchmarks of iptnet_jax against PyTorch eager references and the machine's matmul peak.

    .venv/bin/python -m benchmarks.run [--only sm,lm,eval,scaling] [--json out.json]

Sections live in `benchmarks.run.SECTIONS`; see BUILD.md, '## Benchmarks'.
"""
