"""The PyTorch restatement of VSLNet (iptnet_jax/parity/reference/vslnet_torch.py) on its own: upstream's
state_dict keys, masking, the highlight loss and transformers.AdamW's update, checked by hand (skipped without
torch). Parity with our model is tests/parity_lm_test.py."""

import math

import pytest


def test_state_dict_keys_are_upstreams(torch):
  from iptnet_jax.parity.reference import vslnet_torch

  model = vslnet_torch.VSLNet(num_chars=9, word_dim=6, char_dim=4, visual_dim=10, dim=8, num_heads=2, max_pos_len=16,
                              drop_rate=0.0, glove_vectors=torch.zeros(10, 6), char_channels=(2, 3, 4, 5))
  keys = set(model.state_dict())
  assert {"embedding_net.word_emb.pad_vec", "embedding_net.word_emb.unk_vec", "embedding_net.word_emb.glove_vec",
          "embedding_net.char_emb.char_convs.0.0.weight",
          "feature_encoder.conv_block.depthwise_separable_conv.0.0.weight",
          "feature_encoder.pos_embedding.position_embeddings.weight",
          "predictor.start_block.0.conv1d.weight", "predictor.start_block.2.conv1d.weight"} <= keys


def test_masked_logits_vanish_from_the_softmax(torch):
  from iptnet_jax.parity.reference import vslnet_torch

  logits = torch.tensor([[2.0, 1.0, 3.0]])
  masked = vslnet_torch.mask_logits(logits, torch.tensor([[1, 1, 0]]))
  assert masked[0, :2].tolist() == [2.0, 1.0]
  assert torch.softmax(masked, -1)[0].tolist() == pytest.approx([math.e / (math.e + 1), 1 / (math.e + 1), 0.0])


def test_highlight_loss_weighs_positives_twice_over_the_valid_steps(torch):
  from iptnet_jax.parity.reference import vslnet_torch

  scores = torch.tensor([[0.5, 0.5, 0.9]])  # float32, as the labels become
  labels = torch.tensor([[1, 0, 0]])
  mask = torch.tensor([[1, 1, 0]])  # the third step is padding
  loss = vslnet_torch.highlight_loss(scores, labels, mask)
  assert float(loss) == pytest.approx((2 * math.log(2) + math.log(2)) / 2, rel=1e-6)


def test_transformers_adamw_adds_eps_before_the_bias_correction(torch):
  """Its first step is Adam's with eps / sqrt(1 - b2) in place of eps (then the decoupled decay)."""
  from iptnet_jax.parity.reference import vslnet_torch

  lr, b1, b2, eps, decay = 1e-3, 0.9, 0.999, 1e-6, 0.01
  p0, g = 0.5, 1e-4  # a gradient near eps: where the two conventions differ
  param = torch.nn.Parameter(torch.tensor([p0], dtype=torch.float64))
  param.grad = torch.tensor([g], dtype=torch.float64)
  vslnet_torch.TransformersAdamW([param], lr=lr, betas=(b1, b2), eps=eps, weight_decay=decay).step()
  m_hat, v_hat = g, g * g  # bias-corrected moments after one step
  adam = p0 - lr * m_hat / (math.sqrt(v_hat) + eps / math.sqrt(1 - b2))
  assert float(param.detach()) == pytest.approx(adam * (1 - lr * decay), rel=1e-12)
  torch_adamw = p0 - lr * m_hat / (math.sqrt(v_hat) + eps)  # torch.optim.AdamW / optax: ~25 % further
  assert abs(float(param.detach()) - torch_adamw) > 0.1 * lr
