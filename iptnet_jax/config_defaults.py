"""Default configuration trees shared by the files in configs/, their validation, and the command-line syntax that
picks and changes a config.

configs/*.py import these builders and override fields; `validate(config)` refuses a bad value before any data is
read, with an error naming the config field. Every command takes a config as `iptnet_jax.main` does,
`--config=configs/FILE.py[:VARIANTS]` plus `--config.FIELD=VALUE` overrides (ml_collections.config_flags):
main through absl's flags, the experiments through `parse_config_flags`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import traceback
from collections.abc import Sequence
from pathlib import Path

import ml_collections
from absl import flags
from ml_collections import config_flags

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
  """Full iPTNet: the SM fields of `sm_config`, the LM config (configs/common.py's `lm_config`) under `lm`, and
  `iptnet`."""
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
  # LM batches per LM phase; 0 = a whole pass (released: 6000 samples); more than a pass: reshuffled passes follow
  config.iptnet.lm_steps_per_phase = 0
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


def is_positive_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value > 0


def is_seed(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_sm(config: ml_collections.ConfigDict) -> None:
  _require(is_seed(config.seed), "seed", config.seed, "a non-negative integer")
  _require(config.data.source in ("h5", "synthetic"), "data.source", config.data.source, "'h5' or 'synthetic'")
  buckets = tuple(config.data.buckets)
  increasing = all(is_positive_int(b) for b in buckets) and all(a < b for a, b in zip(buckets, buckets[1:]))
  _require(bool(buckets) and increasing, "data.buckets", buckets, "positive, strictly increasing lengths")
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


def _check_iptnet(config: ml_collections.ConfigDict) -> None:
  _check_sm(config)
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


TASKS = ("sm", "lm", "iptnet", "highlight")


def validate(config: ml_collections.ConfigDict) -> None:
  """The one check of a run's config, by `config.task`: raises an InputError naming the first bad field and what it
  expected (ConfigError; LMConfigError for the LM's fields, under `lm.` in an iPTNet config; HighlightConfigError).
  Every trainer calls it before reading any data."""
  task = config.get("task")
  if task == "sm":
    _check_sm(config)
  elif task == "iptnet":
    _check_iptnet(config)
    if config.iptnet.use_lm:
      from iptnet_jax.lm.train import check_lm_config  # imported here: lm/train.py imports this module

      check_lm_config(config.lm, prefix="lm.")
  elif task == "lm":
    from iptnet_jax.lm.train import check_lm_config

    check_lm_config(config)
  elif task == "highlight":
    from iptnet_jax.highlight.train import check_config

    check_config(config)
  else:
    raise ConfigError(f"config.task={task!r}: expected one of {', '.join(TASKS)}")


# ------------------------------------------------------------------------------------------------ command line


def describe_flag_error(error: BaseException, argv: Sequence[str]) -> str:
  """One line for a command line that cannot be parsed: a bad flag value, a config file that does not load, an
  override of a field the config does not have (keeping ml_collections' "did you mean")."""
  if isinstance(error, OSError) and error.filename:
    return f"--config: {error.filename}: {error.strerror}"
  if isinstance(error, SyntaxError):
    return f"--config: {error.filename}, line {error.lineno}: not a Python config file ({error.msg})"
  text = str(error.args[0] if len(error.args) == 1 else error)
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  if len(lines) > 1:  # ml_collections quotes the config file's traceback or lists the paths it tried
    text = lines[-1]
  if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":  # a KeyError's repr
    text = text[1:-1]
  text = text.replace("\\n", " ").replace("\\'", "'").strip()
  if isinstance(error, (AttributeError, KeyError)):  # an override naming a field the config lacks
    field = re.match(r"'?([A-Za-z_]\w*)'?", text)
    overrides = [a.split("=")[0] for a in argv if a.startswith("--config.")]
    culprit = next((o for o in overrides if field and o.split(".")[-1] == field.group(1)), "--config.*")
    return f"{culprit}: the config has no such field ({text})"
  if isinstance(error, flags.Error):
    override = re.match(r"flag (--config\.[^=\s]+=.*?): (.+)", text)
    if override:  # a value the field's type cannot take: absl names the override
      return f"{override.group(1)}: {override.group(2)}"
    inner = error.__cause__ or error.__context__
    if inner is not None and not isinstance(inner, flags.Error):
      return describe_flag_error(inner, argv)  # what went wrong inside the config file
    return " ".join(text.split())
  if isinstance(error, InputError):  # a config file's own check (e.g. an unknown variant) names the file
    kind = type(error)
    for prefix in (f"{kind.__module__}.{kind.__qualname__}: ", f"{kind.__name__}: "):
      text = text.removeprefix(prefix)
    return f"--config: {text}"
  # An exception raised inside the config file: say where.
  frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
  where = f" ({frame.filename}, line {frame.lineno})" if frame and "site-packages" not in frame.filename else ""
  name = type(error).__name__
  return f"--config: {text if text.startswith(name) else f'{name}: {text}'}{where}"


def _parse_config(argv: list[str], define) -> ml_collections.ConfigDict:
  """Parses `--config...` arguments with ml_collections' flag (`define`: config_flags.DEFINE_config_file or _dict)
  on a private set of flags, so that a tool with its own command line reads a config exactly as iptnet_jax.main."""
  flag_values = flags.FlagValues()
  try:
    # sys_argv: the flag finds its overrides there (by default in sys.argv); a dict's overrides parse right here.
    holder = define("config", flag_values=flag_values, lock_config=True, sys_argv=argv)
    flag_values(argv)
    config = holder.value
    getattr(config, "task", None)  # ml_collections reports a config file it could not load only at first use
  except Exception as error:  # noqa: BLE001 - everything here comes from the command line or the config file
    raise ConfigError(describe_flag_error(error, argv)) from error
  return config


@dataclasses.dataclass(frozen=True)
class ConfigArgs:
  """A command line's `--config=FILE.py[:VARIANTS]` (None when it names none) and its `--config.FIELD=VALUE`
  overrides, as written."""
  spec: str | None
  overrides: tuple[str, ...] = ()

  @property
  def path(self) -> str:
    return (self.spec or "").partition(":")[0]

  @property
  def variants(self) -> str:
    return (self.spec or "").partition(":")[2]

  def load(self, variants: str | None = None) -> ml_collections.ConfigDict:
    """The config file's config for its variants (or `variants` instead, e.g. with a run's own added), with the
    overrides applied; a bad file, variant, field or value is a ConfigError of one line."""
    if not self.spec:
      raise ConfigError("--config: expected a config file, e.g. --config=configs/demo.py")
    variants = self.variants if variants is None else variants
    argv = ["config", f"--config={self.path}:{variants}" if variants else f"--config={self.path}", *self.overrides]
    return _parse_config(argv, functools.partial(config_flags.DEFINE_config_file, default=None))

  def apply(self, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The overrides set on a config built in code (for a tool that makes its configs itself); the config is
    changed in place and locked (no new fields), as a loaded one."""
    if not self.overrides:
      return config
    return _parse_config(["config", *self.overrides], functools.partial(config_flags.DEFINE_config_dict, config=config))


def parse_config_flags(argv: Sequence[str], *, default: str | None = None, root: str | Path | None = None
                       ) -> tuple[ConfigArgs, list[str]]:
  """Takes `--config=FILE.py[:VARIANTS]` (or `--config FILE.py...`; `default` when absent) and every
  `--config.FIELD=VALUE` out of `argv`, in any order; returns them and the other arguments, in order, for the
  tool's own parser. A relative FILE is relative to `root` when given (else the working folder, as for main)."""
  spec, overrides, rest = default, [], []
  args = iter(argv)
  for arg in args:
    if arg == "--config":
      spec = next(args, None)
      if spec is None:
        raise ConfigError("--config: expected a config file, e.g. --config=configs/demo.py")
    elif arg.startswith("--config="):
      spec = arg.partition("=")[2]
    elif arg.startswith("--config."):
      if "=" not in arg:
        raise ConfigError(f"{arg}: expected --config.FIELD=VALUE, e.g. --config.train.lr=1e-4")
      overrides.append(arg)
    else:
      rest.append(arg)
  if spec and root is not None and not Path(spec.partition(":")[0]).expanduser().is_absolute():
    spec = str(Path(root) / spec)
  return ConfigArgs(spec, tuple(overrides)), rest
