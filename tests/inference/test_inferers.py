"""TiledInferer (medsr's tiler as a MONAI Inferer) and the bundle inference workflow built from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.inferers import Inferer

from medsr.errors import UsageError
from medsr.inference import load_upscaler, upscale_path
from medsr.inferers import TiledInferer, inference_datalist
from medsr.networks.edsr import EDSR

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "edsr_m"


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return EDSR(num_features=8, num_blocks=2).eval()


def test_is_a_monai_inferer_and_equals_the_untiled_network() -> None:
    net = _net()
    inferer = TiledInferer(scale=2, tile=16)
    assert isinstance(inferer, Inferer)
    x = torch.rand(2, 1, 40, 36, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = net(x)
    out = inferer(x, net)
    assert out.shape == (2, 1, 80, 72)
    assert inferer.upscaler(net).exact  # halo >= receptive field: tiles are exact
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_volume_goes_slice_by_slice() -> None:
    net = _net()
    x = torch.rand(1, 1, 20, 18, 3, generator=torch.Generator().manual_seed(2))
    out = TiledInferer(scale=2)(x, net)
    assert out.shape == (1, 1, 40, 36, 3)
    with torch.inference_mode():
        torch.testing.assert_close(out[0, :, :, :, 1], net(x[:, :, :, :, 1])[0], atol=1e-5, rtol=1e-5)


def test_rebuilds_its_fast_copy_when_weights_change() -> None:
    net = _net(0)
    inferer = TiledInferer(scale=2)
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    first = inferer(x, net)
    net.load_state_dict(_net(5).state_dict())  # what a CheckpointLoader does after the inferer was built
    second = inferer(x, net)
    with torch.inference_mode():
        torch.testing.assert_close(second, net(x), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(first, second)


def test_bad_input_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="batch"):
        TiledInferer(scale=2)(torch.rand(1, 16, 16), _net())
    with pytest.raises(UsageError, match="network"):
        TiledInferer(scale=2)(torch.rand(1, 1, 16, 16), "not a network")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="scale"):
        TiledInferer(scale=3)
    with pytest.raises(UsageError, match="unknown option"):
        TiledInferer(scale=2, tiles=64)


def test_datalist_names_outputs_like_medsr_upscale(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(ROOT / "sample_data" / "ct_series_lung_dx_a0001", src / "series")
    shutil.copy(ROOT / "sample_data" / "ct_small.dcm", src / "ct_small.dcm")
    items = inference_datalist(src, tmp_path / "out", 2)
    by_out = {Path(d["output"]).name: d["image"] for d in items}
    assert set(by_out) == {"series_sr2x", "ct_small_sr2x.dcm"}
    assert isinstance(by_out["series_sr2x"], list) and len(by_out["series_sr2x"]) == 8


def _small_inputs(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for name in ["ct_small.dcm", "mr_small.dcm"]:
        shutil.copy(ROOT / "sample_data" / name, src / name)
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 65535, (40, 48), dtype=np.uint16)).save(src / "xray16.png")
    return src


def _dicom_summary(path: Path) -> tuple:
    ds = pydicom.dcmread(path)
    fresh = {"SOPInstanceUID", "SeriesInstanceUID", "InstanceCreationTime", "SeriesTime", "ContentTime",
             "ContributionDateTime"}  # the time of each run, to the second

    def summary(data: pydicom.Dataset) -> dict[str, object]:
        return {
            e.keyword: [summary(item) for item in e.value] if e.VR == "SQ" else str(e.value)
            for e in data if e.keyword not in fresh and e.keyword != "PixelData"
        }

    return ds.PixelData, summary(ds)


@pytest.mark.slow
def test_bundle_workflow_and_medsr_upscale_write_the_same_images(tmp_path: Path) -> None:
    """`python -m monai.bundle run` (inference.json) and `medsr upscale -m edsr_m`: same pixels, same headers."""
    src = _small_inputs(tmp_path)
    wf = ConfigWorkflow(
        config_file=str(BUNDLE / "configs" / "inference.json"), meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=False, workflow_type="infer", bundle_root=str(BUNDLE), dataset_dir=str(src),
        output_dir=str(tmp_path / "bundle"), num_workers=0,
    )
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    upscale_path(src, tmp_path / "cli", load_upscaler("edsr_m", 2), progress=False)
    bundle_files = sorted(p.relative_to(tmp_path / "bundle") for p in (tmp_path / "bundle").rglob("*") if p.is_file())
    cli_files = sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*") if p.is_file())
    assert bundle_files == cli_files and len(bundle_files) == 3
    for rel in bundle_files:
        a, b = tmp_path / "bundle" / rel, tmp_path / "cli" / rel
        if rel.suffix == ".dcm":  # new UIDs and times per run, everything else equal
            assert _dicom_summary(a) == _dicom_summary(b), rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel
