"""Tiny SM + LM models and random joint batches shared by the iPTNet tests (and their multi-device subprocesses)."""
# Every source gets the stand-in shapes, so one compiled step serves all four branches.

import jax
import jax.numpy as jnp
import numpy as np
import optax

from iptnet_jax.datasets import anchor_free_labels, input_pipeline
from iptnet_jax.iptnet import step as step_lib
from iptnet_jax.iptnet import teaching
from iptnet_jax.lm.model import VSLNet, init_variables
from iptnet_jax.sm.model import DSNetAF

FEATURE_DIM = 12


def models():
  sm = DSNetAF(num_hidden=8, num_heads=2, attention_dim=8, dropout_rate=0.1, with_shift_head=True)
  lm = VSLNet(num_words=10, num_chars=8, word_dim=6, dim=8, num_heads=2, max_pos_len=16, char_dim=4,
              char_channels=(2, 2, 2, 2), visual_dim=FEATURE_DIM)
  return sm, lm


def init_state(sm, lm, tx, seed=0):
  rng = np.random.default_rng(seed)
  sm_params = sm.init(jax.random.key(seed), jnp.zeros((1, 4, FEATURE_DIM)), jnp.ones((1, 4)),
                      deterministic=True)["params"]
  lm_vars = init_variables(lm, jax.random.key(seed + 1), rng.normal(size=(10, 6)).astype(np.float32))
  params = {"sm": sm_params, "lm": lm_vars["params"]}
  state = step_lib.JointState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                              rng=jax.random.key(seed + 2))
  return state, lm_vars["constants"]


def sm_batch(rng, batch_size=4, length=input_pipeline.STANDIN_LENGTH):
  lengths = rng.integers(length - 3, length + 1, size=batch_size)
  mask = (np.arange(length)[None] < lengths[:, None]).astype(np.float32)
  first = rng.integers(0, 3, size=batch_size)  # one keyshot run of 2-3 steps per video
  steps = np.arange(length)[None]
  target = ((steps >= first[:, None]) & (steps < first[:, None] + 3) & (mask > 0)).astype(np.float32)
  offsets = np.stack([anchor_free_labels.offset_labels(t) for t in target])
  return {"features": (rng.normal(size=(batch_size, length, FEATURE_DIM)) * mask[..., None]).astype(np.float32),
          "mask": mask, "target": target, "offsets": offsets,
          "centerness": np.stack([anchor_free_labels.centerness_labels(t, o) for t, o in zip(target, offsets)]),
          "example_mask": np.ones(batch_size, np.float32)}


def lm_batch(rng, batch_size=4, length=input_pipeline.STANDIN_LENGTH, query_len=input_pipeline.STANDIN_LENGTH):
  lengths = rng.integers(length - 3, length + 1, size=batch_size)
  video_mask = (np.arange(length)[None] < lengths[:, None]).astype(np.float32)
  start = rng.integers(0, 3, size=batch_size)
  end = np.minimum(start + rng.integers(1, 4, size=batch_size), lengths - 1)
  highlight = ((np.arange(length)[None] >= start[:, None]) & (np.arange(length)[None] <= end[:, None])).astype(np.float32)
  return {"video": (rng.normal(size=(batch_size, length, FEATURE_DIM)) * video_mask[..., None]).astype(np.float32),
          "video_mask": video_mask, "word_ids": rng.integers(1, 10, size=(batch_size, query_len)).astype(np.int32),
          "char_ids": rng.integers(1, 8, size=(batch_size, query_len, 4)).astype(np.int32),
          "query_mask": np.ones((batch_size, query_len), np.float32), "start_index": start.astype(np.int32),
          "end_index": end.astype(np.int32), "highlight": highlight, "example_mask": np.ones(batch_size, np.float32)}


def joint(source, rng, batch_size=4):
  if source in (step_lib.SM_ONLY, step_lib.SM_DATA):
    return input_pipeline.joint_batch(source, sm=sm_batch(rng, batch_size), feature_dim=FEATURE_DIM)
  return input_pipeline.joint_batch(source, lm=lm_batch(rng, batch_size), feature_dim=FEATURE_DIM)


ALL_SOURCES = (step_lib.SM_ONLY, step_lib.LM_DATA, step_lib.SM_DATA, step_lib.LM_ONLY, step_lib.SM_DATA)


def train_joint_steps(mesh, batch_size: int = 8, sources=ALL_SOURCES):
  """One joint step per entry of `sources` on `mesh` (the step compiled with only those branches) from a fixed
  state with SGD + EMA teachers; returns the losses,
  the parameters on the host and the number of devices holding them. Every process builds the same batches and
  `shard_batch` hands each its own rows, as in training.

  SGD rather than Adam: Adam divides each gradient element by its own RMS, so parameters whose gradient is
  analytically zero (attention key biases, span-logit biases: softmax is shift-invariant) take full +-lr steps on
  the sign of rounding noise, which differs with the reduction order across devices. SGD keeps parameter
  differences proportional to gradient differences; the losses are the same either way."""
  sm, lm = models()
  tx = teaching.per_module({name: optax.chain(optax.sgd(0.05), teaching.ema_teacher(0.3)) for name in ("sm", "lm")})
  step = step_lib.make_joint_step(sm, lm, tx, step_lib.JointSettings(radius=3), mesh=mesh,
                                  sources=tuple(sorted(set(sources))))
  state, constants = init_state(sm, lm, tx)
  state, constants = step_lib.replicate(state, mesh), step_lib.replicate(constants, mesh)
  losses = []
  for i, source in enumerate(sources):
    batch = step_lib.shard_batch(joint(source, np.random.default_rng(i), batch_size=batch_size), mesh)
    state, metrics = step(state, constants, batch)
    losses.append(float(metrics["total"]))
  return losses, jax.device_get(state.params), len(state.params["sm"]["fc_cls"]["bias"].sharding.device_set)
