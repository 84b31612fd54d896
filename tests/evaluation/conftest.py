"""Fixtures of the medsr.evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from evaluation_support import install_transforms, write_png


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    install_transforms(monkeypatch)


@pytest.fixture
def dataset(tmp_path: Path, fakes: None) -> Path:
    root = tmp_path / "data"
    for i in range(3):
        write_png(root / "Covid" / f"patient_smith_{i}.png", seed=i, size=(72, 64))
        write_png(root / "Normal" / f"patient_jones_{i}.png", seed=10 + i, size=(80, 60))
    return root
