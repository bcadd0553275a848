"""Benchmarks harness: the analytic FLOP counter against XLA's cost analysis and a hand count, and smoke runs of
the sections at tiny sizes. No timing is asserted."""

import gc
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import common, flops, joint, lm, run, sm, sm_variants
from iptnet_jax.datasets import anchor_free_labels, summarization
from iptnet_jax.sm import anchor_free
from iptnet_jax.sm import model as sm_model
from iptnet_jax.sm import train as sm_train

SMALL = flops.DSNetAFShape(feature_dim=64, attention_dim=32, num_heads=4, num_hidden=16)
# unittest's assertAlmostEqual default (equal when the difference rounds to 0 at 7 decimal places), for approx
PLACES_7 = 5e-8


def _small_model():
  return sm_model.DSNetAF(num_hidden=SMALL.num_hidden, num_heads=SMALL.num_heads, attention_dim=SMALL.attention_dim)


def _xla_flops(fn, *args) -> float:
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(analysis, list):  # older jax returned one dict per computation
    analysis = analysis[0]
  return float(analysis["flops"])


def test_matmul_is_two_flops_per_multiply_add():
  a, b = jnp.ones((3, 5)), jnp.ones((5, 7))
  assert flops.matmul(3, 5, 7) == 2 * 3 * 5 * 7
  assert _xla_flops(lambda x, y: x @ y, a, b) == flops.matmul(3, 5, 7)


def test_hand_count_of_the_default_model():
  # T = 10: QKV 3*2*10*1024*1024, scores and weights@V 2*2*10*10*1024, W_O 2*10*1024*1024,
  # fc1 2*10*1024*128, heads 2*10*128*4.
  expected = (3 * 20 * 2**20) + 2 * (2 * 100 * 1024) + 20 * 2**20 + 20 * 1024 * 128 + 20 * 128 * 4
  assert flops.dsnet_af_forward(10).matmul == expected
  # backward: Q/K/V weight gradients only (1x), every other matmul 2x
  assert flops.dsnet_af_train(10).matmul == expected + 3 * 20 * 2**20 + 2 * (expected - 3 * 20 * 2**20)


def test_parameter_count_matches_the_model():
  params = sm_train.init_params(sm_model.DSNetAF(), jax.random.key(0), 1024)
  assert sum(x.size for x in jax.tree.leaves(params)) == flops.dsnet_af_num_params()
  assert flops.dsnet_af_num_params() == 4_328_324  # reference_spec.md §2.4


@pytest.mark.parametrize("length", [16, 40])
def test_forward_matches_xla_cost_analysis(length):
  model = _small_model()
  params = sm_train.init_params(model, jax.random.key(0), SMALL.feature_dim)
  x, mask = jnp.zeros((2, length, SMALL.feature_dim)), jnp.ones((2, length))
  measured = _xla_flops(lambda p, f, m: model.apply({"params": p}, f, m, deterministic=True), params, x, mask)
  counted = flops.dsnet_af_forward(length, SMALL, batch=2)
  assert counted.matmul < measured
  np.testing.assert_allclose(counted.total, measured, rtol=0.1)


def test_forward_matches_xla_at_the_real_size():
  """At DSNet's sizes matmuls dominate: the count is within 0.5 % of XLA's, forward and forward+backward."""
  model = sm_model.DSNetAF()
  params = sm_train.init_params(model, jax.random.key(0), 1024)
  length = 64
  x, mask = jnp.zeros((1, length, 1024)), jnp.ones((1, length))
  forward = _xla_flops(lambda p, f, m: model.apply({"params": p}, f, m, deterministic=True), params, x, mask)
  np.testing.assert_allclose(flops.dsnet_af_forward(length).total, forward, rtol=5e-3)

  batch = {"features": x, "mask": mask, "target": jnp.ones((1, length)), "offsets": jnp.ones((1, length, 2)),
           "centerness": jnp.full((1, length), 0.5), "example_mask": jnp.ones((1,))}

  def loss(p):
    out = model.apply({"params": p}, x, mask, deterministic=True)
    return anchor_free.anchor_free_losses(out, batch)["total"]

  # Without dropout: XLA also counts the threefry bits of dropout masks, which are not model FLOPs.
  train = _xla_flops(jax.grad(loss), params)
  counted = flops.dsnet_af_train(length)
  np.testing.assert_allclose(counted.matmul, train, rtol=5e-3)
  assert counted.matmul < train


def test_matmuls_only_runs_exactly_the_counted_matmuls():
  fn, operands = sm.matmuls_only(24, SMALL)
  assert _xla_flops(fn, operands) == flops.dsnet_af_train(24, SMALL).matmul


def test_epoch_count_is_the_sum_over_videos():
  lengths = [49, 100, 323]
  total = flops.sm_epoch_train(lengths)
  assert total.total == pytest.approx(sum(flops.dsnet_af_train(t).total for t in lengths), abs=PLACES_7)


