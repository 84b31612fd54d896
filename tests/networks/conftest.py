"""Shared checks for the network tests: seeding, TorchScript and channels_last equivalence (device: tests/conftest.py)."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

DEVICE = torch.device(os.environ.get("MEDSR_TEST_DEVICE", "cpu"))


@pytest.fixture(autouse=True)
def _seeded(seed_and_threads: None) -> None:
    """Every network test runs seeded on one CPU thread (``seed_and_threads`` in tests/conftest.py)."""


def _script_matches(net: nn.Module, x: torch.Tensor, atol: float = 1e-5) -> None:
    net = net.to(DEVICE).eval()
    x = x.to(DEVICE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated in recent torch
        scripted = torch.jit.script(net)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x), atol=atol, rtol=0)


def _channels_last_matches(net: nn.Module, x: torch.Tensor, atol: float = 1e-5) -> None:
    net = net.to(DEVICE).eval()
    x = x.to(DEVICE)
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = net(x)
        got = net_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=atol, rtol=0)


def _gradients_flow(net: nn.Module, x: torch.Tensor) -> None:
    net = net.to(DEVICE).train()
    x = x.to(DEVICE).requires_grad_(True)
    net(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in net.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())


def _num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.fixture
def assert_script_matches() -> Callable[..., None]:
    """``torch.jit.script(net)(x) == net(x)`` within ``atol`` (eval mode)."""
    return _script_matches


@pytest.fixture
def assert_channels_last_matches() -> Callable[..., None]:
    """The channels_last model and input give the contiguous output within ``atol`` (2D)."""
    return _channels_last_matches


@pytest.fixture
def assert_gradients_flow() -> Callable[..., None]:
    """Every parameter and the input get a finite gradient from a scalar loss."""
    return _gradients_flow


@pytest.fixture
def num_params() -> Callable[[nn.Module], int]:
    """Number of parameters of a module."""
    return _num_params
