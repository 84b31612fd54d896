"""Fixtures for the medsr.io tests: a fake upscaler (sample data, pydicom files and dciodvfy: tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from medsr.io import zoom_geometry


@pytest.fixture
def upscale():
    """``upscale(img, factors)``: interpolate a MetaTensor (bicubic 2D / trilinear 3D) like an SR model."""

    def run(img: MetaTensor, factors: tuple[int, ...]) -> MetaTensor:
        mode = "bicubic" if len(factors) == 2 else "trilinear"
        data = img.as_tensor()[None].double()
        out = F.interpolate(data, scale_factor=tuple(float(f) for f in factors), mode=mode, align_corners=False)[0]
        meta = {k: v for k, v in img.meta.items() if k != "affine"}
        meta["medsr_derivation"] = f"medsr test x{'x'.join(str(f) for f in factors)}"
        return MetaTensor(out.to(torch.float32), affine=zoom_geometry(img.affine, factors), meta=meta)

    return run
