"""Where the shipped bundles live, found without importing torch or MONAI (the CLI asks before it imports them)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["shipped_root", "shipped_bundles"]


def shipped_root() -> Path:
    """Where shipped bundles live: ``MEDSR_BUNDLE_DIR``, else the ``medsr.bundles`` package data."""
    env = os.environ.get("MEDSR_BUNDLE_DIR")
    if env:
        return Path(env)
    return Path(str(resources.files("medsr.bundles")))


def shipped_bundles() -> list[str]:
    """Names of the bundles that ship with medsr (found wherever medsr is installed)."""
    root = shipped_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "configs" / "inference.json").is_file())
