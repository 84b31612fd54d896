"""Shared fixtures for the transform tests: CPU by default, device from ``MEDSR_TEST_DEVICE``."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device under test (``MEDSR_TEST_DEVICE=cuda`` to run on a GPU)."""
    return torch.device(os.environ.get("MEDSR_TEST_DEVICE", "cpu"))


@pytest.fixture()
def gen() -> torch.Generator:
    """A seeded CPU generator for small test tensors."""
    return torch.Generator().manual_seed(1234)
