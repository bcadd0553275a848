"""The PyTorch restatement of anchor-free DSNet (iptnet_jax/parity/reference/dsnet_torch.py) on its own: upstream's
state_dict keys and the reference loss formulas, checked by hand (skipped without torch). Parity with our model
is tests/parity_sm_test.py."""

import math

import pytest


def test_state_dict_keys_are_upstreams(torch):
  from iptnet_jax.parity.reference import dsnet_torch

  model = dsnet_torch.DSNetAF(num_feature=16, num_hidden=8, num_head=2, dropout=0.0)
  keys = set(model.state_dict())
  assert {"base_model.Q.weight", "base_model.K.weight", "base_model.V.weight", "base_model.fc.0.weight",
          "layer_norm.weight", "fc1.0.weight", "fc1.3.weight", "fc_cls.weight", "fc_loc.bias", "fc_ctr.bias"} <= keys
  cls, loc, ctr = model(torch.randn(1, 7, 16))
  assert cls.shape == ctr.shape == (7,) and loc.shape == (7, 2) and bool((loc > 0).all())


def test_focal_loss_counts_both_one_hot_columns(torch):
  """The reference's two-column focal loss: the alpha and 1 - alpha columns add up, so each step costs
  -(1 - p_t)^2 log p_t whatever alpha is; divided by the number of positives."""
  from iptnet_jax.parity.reference import dsnet_torch

  prob = torch.tensor([0.8, 0.3, 0.6], dtype=torch.float64)
  target = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
  p_t = [0.8, 0.7, 0.6]
  expected = sum(-(1 - p) ** 2 * math.log(p) for p in p_t) / 2
  assert float(dsnet_torch.focal_loss(prob, target)) == pytest.approx(expected, rel=1e-12)
  assert float(dsnet_torch.focal_loss(prob, target, alpha=0.9)) == pytest.approx(expected, rel=1e-12)


def test_soft_iou_loss_is_minus_log_iou_on_the_positives(torch):
  from iptnet_jax.parity.reference import dsnet_torch

  pred = torch.tensor([[1.0, 1.0], [2.0, 2.0], [5.0, 5.0]], dtype=torch.float64)
  label = torch.tensor([[1.0, 3.0], [2.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
  target = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)  # the third step is a negative: not counted
  # step 0: intersection 1 + 1, union 2 + 4 - 2; step 1: IoU 1
  expected = (-math.log(2 / 4 + 1e-8) - math.log(1 + 1e-8)) / 2
  assert float(dsnet_torch.soft_iou_loss(pred, label, target)) == pytest.approx(expected, rel=1e-12)
