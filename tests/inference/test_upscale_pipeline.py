"""Tests of medsr.inference.pipeline: physical units in and out, folders pipeline and shard, the CLI and the
benchmark run the same path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsr.inference import InterpolationUpscaler, NetworkUpscaler, distributed_rank, upscale_image, upscale_path
from medsr.networks.edsr import EDSR

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"


def test_upscale_image_keeps_ct_in_hu_and_halves_spacing():
    from medsr import meta as mk
    from medsr.io import load_image

    path = SAMPLE / "ct_small.dcm"
    if not path.is_file():
        pytest.skip("sample_data/ct_small.dcm is missing")
    img = load_image(path)
    out = upscale_image(img, InterpolationUpscaler("bicubic", 2))
    assert out.shape[1:3] == (img.shape[1] * 2, img.shape[2] * 2)
    assert abs(float(out.mean()) - float(img.mean())) <= 0.01 * abs(float(img.mean()))
    assert np.allclose(out.meta[mk.SPACING][:2], np.asarray(img.meta[mk.SPACING][:2]) / 2)
    assert "bicubic x2" in out.meta[mk.DERIVATION]


def test_large_outputs_go_back_to_physical_units_in_slabs(monkeypatch):
    import medsr.inference.pipeline as pipeline
    from monai.data import MetaTensor

    from medsr import meta as mk
    from medsr.transforms import InvertModalityNormalize, ModalityNormalize

    monkeypatch.setattr(pipeline, "INVERT_CHUNK", 100)  # many slabs on a small image
    img = MetaTensor(torch.rand(1, 30, 20) * 4000 - 1000, meta={mk.MODALITY: "ct"})
    net = EDSR(scale_factor=2, num_features=4, num_blocks=1)
    for up in (NetworkUpscaler(net, 2, tile=16), InterpolationUpscaler("bicubic", 2)):  # inference and normal tensors
        out = upscale_image(img, up)
        norm = ModalityNormalize()(img)
        ref = InvertModalityNormalize()(pipeline.derived_image(norm, up(norm.as_tensor()), up))
        assert out.shape == (1, 60, 40) and mk.NORM_LOW not in out.meta
        assert torch.allclose(out.as_tensor(), ref.as_tensor(), atol=1e-3)


@pytest.fixture
def png_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "pngs"
    (root / "sub").mkdir(parents=True)
    for k in range(5):
        Image.fromarray((rng.random((24 + k, 18)) * 65535).astype(np.uint16)).save(root / f"img{k}.png")
    Image.fromarray((rng.random((16, 20)) * 255).astype(np.uint8)).save(root / "sub" / "small.png")
    (root / "broken.png").write_bytes(b"not a png")
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*_sr2x.png"))}


def test_background_pipeline_matches_sequential_and_reports_failures(png_folder, tmp_path):
    up = InterpolationUpscaler("bicubic", 2)
    seq = upscale_path(png_folder, tmp_path / "seq", up, progress=False, workers=0, log=lambda m: None)
    bg = upscale_path(png_folder, tmp_path / "bg", up, progress=False, workers=1, log=lambda m: None)
    for r in (seq, bg):
        assert (r.done, len(r.failed)) == (6, 1) and r.exit_code == 1
        assert r.failed[0][0].endswith("broken.png")
    assert _files(tmp_path / "seq") == _files(tmp_path / "bg") and len(_files(tmp_path / "bg")) == 6
    rows = (tmp_path / "bg" / "errors.csv").read_text().splitlines()
    assert rows[0] == "path,reason" and "broken.png" in rows[1]
    again = upscale_path(png_folder, tmp_path / "bg", up, progress=False, resume=True, log=lambda m: None)
    assert (again.done, again.skipped) == (0, 6)


def test_a_failing_background_write_is_charged_to_its_own_file(png_folder, tmp_path, monkeypatch):
    import medsr.io

    real = medsr.io.write_image

    def flaky(data, meta, path, **kw):
        if Path(path).name == "img2_sr2x.png":
            raise OSError("disk full")
        return real(data, meta, path, **kw)

    monkeypatch.setattr(medsr.io, "write_image", flaky)
    r = upscale_path(png_folder, tmp_path / "out", InterpolationUpscaler("bicubic", 2), progress=False, log=lambda m: None)
    assert r.done == 5 and sorted(Path(p).name for p, _ in r.failed) == ["broken.png", "img2.png"]
    assert "disk full" in dict(r.failed)[str(png_folder / "img2.png")]


def test_ranks_share_a_folder_without_gaps_or_duplicates(png_folder, tmp_path, monkeypatch):
    up = InterpolationUpscaler("bicubic", 2)
    written: list[str] = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        assert distributed_rank() == (rank, 3)
        upscale_path(png_folder, tmp_path / "out", up, progress=False, verbose=True,
                     log=lambda m: written.append(m.rsplit(" ", 1)[-1]) if " wrote " in m else None)
    assert len(written) == len(set(written)) == 6
    assert sorted(written) == sorted(str(tmp_path / "out" / k) for k in _files(tmp_path / "out"))
    assert len(list((tmp_path / "out").glob("errors.rank*.csv"))) == 1 and not (tmp_path / "out" / "errors.csv").exists()


def test_cli_upscale_with_a_network_bundle(random_bundle, tmp_path):
    from typer.testing import CliRunner

    from medsr.cli import app

    src = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(1).random((30, 22)) * 255).astype(np.uint8)).save(src)
    res = CliRunner().invoke(app, ["upscale", str(src), "-m", str(random_bundle), "--trust-bundle", "--tile", "16",
                                   "--batch-size", "2", "--no-progress", "-q"])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "a_sr2x.png").size == (44, 60)


# --------------------------------------------------------------------------- the benchmark keeps working


@pytest.mark.slow
def test_benchmark_tiny_mode_runs(tmp_path):
    out = tmp_path / "results.json"
    env = dict(os.environ, MEDSR_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_upscale.py"), "--tiny", "--json", str(out), "--no-doc"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["conv_peak"]["gflops"] > 0
    edsr = results["bundles"]["edsr_m"]["sizes"]["64"]
    assert edsr["s"]["medsr"] > 0 and edsr["s"]["plain eager"] > 0
    assert max(edsr["max_abs_diff_vs_medsr"].values()) <= 1e-4  # every peer computes the same network
    startup = results["startup"]["runs"]
    assert startup["upscale 512x512 CT slice -m bicubic"]["rc"] == 0
    assert startup["upscale 512x512 CT slice -m bicubic"]["ratio_to_reference"] > 0
    assert results["scale"]["ratio_to_k_small"] > 0
    formats = results["formats"]
    assert formats["png16"]["rc"] == 0 and formats["dicom16"]["rc"] == 0
    assert formats["dicom16"]["max_abs_diff_vs_untiled"] <= 1e-4
