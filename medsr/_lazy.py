"""Lazy imports: package attributes loaded on first use (PEP 562), optional third-party modules.

A package whose ``__init__`` imported every sub-module would make ``medsr upscale -m bicubic``
import MONAI through a transform it never calls; with :func:`lazy_exports` a name is imported
when it is first read (docs/performance.md, start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports", "optional_module"]


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict[str, Any]) -> tuple[
    Callable[[str], Any], Callable[[], list[str]]
]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a public name to the module it comes
    from, a sub-module's name (``"intensity"``) or an absolute module path (``"medsr.geometry"``).

    Example, in a package's ``__init__.py``::

        __getattr__, __dir__ = lazy_exports(__name__, {"ModalityNormalize": "intensity"}, globals())
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = exports[name]
        value = getattr(import_module(module if "." in module else f"{package}.{module}"), name)
        namespace[name] = value  # later reads skip this function
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return __getattr__, __dir__


def optional_module(name: str) -> Any:
    """The module ``name``, or None where it is not installed or fails to import (an optional extra)."""
    try:
        return import_module(name)
    except ImportError:
        return None
