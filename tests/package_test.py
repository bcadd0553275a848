"""The package boundary: nothing under iptnet_jax/ reads tests/, every module imports without torch (an
ImportError with the install hint where torch is needed, never an exit), no import cycles, no upward import from
the data layer (datasets/) or the metrics (vsumm/), and a non-editable install runs the demo and the parity report
from another folder."""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

import pinned

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "iptnet_jax"
# The modules that need torch to import: the torch restatements of the parity references.
TORCH_MODULES = {"iptnet_jax.parity.reference", "iptnet_jax.parity.reference.dsnet_torch",
                 "iptnet_jax.parity.reference.iptnet_torch", "iptnet_jax.parity.reference.vslnet_torch"}


def _module_files() -> dict[str, Path]:
  """Dotted name -> source file of every module of the package (packages by their __init__)."""
  modules = {}
  for path in sorted(PACKAGE.rglob("*.py")):
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    modules[".".join(parts)] = path
  return modules


def test_module_list_is_the_package():
  names = _module_files()
  assert {m.name for m in pkgutil.walk_packages([str(PACKAGE)], "iptnet_jax.")} == set(names) - {"iptnet_jax"}
  assert TORCH_MODULES <= set(names)


def _non_docstring_strings(tree: ast.AST):
  docstrings = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
      first = node.body[0]
      if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        docstrings.add(id(first.value))
  for node in ast.walk(tree):
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
      yield node


def test_no_module_reads_the_tests_folder():
  """No path into tests/ is built anywhere in the package (docstrings may name tests that check a module)."""
  offenders = []
  for name, path in _module_files().items():
    for node in _non_docstring_strings(ast.parse(path.read_text(), str(path))):
      text = node.value
      if text == "tests" or text.startswith("tests/") or "/tests/" in text:
        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {text!r}")
  assert not offenders, offenders


# ------------------------------------------------------------------------------------------------------------
# Imports without torch

_IMPORT_EVERY_MODULE = r"""
import importlib, json, sys

class NoTorch:
  # A meta path finder that makes torch (and anything under it) uninstallable for this process.
  def find_spec(self, name, path=None, target=None):
    if name == "torch" or name.startswith("torch."):
      raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
    return None

sys.meta_path.insert(0, NoTorch())
outcomes = {}
for name in json.loads(sys.argv[1]):
  try:
    importlib.import_module(name)
    outcomes[name] = ["ok", ""]
  except SystemExit as stop:
    outcomes[name] = ["exit", repr(stop.code)]
  except ImportError as error:
    outcomes[name] = ["ImportError", str(error)]
  except BaseException as error:
    outcomes[name] = [type(error).__name__, str(error)]
outcomes["torch imported"] = ["torch" in sys.modules, ""]
print(json.dumps(outcomes))
"""


