"""Numeric parity of our JAX modules against minimal PyTorch restatements of the references.

    python -m iptnet_jax.parity            # every registered component
    python -m iptnet_jax.parity --only sm.forward,sm.losses
    python -m iptnet_jax.parity --list

prints one row per compared quantity (max-abs error, relative error, tolerance, pass/fail) and exits 1
if any row is out of tolerance (2 if PyTorch is missing). Needs the parity extra (`pip install
'iptnet_jax[parity]'`: torch==2.13.0, CPU); the torch restatements ship in `iptnet_jax.parity.reference`, so an
installed package runs it from any folder. Both sides run in float32 with full-precision matmuls (JAX would
otherwise use TF32 on recent GPUs); PyTorch runs on the CPU.

Conventions (docs/jax_style.md §3): weights are created by the torch model and ported into ours with
`iptnet_jax.sm.porting` / `iptnet_jax.lm.porting`; dropout is off (rate 0, so training steps keep train mode on
both sides); forward tensors are compared by max-abs error (1e-5 per layer, 1e-4 for the whole network's outputs);
losses, gradients and training trajectories by relative error ||ours - ref|| / ||ref||, per parameter leaf,
reporting the worst leaf.

Components live in `COMPONENTS` (name -> function returning rows), added with `@register(name)`:
  sm.forward, sm.losses, sm.sgd, sm.adam        DSNet anchor-free (reference/dsnet_torch.py)
  lm.forward, lm.losses, lm.adam_clip           VSLNet, PyTorch version (reference/vslnet_torch.py): each
                                                module on torch's input to it, the network end to end, loss terms
                                                and gradients, the LM trainer's and the iPTNet LM phase's steps
  iptnet.propagation, iptnet.divergence         PM and D in float64 against the released code's loops
                                                (reference/iptnet_torch.py), gradients included
  iptnet.ema                                    the EMA teacher (float64, and along the iPTNet LM phase)
Modules: common (tolerances, Row, the registry, compare, trajectory rows, the report and CLI), reference (the
torch restatements; importing it without torch raises ImportError with the install hint), sm, lm and iptnet
(the components above, by prefix; iptnet also holds the iPTNet LM phase of lm.adam_clip).
LM padding: our VSLNet masks the padded steps before each depthwise conv (mask_conv_padding=True, the default);
upstream convolves them into the last valid steps. Cases with the mask compare our padded batch with torch on
each unpadded sample (where upstream has no padding to leak); the 'upstream padding' case turns the mask off and
gives torch the same padded batch.
"""

# The package's names, as the single-module parity.py had them (callers use `parity.X`, private names included).
from iptnet_jax.parity.common import (ADAM_PARAM_TOL, COMPONENTS, FORWARD_LAYER_TOL, FORWARD_NETWORK_TOL, LOSS_TOL,
                                      INSTALL_HINT, NOTES, SGD_PARAM_TOL, TRAJECTORY_LOSS_TOL, Row, Trajectory, _flat,
                                      _relative, assert_all_pass, compare, format_rows, full_precision, main,
                                      register, run, trajectory_rows)

# Importing sm, lm, iptnet registers their components: keep this order, the report's.
from iptnet_jax.parity.sm import (ADAM_LR, ADAM_WEIGHT_DECAY, LOSS_TERMS, SGD_LR, SM_DSNET, SM_SMALL, TRAJECTORY_STEPS,
                                  SMCase, _torch_grads_as_params, random_target, sm_adam_rows, sm_batch, sm_examples,
                                  sm_forward_rows, sm_jax_trajectory, sm_loss_rows, sm_models, sm_sgd_rows,
                                  sm_torch_trajectory)
from iptnet_jax.parity.lm import (HIGHLIGHT_LAMBDA, LM_FORWARD_CASES, LM_INVARIANT_LEAVES, LM_LEAK, LM_LOSS_CASES,
                                  LM_LOSS_TERMS, LM_MODEL_INPUTS, LM_NETWORK_OUTPUTS, LM_NOPOS, LM_SMALL, LM_TRAIN,
                                  LM_TRAJECTORY_CASE, LM_TRAJECTORY_STEPS, LM_TRANSFORMER, LM_VSLNET,
                                  SMALL_ACTIVATION_SCALE, ZERO_GRAD_TOL, _LM_MODULES, _LM_QUERY_TENSORS,
                                  _LM_SMALL_DIMS, _LM_TORCH_INPUTS, _LM_TORCH_NAME, LMCase, LMTrajectory,
                                  _as_trajectory, _lengths, _no_decay, _padded, _torch_rows, lm_adam_clip_rows,
                                  lm_batch, lm_forward_rows, lm_leaves, lm_loss_rows, lm_model, lm_models,
                                  lm_module_fn, lm_small_activation_rows, lm_train_trajectory, torch_lm_grads,
                                  torch_lm_intermediates, torch_lm_losses, torch_lm_train_trajectory)
from iptnet_jax.parity.iptnet import (DIVERGENCE_LENGTHS, FLOAT64_TOL, IPTNET_LM, IPTNET_LM_CASE, PM_CASES,
                                      PropagationCase, _iptnet_lm_trajectories, _propagation_inputs, divergence_rows,
                                      ema_update_rows, iptnet_ema_rows, iptnet_lm_adam_clip_rows, iptnet_lm_trajectory,
                                      propagation_rows, torch_iptnet_lm_trajectory)
