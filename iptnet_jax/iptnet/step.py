"""The one compiled iPTNet train step: (state, batch) -> (state, metrics), switching loss branch by data source.

Sources (batch['source'], an int32 scalar), after paper §3.7 (eq. 9-12) and the released code
(reference_spec.md §1.4):
  SM_ONLY  SM supervised (warm-up, and iPTNet-L):   L_sum                                   SM moves
  LM_ONLY  LM supervised (LM warm-up):              L_loc, LM gradient clipped              LM moves
  LM_DATA  a Charades sample goes through both:     L_loc + L_TM_LL + L_TM_LS, LM clipped   both move
           h = LM(v, q), h_t = LM_teacher(v, q), prop = PM(SM(v))
           L_TM_LS = D(h -> prop) + D(h_t -> prop)            (the SM learns from both LM maps)
           L_TM_LL = D(h_t -> h)                              (the LM student follows its teacher)
  SM_DATA  a summarization video goes through both: L_sum + L_TM_SS + L_TM_SL               both move
           s = SM(x), prop = PM(SM(x)), prop_t = PM(SM_teacher(x)), h = LM_query_free(x)
           L_TM_SL = D(h -> prop) + D(h -> prop_t)            (the LM learns from the SM teacher's map)
           L_TM_SS = D(s_t -> s)                              (the SM student follows its teacher)
D(a -> b) = KL(P(a) || P(b)) (teaching.divergence, eq. 4-8). Every term of a total has weight 1, as in the
released code (reduction='sum' KLs, no coefficients); the weights inside L_sum (lambda_reg, lambda_ctr) and L_loc
(highlight_lambda = 5) are the supervised losses' own. Targets from students are not detached (the released
code backpropagates into them); teachers' outputs are constants. Ablations: `propagation=False` (iPTNet-P)
uses the SM's importance s instead of PM's map; `teaching=False` (iPTNet-T) drops every teacher term.

The batch carries padded fields for both sources ('sm' and 'lm'); the source that is absent in a step is a
small all-masked stand-in that the chosen branch never reads (only the chosen branch of lax.switch runs).
State = {step, params {sm, lm}, opt_state (holding the teachers), rng}; donated. Data parallel: every batch
array is split along its leading axis over the mesh axis 'data', the state is replicated, and XLA inserts
the cross-device reductions of the batch means.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

# The data sources (the step's branches) are the input pipeline's.
from iptnet_jax.datasets.input_pipeline import LM_DATA, LM_MODEL_INPUTS, LM_ONLY, SM_DATA, SM_ONLY, SOURCE_NAMES
from iptnet_jax.errors import InputError
from iptnet_jax.iptnet import propagation, teaching
from iptnet_jax.lm import losses as lm_losses
from iptnet_jax.lm.model import VSLNet
from iptnet_jax.sm import anchor_free
from iptnet_jax.sm.model import DSNetAF

# Which module has a loss (and so moves, and has its teacher updated) under each source.
ACTIVE = np.array([[1, 0], [0, 1], [1, 1], [1, 1]], bool)
METRIC_KEYS = ("total", "sm_supervised", "lm_supervised", "teach_sm", "teach_lm", "consistency")


@flax.struct.dataclass
class JointState:
  step: jax.Array
  params: dict  # {'sm': ..., 'lm': ...}
  opt_state: optax.OptState  # teaching.per_module state; the teachers live in it
  rng: jax.Array


@dataclasses.dataclass(frozen=True)
class JointSettings:
  """Static settings of the step (hashable; a change recompiles)."""

  lambda_reg: float = 1.0
  lambda_ctr: float = 1.0
  highlight_lambda: float = 5.0
  lm_clip_norm: float = 1.0
  propagation: bool = True
  variant: str = "released"
  radius: int = 10
  alpha: float = 0.5
  sigma: float = 4.0
  teaching: bool = True
  distribution: str = "softmax"
  direction: str = "target_to_student"
  # Released-code quirks (reference_spec.md §1.4): the LM teacher never leaves train mode (dropout on); the SM
  # teacher is in eval mode after its first validation.
  lm_teacher_dropout: bool = True
  sm_teacher_dropout: bool = False


def make_optimizer(sm_lr: float, sm_weight_decay: float, lm_lr: float, teacher_keep: float
                   ) -> optax.GradientTransformationExtraArgs:
  """One Adam per module as the released code's two param groups (SM: coupled L2; LM: none), each followed by
  its EMA teacher, gated per step. The LM's norm clipping happens in the step, in the branches that clip."""
  return teaching.per_module({
      "sm": optax.chain(optax.add_decayed_weights(sm_weight_decay), teaching.scale_by_adam_gated(),
                        optax.scale(-sm_lr), teaching.ema_teacher(teacher_keep)),
      "lm": optax.chain(teaching.scale_by_adam_gated(), optax.scale(-lm_lr), teaching.ema_teacher(teacher_keep)),
  })


