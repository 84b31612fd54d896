"""The wheel ships every sub-package: pyproject lists them explicitly (bundles/ is mapped in)."""

import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "medsr").rglob("__init__.py")
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == {"medsr.bundles"}


@pytest.mark.parametrize("package", ["medsr.evaluation", "medsr.transforms", "medsr.io"])
def test_lazy_exports_resolve(package):
    """These packages load their parts on first use (medsr/_lazy.py): every exported name must still resolve,
    and a name that is not exported is an AttributeError as usual."""
    module = importlib.import_module(package)
    assert all(getattr(module, name) is not None for name in module.__all__)
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name
