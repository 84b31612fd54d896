"""Tests for medsr.transforms.resample: MATLAB imresize semantics, references, types, memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from skimage.transform import resize as sk_resize

from medsr import meta as M
from medsr.errors import UsageError
from medsr.transforms import resample as R
from medsr.transforms.resample import downsample, resize, upsample


def _smooth_image(gen: torch.Generator, shape: tuple[int, ...] = (1, 64, 64)) -> torch.Tensor:
    x = torch.rand(shape, generator=gen)
    return F.avg_pool2d(x[None], 3, 1, 1)[0]


def test_hand_worked_linear_antialias_downsample() -> None:
    # x2 down, triangle widened to 4 samples: weights (1/8, 3/8, 3/8, 1/8), mirrored border
    out = resize(np.array([[1.0, 2.0, 3.0, 4.0]]), out_size=2, kernel="linear")
    np.testing.assert_allclose(out, [[1.625, 3.375]], atol=1e-12)


def test_hand_worked_cubic_upsample() -> None:
    # x2 up: output samples at +-0.25 from inputs; Keys a=-0.5 weights at distances 0.25/0.75/1.25/1.75
    k = {0.25: 0.8671875, 0.75: 0.2265625, 1.25: -0.0703125, 1.75: -0.0234375}
    out = upsample(np.array([[0.0, 0.0, 1.0, 0.0, 0.0]]), 2)
    expected = [0.0, k[1.75], k[1.25], k[0.75], k[0.25], k[0.25], k[0.75], k[1.25], k[1.75], 0.0]
    np.testing.assert_allclose(out[0], expected, atol=1e-12)


@pytest.mark.parametrize("shape", [(34, 46), (40, 11), (9, 23)])
def test_linear_matches_skimage(shape: tuple[int, int]) -> None:
    y = np.random.default_rng(0).random((1, 17, 23))
    ours = resize(y, out_size=shape, kernel="linear", antialias=False)
    ref = sk_resize(y[0], shape, order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(ours[0], ref, atol=1e-12)


@pytest.mark.parametrize("factor", [2, 4])
def test_bicubic_antialias_matches_torch_pil(gen: torch.Generator, factor: int) -> None:
    img = _smooth_image(gen)
    ours = downsample(img, factor)
    ref = F.interpolate(img[None], scale_factor=1 / factor, mode="bicubic", antialias=True)[0]
    # identical away from the border (PIL truncates the kernel there, MATLAB mirrors)
    b = 2
    torch.testing.assert_close(ours[:, b:-b, b:-b], ref[:, b:-b, b:-b], atol=1e-5, rtol=0)
    assert (ours - ref).abs().max() < 0.05


@pytest.mark.parametrize("kernel", sorted(R.KERNELS))
@pytest.mark.parametrize("size", [5, 16, 37])
def test_constant_stays_constant(kernel: str, size: int) -> None:
    x = torch.full((2, 16, 12), 0.37, dtype=torch.float64)
    y = resize(x, out_size=size, axes=0, kernel=kernel)
    assert y.shape == (2, size, 12)
    torch.testing.assert_close(y, torch.full_like(y, 0.37))


def test_box_antialias_is_block_mean(gen: torch.Generator) -> None:
    x = torch.rand(1, 8, 12, generator=gen, dtype=torch.float64)
    y = downsample(x, 4, axes=1, kernel="box")
    torch.testing.assert_close(y, x.reshape(1, 8, 3, 4).mean(-1))


def test_any_axis_of_a_volume(gen: torch.Generator) -> None:
    vol = torch.rand(1, 6, 7, 16, generator=gen, dtype=torch.float64)
    through = resize(vol, 0.5, axes=-1)
    # same as resizing that axis when it is moved first
    moved = resize(vol.permute(0, 3, 1, 2), 0.5, axes=0).permute(0, 2, 3, 1)
    assert through.shape == (1, 6, 7, 8)
    torch.testing.assert_close(through, moved)


def test_separable_and_axis_order_independent(gen: torch.Generator) -> None:
    x = torch.rand(1, 12, 10, generator=gen, dtype=torch.float64)
    both = resize(x, (2.0, 0.5))
    one_by_one = resize(resize(x, 0.5, axes=1), 2.0, axes=0)
    torch.testing.assert_close(both, one_by_one)


def test_chunking_gives_same_result(gen: torch.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(2, 20, 24, generator=gen)
    full = upsample(x, 2, kernel="lanczos3")
    monkeypatch.setattr(R, "_CHUNK_ELEMENTS", 50)
    torch.testing.assert_close(upsample(x, 2, kernel="lanczos3"), full)


def test_types_and_geometry() -> None:
    arr = np.random.default_rng(1).random((1, 8, 8)).astype(np.float32)
    out = downsample(arr, 2)
    assert isinstance(out, np.ndarray) and out.shape == (1, 4, 4)
    affine = torch.diag(torch.tensor([0.5, 0.25, 1.0, 1.0], dtype=torch.float64))
    affine[:3, 3] = torch.tensor([10.0, 20.0, 0.0])
    mt = MetaTensor(torch.as_tensor(arr), affine=affine, meta={M.SPACING: (0.5, 0.25), M.MODALITY: "xray"})
    lr = downsample(mt, 2)
    assert isinstance(lr, MetaTensor) and lr.meta[M.MODALITY] == "xray"
    assert lr.meta[M.SPACING] == (1.0, 0.5)
    # voxel 0 of the LR grid is centred half an input voxel in: same physical extent
    torch.testing.assert_close(lr.affine[:2, :2], torch.diag(torch.tensor([1.0, 0.5], dtype=torch.float64)))
    torch.testing.assert_close(lr.affine[:2, 3], torch.tensor([10.25, 20.125], dtype=torch.float64))
    back = upsample(lr, 2)
    torch.testing.assert_close(back.affine, mt.affine)
    assert mt.meta[M.SPACING] == (0.5, 0.25)  # input meta untouched
    ints = downsample(np.arange(16, dtype=np.int16).reshape(1, 4, 4), 2, kernel="box")
    assert ints.dtype == np.float32


@pytest.mark.parametrize(
    "call",
    [
        lambda x: resize(x, 0.5, kernel="bicubic"),
        lambda x: resize(x, 0.5, out_size=4),
        lambda x: resize(x),
        lambda x: resize(x, (0.5, 0.5, 0.5)),
        lambda x: resize(x, -1.0),
        lambda x: downsample(x, 3),
        lambda x: downsample(x, 0),
        lambda x: downsample(x, 2, axes=2),
        lambda x: downsample(x, 2, axes=(0, 0)),
        lambda x: downsample(x[0, 0], 2),
    ],
)
def test_usage_errors(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError):
        call(torch.zeros(1, 8, 8))


def test_upsample_memory_is_bounded() -> None:
    """A 2048^2 float32 image upsampled x2: output 64 MB, intermediate 32 MB, chunks ~16 MB each."""
    code = textwrap.dedent(
        """
        import resource, torch
        from medsr.transforms.resample import upsample
        torch.set_num_threads(1)
        x = torch.rand(1, 2048, 2048)
        upsample(torch.rand(1, 64, 64), 2)  # warm-up: page in the kernels' code
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        y = upsample(x, 2)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) / 1024)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    extra_mb = float(res.stdout.strip().splitlines()[-1])
    assert extra_mb < 300, f"upsampling used {extra_mb:.0f} MB extra (output alone is 64 MB)"
