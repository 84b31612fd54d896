"""Tests of medsr.inference.bundles: bundles load when trusted, and fail clearly."""

from __future__ import annotations

import pytest
import torch

from medsr.errors import UsageError
from medsr.inference import InterpolationUpscaler, NetworkUpscaler, load_upscaler


def test_load_upscaler_from_a_trusted_bundle(random_bundle):
    up = load_upscaler(random_bundle, 2, trust_bundle=True, tile=16)
    assert isinstance(up, NetworkUpscaler) and up.halo == up.receptive_radius == 20 and up.exact
    assert up(torch.rand(1, 20, 20)).shape == (1, 40, 40)


def test_load_upscaler_errors(random_bundle, tmp_path):
    with pytest.raises(UsageError, match="unknown model"):
        load_upscaler("no_such_model", 2)
    with pytest.raises(UsageError, match="trust-bundle"):
        load_upscaler(random_bundle, 2)
    with pytest.raises(UsageError, match="missing"):
        load_upscaler(random_bundle, 4, trust_bundle=True)  # no model_x4.pt
    torch.save({"bogus": torch.zeros(1)}, random_bundle / "models" / "model.pt")
    with pytest.raises(UsageError, match="does not match"):
        load_upscaler(random_bundle, 2, trust_bundle=True)


def test_interpolation_names_load_without_a_bundle():
    assert isinstance(load_upscaler("lanczos", 4), InterpolationUpscaler)
