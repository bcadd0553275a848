"""The joint iPTNet train step per data source: ours (one jitted step, lax.switch over the sources) vs an eager
PyTorch batch-1 restatement of the released code's per-source losses (reference_spec.md §1.4).

Models and settings: config_defaults.iptnet_config over configs/charades.py, as configs/tvsum.py builds it: the
SM is DSNet-AF with the shift head (1024-d features, attention 1024, 8 heads, hidden 128, dropout 0.5; SM batch
`train.batch_size` = 1), the LM is VSLNet without positional table (d 128, 8 heads, 300-d word vectors, 50-d
chars, 'rnn' predictor; LM batch `lm.train.batch_size` = 16), PM 'released' with radius 10, softmax KL, teachers
keep 0.3, SM Adam lr 1e-5 with L2 1e-5, LM Adam lr 5e-4 clipped to norm 1 in the LM phases.

Data: `--joint-videos` TVSum-like videos (benchmarks/sm.py: T uniform in [49, 323], seeded) for sm_only and
sm_data, and `--joint-samples` Charades-like samples (benchmarks/lm.py: <= 128 clips, 5-12 words) for lm_only and
lm_data. One timed pass of a source = every video (or sample) of it once, in a new seeded shuffled order.

Ours: iptnet_jax.iptnet.step.make_joint_step as iptnet_jax/iptnet/train.py runs it (one-device mesh,
replicated state, `shard_batch`, stand-ins shaped like the smallest buckets), host batching included in the
time. Every shape the timed passes will meet is compiled before timing (jit's ahead-of-time path,
`lower(...).compile()`, timed: the compile row) and those executables run the passes, so nothing compiles
while timing. A step is one batch of the configured batch size (1 video, 16 samples).

Reference: benchmarks/torch_refs.JointTorch, one sample per step, models from iptnet_jax/parity/reference/ (its
docstring lists what runs). Reference steps/s are samples/s (batch 1); the ratio column compares SAMPLES per second.

`--joint-sources` picks sources; with fewer than four the step is compiled with only their branches (as the
trainer does for runs that feed fewer sources), so its compile time is not the full step's.

`--quick` checks the harness (numbers mean nothing): tiny widths, a few videos of 20-60 steps and samples of at
most 32 clips, 4 per step on both sides, so that every source's batch has the stand-in shapes and the four sources
share one compiled executable. The full four-branch step still takes tens of seconds to compile on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common, lm, sm
from iptnet_jax import config_defaults
from iptnet_jax.datasets import input_pipeline
from iptnet_jax.iptnet import step as step_lib
from iptnet_jax.iptnet import train as iptnet_train
from iptnet_jax.lm import train as lm_train
from iptnet_jax.lm.model import init_variables
from iptnet_jax.sm import train as sm_train

SOURCE_NAMES = step_lib.SOURCE_NAMES
SM_SOURCES = input_pipeline.SM_SOURCES


@dataclasses.dataclass(frozen=True)
class Sizes:
  """Feature widths and data sizes of the section (`real` unless --quick)."""

  feature_dim: int = sm.FEATURE_DIM
  word_dim: int = lm.WORD_DIM
  sm_videos: int = 20
  lm_samples: int = 96
  sm_min_len: int = sm.MIN_LEN
  sm_max_len: int = sm.MAX_LEN
  lm_max_len: int = 128  # clips of the longest Charades-like video (VSLNet's max_pos_len)
  batch_size: int = 0  # both sides' batch size; 0: the config's (SM 1, LM 16)
  tiny_models: bool = False


def tiny_sizes(sm_videos: int = 4, lm_samples: int = 4) -> Sizes:
  """Tiny widths; SM videos within the smallest SM bucket, LM videos within the smallest video bucket and equal
  batch sizes: every batch has the stand-in shapes (iptnet_jax/datasets/input_pipeline.py), one executable for all."""
  return Sizes(feature_dim=32, word_dim=8, sm_videos=sm_videos, lm_samples=lm_samples, sm_min_len=20,
               sm_max_len=60, lm_max_len=32, batch_size=4, tiny_models=True)


def iptnet_config(sizes: Sizes):
  config = config_defaults.iptnet_config(lm.lm_config())
  if sizes.batch_size:
    config.train.batch_size = config.lm.train.batch_size = sizes.batch_size
  if sizes.tiny_models:
    config.model.update(num_hidden=8, num_heads=2, attention_dim=sizes.feature_dim)
    config.lm.model.update(dim=8, num_heads=2, char_dim=4, char_channels=(2, 2, 2, 2))
    config.iptnet.radius = 3
  return config


def parse_sources(text: str) -> tuple[int, ...]:
  names = [s.strip() for s in text.split(",") if s.strip()]
  unknown = [n for n in names if n not in SOURCE_NAMES]
  if unknown or not names:
    raise ValueError(f"--joint-sources: expected some of {', '.join(SOURCE_NAMES)}, got {text!r}")
  return tuple(sorted({SOURCE_NAMES.index(n) for n in names}))


@dataclasses.dataclass
class _MomentSamples:
  """Plain LM training samples with the LM datasets' `batches` (CharadesSTA's), for input_pipeline.joint_batches."""

  train: list

  def batches(self, split: str, batch_size: int, **options):
    return input_pipeline.iterate_lm_batches(self.train, batch_size, **options)


class JointData:
  """The host batches of our joint step, as iptnet_jax/iptnet/train.py builds them (input_pipeline.joint_batches):
  each source's batcher at its batch size, the absent source as a stand-in shaped like the smallest buckets."""

  def __init__(self, config, sm_examples, lm_samples, seed: int = 0):
    self.config, self.seed = config, seed
    self.sm_examples, self.lm_samples = sm_examples, lm_samples
    self.feature_dim = sm_examples[0].features.shape[1]
    self.standins = input_pipeline.standin_shapes(config)

  def batch_size(self, source: int) -> int:
    return self.config.train.batch_size if source in SM_SOURCES else self.config.lm.train.batch_size

  def num_samples(self, source: int) -> int:
    return len(self.sm_examples) if source in SM_SOURCES else len(self.lm_samples)

  def host_batches(self, source: int, pass_index: int):
    """The joint host batches of one pass over the source's data, shuffled with a seed per (source, pass)."""
    return input_pipeline.joint_batches(source, self.config, np.random.default_rng([self.seed, source, pass_index]),
                                        feature_dim=self.feature_dim, shapes=self.standins,
                                        sm_examples=self.sm_examples, lm_data=_MomentSamples(self.lm_samples))

  @staticmethod
  def signature(host_batch: dict) -> tuple:
    return tuple(np.shape(x) for x in jax.tree.leaves(host_batch))

  def pass_shapes(self, source: int, pass_index: int) -> set[tuple]:
    return {self.signature(b) for b in self.host_batches(source, pass_index)}


