"""Default configuration trees shared by the files in configs/, and their validation.

configs/*.py import these builders and override fields; a bad value is caught by `check_sm_config` before
any data is read, with an error naming the config field.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

import ml_collections

from iptnet_jax.datasets.builders.synthetic_vsumm import SyntheticSpec
from iptnet_jax.errors import InputError

TVSUM_BUCKETS = (64, 128, 192, 256, 320, 384, 448, 512, 640, 768, 1024)


def sm_config() -> ml_collections.ConfigDict:
  """SM alone (DSNet anchor-free; the paper's iPTNet-L ablation) on eccv16 h5 files."""
  config = ml_collections.ConfigDict()
  config.task = "sm"
  config.seed = 12345
  # An upstream DSNet-AF checkpoint to start from (iptnet_jax.sm.porting): a .pth file for every split, a path
  # with "{split}", or an upstream model folder holding checkpoint/<split file>.<i>.pt. Needs torch.
  config.init_from = ""
  # The unrolled threefry lowering on XLA:CPU (iptnet_jax/cpu_threefry.py: same random bits, faster dropout;
  # no effect on GPU/TPU); False keeps jax's own lowering, e.g. if a jax upgrade moved the hook it patches.
  config.cpu_threefry = True

  config.data = ml_collections.ConfigDict()
  config.data.source = "h5"  # "h5": eccv16 files in dataset_dir; "synthetic": generated into the workdir
  config.data.dataset_dir = "datasets"
  config.data.split_file = "../shared/data/vsumm/splits/dsnet/tvsum.yml"
  config.data.default_h5 = "eccv16_dataset_tvsum_google_pool5.h5"  # for split files with bare keys
  config.data.h5_renames = ""  # "old.h5=new.h5,...": read a split file's videos from other files
  config.data.splits = "all"  # or comma-separated split indices, e.g. "0,3"
  config.data.buckets = TVSUM_BUCKETS
  # > 0: this fraction of each split's training videos becomes its validation subset (model selection without
  # reading test; datasets/splits.carve_validation), the same videos for every seed and method of a comparison.
  config.data.val_fraction = 0.0
  config.data.val_seed = 0
  config.data.synthetic = ml_collections.ConfigDict(dataclasses.asdict(SyntheticSpec()))

  config.model = ml_collections.ConfigDict()
  config.model.num_hidden = 128
  config.model.num_heads = 8
  config.model.attention_dim = 1024
  config.model.dropout_rate = 0.5
  # 'bfloat16': attention and fc1 compute in bf16 with float32 parameters (sm/model.py); for GPUs and TPUs
  # (BUILD.md, 'Mixed precision'). Parity and the published numbers use 'float32'.
  config.model.compute_dtype = "float32"

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 300
  config.train.batch_size = 1  # videos per step; DSNet uses 1
  config.train.lr = 5e-5  # DSNet's default for the SM alone
  config.train.weight_decay = 1e-5  # coupled L2, as torch.optim.Adam(weight_decay=...)
  config.train.lambda_reg = 1.0
  config.train.lambda_ctr = 1.0
  # The latest full state is saved at every epoch end and, when > 0, every this many steps (iptnet_jax.loop).
  config.train.checkpoint_every_steps = 0

  config.eval = ml_collections.ConfigDict()
  config.eval.protocol = "fscore"  # "fscore": keyshot F1 (DSNet); "top5_map": highlight detection (UMT)
  config.eval.nms_thresh = 0.4  # anchor-free DSNet
  config.eval.proportion = 0.15
  config.eval.metric = "auto"  # "auto": DSNet's rule ('avg' if 'tvsum' in the key, else 'max'), or avg / max
  config.eval.batch_size = 8
  config.eval.random_seeds = 20  # seeds for the random-score floor in the final table
  return config


def iptnet_config(lm_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Full iPTNet: the SM fields of `sm_config`, the LM config (configs/charades.py) under `lm`, and `iptnet`."""
  config = sm_config()
  config.task = "iptnet"
  config.train.lr = 1e-5  # the paper's SM learning rate
  config.train.epochs = 100  # SM epochs: warm-up + collaborative rounds
  config.lm = lm_config
  config.lm.train.lr = 5e-4  # the paper's (and released code's) LM learning rate, plain Adam
  # As the released LM: no positional table, so the query-free path reads summarization videos of any length.
  config.lm.model.position_embedding = False
  config.iptnet = ml_collections.ConfigDict()
  config.iptnet.use_lm = True  # False: iPTNet-L (SM alone)
  config.iptnet.propagation = True  # False: iPTNet-P (the SM's importance instead of the propagated map)
  config.iptnet.teaching = True  # False: iPTNet-T (no teacher terms)
  config.iptnet.joint = True  # False: the LM alone with the same LM passes (paper Fig. 5's baseline)
  config.iptnet.variant = "released"  # PM: "released" (p = s + 0.5 sum cos s, sigma 4) or "paper" (Alg. 1)
  config.iptnet.radius = 10  # s, the window half-width
  config.iptnet.alpha = 0.5
  config.iptnet.sigma = 4.0
  config.iptnet.teacher_keep = 0.3  # gamma: teacher <- gamma teacher + (1 - gamma) student
  config.iptnet.distribution = "softmax"  # maps -> distributions over time: "softmax" (released) or "normalize"
  config.iptnet.direction = "target_to_student"  # KL(target || student) as torch's kl_div, or the reverse
  config.iptnet.lm_teacher_dropout = True  # released-code quirk: the LM teacher stays in train mode
  config.iptnet.sm_teacher_dropout = False  # and the SM teacher in eval mode
  config.iptnet.lm_warmup_epochs = 2  # LM-only epochs first, as the released code
  config.iptnet.sm_warmup_epochs = 10  # SM-only epochs before the collaborative rounds
  config.iptnet.lm_steps_per_phase = 0  # LM batches per LM phase; 0 = a whole pass (released: 6000 samples)
  config.iptnet.num_devices = 0  # devices of the data-parallel mesh; 0 = all
  config.iptnet.distributed = False  # True: jax.distributed.initialize() for a multi-host run (BUILD.md)
  # Left empty / -1, jax.distributed.initialize detects them (TPU pods, SLURM, Open MPI, Kubernetes).
  config.iptnet.coordinator_address = ""
  config.iptnet.num_processes = -1
  config.iptnet.process_id = -1
  return config


class ConfigError(InputError):
  """A configuration value outside its allowed range."""


def _require(ok: bool, field: str, value, expected: str) -> None:
  if not ok:
    raise ConfigError(f"config.{field}={value!r}: expected {expected}")


def parse_split_selection(selection: str, num_splits: int) -> list[int]:
  if selection in ("all", ""):
    return list(range(num_splits))
  try:
    indices = [int(part) for part in str(selection).split(",")]
  except ValueError:
    raise ConfigError(f"config.data.splits={selection!r}: expected 'all' or comma-separated split indices") from None
  bad = [i for i in indices if not 0 <= i < num_splits]
  _require(not bad, "data.splits", selection, f"indices in [0, {num_splits}) (the split file has {num_splits})")
  return indices


def is_positive_finite(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def is_seed(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_sm_config(config: ml_collections.ConfigDict) -> None:
  _require(is_seed(config.seed), "seed", config.seed, "a non-negative integer")
  _require(config.data.source in ("h5", "synthetic"), "data.source", config.data.source, "'h5' or 'synthetic'")
  buckets = tuple(config.data.buckets)
  _require(bool(buckets) and all(b > 0 for b in buckets) and all(a < b for a, b in zip(buckets, buckets[1:])),
           "data.buckets", buckets, "positive, strictly increasing lengths")
  val_fraction = config.data.get("val_fraction", 0.0)
  _require(0 <= val_fraction < 1, "data.val_fraction", val_fraction, "a fraction in [0, 1)")
  _require(is_seed(config.data.get("val_seed", 0)), "data.val_seed", config.data.get("val_seed"),
           "a non-negative integer")
  _require(config.model.num_hidden > 0, "model.num_hidden", config.model.num_hidden, "a positive width")
  _require(config.model.num_heads > 0 and config.model.attention_dim % config.model.num_heads == 0,
           "model.attention_dim", config.model.attention_dim, f"a multiple of model.num_heads={config.model.num_heads}")
  _require(0 <= config.model.dropout_rate < 1, "model.dropout_rate", config.model.dropout_rate, "a rate in [0, 1)")
  _require(config.model.get("compute_dtype", "float32") in ("float32", "bfloat16"), "model.compute_dtype",
           config.model.get("compute_dtype"), "'float32' or 'bfloat16'")
  _require(config.train.epochs >= 0, "train.epochs", config.train.epochs, "0 (evaluate only) or more")
  _require(config.train.batch_size >= 1, "train.batch_size", config.train.batch_size, "at least 1")
  _require(is_positive_finite(config.train.lr), "train.lr", config.train.lr, "a finite, positive learning rate")
  _require(config.train.weight_decay >= 0, "train.weight_decay", config.train.weight_decay, "non-negative")
  _require(config.train.checkpoint_every_steps >= 0, "train.checkpoint_every_steps",
           config.train.checkpoint_every_steps, "0 (epoch ends only) or a positive step count")
  _require(0 < config.eval.nms_thresh <= 1, "eval.nms_thresh", config.eval.nms_thresh, "a threshold in (0, 1]")
  _require(0 < config.eval.proportion < 1, "eval.proportion", config.eval.proportion, "a fraction in (0, 1)")
  _require(config.eval.protocol in ("fscore", "top5_map"), "eval.protocol", config.eval.protocol,
           "'fscore' or 'top5_map'")
  _require(config.eval.metric in ("auto", "avg", "max"), "eval.metric", config.eval.metric, "'auto', 'avg' or 'max'")
  _require(config.eval.batch_size >= 1, "eval.batch_size", config.eval.batch_size, "at least 1")
  _require(config.eval.random_seeds >= 0, "eval.random_seeds", config.eval.random_seeds, "non-negative")


def check_iptnet_config(config: ml_collections.ConfigDict) -> None:
  check_sm_config(config)
  c = config.iptnet
  _require(c.variant in ("released", "paper"), "iptnet.variant", c.variant, "'released' or 'paper'")
  _require(c.radius >= 0, "iptnet.radius", c.radius, "a non-negative window half-width")
  _require(c.sigma > 0, "iptnet.sigma", c.sigma, "a positive Gaussian width")
  _require(0 <= c.teacher_keep <= 1, "iptnet.teacher_keep", c.teacher_keep, "a rate in [0, 1]")
  _require(c.distribution in ("softmax", "normalize"), "iptnet.distribution", c.distribution,
           "'softmax' or 'normalize'")
  _require(c.direction in ("target_to_student", "student_to_target"), "iptnet.direction", c.direction,
           "'target_to_student' or 'student_to_target'")
  for field in ("lm_warmup_epochs", "sm_warmup_epochs", "lm_steps_per_phase", "num_devices"):
    _require(c[field] >= 0, f"iptnet.{field}", c[field], "non-negative")
  if not c.distributed:  # a multi-host run's devices are known only after jax.distributed.initialize()
    import jax

    _require(c.num_devices <= jax.device_count(), "iptnet.num_devices", c.num_devices,
             f"at most the {jax.device_count()} device(s) of this machine ({jax.devices()[0].platform}), or 0 for all")
  _require(is_positive_finite(config.lm.train.lr), "lm.train.lr", config.lm.train.lr,
           "a finite, positive learning rate")
  # The LM-alone trainer's upstream-checkpoint start; the iPTNet LM has no positional table and starts from
  # its own LM warm-up, so a path here would be silently ignored.
  _require(not config.lm.get("init_from"), "lm.init_from", config.lm.get("init_from"),
           "empty for iPTNet runs (only task='lm' starts from a VSLNet checkpoint)")


def parse_override(item: str) -> tuple[str, str]:
  """'FIELD=VALUE' (a command-line override) -> (field, value text)."""
  field, sep, text = item.partition("=")
  if not sep or not field.strip():
    raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. train.lr=1e-4")
  return field.strip(), text


def _override_value(field: str, text: str, current):
  """The text as a value of the field's type: strings stay as written, the rest is a Python literal."""
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    raise ConfigError(f"--set {field}={text}: expected a Python literal like {current!r}") from None
  if isinstance(current, tuple) and isinstance(value, (list, int)):
    value = tuple(value) if isinstance(value, list) else (value,)
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  return value


def apply_overrides(config, overrides) -> None:
  """Sets each (dotted field, value text) on the config; the field must exist."""
  for field, value in overrides:
    *parents, leaf = field.split(".")
    node = config
    for part in parents:
      if part not in node:
        raise ConfigError(f"--set {field}: the config has no field '{part}'")
      node = node[part]
    if leaf not in node:
      raise ConfigError(f"--set {field}: the config has no field '{leaf}'")
    node[leaf] = _override_value(field, value, node[leaf])


def load_config_file(spec: str, overrides: Sequence[str] = (), *, root: str | Path | None = None
                     ) -> ml_collections.ConfigDict:
  """'configs/FILE.py[:variants]' (relative to `root`, default the working folder) with FIELD=VALUE overrides: the
  one loader of config files for the experiments (the command line goes through ml_collections' config_flags)."""
  path_text, _, variant = spec.partition(":")
  path = Path(path_text)
  if not path.is_absolute() and root is not None:
    path = Path(root) / path
  if not path.is_file():
    raise ConfigError(f"{path}: config file not found")
  module_spec = importlib.util.spec_from_file_location(f"config_file_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(variant) if variant else module.get_config()
  apply_overrides(config, [parse_override(item) for item in overrides])
  return config
