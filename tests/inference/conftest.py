"""Fixtures shared by the tests of medsr.inference: seeded, one CPU thread, a bundle copy with random weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from medsr.inference import configure_threads
from medsr.networks.edsr import EDSR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Seed, and one CPU thread: the tensors are tiny and the machine is shared."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    configure_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def random_bundle(tmp_path: Path) -> Path:
    """A copy of the edsr_m bundle with random x2 weights (the shipped ones may still be training)."""
    root = tmp_path / "edsr_copy"
    shutil.copytree(ROOT / "bundles" / "edsr_m" / "configs", root / "configs")
    (root / "models").mkdir()
    torch.save(EDSR(scale_factor=2, num_features=32, num_blocks=8).state_dict(), root / "models" / "model.pt")
    return root
