"""Slice-axis super-resolution: geometry, baselines, network fusion, and `medsr upscale --slices` per output format."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from typer.testing import CliRunner

import medsr.slices as S
from medsr.cli import app
from medsr.errors import UsageError
from medsr.networks.slice_refiner import SliceRefiner
from medsr.slices import (
    SliceUpscaler,
    degrade_slices,
    interpolate_slices,
    slice_axis,
    slice_geometry,
    thick_length,
    thin_length,
    upscale_slices_image,
)

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
runner = CliRunner()


def _vol(shape=(1, 6, 7, 9), seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- arrays


@pytest.mark.parametrize("kernel", ["linear", "cubic", "lanczos"])
@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_interpolation_keeps_coinciding_slices(kernel, factor, axis):
    x = _vol()
    y = interpolate_slices(x, axis, factor, kernel)
    n = x.shape[axis + 1]
    assert y.shape[axis + 1] == thin_length(n, factor) == (n - 1) * factor + 1
    idx = torch.arange(0, y.shape[axis + 1], factor)
    torch.testing.assert_close(y.index_select(axis + 1, idx), x, atol=1e-6, rtol=0)


def test_interpolation_reproduces_linear_ramp_and_slab_range():
    z = torch.arange(9, dtype=torch.float32)
    x = z.expand(1, 3, 4, 9).clone()
    y = interpolate_slices(x, 2, 4, "cubic")
    ramp = torch.arange(33, dtype=torch.float32) / 4  # exact away from the mirrored first/last interval
    torch.testing.assert_close(y[0, 0, 0, 4:29], ramp[4:29], atol=1e-5, rtol=0)
    torch.testing.assert_close(interpolate_slices(x, 2, 4, "cubic", 5, 17), y[..., 5:17])


def test_degrade_profile_and_positions():
    x = torch.zeros(1, 2, 2, 17)
    x[..., 8] = 1.0  # an impulse on thin slice 8 = thick slice 2 at N = 4
    for profile in ("box", "gaussian"):
        d = degrade_slices(x, 2, 4, profile)
        assert d.shape[-1] == thick_length(17, 4) == 5
        assert int(d[0, 0, 0].argmax()) == 2  # the thick slice centred on thin slice 8
    torch.testing.assert_close(degrade_slices(torch.full((1, 2, 2, 9), 3.0), 2, 2, "box"), torch.full((1, 2, 2, 5), 3.0))
    box = degrade_slices(x, 2, 2, "box")[0, 0, 0]  # width 2: weights 1/4, 1/2, 1/4 on slices 7, 8, 9
    assert float(box[4]) == pytest.approx(0.5)
    with pytest.raises(UsageError, match="profile"):
        degrade_slices(x, 2, 2, "triangle")


def test_slice_axis_from_geometry():
    nifti = MetaTensor(torch.zeros(1, 8, 9, 10), affine=torch.diag(torch.tensor([3.0, 0.8, 0.8, 1.0])))
    nifti.meta["medsr_format"] = "nifti"
    assert slice_axis(nifti) == 0
    iso = MetaTensor(torch.zeros(1, 8, 9, 10), affine=torch.eye(4))
    assert slice_axis(iso) == 2
    series = MetaTensor(torch.zeros(1, 8, 9, 10), affine=torch.diag(torch.tensor([3.0, 0.8, 0.8, 1.0])))
    series.meta["medsr_format"] = "dicom_series"
    assert slice_axis(series) == 2  # a series stacks along the third axis whatever the spacing
    with pytest.raises(UsageError, match="volume"):
        slice_axis(torch.zeros(1, 8, 9))


def test_geometry_keeps_first_and_last_slice():
    a = np.array([[0.0, 0, 2.0, 10], [0.7, 0, 0, -5], [0, 0.7, 0.5, 3], [0, 0, 0, 1]])
    g = slice_geometry(a, 0, 4)
    first, last_in = a @ [0, 0, 0, 1], a @ [9, 0, 0, 1]
    np.testing.assert_allclose(g @ [0, 0, 0, 1], first)
    np.testing.assert_allclose(g @ [thin_length(10, 4) - 1, 0, 0, 1], last_in)


@pytest.mark.parametrize("axis", [0, 2])
def test_network_slabs_equal_whole_volume(axis, monkeypatch):
    torch.manual_seed(0)
    net = SliceRefiner(num_features=8, num_layers=4)
    for p in net.parameters():  # non-trivial weights (the last layer starts at zero)
        torch.nn.init.normal_(p, std=0.2)
    up = SliceUpscaler("t", 2, network=net)
    x = _vol((1, 10, 11, 12))
    whole = up(x, axis)
    calls = []
    monkeypatch.setattr(S, "SLAB_VOXELS", 1)  # slabs of 4 slices
    sliced = up(x, axis, progress=lambda done, total: calls.append((done, total)))
    torch.testing.assert_close(sliced, whole, atol=1e-5, rtol=0)
    assert calls[-1] == (thin_length(x.shape[axis + 1], 2),) * 2 and len(calls) > 3
    # the two plane passes are averaged on top of cubic
    cub = interpolate_slices(x, axis, 2, "cubic")
    vol = torch.movedim(cub[0], axis, -1)
    with torch.no_grad():
        r1 = net(vol.unsqueeze(1))[:, 0] - vol
        r2 = (net(vol.transpose(0, 1).unsqueeze(1))[:, 0] - vol.transpose(0, 1)).transpose(0, 1)
    torch.testing.assert_close(torch.movedim(vol + 0.5 * (r1 + r2), -1, axis)[None], whole, atol=1e-5, rtol=0)


def test_physical_pipeline_ct_hu_and_spacing():
    hu = torch.linspace(-1000, 1500, 4 * 5 * 6).reshape(1, 4, 5, 6)
    img = MetaTensor(hu, affine=torch.diag(torch.tensor([0.7, 0.7, 5.0, 1.0])).double())
    img.meta.update({"modality": "ct", "spacing": (0.7, 0.7, 5.0), "medsr_format": "nifti"})
    out = upscale_slices_image(img, SliceUpscaler("cubic", 2))
    assert out.shape == (1, 4, 5, 11)
    assert out.meta["spacing"] == pytest.approx((0.7, 0.7, 2.5))
    torch.testing.assert_close(out.as_tensor()[..., ::2], hu, atol=1e-3, rtol=0)  # HU kept at coinciding slices
    assert "cubic slices x2" in out.meta["medsr_derivation"]


# ----------------------------------------------------------------------------- output formats


def _nifti(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    data = (rng.normal(300, 80, (7, 12, 10)).clip(0)).astype(np.int16)  # slice axis 0 (4 mm), 0.9 mm in-plane
    affine = np.array([[0.0, 0.0, 0.9, -40], [4.0, 0.0, 0.0, -60], [0.0, 0.9, 0.0, 10], [0, 0, 0, 1]])
    path = tmp_path / "mr_thick.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path, data, affine


def test_cli_nifti_output(tmp_path):
    path, data, affine = _nifti(tmp_path)
    res = runner.invoke(app, ["upscale", str(path), "--slices", "4", "-m", "lanczos", "--no-progress"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "mr_thick_sl4x.nii.gz"
    img = nib.load(str(out))
    assert img.shape == (thin_length(7, 4), 12, 10)
    assert img.get_data_dtype() == np.int16
    np.testing.assert_allclose(img.affine, slice_geometry(affine, 0, 4), atol=1e-5)
    np.testing.assert_allclose(img.header.get_zooms(), (1.0, 0.9, 0.9), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(img.dataobj)[::4], data)  # coinciding slices unchanged
    import SimpleITK as sitk

    s_in, s_out = sitk.ReadImage(str(path)), sitk.ReadImage(str(out))
    assert s_out.GetOrigin() == pytest.approx(s_in.GetOrigin(), abs=1e-4)
    assert s_out.GetSpacing() == pytest.approx((1.0, 0.9, 0.9), abs=1e-5)
    # field of view along the slice axis (first to last slice centre) is the input's
    last_in = s_in.TransformIndexToPhysicalPoint((6, 0, 0))
    last_out = s_out.TransformIndexToPhysicalPoint((thin_length(7, 4) - 1, 0, 0))
    assert last_out == pytest.approx(last_in, abs=1e-4)


@pytest.fixture
def ct_series(tmp_path) -> Path:
    src = SAMPLE / "ct_series_lung_dx_a0001"
    if not src.is_dir():
        pytest.skip("sample_data/ct_series_lung_dx_a0001 is missing")
    dst = tmp_path / "ct"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("inplane", [None, 2])
def test_cli_dicom_series_output(ct_series, tmp_path, inplane, dciodvfy):
    from medsr.io import load_image

    before = {p.name: p.read_bytes() for p in ct_series.iterdir()}
    src = [pydicom.dcmread(str(p)) for p in sorted(ct_series.iterdir())]
    src.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    n = len(src)
    args = ["upscale", str(ct_series), "--slices", "2", "-m", "cubic", "-o", str(tmp_path / "out"), "--no-progress"]
    if inplane:
        args += ["-s", str(inplane)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert {p.name: p.read_bytes() for p in ct_series.iterdir()} == before  # input untouched
    name = f"ct_sr{inplane}x_sl2x" if inplane else "ct_sl2x"
    files = sorted((tmp_path / "out" / name).glob("*.dcm"))
    assert len(files) == thin_length(n, 2)
    assert (tmp_path / "out" / name / "medsr_sources.csv").is_file()  # output slice -> source slices
    out = [pydicom.dcmread(str(f)) for f in files]
    step = float(src[1].ImagePositionPatient[2]) - float(src[0].ImagePositionPatient[2])
    series_uids = {d.SeriesInstanceUID for d in out}
    assert len(series_uids) == 1 and series_uids.isdisjoint({d.SeriesInstanceUID for d in src})
    assert len({d.SOPInstanceUID for d in out}) == len(out)
    src_uids = [d.SOPInstanceUID for d in src]
    for k, d in enumerate(out):
        assert int(d.InstanceNumber) == k + 1
        assert float(d.ImagePositionPatient[2]) == pytest.approx(float(src[0].ImagePositionPatient[2]) + k * step / 2, abs=1e-3)
        assert float(d.SpacingBetweenSlices) == pytest.approx(abs(step) / 2)
        assert float(d.SliceThickness) == pytest.approx(float(src[0].SliceThickness) / 2)
        refs = [i.ReferencedSOPInstanceUID for i in d.SourceImageSequence]
        assert refs == ([src_uids[k // 2]] if k % 2 == 0 else src_uids[k // 2 : k // 2 + 2])
        assert "DERIVED" in d.ImageType
    if inplane:
        assert (out[0].Rows, out[0].Columns) == (src[0].Rows * 2, src[0].Columns * 2)
    else:  # HU at coinciding slices equal the input's
        hu_in = load_image(ct_series).numpy()
        hu_out = load_image(tmp_path / "out" / name).numpy()
        np.testing.assert_allclose(hu_out[..., ::2], hu_in, atol=0.51)
        assert hu_out.min() >= -2048 and hu_out.max() < 4000
    back = load_image(tmp_path / "out" / name)
    assert back.meta["spacing"][2] == pytest.approx(abs(step) / 2, abs=1e-4)
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    s_out = reader.Execute()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(ct_series)))
    s_in = reader.Execute()
    assert s_out.GetSize()[2] == thin_length(n, 2)
    assert s_out.GetSpacing()[2] == pytest.approx(s_in.GetSpacing()[2] / 2, abs=1e-4)
    if inplane:  # in-plane: pixel centres move, the outer pixel edges stay (same in-plane field of view)
        edge = [o - sp / 2 for o, sp in zip(s_out.GetOrigin()[:2], s_out.GetSpacing()[:2])]
        assert edge == pytest.approx([o - sp / 2 for o, sp in zip(s_in.GetOrigin()[:2], s_in.GetSpacing()[:2])], abs=1e-3)
        assert s_out.GetOrigin()[2] == pytest.approx(s_in.GetOrigin()[2], abs=1e-3)
    else:
        assert s_out.GetOrigin() == pytest.approx(s_in.GetOrigin(), abs=1e-3)
    fov_in = s_in.GetSpacing()[2] * (s_in.GetSize()[2] - 1)
    assert s_out.GetSpacing()[2] * (s_out.GetSize()[2] - 1) == pytest.approx(fov_in, abs=1e-3)
    for f in (files[0], files[1]):
        assert dciodvfy(f) == []


def test_cli_errors(tmp_path):
    path, _, _ = _nifti(tmp_path)
    res = runner.invoke(app, ["upscale", str(path), "--slices", "3"])
    assert res.exit_code == 2 and "--slices" in res.output
    res = runner.invoke(app, ["upscale", str(path), "--slices", "2", "-m", "edsr_m"])
    assert res.exit_code == 2 and "in-plane" in res.output
    res = runner.invoke(app, ["upscale", str(path), "--slices", "2", "-s", "2", "--no-progress"])
    assert res.exit_code != 0 and "axis 0" in res.output  # slice axis 0: -s cannot be combined
    res = runner.invoke(app, ["upscale", str(path), "-m", "slice_smore"])
    assert res.exit_code == 2 and "--slices" in res.output
    png = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    res = runner.invoke(app, ["upscale", str(png), "--slices", "2", "--no-progress"])
    assert res.exit_code != 0 and "volume" in res.output
    assert not list(tmp_path.glob("a_sl2x*"))