def test_tvsum_like_examples():
  examples = sm.tvsum_like_examples(6, seed=3, feature_dim=8)
  lengths = [e.features.shape[0] for e in examples]
  assert all(sm.MIN_LEN <= t <= sm.MAX_LEN for t in lengths)
  assert lengths == [e.features.shape[0] for e in sm.tvsum_like_examples(6, seed=3, feature_dim=8)]
  for e in examples:
    assert e.target.any()
    assert e.target.mean() <= 0.5
    np.testing.assert_array_equal(e.offsets, anchor_free_labels.offset_labels(e.target))


def test_bit_dropout_keeps_half_and_rescales():
  x = jnp.ones((4, 33, 17))
  for rate in (0.5, 0.2):
    drop = jax.jit(lambda x, key, rate=rate: sm_variants.BitDropout(rate).apply({}, x, deterministic=False,
                                                                                rngs={"dropout": key}))
    y = drop(x, jax.random.key(0))
    kept = np.asarray(y != 0)
    assert kept.mean() == pytest.approx(1 - rate, abs=0.03)
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / (1 - rate), rtol=1e-6)
  same = sm_variants.BitDropout(0.5).apply({}, x, deterministic=True)
  np.testing.assert_array_equal(same, x)


def test_bit_dropout_patch_is_scoped():
  original = sm_model.nn
  with sm_variants.bit_dropout_in_sm_model():
    assert sm_model.nn.Dropout is sm_variants.BitDropout
    assert sm_model.nn.Dense is original.Dense
  assert sm_model.nn is original


def test_interleaved_runs_round_robin_after_warmup():
  calls = []
  timings = common.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b") or 2.0},
                               repeats=3, warmup=1)
  assert calls == ["a", "b"] + ["a", "b"] * 3
  assert timings["b"].seconds == [2.0] * 3
  assert len(timings["a"].seconds) == 3


def test_peak_memory_sees_an_allocation():
  with common.PeakMemory() as mem:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB
    block[::4096] = 2.0
    del block
  assert mem.peak_rss - mem.rss_before >= 48 * 2**20
  assert mem.device_peak is None  # CPU: host RSS only