class OursJoint:
  """Our joint step over the sources, as iptnet_jax/iptnet/train.py runs it."""

  def __init__(self, data: JointData, word_vectors: np.ndarray,
               sources: tuple[int, ...] = (step_lib.SM_ONLY, step_lib.LM_ONLY, step_lib.LM_DATA, step_lib.SM_DATA)):
    self.data, self.sources = data, tuple(sources)
    config, seed = data.config, data.seed
    self.feature_dim = data.feature_dim
    self.sm = dataclasses.replace(sm_train.make_model(config), with_shift_head=True)
    self.lm = lm_train.make_model(config.lm, word_vectors, lm.NUM_CHARS, self.feature_dim)
    self.tx = step_lib.make_optimizer(config.train.lr, config.train.weight_decay, config.lm.train.lr,
                                      config.iptnet.teacher_keep)
    self.mesh = step_lib.make_mesh(1)
    self.step = step_lib.make_joint_step(self.sm, self.lm, self.tx, iptnet_train.settings_from_config(config),
                                         self.mesh, self.sources)
    sm_rng, lm_rng, train_rng = jax.random.split(jax.random.key(seed), 3)
    lm_variables = init_variables(self.lm, lm_rng, word_vectors)
    params = {"sm": sm_train.init_params(self.sm, sm_rng, self.feature_dim), "lm": lm_variables["params"]}
    state = step_lib.JointState(step=jnp.zeros((), jnp.int32), params=params,
                                opt_state=jax.jit(self.tx.init)(params), rng=train_rng)
    self.state = step_lib.replicate(state, self.mesh)
    self.constants = step_lib.replicate(lm_variables["constants"], self.mesh)
    self.executables: dict[tuple, object] = {}
    self.compile_s: dict[tuple, float] = {}
    self.passes = {source: 0 for source in range(len(SOURCE_NAMES))}

  def compile(self, num_passes: int) -> None:
    """Compiles (and times) every shape that the first `num_passes` passes of each source meet."""
    for source in self.sources:
      for pass_index in range(num_passes):
        for host in self.data.host_batches(source, pass_index):
          key = self.data.signature(host)
          if key in self.executables:
            continue
          start = time.perf_counter()
          lowered = self.step.lower(self.state, self.constants, step_lib.shard_batch(host, self.mesh))
          self.executables[key] = lowered.compile()
          self.compile_s[key] = time.perf_counter() - start

  def run_pass(self, source: int) -> float:
    """One timed pass over the source's data: host batching, placement, the steps, waiting for the last."""
    pass_index = self.passes[source]
    self.passes[source] += 1
    start = time.perf_counter()
    metrics = None
    for host in self.data.host_batches(source, pass_index):
      executable = self.executables[self.data.signature(host)]
      self.state, metrics = executable(self.state, self.constants, step_lib.shard_batch(host, self.mesh))
    jax.block_until_ready((self.state, metrics))
    self.last_metrics = metrics
    return time.perf_counter() - start


