"""Tests of medsr.inference: tiling is exact, blending is seamless, loading fails clearly, folders pipeline and shard."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsr.errors import UsageError
from medsr.inference import (
    InterpolationUpscaler,
    NetworkUpscaler,
    configure_threads,
    distributed_rank,
    load_upscaler,
    prepare_network,
    receptive_radius,
    tile_windows,
    upscale_image,
    upscale_path,
)
from medsr.inference import _axis_tiles, _fold_shuffle_into_tail, _sub_pixel_tail
from medsr.networks.attention import AttentionResidualGenerator
from medsr.networks.edsr import EDSR
from medsr.networks.srgan import SRResNet

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Seed, and one CPU thread: the tensors are tiny and the machine is shared."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    configure_threads(1)
    yield
    torch.set_num_threads(threads)


def _untiled(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(x[None])[0]


# --------------------------------------------------------------------------- tiling


@pytest.mark.parametrize("size,tile,halo", [(1, 4, 2), (7, 3, 0), (100, 32, 24), (70, 32, 24), (64, 64, 8), (65, 16, 40)])
def test_tile_windows_cover_every_index_once(size, tile, halo):
    wins = tile_windows(size, tile, halo)
    seen = np.zeros(size, int)
    widths = {b - a for a, b, _, _ in wins}
    for a, b, k0, k1 in wins:
        assert 0 <= a <= k0 < k1 <= b <= size
        assert k0 - a >= min(halo, k0) and b - k1 >= min(halo, size - k1)  # full halo unless at the border
        seen[k0:k1] += 1
    assert (seen == 1).all()
    assert widths == {min(size, tile + 2 * halo)}  # equal windows: they batch


def test_tile_windows_rejects_bad_arguments():
    with pytest.raises(UsageError, match="tile > 0"):
        tile_windows(10, 0, 2)


@pytest.mark.parametrize("size,tile,overlap", [(100, 32, 8), (70, 32, 16), (33, 32, 8), (200, 40, 10), (1000, 250, 62)])
def test_blend_ramps_sum_to_one(size, tile, overlap):
    total = torch.zeros(size * 2)
    tiles = _axis_tiles(size, tile, 4, overlap, 2)
    for (a, b, k0, k1), w in tiles:
        assert k1 - k0 == tile and b - a == min(size, tile + 8) and a <= k0 and k1 <= b
        total[k0 * 2 : k1 * 2] += 1.0 if w is None else w
    starts = [k0 for (_, _, k0, _), _ in tiles]
    assert starts[0] == 0 and tiles[-1][0][3] == size
    assert all(overlap <= tile - (b - a) for a, b in zip(starts, starts[1:]))
    if all(2 * (b - a) >= tile for a, b in zip(starts, starts[1:])):  # at most two parts meet anywhere
        assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    assert (total > 0.5).all()  # and NetworkUpscaler normalises by the total anyway


def test_tiled_equals_untiled_2d():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=2)
    up = NetworkUpscaler(net, 2, tile=32, halo=None)
    assert up.exact and not up.blend and up.halo >= up.receptive_radius
    x = torch.rand(1, 100, 70)
    y = up(x)
    assert y.shape == (1, 200, 140)
    assert (y - _untiled(net, x)).abs().max() <= 1e-5


@pytest.mark.parametrize("halo", [24, 2])
def test_tiled_equals_untiled_x4_whatever_halo_the_bundle_declares(halo):
    net = EDSR(scale_factor=4, num_features=8, num_blocks=2)
    up = NetworkUpscaler(net, 4, tile=16, halo=halo, batch_size=3)
    assert up.halo == up.receptive_radius  # a local network's halo is its measured receptive field
    x = torch.rand(1, 50, 37)
    assert (up(x) - _untiled(net, x)).abs().max() <= 1e-5


def test_volume_with_2d_net_goes_slice_by_slice():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=2)
    up = NetworkUpscaler(net, 2, tile=16, halo=12)
    v = torch.rand(1, 40, 30, 3)
    y = up(v)
    assert y.shape == (1, 80, 60, 3)
    ref = torch.stack([_untiled(net, v[..., k]) for k in range(3)], -1)
    assert (y - ref).abs().max() <= 1e-5


def test_3d_network_tiles_in_3d():
    net = EDSR(spatial_dims=3, scale_factor=2, num_features=4, num_blocks=1)
    up = NetworkUpscaler(net, 2, spatial_dims=3, tile=8)
    x = torch.rand(1, 20, 14, 11)
    assert (up(x) - _untiled(net, x)).abs().max() <= 1e-5


def test_blending_a_local_network_is_exact_too():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=2)
    up = NetworkUpscaler(net, 2, tile=24, halo=12, blend=True)
    x = torch.rand(1, 90, 61)
    assert (up(x) - _untiled(net, x)).abs().max() <= 1e-5


def test_global_network_is_detected_and_blended():
    net = AttentionResidualGenerator(scale_factor=2, num_features=8, num_groups=1, num_blocks=1, num_heads=2)
    up = NetworkUpscaler(net, 2, tile=24, halo=8)
    assert not up.exact and up.blend
    x = torch.rand(1, 64, 48)
    y = up(x)
    ref = _untiled(net, x)
    assert y.shape == ref.shape
    assert (y - ref).abs().max() < 0.05  # approximate: attention statistics differ per tile
    whole = NetworkUpscaler(net, 2, halo=8)  # fits the memory budget: runs whole, exact
    assert (whole(x) - ref).abs().max() <= 1e-5


def test_receptive_radius_of_edsr():
    net = EDSR(scale_factor=2, num_features=4, num_blocks=2)
    # head + 2 blocks x 2 convs + body conv + upsampler conv = 7 LR 3x3 convs, tail adds < 1 LR pixel
    assert 7 <= receptive_radius(net, 2) <= 9


def test_memory_plan_splits_evenly_and_fills_batches():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=1)
    up = NetworkUpscaler(net, 2, halo=8, memory_budget=40_000 * 1536)
    max_px = up.memory_budget / up.bytes_per_px
    tiles, batch = up.plan((1000, 600))
    assert tiles != (1000, 600)
    for t, size in zip(tiles, (1000, 600)):
        parts = -(-size // t)
        assert t <= size and parts * t - size < parts  # equal parts, the last one barely shorter
    windows = [min(size, t + 16) for t, size in zip(tiles, (1000, 600))]
    assert windows[0] * windows[1] * batch <= max_px  # windows x batch fit the budget
    # less halo recomputation than the square tiles of the same budget
    square = max(16, int(max_px**0.5) - 16)
    square_tiles = [-(-size // -(-size // square)) for size in (1000, 600)]
    work = math.prod(-(-n // t) * min(n, t + 16) for n, t in zip((1000, 600), tiles))
    assert work <= math.prod(-(-n // t) * min(n, t + 16) for n, t in zip((1000, 600), square_tiles))
    small, small_batch = up.plan((40, 30))
    assert small == (40, 30) and small_batch > 1  # small images run whole, several slices per pass


@pytest.mark.parametrize("r, k", [(2, 3), (3, 3), (4, 3), (2, 5), (2, 1)])
def test_sub_pixel_tail_equals_conv_after_pixel_shuffle(r: int, k: int):
    torch.manual_seed(r * 10 + k)
    conv = torch.nn.Conv2d(6, 2, k, padding=k // 2)
    u = torch.randn(2, 6 * r * r, 9, 7)
    with torch.no_grad():
        hr = conv(torch.nn.functional.pixel_shuffle(u, r))
        lr = torch.nn.functional.pixel_shuffle(_sub_pixel_tail(conv, r)(u), r)
    assert lr.shape == hr.shape and (lr - hr).abs().max() <= 1e-5


@pytest.mark.parametrize(
    "net",
    [EDSR(scale_factor=2, num_features=8, num_blocks=1), EDSR(scale_factor=4, num_features=8, num_blocks=1),
     AttentionResidualGenerator(scale_factor=2, num_features=8, num_groups=1, num_blocks=1, reduction=2)],
)
def test_pixel_shuffle_moved_after_the_tail_exactly(net: torch.nn.Module):
    net = net.eval()
    folded = copy.deepcopy(net)
    assert _fold_shuffle_into_tail(folded) == 1
    assert isinstance(folded.tail[-1], torch.nn.PixelShuffle)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in folded.modules()) == sum(
        isinstance(m, torch.nn.PixelShuffle) for m in net.modules()
    )
    x = torch.rand(1, 1, 19, 23)
    with torch.no_grad():
        assert (folded(x) - net(x)).abs().max() <= 1e-5
    hybrid_like = SRResNet(scale_factor=2, num_features=8, num_blocks=1)  # PReLU after the shuffle: left alone
    assert _fold_shuffle_into_tail(hybrid_like) == 0 and type(hybrid_like.tail) is torch.nn.Conv2d


def test_prepare_network_folds_batch_norm_and_residual_scale_exactly():
    net = SRResNet(scale_factor=2, num_features=8, num_blocks=2, norm="batch").eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    fast = prepare_network(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.rand(2, 1, 20, 17)
    with torch.no_grad():
        assert (fast(x) - net(x)).abs().max() <= 1e-5
    edsr = EDSR(scale_factor=2, num_features=8, num_blocks=2, res_scale=0.1).eval()
    fast = prepare_network(edsr)
    assert all(b.res_scale == 1.0 for b in fast.body if hasattr(b, "res_scale"))
    with torch.no_grad():
        assert (fast(x) - edsr(x)).abs().max() <= 1e-5
    assert edsr.body[0].res_scale == 0.1  # the original is untouched


@pytest.mark.parametrize("make", [
    lambda: EDSR(scale_factor=2, num_features=8, num_blocks=2),
    lambda: SRResNet(scale_factor=4, num_features=8, num_blocks=2),
    lambda: AttentionResidualGenerator(scale_factor=2, num_features=8, num_groups=1, num_blocks=1, num_heads=2),
])
def test_onednn_fusion_is_exact_and_falls_back(make):
    from medsr.inference import _FusedConv

    net = make().eval()
    fast = prepare_network(net, fuse=True)
    if torch.backends.mkldnn.is_available():
        assert any(isinstance(m, _FusedConv) for m in fast.modules())
    x = torch.rand(2, 1, 21, 17)
    with torch.inference_mode():
        assert (fast(x) - net(x)).abs().max() <= 1e-5
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.inference_mode():  # falls back to the plain modules
        assert (fast(x).float() - net(x)).abs().max() < 0.1
    import copy

    assert copy.deepcopy(fast) is not None  # prepacked weights are not copied, they are rebuilt


# --------------------------------------------------------------------------- options and interpolation


def test_precision_and_option_validation():
    net = EDSR(scale_factor=2, num_features=4, num_blocks=1)
    with pytest.raises(UsageError, match="precision"):
        NetworkUpscaler(net, 2, precision="fp8")
    with pytest.raises(UsageError, match="fp16 needs a CUDA"):
        NetworkUpscaler(net, 2, precision="fp16")
    with pytest.raises(UsageError, match="scale"):
        NetworkUpscaler(net, 3)
    with pytest.raises(UsageError, match="tile"):
        NetworkUpscaler(net, 2, tile=-1)
    with pytest.raises(UsageError, match="batch_size"):
        NetworkUpscaler(net, 2, batch_size=0)
    with pytest.raises(UsageError, match="device"):
        NetworkUpscaler(net, 2, device="tpu")
    with pytest.raises(UsageError, match="precision"):
        load_upscaler("bicubic", 2, precision="half")


def test_bf16_runs_close_to_fp32():
    net = EDSR(scale_factor=2, num_features=8, num_blocks=2)
    x = torch.rand(1, 40, 33)
    y = NetworkUpscaler(net, 2, precision="bf16", tile=16, halo=12)(x)
    assert y.dtype == torch.float32 and (y - _untiled(net, x)).abs().max() < 0.05


@pytest.mark.parametrize("kind", ["bicubic", "lanczos"])
@pytest.mark.parametrize("scale", [2, 4])
def test_interpolation_upscaler_shapes(kind, scale):
    up = InterpolationUpscaler(kind, scale)
    assert up(torch.rand(1, 10, 7)).shape == (1, 10 * scale, 7 * scale)
    assert up(torch.rand(1, 10, 7, 3)).shape == (1, 10 * scale, 7 * scale, 3)  # in-plane only


def test_bicubic_keeps_a_constant_image_constant():
    y = InterpolationUpscaler("bicubic", 2)(torch.full((1, 12, 9), 0.37))
    assert torch.allclose(y, torch.full_like(y, 0.37), atol=1e-6)


def test_interpolation_rejects_unknown_kind_and_scale():
    with pytest.raises(UsageError, match="kind"):
        InterpolationUpscaler("nearest", 2)
    with pytest.raises(UsageError, match="scale"):
        InterpolationUpscaler("bicubic", 3)


# --------------------------------------------------------------------------- bundles


@pytest.fixture
def random_bundle(tmp_path: Path) -> Path:
    """A copy of the edsr_m bundle with random x2 weights (the shipped ones may still be training)."""
    root = tmp_path / "edsr_copy"
    shutil.copytree(ROOT / "bundles" / "edsr_m" / "configs", root / "configs")
    (root / "models").mkdir()
    torch.save(EDSR(scale_factor=2, num_features=32, num_blocks=8).state_dict(), root / "models" / "model.pt")
    return root


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


# --------------------------------------------------------------------------- physical pipeline


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
    import medsr.inference.upscalers as inference
    from monai.data import MetaTensor

    from medsr import meta as mk
    from medsr.transforms import InvertModalityNormalize, ModalityNormalize

    monkeypatch.setattr(inference, "_INVERT_CHUNK", 100)  # many slabs on a small image
    img = MetaTensor(torch.rand(1, 30, 20) * 4000 - 1000, meta={mk.MODALITY: "ct"})
    net = EDSR(scale_factor=2, num_features=4, num_blocks=1)
    for up in (NetworkUpscaler(net, 2, tile=16), InterpolationUpscaler("bicubic", 2)):  # inference and normal tensors
        out = upscale_image(img, up)
        norm = ModalityNormalize()(img)
        ref = InvertModalityNormalize()(inference._derived(norm, up(norm.as_tensor()), up))
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

    real = medsr.io.save_image

    def flaky(img, path, **kw):
        if Path(path).name == "img2_sr2x.png":
            raise OSError("disk full")
        return real(img, path, **kw)

    monkeypatch.setattr(medsr.io, "save_image", flaky)
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


def test_distributed_rank_validation(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(UsageError, match="RANK"):
        distributed_rank()


def test_configure_threads_respects_the_environment(monkeypatch):
    monkeypatch.setenv("MEDSR_NUM_THREADS", "1")
    assert configure_threads() == 1
    monkeypatch.setenv("MEDSR_NUM_THREADS", "x")
    with pytest.raises(UsageError, match="MEDSR_NUM_THREADS"):
        configure_threads()


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


# --------------------------------------------------------------------------- devices


def test_resolve_device_auto_and_names():
    from medsr.inference import resolve_device

    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
    assert resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(UsageError, match="must be one of auto, cpu, cuda, cuda:<index>, mps"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_interpolation_never_falls_back_to_cpu_silently():
    from medsr.inference import load_upscaler

    with pytest.raises(UsageError, match="`device` cuda:0 was asked for"):
        load_upscaler("bicubic", 2, device="cuda:0")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without Apple MPS")
def test_mps_absent_is_usage_error():
    from medsr.inference import resolve_device

    with pytest.raises(UsageError, match="MPS backend is not available"):
        resolve_device("mps")


def test_progress_counts_slices_and_tiles():
    """``NetworkUpscaler.progress`` hears (windows done, windows in all) after each forward pass."""
    net = EDSR(scale_factor=2, num_features=8, num_blocks=1)
    up = NetworkUpscaler(net, 2, tile=16, batch_size=2)
    calls: list[tuple[int, int]] = []
    up.progress = lambda done, total: calls.append((done, total))
    up(torch.rand(1, 40, 40, 3))  # 3 slices x 3 x 3 tiles
    totals = {t for _, t in calls}
    assert totals == {27} and [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1] == (27, 27)
    assert len(calls) == 14  # one call per forward pass of 2 windows
