"""configs/ as modules: every file imports as `configs.NAME`, every variant it lists builds and validates, every
`configs/FILE.py:VARIANTS` the docs name does too, and nothing in the repository executes a file by path."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import configs
from iptnet_jax import config_defaults

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem not in ("__init__", "common"))
# The documents whose commands name config variants.
DOCUMENTED = [REPO / "README.md", REPO / "BUILD.md", *sorted((REPO / "configs").glob("*.py")),
              *sorted((REPO / "experiments").glob("*.py"))]


def test_every_config_file_is_a_module_of_the_configs_package():
  assert Path(configs.__file__).parent == REPO / "configs"
  assert {m.name for m in pkgutil.iter_modules(configs.__path__)} == {*CONFIG_FILES, "common"}
  for name in CONFIG_FILES:
    module = importlib.import_module(f"configs.{name}")
    assert callable(module.get_config) and isinstance(module.VARIANTS, tuple), name


def _variant_cases():
  for name in CONFIG_FILES:
    module = importlib.import_module(f"configs.{name}")
    yield from ((name, variant) for variant in module.VARIANTS or (None,))


@pytest.mark.parametrize("name, variant", list(_variant_cases()))
def test_every_listed_variant_is_documented_builds_and_validates(name, variant):
  module = importlib.import_module(f"configs.{name}")
  default = next(iter(inspect.signature(module.get_config).parameters.values()), None)
  if variant is not None and (default is None or variant != default.default):
    assert re.search(rf"(?<![\w.]){re.escape(variant)}(?!\w)", module.__doc__), f"configs/{name}.py: {variant}"
  config = module.get_config() if variant is None else module.get_config(variant)
  config_defaults.validate(config)


def _documented_specs() -> list[str]:
  specs = set()
  for path in DOCUMENTED:
    specs.update(re.findall(r"configs/(\w+\.py:[\w,]+)", path.read_text()))
  return sorted(specs)


def test_the_docs_name_config_variants():
  assert "iptnet_demo.py:smoke,T" in _documented_specs()  # the search finds what it is for


@pytest.mark.parametrize("spec", _documented_specs())
def test_every_config_variant_the_docs_name_builds_and_validates(spec):
  config = config_defaults.ConfigArgs(str(REPO / "configs" / spec)).load()
  config_defaults.validate(config)


def test_main_loads_a_config_that_imports_its_siblings_by_path_from_the_repository_root(tmp_path):
  """`--config=configs/iptnet_demo.py` is executed by ml_collections from its path; `from configs import demo`
  inside it resolves to the same folder."""
  script = ("import sys; from iptnet_jax import config_defaults; import configs, configs.demo; "
            "c = config_defaults.ConfigArgs('configs/iptnet_demo.py:smoke,T').load(); "
            "print(configs.__file__, c.iptnet.teaching)")
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == [str(REPO / "configs" / "__init__.py"), "False"]


def test_unknown_variants_name_the_file_and_the_known_ones():
  with pytest.raises(config_defaults.ConfigError, match=r"^configs/tvsum\.py: unknown variant 'Q'; expected one of "
                                                        r"iptnet, P, T, L, lm_alone$"):
    importlib.import_module("configs.tvsum").get_config("Q")
  with pytest.raises(config_defaults.ConfigError, match=r"^configs/tvsum_i3d_iptnet\.py: unknown variant 'x,y'"):
    importlib.import_module("configs.tvsum_i3d_iptnet").get_config("smoke,x,y")


PATH_LOADERS = ("spec_from_file_location", "exec_module", "load_config_file")  # what executed files by path


def test_no_python_file_executes_a_file_by_its_path():
  """Config files, experiments and tests are imported as modules; ml_collections alone loads `--config` files."""
  folders = [p for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")]  # not .venv, .git
  files = sorted(path for folder in folders for path in folder.rglob("*.py") if path != Path(__file__))
  assert REPO / "iptnet_jax" / "config_defaults.py" in files and REPO / "configs" / "common.py" in files
  offenders = [f"{path.relative_to(REPO)}:{number}: {word}" for path in files
               for number, line in enumerate(path.read_text().splitlines(), 1) for word in PATH_LOADERS if word in line]
  assert not offenders, offenders