class TorchJointRunner:
  """benchmarks/torch_refs.JointTorch over the same data, one sample per step."""

  def __init__(self, data: JointData, word_vectors: np.ndarray):
    import torch

    from benchmarks import torch_refs

    config, sm_examples = data.config, data.sm_examples
    torch.manual_seed(data.seed)
    self.torch_refs, self.seed = torch_refs, data.seed
    m = config.model
    if m.attention_dim != sm_examples[0].features.shape[1]:
      raise ValueError(f"the torch DSNet-AF attends at the feature width {sm_examples[0].features.shape[1]}; "
                       f"config.model.attention_dim is {m.attention_dim}")
    sm_model = torch_refs.SMWithShift(sm_examples[0].features.shape[1], m.num_hidden, m.num_heads, m.dropout_rate)
    lm_model = torch_refs.vslnet(config.lm, word_vectors, lm.NUM_CHARS, sm_examples[0].features.shape[1])
    c = config.iptnet
    self.joint = torch_refs.JointTorch(
        sm_model, lm_model, sm_lr=config.train.lr, sm_weight_decay=config.train.weight_decay,
        lm_lr=config.lm.train.lr, teacher_keep=c.teacher_keep, lambda_reg=config.train.lambda_reg,
        lambda_ctr=config.train.lambda_ctr, highlight_lambda=config.lm.train.highlight_lambda,
        clip_norm=config.lm.train.clip_norm, radius=c.radius, alpha=c.alpha, sigma=c.sigma, variant=c.variant)
    self.videos = [{"features": torch.from_numpy(e.features), "target": torch.from_numpy(e.target),
                    "offsets": torch.from_numpy(e.offsets), "centerness": torch.from_numpy(e.centerness)}
                   for e in sm_examples]
    self.lm_samples = data.lm_samples
    self.steps = {step_lib.SM_ONLY: self.joint.sm_only, step_lib.LM_ONLY: self.joint.lm_only,
                  step_lib.LM_DATA: self.joint.lm_data, step_lib.SM_DATA: self.joint.sm_data}
    self.passes = {source: 0 for source in range(len(SOURCE_NAMES))}

  def run_pass(self, source: int) -> float:
    """One pass over the source's data, one sample per step (the LM's VSLNet collation included)."""
    rng = np.random.default_rng([self.seed, source, self.passes[source]])
    self.passes[source] += 1
    step = self.steps[source]
    start = time.perf_counter()
    if source in SM_SOURCES:
      for i in rng.permutation(len(self.videos)):
        step(self.videos[i])
    else:
      for i in rng.permutation(len(self.lm_samples)):
        step(self.torch_refs.collate([self.lm_samples[i]]))
    return time.perf_counter() - start


def sizes_from_args(args) -> Sizes:
  if args.quick:
    return tiny_sizes(min(args.joint_videos, 4), min(args.joint_samples, 4))
  return Sizes(sm_videos=args.joint_videos, lm_samples=args.joint_samples, sm_min_len=args.sm_min_len,
               sm_max_len=args.sm_max_len)


