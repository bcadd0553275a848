"""Tests mirror modules: every module iptnet_jax/<pkg>/<name>.py has a sibling test file, tests/<name>_test.py or
tests/<pkg>_<name>_test.py (for deeper modules any tail of the dotted path: parity/reference/dsnet_torch.py ->
reference_dsnet_torch_test.py). Package __init__ files and __main__ programs are exempt."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "iptnet_jax"
TESTS = REPO / "tests"
# Modules split out of others by the data-layer change (issue 16 item 4) whose tests still live in the old
# module's test file (e.g. anchor_free_labels in sm_anchor_free_test, text and clip_features in charades_sta_test,
# the ports in parity_sm_test / parity_lm_test): to be moved next (issue 16 item 7). An entry that no longer names
# a module without a sibling fails the test below: remove it then.
PENDING = ("iptnet_jax/datasets/anchor_free_labels.py", "iptnet_jax/datasets/clip_features.py",
           "iptnet_jax/datasets/summarization.py", "iptnet_jax/datasets/text.py", "iptnet_jax/lm/porting.py",
           "iptnet_jax/sm/porting.py", "iptnet_jax/torch_checkpoint.py")


def sibling_names(module: Path) -> set[str]:
  """The test file names that count as `module`'s sibling (module: a path relative to the repository)."""
  parts = module.relative_to("iptnet_jax").with_suffix("").parts
  return {"_".join(parts[i:]) + "_test.py" for i in range(len(parts))}


def modules_without_sibling(modules: list[Path], test_files: set[str]) -> list[str]:
  return [str(m) for m in modules if not sibling_names(m) & test_files]


def _modules() -> list[Path]:
  return sorted(p.relative_to(REPO) for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))


def _is_pending(module: str) -> bool:
  return any(module.startswith(entry) if entry.endswith("/") else module == entry for entry in PENDING)


def test_sibling_names_follow_the_convention():
  assert sibling_names(Path("iptnet_jax/fileio.py")) == {"fileio_test.py"}
  assert sibling_names(Path("iptnet_jax/sm/inference.py")) == {"inference_test.py", "sm_inference_test.py"}
  assert "reference_dsnet_torch_test.py" in sibling_names(Path("iptnet_jax/parity/reference/dsnet_torch.py"))
  modules = [Path("iptnet_jax/a.py"), Path("iptnet_jax/pkg/b.py"), Path("iptnet_jax/pkg/c.py")]
  assert modules_without_sibling(modules, {"a_test.py", "pkg_b_test.py", "pkg_test.py"}) == ["iptnet_jax/pkg/c.py"]


def test_every_module_has_a_sibling_test_file():
  test_files = {p.name for p in TESTS.glob("*_test.py")}
  missing = modules_without_sibling(_modules(), test_files)
  assert [m for m in missing if not _is_pending(m)] == [], "add tests/<name>_test.py or tests/<pkg>_<name>_test.py"
  stale = [entry for entry in PENDING if not any(_is_pending(m) and m.startswith(entry) for m in missing)]
  assert stale == [], f"PENDING entries with nothing left to cover (remove them): {stale}"
