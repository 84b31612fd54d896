"""The wheel ships every sub-package: pyproject lists them explicitly (bundles/ is mapped in)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "medsr").rglob("__init__.py")
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == {"medsr.bundles"}


def test_lazy_evaluation_exports_resolve():
    """medsr.evaluation loads its sub-modules on first use: every exported name must still resolve."""
    import medsr.evaluation as evaluation

    assert all(getattr(evaluation, name) is not None for name in evaluation.__all__)
