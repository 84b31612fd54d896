"""Test-time self-ensemble (:mod:`medsr.tta`, ``--tta``): the mean of the eight transformed passes, geometry kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medsr.cli import app
from medsr.errors import EXIT_OK
from medsr.inference import InterpolationUpscaler, NetworkUpscaler
from medsr.io import load_image
from medsr.networks.edsr import EDSR
from medsr.tta import DIHEDRAL, TTAUpscaler, dihedral, undo_dihedral, with_tta

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _network(scale: int = 2) -> NetworkUpscaler:
    torch.manual_seed(0)
    net = EDSR(2, 1, 1, scale, num_features=8, num_blocks=2)
    for p in net.parameters():  # a network far from symmetric: the eight passes really differ
        p.data.normal_(0.0, 0.2)
    return NetworkUpscaler(net, scale, name="tiny")


def test_dihedral_group_is_eight_distinct_invertible_transforms() -> None:
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(1, 2 * 5, 7)
    seen = {tuple(dihedral(x, k, f).flatten().tolist()) + tuple(dihedral(x, k, f).shape) for k, f in DIHEDRAL}
    assert len(DIHEDRAL) == 8 and len(seen) == 8
    for k, f in DIHEDRAL:
        assert torch.equal(undo_dihedral(dihedral(x, k, f), k, f), x)


@pytest.mark.parametrize("shape", [(1, 20, 20), (1, 18, 26), (1, 12, 16, 3)])
def test_tta_is_the_mean_of_the_eight_transformed_passes(shape: tuple[int, ...]) -> None:
    up = _network()
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    expected = torch.stack([undo_dihedral(up(dihedral(x, k, f).contiguous()), k, f) for k, f in DIHEDRAL]).mean(0)
    out = TTAUpscaler(up)(x)
    assert out.shape == (shape[0], 2 * shape[1], 2 * shape[2], *shape[3:])  # geometry of the plain output
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    plain = up(x)
    assert (out - plain).abs().max() > 1e-3  # the ensemble is not the plain pass for an asymmetric network
    # a rectangular image keeps its orientation (not transposed by the rotations)
    torch.testing.assert_close(TTAUpscaler(InterpolationUpscaler("bicubic", 2))(x), InterpolationUpscaler("bicubic", 2)(x), rtol=0, atol=1e-5)


def test_with_tta_names_and_skips_interpolation() -> None:
    up = _network(4)
    wrapped = with_tta(up)
    assert wrapped.name == "tiny+tta" and wrapped.scale == 4 and wrapped.is_gan is False
    assert wrapped.halo == up.halo  # attributes of the wrapped upscaler pass through
    bicubic = InterpolationUpscaler("bicubic", 2)
    assert with_tta(bicubic) is bicubic and with_tta(up, enabled=False) is up


def test_cli_upscale_tta_keeps_output_geometry(tmp_path: Path) -> None:
    if not (SAMPLE / "mr_small.dcm").is_file():
        pytest.skip("sample_data/ is missing (run sample_data/make_sample_data.py)")
    src = tmp_path / "mr_small.dcm"
    shutil.copy(SAMPLE / "mr_small.dcm", src)
    outs = {}
    for flag in ([], ["--tta"]):
        out = tmp_path / f"out{len(flag)}.dcm"
        result = CliRunner().invoke(app, ["upscale", str(src), "-o", str(out), "-m", "edsr_m", "--no-progress", *flag])
        assert result.exit_code == EXIT_OK, result.stderr
        outs[len(flag)] = load_image(out)
    plain, tta = outs[0], outs[1]
    assert tuple(tta.shape) == tuple(plain.shape) == (1, 128, 128)
    torch.testing.assert_close(tta.affine, plain.affine)
    assert tta.meta.get("spacing") == plain.meta.get("spacing")
    diff = (tta.float() - plain.float()).abs()
    assert 0 < float(diff.max()) < 0.1 * float(plain.float().max() - plain.float().min())  # close, not identical


def test_cli_evaluate_tta_labels_the_model(tmp_path: Path) -> None:
    if not (SAMPLE / "ct_small.dcm").is_file():
        pytest.skip("sample_data/ is missing (run sample_data/make_sample_data.py)")
    result = CliRunner().invoke(
        app, ["evaluate", str(SAMPLE / "ct_small.dcm"), "-o", str(tmp_path / "ev"), "-m", "edsr_m", "--tta", "--no-progress", "-q"]
    )
    assert result.exit_code == EXIT_OK, result.stderr
    import json

    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["settings"]["models"] == ["bicubic", "edsr_m+tta"]