def make_joint_step(sm_model: DSNetAF, lm_model: VSLNet, tx: optax.GradientTransformationExtraArgs,
                    settings: JointSettings, mesh: jax.sharding.Mesh | None = None,
                    sources: tuple[int, ...] = (SM_ONLY, LM_ONLY, LM_DATA, SM_DATA)):
  """The jitted step (state, lm_constants, batch) -> (state, metrics); state donated.

  `sources` are the data sources this run feeds; the others become inert branches that are never traced
  through the models (iPTNet-L has no LM to trace).
  """

  def divergence(target, student, mask, example_mask):
    return teaching.divergence(target, student, mask, example_mask, distribution=settings.distribution,
                               direction=settings.direction)

  def sm_forward(params, features, mask, rng, train):
    outputs = sm_model.apply({"params": params}, features, mask, deterministic=not train,
                             rngs={"dropout": rng} if train else {})
    importance = jax.nn.sigmoid(outputs["cls_logits"])
    if settings.propagation:
      mapped = propagation.propagate(importance, outputs["hidden"], mask, outputs.get("shift"),
                                     radius=settings.radius, variant=settings.variant, alpha=settings.alpha,
                                     sigma=settings.sigma)
    else:
      mapped = importance
    return outputs, importance, mapped

  def lm_forward(params, constants, lm_batch, rng, train):
    return lm_model.apply({"params": params, "constants": constants}, *(lm_batch[k] for k in LM_MODEL_INPUTS),
                          deterministic=not train, rngs={"dropout": rng} if train else {})

  def lm_query_free(params, constants, features, mask, rng, train):
    return lm_model.apply({"params": params, "constants": constants}, features, mask, deterministic=not train,
                          rngs={"dropout": rng} if train else {}, method=VSLNet.query_free_importance)

  def metrics_of(**values):
    return {k: jnp.asarray(values.get(k, 0.0), jnp.float32) for k in METRIC_KEYS}

  def step(state: JointState, constants: dict, batch: dict):
    keys = jax.random.split(jax.random.fold_in(state.rng, state.step), 4)
    teachers = jax.lax.stop_gradient(teaching.teacher_params(state.opt_state))
    sm_batch, lm_batch = batch["sm"], batch["lm"]

    def sm_only_loss(params):
      # L_sum alone (DSNet-AF: focal + lambda_reg * IoU + lambda_ctr * centerness), weight 1.
      outputs, _, _ = sm_forward(params["sm"], sm_batch["features"], sm_batch["mask"], keys[0], True)
      sup = anchor_free.anchor_free_losses(outputs, sm_batch, settings.lambda_reg, settings.lambda_ctr)["total"]
      return sup, metrics_of(total=sup, sm_supervised=sup)

    def lm_only_loss(params):
      # L_loc alone (VSLNet: highlight_lambda * L_highlight + CE_start + CE_end), weight 1.
      outputs = lm_forward(params["lm"], constants, lm_batch, keys[1], True)
      sup, _ = lm_losses.vslnet_loss(outputs, lm_batch, settings.highlight_lambda)
      return sup, metrics_of(total=sup, lm_supervised=sup)

    def lm_data_loss(params):
      video_mask, weight = lm_batch["video_mask"], lm_batch["example_mask"]
      outputs = lm_forward(params["lm"], constants, lm_batch, keys[1], True)
      sup, _ = lm_losses.vslnet_loss(outputs, lm_batch, settings.highlight_lambda)
      h = outputs["highlight_prob"] * video_mask
      _, _, prop = sm_forward(params["sm"], lm_batch["video"], video_mask, keys[0], True)
      # Eq. 9-12, LM data: L_TM_LS = D(h -> prop) + D(h_t -> prop) trains the SM (through PM) on the
      # Charades sample; L_TM_LL = D(h_t -> h) pulls the LM student toward its teacher.
      teach_sm = divergence(h, prop, video_mask, weight)
      consistency = 0.0
      if settings.teaching:
        h_teacher = lm_forward(teachers["lm"], constants, lm_batch, keys[3],
                               settings.lm_teacher_dropout)["highlight_prob"] * video_mask
        teach_sm = teach_sm + divergence(h_teacher, prop, video_mask, weight)
        consistency = divergence(h_teacher, h, video_mask, weight)
      total = sup + teach_sm + consistency  # L = 1 * L_loc + 1 * L_TM_LS + 1 * L_TM_LL
      return total, metrics_of(total=total, lm_supervised=sup, teach_sm=teach_sm, consistency=consistency)

    def sm_data_loss(params):
      features, mask, weight = sm_batch["features"], sm_batch["mask"], sm_batch["example_mask"]
      outputs, importance, prop = sm_forward(params["sm"], features, mask, keys[0], True)
      sup = anchor_free.anchor_free_losses(outputs, sm_batch, settings.lambda_reg, settings.lambda_ctr)["total"]
      h = lm_query_free(params["lm"], constants, features, mask, keys[1], True)
      # Eq. 9-12, SM data: L_TM_SL = D(h -> prop) + D(h -> prop_t) trains the LM's query-free path on the
      # summarization video (h gets the gradient); L_TM_SS = D(s_t -> s) pulls the SM student toward its teacher.
      teach_lm = divergence(h, prop, mask, weight)
      consistency = 0.0
      if settings.teaching:
        _, importance_teacher, prop_teacher = sm_forward(teachers["sm"], features, mask, keys[2],
                                                         settings.sm_teacher_dropout)
        teach_lm = teach_lm + divergence(h, prop_teacher, mask, weight)
        consistency = divergence(importance_teacher, importance, mask, weight)
      total = sup + teach_lm + consistency  # L = 1 * L_sum + 1 * L_TM_SL + 1 * L_TM_SS
      return total, metrics_of(total=total, sm_supervised=sup, teach_lm=teach_lm, consistency=consistency)

    def branch(loss_fn, clip_lm):
      def run(params):
        grads, metrics = jax.grad(loss_fn, has_aux=True)(params)
        if clip_lm:  # the released code clips the LM's gradient norm in its LM phases only
          grads = dict(grads, lm=optax.clip_by_global_norm(settings.lm_clip_norm).update(grads["lm"], optax.EmptyState())[0])
        return grads, metrics
      return run

    def inert(params):  # a source this run never feeds
      return jax.tree.map(jnp.zeros_like, params), metrics_of()

    losses = [(sm_only_loss, False), (lm_only_loss, True), (lm_data_loss, True), (sm_data_loss, False)]
    branches = [branch(*losses[s]) if s in sources else inert for s in range(len(losses))]
    source = jnp.clip(batch["source"], 0, len(branches) - 1)
    grads, metrics = jax.lax.switch(source, branches, state.params)
    active_table = jnp.asarray(ACTIVE)[source]
    updates, opt_state = tx.update(grads, state.opt_state, state.params,
                                   active={"sm": active_table[0], "lm": active_table[1]})
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  if mesh is None:
    return jax.jit(step, donate_argnums=0)
  replicated = NamedSharding(mesh, P())
  return jax.jit(step, donate_argnums=0, out_shardings=(replicated, replicated))