def test_peak_memory_is_not_hidden_by_earlier_garbage():
  """Cyclic garbage left by earlier work and freed by a collection inside the body (which any allocation there
  can trigger) made RSS fall by more than the body allocated: +0 MiB for a 64 MiB array in a full-suite run."""

  class Node:
    pass

  node = Node()
  node.cycle, node.data = node, np.ones(128 * 2**20 // 8)
  del node
  with common.PeakMemory() as mem:
    gc.collect()  # the collection an allocation in the body may trigger
    block = np.ones(64 * 2**20 // 8)
    del block
  assert mem.peak_rss - mem.rss_before >= 48 * 2**20


def test_profile_rows_split_the_epoch():
  """The SM profile's parts add up to the epoch (sm.profile_rows; the profile itself runs in `--quick`)."""
  bucket = {"videos": 3, "step": 0.05, "grad": 0.04, "grad_no_dropout": 0.03, "grad_bitdrop": 0.035,
            "matmuls": 0.02, "flops": 4e9, "matmul_flops": 3.9e9}
  prof = {"epoch_s": 0.6, "peak_gflops": 400.0, "adam_update_s": 0.005, "useful_flops": 6e9,
          "per_bucket": {64: bucket, 128: dict(bucket, videos=2, step=0.08, flops=8e9, matmul_flops=7.8e9)}}
  rows = sm.profile_rows(prof)
  parts = [r.value for r in rows[1:-1]]
  assert sum(parts) == pytest.approx(prof["epoch_s"], abs=PLACES_7)
  assert sum(float(r.ratio) for r in rows[1:-1]) == pytest.approx(1.0, abs=0.02)
  assert parts[0] == pytest.approx(prof["useful_flops"] / 400e9, abs=PLACES_7)


def test_table_has_one_line_per_row():
  rows = [common.Row("s", "a", 1.5, "x"), common.Row("s", "b", None, "y", "r", "d")]
  lines = common.format_table(rows).splitlines()
  assert len(lines) == 4
  assert "-" in lines[3]


def test_quick_joint_sizes_share_one_shape():
  """--quick's data and batch sizes give every source the stand-in shapes: one compiled step for all four."""
  sizes = joint.tiny_sizes()
  config = joint.iptnet_config(sizes)
  sm_examples = sm.tvsum_like_examples(sizes.sm_videos, min_len=sizes.sm_min_len, max_len=sizes.sm_max_len,
                                       feature_dim=sizes.feature_dim)
  lm_samples = lm.charades_like_samples(sizes.lm_samples, max_pos_len=sizes.lm_max_len,
                                        visual_dim=sizes.feature_dim)
  data = joint.JointData(config, sm_examples, lm_samples)
  shapes = {key for source in range(4) for key in data.pass_shapes(source, 0)}
  assert len(shapes) == 1


def test_joint_sources_parse():
  assert joint.parse_sources("sm_data, lm_only") == (1, 3)
  with pytest.raises(ValueError):
    joint.parse_sources("sm_only,both")


@pytest.mark.slow
def test_torch_joint_each_source_moves_its_modules_and_teachers():
  """The eager restatement of the released code's joint steps: each source moves the modules it trains."""
  torch = pytest.importorskip("torch")
  from benchmarks import torch_refs

  sizes = joint.tiny_sizes()
  config = joint.iptnet_config(sizes)
  video = sm.tvsum_like_examples(1, min_len=20, max_len=30, feature_dim=sizes.feature_dim)[0]
  sample = lm.charades_like_samples(1, max_pos_len=16, visual_dim=sizes.feature_dim)[0]
  torch.manual_seed(0)
  m = config.model
  sm_model = torch_refs.SMWithShift(sizes.feature_dim, m.num_hidden, m.num_heads, m.dropout_rate)
  lm_model = torch_refs.vslnet(config.lm, lm.word_vectors(0, sizes.word_dim), lm.NUM_CHARS, sizes.feature_dim)
  ref = torch_refs.JointTorch(sm_model, lm_model, sm_lr=1e-3, sm_weight_decay=1e-5, lm_lr=1e-3,
                              teacher_keep=0.3, radius=3)
  inputs = {"sm": {k: torch.from_numpy(getattr(video, k)) for k in ("features", "target", "offsets", "centerness")},
            "lm": torch_refs.collate([sample])}
  snapshot = lambda module: [p.detach().clone() for p in module.parameters()]
  moved = lambda before, module: any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
  for name, data, expect in (("sm_only", "sm", ("sm",)), ("lm_only", "lm", ("lm",)),
                             ("lm_data", "lm", ("sm", "lm")), ("sm_data", "sm", ("sm", "lm"))):
    before = {k: snapshot(getattr(ref, k)) for k in ("sm", "lm", "sm_teacher", "lm_teacher")}
    loss = getattr(ref, name)(inputs[data])
    assert math.isfinite(loss), name
    for module in ("sm", "lm"):
      assert moved(before[module], getattr(ref, module)) == (module in expect), f"{name}: {module}"
      assert moved(before[f"{module}_teacher"], getattr(ref, f"{module}_teacher")) == (module in expect), \
          f"{name}: {module} teacher"


# Smoke runs: the entry command end to end at tiny sizes (numbers meaningless).
@pytest.mark.slow
def test_quick_run_of_sm_eval(tmp_path):
  pytest.importorskip("torch")
  out = str(tmp_path / "bench.json")
  result = run.main(["--quick", "--only", "sm,eval", "--sm-videos", "2", "--repeats", "1", "--no-profile",
                     "--json", out])
  names = [r["name"] for r in result["rows"]]
  assert "train epoch, ours (jit, bucketed, b1)" in names
  assert "train epoch, torch eager b1 (DSNet loop)" in names
  assert "compile, ours (trace+lower+compile)" in names
  assert any(n.startswith("score a split") for n in names)
  assert any(n.startswith("peak memory") for n in names)
  sm_record = result["sections"]["sm"]
  assert sm_record["peak"]["gflops"] > 0
  assert sm_record["executed_flops"] >= sm_record["useful_flops"]
  with open(out) as f:
    written = json.load(f)
  assert written["environment"]["backend"] == "cpu"
  assert all(math.isfinite(r["value"]) for r in written["rows"] if r["value"] is not None)


@pytest.mark.slow
def test_quick_run_of_joint():
  """The joint section end to end at tiny sizes, one source (a one-branch step compiles in seconds; the
  four-branch step of a full run takes tens of seconds even at tiny widths)."""
  pytest.importorskip("torch")
  result = run.main(["--quick", "--only", "joint", "--joint-sources", "sm_only", "--repeats", "1"])
  rows = {r["name"]: r for r in result["rows"]}
  assert rows["step sm_only, ours (b4)"]["value"] > 0
  assert "x torch b1 (samples/s)" in rows["  ours, samples"]["ratio"]
  assert rows["  torch eager b1 (released loop)"]["value"] > 0
  assert "1 distinct shapes" in rows["compile, ours (trace+lower+compile)"]["detail"]
  assert any(n.startswith("peak memory, ours") for n in rows)
  record = result["sections"]["joint"]["sources"]["sm_only"]
  assert (record["batch_size"], record["samples_per_pass"], record["steps_per_pass"]) == (4, 4, 1)
