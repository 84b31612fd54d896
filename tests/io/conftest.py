"""Fixtures for the medsr.io tests: sample files, a fake upscaler, the dciodvfy validator."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from medsr.io import zoom_geometry

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"


@pytest.fixture
def sample() -> Path:
    """The repository's sample_data folder."""
    if not SAMPLE_DATA.is_dir():
        pytest.skip("sample_data/ is missing (run sample_data/make_sample_data.py)")
    return SAMPLE_DATA


@pytest.fixture
def testdata():
    """``testdata(name)``: a pydicom / pydicom-data test file, or skip when it is not installed."""

    def get(name: str) -> Path:
        from pydicom.data import get_testdata_file

        try:
            path = get_testdata_file(name)
        except Exception:  # pragma: no cover - pydicom-data missing or broken
            path = None
        if path is None:
            pytest.skip(f"{name} is not installed (pip install pydicom-data)")
        return Path(path)

    return get


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


@pytest.fixture
def dciodvfy():
    """``dciodvfy(path)``: the 'Error' lines dciodvfy prints for a DICOM file (skip if not installed)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy is not installed (apt-get install dicom3tools; `make test` installs it)")

    def run(path: Path) -> list[str]:
        proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
        return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]

    return run
