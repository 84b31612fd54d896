"""Helpers of the medsr.evaluation tests: small upscalers that stand in for networks, synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medsr.errors import UsageError

# The real medsr.io and medsr.transforms are used. While medsr/transforms/__init__.py is not
# written yet, its classes are taken from their modules; the networks are replaced by small
# upscalers (the shipped bundles are not needed to test the protocol).

TRANSFORMS = ("ModalityNormalize", "InvertModalityNormalize", "CropToMultiple", "BicubicDegradation", "RandModalityDegradation")


def install_transforms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``from medsr.transforms import X`` work for the names evaluation uses."""
    import importlib

    import medsr.transforms as package

    for name in TRANSFORMS:
        if hasattr(package, name):
            continue
        for sub in ("intensity", "degradation"):
            mod = importlib.import_module(f"medsr.transforms.{sub}")
            if hasattr(mod, name):
                monkeypatch.setattr(package, name, getattr(mod, name), raising=False)
                break
        else:
            pytest.skip(f"medsr.transforms has no {name} yet")


def _inplane(x: torch.Tensor, factor: float) -> torch.Tensor:
    t = torch.as_tensor(x).float()
    t = t.as_tensor() if hasattr(t, "as_tensor") else t
    planes = t.permute(3, 0, 1, 2) if t.ndim == 4 else t[None]
    out = F.interpolate(planes, scale_factor=factor, mode="bicubic", align_corners=False, antialias=factor < 1)
    return out.permute(1, 2, 3, 0) if t.ndim == 4 else out[0]


class FakeUpscaler:
    """bicubic (torch), ``sharp`` (bicubic + unsharp mask) or ``gan`` (sharp + seeded texture)."""

    def __init__(self, name: str, scale: int) -> None:
        self.name, self.scale, self.is_gan = name, scale, name == "gan"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        up = _inplane(x, self.scale)
        if self.name in ("sharp", "gan"):
            blur = _inplane(_inplane(up, 0.5), 2.0)[:, : up.shape[1], : up.shape[2]]
            up = up + 0.6 * (up - blur)
        if self.name == "gan":
            g = torch.Generator().manual_seed(0)
            up = up + 0.03 * torch.randn(up.shape, generator=g)
        return up.clamp(0, 1)


def fake_factory(name: str, scale: int) -> FakeUpscaler:
    if name not in ("bicubic", "sharp", "gan"):
        raise UsageError(f"unknown model {name!r}")
    return FakeUpscaler(name, scale)


def write_png(path: Path, seed: int = 0, size: tuple[int, int] = (64, 64)) -> Path:
    """A smooth 8-bit 'radiograph' with some edges."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.random(size[::-1]), 3)
    img = (img - img.min()) / (img.max() - img.min())
    img[size[1] // 3 : size[1] // 2, size[0] // 4 : size[0] // 2] += 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img / 1.5, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def write_volume(path: Path, shape: tuple[int, int, int] = (40, 36, 6)) -> Path:
    import nibabel as nib
    from scipy.ndimage import gaussian_filter

    vol = gaussian_filter(np.random.default_rng(0).random(shape), (3, 3, 1)) * 1000
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(vol.astype(np.int16), np.diag([1.0, 1.0, 3.0, 1.0])), str(path))
    return path