def run(args) -> tuple[list[common.Row], dict]:
  sizes = sizes_from_args(args)
  config = iptnet_config(sizes)
  sm_examples = sm.tvsum_like_examples(sizes.sm_videos, seed=args.seed, min_len=sizes.sm_min_len,
                                       max_len=sizes.sm_max_len, feature_dim=sizes.feature_dim)
  lm_samples = lm.charades_like_samples(sizes.lm_samples, seed=args.seed, max_pos_len=sizes.lm_max_len,
                                       visual_dim=sizes.feature_dim)
  vectors = lm.word_vectors(args.seed, sizes.word_dim)
  sources = parse_sources(args.joint_sources)
  data = JointData(config, sm_examples, lm_samples, seed=args.seed)
  ours = OursJoint(data, vectors, sources)
  warmup = 1
  ours.compile(warmup + args.repeats)
  reference = None
  if not args.no_torch:
    reference = TorchJointRunner(data, vectors)

  runners, memory = {}, {}
  for source in sources:
    name = SOURCE_NAMES[source]
    runners[f"ours {name}"] = common.with_peak_memory(lambda s=source: ours.run_pass(s), memory, f"ours {name}")
    if reference is not None:
      runners[f"torch {name}"] = common.with_peak_memory(lambda s=source: reference.run_pass(s), memory,
                                                         f"torch {name}")
  timings = common.interleaved(runners, repeats=args.repeats, warmup=warmup)

  rows: list[common.Row] = []
  record: dict = {"sizes": dataclasses.asdict(sizes), "timings": {k: v.to_json() for k, v in timings.items()},
                  "sources": {}}
  width = "tiny widths (--quick)" if sizes.tiny_models else f"{sizes.feature_dim}-d"
  for source in sources:
    name = SOURCE_NAMES[source]
    n, batch_size = data.num_samples(source), data.batch_size(source)
    steps = -(-n // batch_size)
    t_ours = timings[f"ours {name}"]
    what = f"{n} {'videos' if source in SM_SOURCES else 'samples'} ({width})"
    shapes = data.pass_shapes(source, 0)
    rows.append(common.Row("joint", f"step {name}, ours (b{batch_size})", steps / t_ours.median, "steps/s", "",
                           f"{steps} steps of {batch_size} per pass over {what}; {len(shapes)} shape(s) per pass; "
                           f"{t_ours.spread()}"))
    entry = {"steps_per_pass": steps, "batch_size": batch_size, "samples_per_pass": n,
             "ours_samples_per_s": n / t_ours.median, "shapes_first_pass": len(shapes)}
    ratio = ""
    if reference is not None:
      t_ref = timings[f"torch {name}"]
      speedup = t_ref.median / t_ours.median
      ratio = f"ours {speedup:.2f}x torch b1 (samples/s)"
      entry |= {"torch_samples_per_s": n / t_ref.median, "speedup_samples_per_s": speedup}
    rows.append(common.Row("joint", "  ours, samples", n / t_ours.median, "samples/s", ratio,
                           common.paired_ratio(timings[f"torch {name}"], t_ours) if reference is not None else ""))
    if reference is not None:
      rows.append(common.Row("joint", "  torch eager b1 (released loop)", n / t_ref.median, "samples/s", "",
                             f"{n} steps per pass; {t_ref.spread()}"))
    record["sources"][name] = entry

  compile_s = ours.compile_s
  sm_keys = {k for s in sources if s in SM_SOURCES for k in data.pass_shapes(s, 0)}
  lm_keys = {k for s in sources if s not in SM_SOURCES for k in data.pass_shapes(s, 0)}
  branches = "all four branches" if len(sources) == len(SOURCE_NAMES) else f"only the branches of {args.joint_sources}"
  rows.append(common.Row(
      "joint", "compile, ours (trace+lower+compile)", sum(compile_s.values()), "s", "",
      f"step with {branches}; {len(compile_s)} distinct shapes for {warmup + args.repeats} passes per source; one "
      f"pass meets {len(sm_keys)} (SM sources) and {len(lm_keys)} (LM sources), {len(sm_keys | lm_keys)} in all; "
      f"per shape {min(compile_s.values()):.2f}-{max(compile_s.values()):.2f} s"))
  for side in ("ours", "torch"):
    measured = {SOURCE_NAMES[s]: memory[f"{side} {SOURCE_NAMES[s]}"] for s in sources
                if f"{side} {SOURCE_NAMES[s]}" in memory}
    if not measured:
      continue
    worst = max(measured, key=lambda k: measured[k].peak_rss)
    rows.append(common.Row("joint", f"peak memory, {side} (max over sources)", measured[worst].peak_rss / 2**20,
                           "MiB RSS", "", f"{worst}: {measured[worst].describe()}; per source "
                           + ", ".join(f"{k} {m.peak_rss / 2**20:.0f}" for k, m in measured.items()),
                           extra={k: m.to_json() for k, m in measured.items()}))
  record |= {"compile_s": {str(k): v for k, v in compile_s.items()}, "shapes_first_pass_sm": len(sm_keys),
             "shapes_first_pass_lm": len(lm_keys), "memory": {k: m.to_json() for k, m in memory.items()},
             "sm_lengths": [e.features.shape[0] for e in sm_examples],
             "lm_num_units": [s.num_units for s in lm_samples]}
  return rows, record
