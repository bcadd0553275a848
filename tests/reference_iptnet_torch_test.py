"""The PyTorch restatement of iPTNet's released propagation, divergence and EMA
(iptnet_jax/parity/reference/iptnet_torch.py) on its own, against values worked out by hand (skipped without
torch). Parity with our JAX code is tests/parity_iptnet_test.py."""

import math

import numpy as np
import pytest


def test_gaussian_table_is_symmetric_and_one_at_zero(torch):
  from iptnet_jax.parity.reference import iptnet_torch

  table = iptnet_torch.gaussian_table(5, sigma=4.0)
  assert sorted(table) == list(range(-5, 6)) and table[0] == 1.0
  assert table[4] == table[-4] == pytest.approx(math.exp(-0.5))


def test_propagation_without_neighbours_is_the_variants_own_formula(torch):
  """radius 0: each step sees only itself (cosine 1, Gaussian weight 1): released s * alpha + s, paper s; + zeta."""
  from iptnet_jax.parity.reference import iptnet_torch

  scores = torch.tensor([0.2, 0.9, 0.4], dtype=torch.float64)
  features = torch.randn(3, 5, dtype=torch.float64)
  zeta = torch.tensor([0.0, 0.1, -0.1], dtype=torch.float64)
  released = iptnet_torch.prop(scores, features, zeta, radius=0, alpha=0.5)
  np.testing.assert_allclose(released.numpy(), 1.5 * scores.numpy() + zeta.numpy(), rtol=1e-12)
  paper = iptnet_torch.prop(scores, features, zeta, radius=0, variant="paper")
  np.testing.assert_allclose(paper.numpy(), scores.numpy() + zeta.numpy(), rtol=1e-12)
  with pytest.raises(ValueError):
    iptnet_torch.prop(scores, features, zeta, variant="other")


def test_kl_is_the_summed_divergence_of_the_softmaxes(torch):
  from iptnet_jax.parity.reference import iptnet_torch

  target = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
  student = torch.tensor([[0.0, 0.5, 0.0]], dtype=torch.float64)
  p, q = torch.softmax(target, -1), torch.softmax(student, -1)
  assert float(iptnet_torch.kl(target, student)) == pytest.approx(float((p * (p / q).log()).sum()), rel=1e-12)
  assert float(iptnet_torch.kl(target, target)) == pytest.approx(0.0, abs=1e-15)


def test_ema_keeps_its_share_of_the_teacher(torch):
  from iptnet_jax.parity.reference import iptnet_torch

  teacher, student = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
  before = [p.detach().clone() for p in teacher.parameters()]
  iptnet_torch.ema_update(teacher, student, keep=0.9)
  for t, t0, s in zip(teacher.parameters(), before, student.parameters()):
    torch.testing.assert_close(t.detach(), 0.9 * t0 + 0.1 * s.detach())
