"""Tests of medsr.inference.runtime: ranks, threads and devices are validated and never fall back silently."""

from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.inference import configure_threads, distributed_rank, resolve_device


def test_distributed_rank_validation(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(UsageError, match="RANK"):
        distributed_rank()


def test_configure_threads_respects_the_environment(monkeypatch):
    monkeypatch.setenv("MEDSR_NUM_THREADS", "1")
    assert configure_threads() == 1
    monkeypatch.setenv("MEDSR_NUM_THREADS", "x")
    with pytest.raises(UsageError, match="MEDSR_NUM_THREADS"):
        configure_threads()


def test_resolve_device_auto_and_names():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
    assert resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(UsageError, match="must be one of auto, cpu, cuda, cuda:<index>, mps"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without Apple MPS")
def test_mps_absent_is_usage_error():
    with pytest.raises(UsageError, match="MPS backend is not available"):
        resolve_device("mps")
