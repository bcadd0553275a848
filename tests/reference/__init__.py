"""Minimal PyTorch restatements of the reference models, for numeric parity tests only (never imported by
the runtime). Written from docs/reference_spec.md; no third-party model code is copied here."""