@pytest.mark.slow
def test_every_module_imports_without_torch_and_none_exits():
  names = [n for n in _module_files() if not n.endswith(".__main__")]  # a __main__ runs its program
  result = subprocess.run([sys.executable, "-c", _IMPORT_EVERY_MODULE, json.dumps(names)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr
  outcomes = json.loads(result.stdout.strip().splitlines()[-1])
  assert outcomes.pop("torch imported") == [False, ""]
  failed = {n: o for n, o in outcomes.items() if o[0] != "ok" and n not in TORCH_MODULES}
  assert not failed, failed
  for name in TORCH_MODULES:  # an ordinary ImportError that says how to get torch, not an exit
    kind, message = outcomes[name]
    assert kind == "ImportError", (name, outcomes[name])
    assert "pip install 'iptnet_jax[parity]'" in message, message


# ------------------------------------------------------------------------------------------------------------
# Import cycles

def _import_targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> set[str]:
  """The package modules one import statement of `module` names."""
  if isinstance(node, ast.Import):
    return {alias.name for alias in node.names if alias.name in known}
  base = node.module or ""
  if node.level:
    anchor = module.split(".") if is_package else module.split(".")[:-1]
    anchor = anchor[:len(anchor) - node.level + 1]
    base = ".".join(anchor + ([base] if base else []))
  targets = set()
  for name in (alias.name for alias in node.names):
    if f"{base}.{name}" in known:
      targets.add(f"{base}.{name}")  # a submodule
    elif base in known:
      targets.add(base)  # a name defined by the package or module
  return targets


def _module_level_imports(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> set[str]:
  """Package modules that `module` imports when it is imported (statements outside functions and classes,
  `if TYPE_CHECKING:` blocks left out)."""
  targets: set[str] = set()

  def visit(statements) -> None:
    for node in statements:
      if isinstance(node, (ast.Import, ast.ImportFrom)):
        targets.update(_import_targets(node, module, is_package, known))
      elif isinstance(node, ast.If):
        if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
          visit(node.body)
        visit(node.orelse)
      elif isinstance(node, ast.Try):
        visit(node.body)
        for handler in node.handlers:
          visit(handler.body)
        visit(node.orelse)
        visit(node.finalbody)
      elif isinstance(node, ast.With):
        visit(node.body)

  visit(tree.body)
  targets.discard(module)
  return targets


def _all_imports(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> set[str]:
  """Package modules that `module` imports anywhere, inside functions too (what it depends on at all)."""
  targets = set().union(*(_import_targets(node, module, is_package, known) for node in ast.walk(tree)
                          if isinstance(node, (ast.Import, ast.ImportFrom))))
  targets.discard(module)
  return targets


def _import_graph(imports=_module_level_imports) -> dict[str, set[str]]:
  files = _module_files()
  known = set(files)
  return {name: imports(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", known)
          for name, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def connect(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in sorted(graph.get(node, ())):
      if target not in index:
        connect(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        components.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      connect(node)
  return components


def test_the_cycle_check_sees_cycles():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
  assert _cycles({"a": {"b"}, "b": set()}) == []
  tree = ast.parse("from iptnet_jax.parity import common, run\nimport iptnet_jax.loop\n"
                   "def f():\n  from iptnet_jax import train\n")
  known = {"iptnet_jax", "iptnet_jax.parity", "iptnet_jax.parity.common", "iptnet_jax.loop", "iptnet_jax.train"}
  assert _module_level_imports(tree, "iptnet_jax.x", False, known) == {
      "iptnet_jax.parity.common", "iptnet_jax.parity", "iptnet_jax.loop"}  # not train: imported when f runs


def test_no_import_cycles_among_package_modules():
  graph = _import_graph()
  assert graph["iptnet_jax.parity"] >= {"iptnet_jax.parity.common", "iptnet_jax.parity.sm"}  # the graph is read
  assert _cycles(graph) == []


# ------------------------------------------------------------------------------------------------------------
# Layers: the data layer (files, labels, batches) and the metrics know no model, trainer or task

# layer -> the packages and modules its modules may import, anywhere in them (lazy imports in functions too)
ALLOWED_IMPORTS = {
    "iptnet_jax.datasets": ("iptnet_jax.datasets", "iptnet_jax.errors", "iptnet_jax.fileio", "iptnet_jax.vsumm"),
    "iptnet_jax.vsumm": ("iptnet_jax.vsumm", "iptnet_jax.errors"),
}
# part of a layer -> what the rest of the layer must not import: readers never need the offline builders
INNER_LAYERS = {"iptnet_jax.datasets.builders": "iptnet_jax.datasets"}


def _within(name: str, prefix: str) -> bool:
  return name == prefix or name.startswith(prefix + ".")


def _upward_imports(graph: dict[str, set[str]], allowed: dict[str, tuple[str, ...]],
                    inner: dict[str, str] = INNER_LAYERS) -> list[str]:
  """'module -> target' for every import of a layer's module outside what its layer may import, and of a module
  of `inner`'s outer layer into that inner part."""
  bad = {f"{module} -> {target}" for layer, permitted in allowed.items() for module in graph
         if _within(module, layer) for target in graph[module] if not any(_within(target, p) for p in permitted)}
  bad |= {f"{module} -> {target}" for part, outer in inner.items() for module in graph
          if _within(module, outer) and not _within(module, part) for target in graph[module] if _within(target, part)}
  return sorted(bad)


def test_the_layer_check_sees_upward_imports():
  tree = ast.parse("import numpy\nfrom iptnet_jax.datasets import eccv16\n"
                   "def f():\n  from iptnet_jax.lm import span\n")
  known = {"iptnet_jax", "iptnet_jax.datasets", "iptnet_jax.datasets.eccv16", "iptnet_jax.lm", "iptnet_jax.lm.span"}
  imports = _all_imports(tree, "iptnet_jax.datasets.x", False, known)
  assert imports == {"iptnet_jax.datasets.eccv16", "iptnet_jax.lm.span"}  # the function's import counts
  assert _upward_imports({"iptnet_jax.datasets.x": imports}, ALLOWED_IMPORTS) == [
      "iptnet_jax.datasets.x -> iptnet_jax.lm.span"]
  assert _upward_imports({"iptnet_jax.lm.y": imports}, ALLOWED_IMPORTS) == []  # lm/ may read the data layer
  builder, reader = "iptnet_jax.datasets.builders.b", "iptnet_jax.datasets.r"
  assert _upward_imports({builder: {reader}, reader: {builder}}, ALLOWED_IMPORTS) == [f"{reader} -> {builder}"]


def test_no_upward_imports_from_the_data_layer_or_the_metrics():
  """Nor from the readers into the builders: `python -m iptnet_jax.datasets.tvsum_i3d` and the other documented
  commands forward by runpy, not by import."""
  graph = _import_graph(_all_imports)
  assert "iptnet_jax.datasets.eccv16" in graph["iptnet_jax.datasets.summarization"]  # the graph is read
  assert _upward_imports(graph, ALLOWED_IMPORTS) == []


# The documented builder commands at their old module paths, forwarded to datasets/builders/
FORWARDED_COMMANDS = {"iptnet_jax.datasets.tvsum_i3d": ("--help", "--domain-splits"),
                      "iptnet_jax.datasets.synthetic_charades": ("--help", "--max-videos"),
                      "iptnet_jax.datasets.synthetic_vsumm": ("--helpfull", "--num_videos")}


@pytest.mark.parametrize("module", FORWARDED_COMMANDS)
def test_documented_builder_commands_reach_the_builders(module):
  flag, option = FORWARDED_COMMANDS[module]
  done = subprocess.run([sys.executable, "-m", module, flag], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert option in done.stdout + done.stderr, (module, done.stdout[-2000:], done.stderr[-2000:])


# ------------------------------------------------------------------------------------------------------------
# A non-editable install

def _copy_sources(destination: Path) -> Path:
  """The files a build of the package reads (pyproject.toml, README.md, iptnet_jax/, configs/), nothing else."""
  destination.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy2(REPO / name, destination / name)
  for package in (PACKAGE, REPO / "configs"):
    shutil.copytree(package, destination / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  return destination


@pytest.mark.slow
def test_non_editable_install_runs_the_demo_and_parity_from_another_folder(tmp_path):
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
  python = venv / "bin" / "python"
  purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                check=True, capture_output=True, text=True).stdout.strip())
  # The dependencies (jax, flax, torch, pip, setuptools, ...) from this environment's site-packages, added as a
  # plain path: its .pth files, the editable install of this checkout among them, are not run.
  (purelib / "zz_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
  source = _copy_sources(tmp_path / "source")
  install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                            "--no-index", "--quiet", str(source)], capture_output=True, text=True, timeout=600)
  assert install.returncode == 0, install.stdout + install.stderr
  shutil.rmtree(source)  # nothing may come from a source tree

  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  shutil.copy2(REPO / "configs" / "demo.py", elsewhere / "demo_config.py")  # a user's own config file
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  env |= {"JAX_PLATFORMS": "cpu"}

  def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)

  where = run("-c", "import iptnet_jax.parity.reference as r; print(r.__file__)")
  assert where.returncode == 0, where.stderr
  assert Path(where.stdout.strip()).is_relative_to(purelib), where.stdout  # the installed copy, not this checkout
  # The installed config files, loaded by path as --config loads them, import their siblings from the install.
  installed_config = f"{purelib / 'configs' / 'iptnet_demo.py'}:smoke,T"
  configs = run("-c", "import configs, configs.common; from iptnet_jax import config_defaults as d; "
                f"c = d.ConfigArgs({installed_config!r}).load(); d.validate(c); "
                "print(configs.common.__file__, c.iptnet.teaching)")
  assert configs.returncode == 0, configs.stderr
  location, teaching = configs.stdout.split()
  assert Path(location).is_relative_to(purelib) and teaching == "False", configs.stdout

  demo = pinned.run_on_one_cpu([python, "-m", "iptnet_jax.main", "--config=demo_config.py:smoke", "--workdir=run",
                                "--compilation_cache=none"], cwd=elsewhere, env=pinned.one_cpu_environment(),
                               timeout=900)
  assert demo.returncode == 0, demo.stdout + demo.stderr
  pinned.assert_matches_pinned("demo", *pinned.read_run(elsewhere / "run"))  # one CPU, as pinned.py records

  report = run("-m", "iptnet_jax.parity", "--only", "iptnet.propagation")
  assert report.returncode == 0, report.stdout + report.stderr
  assert "within tolerance" in report.stdout and "FAIL" not in report.stdout, report.stdout