class BatchShardingError(InputError):
  """A configured batch size that the device count does not divide (the message says which to choose)."""


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D data-parallel mesh over the first `num_devices` devices (all by default)."""
  devices = jax.devices()[:num_devices] if num_devices else jax.devices()
  return jax.make_mesh((len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def replicate(tree, mesh: jax.sharding.Mesh):
  """Places the same host (or local) values on every device of the mesh.

  With several processes (jax.distributed) the mesh has devices that this process cannot address, which
  device_put refuses; every process then hands over its own (identical) copy. PRNG keys travel as key data.
  """
  replicated = NamedSharding(mesh, P())
  if jax.process_count() == 1:
    return jax.device_put(tree, replicated)

  def put(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(replicated, np.asarray(x))

  return jax.tree.map(put, tree)


def shard_batch(batch: dict, mesh: jax.sharding.Mesh) -> dict:
  """Places a host batch on the mesh: arrays split along their leading (batch) axis, scalars replicated.

  Every process builds the same global batch and hands over its own rows, so the same code runs on one
  host and on a multi-host pod (jax.distributed).
  """
  batch = jax.tree.map(np.asarray, batch)
  for x in jax.tree.leaves(batch):
    if x.ndim and x.shape[0] % mesh.size:
      raise BatchShardingError(f"batch of {x.shape[0]} rows cannot be split over {mesh.size} devices; choose "
                               "batch sizes that are multiples of the device count")
  data = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  num_processes, index = jax.process_count(), jax.process_index()
  shardings = jax.tree.map(lambda x: data if x.ndim else replicated, batch)
  if num_processes == 1:  # one transfer call for the whole tree: measurably cheaper per step than leaf by leaf
    return jax.device_put(batch, shardings)

  def put(x, sharding):
    if x.ndim:  # this process's rows of the global batch
      rows = x.shape[0] // num_processes
      return jax.make_array_from_process_local_data(sharding, x[index * rows:(index + 1) * rows], x.shape)
    return jax.make_array_from_process_local_data(sharding, x, x.shape)

  return jax.tree.map(put, batch, shardings)
