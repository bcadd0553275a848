"""Minimal PyTorch restatements of the reference models, for numeric parity only (the parity report, its tests
and the PyTorch side of the speed benchmarks; never imported by the runtime). Written from
docs/reference_spec.md; no third-party model code is copied here.

    dsnet_torch   anchor-free DSNet (reference_spec.md §2.4, §2.5, §2.7)
    vslnet_torch  VSLNet, PyTorch version (§3.2, §3.3)
    iptnet_torch  the released iPTNet code's propagation, divergence and EMA (§1.2, §1.4)

They ship inside the package so that a non-editable `pip install 'iptnet_jax[parity]'` can run
`python -m iptnet_jax.parity`. Without torch, importing any of them raises an ImportError that says how to
install it.
"""

from iptnet_jax.parity.common import INSTALL_HINT

try:
  import torch  # noqa: F401
except ImportError as err:
  raise ImportError(f"{__name__}: {INSTALL_HINT}", name=err.name) from err
