#!/usr/bin/env python
"""Speed and memory benchmark of ``medsr upscale`` against a plain eager PyTorch loop, in one run.

For each shipped bundle: output megapixels per second and achieved GFLOP/s (conv
FLOPs counted with hooks) of medsr's :class:`~medsr.inference.NetworkUpscaler`
and of a plain eager loop of the same network (NCHW, ``torch.no_grad``, whole
image, default threads), the conv peak of this machine for the same conv shapes
(each conv timed alone in channels_last), bf16 speed and accuracy. Then
end-to-end CLI runs in subprocesses (wall time and peak RSS from ``wait4``):
cold start (``medsr --help``, bicubic on a 512x512 CT slice), EDSR-M on a
1024x1024 image, and a synthetic 4096x4096 16-bit radiograph (a real chest CR,
resampled, with noise) upscaled x2 with EDSR-M, whose output is compared with
untiled inference on a crop across tile boundaries (the seam check).

Writes a JSON (``benchmarks/results.json``) and the tables between the
``<!-- bench:begin -->`` / ``<!-- bench:end -->`` markers of docs/performance.md.

    python benchmarks/bench_upscale.py            # the full run (~5 min on 2 cores)
    python benchmarks/bench_upscale.py --tiny     # seconds; what the test suite runs
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medsr.inference import NetworkUpscaler, configure_threads, load_weights, parse_bundle, resolve_bundle  # noqa: E402
from medsr.networks.deploy import FusedConv  # noqa: E402

BUNDLES = ("edsr_m", "srcnn_srgan_hybrid", "attention_residual")
SAMPLE = ROOT / "sample_data"
CT_SLICE = SAMPLE / "ct_series_lung_dx_a0001" / "1-30.dcm"
CR = SAMPLE / "cxr_cr_rg1.dcm"
CXR_PNG = SAMPLE / "cxr_hannover_006f3a8a.png"
MEDSR = [sys.executable, "-m", "medsr"]
MEDSR_BIN = Path(sys.executable).with_name("medsr")


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def best_time(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


_LAUNCHER = r"""
import json, os, sys, time
res, cmd = sys.argv[1], sys.argv[2:]
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(cmd[0], cmd)
_, status, ru = os.wait4(pid, 0)
with open(res, "w") as fh:
    json.dump({"wall": time.perf_counter() - t, "rss_kb": ru.ru_maxrss, "user": ru.ru_utime,
               "rc": os.waitstatus_to_exitcode(status)}, fh)
"""


def run_cli(args: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command; its wall seconds and peak RSS (MB, ``wait4``) alone.

    A small launcher (``python -S``) forks and execs the command: measured from
    this process, the child's peak RSS would include this process's own memory
    at fork time (Linux keeps the high-water mark across exec).
    """
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        res_path = fh.name
    try:
        proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, res_path, *map(str, args)],
                              capture_output=True, env=env)
        res = json.loads(Path(res_path).read_text() or "{}")
    finally:
        os.unlink(res_path)
    return {
        "command": " ".join(str(a) for a in args).replace(str(ROOT) + "/", ""),
        "wall_s": round(res.get("wall", float("nan")), 3),
        "peak_rss_mb": round(res.get("rss_kb", 0) / 1024, 1),
        "user_s": round(res.get("user", float("nan")), 2),
        "rc": res.get("rc", proc.returncode),
        "stderr_tail": proc.stderr.decode(errors="replace")[-600:] if res.get("rc", 1) else "",
    }


def training_running() -> bool:
    try:
        out = subprocess.run(["pgrep", "-f", "monai.bundle run training"], capture_output=True, text=True)
    except OSError:
        return False
    return bool(out.stdout.strip())


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
           if f" {f} " in f" {flags} "]
    return {
        "cpu": cpu,
        "isa": " ".join(isa) or "no AVX2",
        "cpus_available": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "amx_bf16": "amx_bf16" in flags,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "training_job_running": training_running(),
    }


# --------------------------------------------------------------------------- FLOPs and conv peaks

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def conv_calls(net: nn.Module, run: Callable[[], Any]) -> list[tuple[nn.Module, tuple[int, ...], int]]:
    """Every convolution call during ``run()``: (conv module, input shape, FLOPs = 2 x multiply-adds).

    medsr's fused convolutions (``FusedConv``) call oneDNN directly, so they are
    hooked themselves and the ``nn.Conv2d`` they wrap is not counted twice.
    """
    calls: list[tuple[nn.Module, tuple[int, ...], int]] = []

    def hook(m: nn.Module, inp: Any, out: torch.Tensor) -> None:
        conv = m.conv if isinstance(m, FusedConv) else m
        k = math.prod(conv.kernel_size) * conv.in_channels // conv.groups
        calls.append((conv, tuple(inp[0].shape), 2 * k * out.numel()))

    wrapped = {id(m.conv) for m in net.modules() if isinstance(m, FusedConv)}
    targets = [m for m in net.modules() if isinstance(m, FusedConv) or (isinstance(m, CONVS) and id(m) not in wrapped)]
    handles = [m.register_forward_hook(hook) for m in targets]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return calls


@torch.inference_mode()
def time_conv(conv: nn.Module, shape: Sequence[int], repeat: int, channels_last: bool = True) -> float:
    """Best time of ``conv`` on a random input of ``shape``: aten in NCHW, or the best of aten and oneDNN
    (prepacked weight, as medsr runs it) in channels_last."""
    conv = copy.deepcopy(conv).eval()
    x = torch.rand(tuple(shape))
    if not channels_last or x.ndim != 4:
        return best_time(lambda: conv(x), repeat)
    conv = conv.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    best = best_time(lambda: conv(x), repeat)
    if type(conv) is nn.Conv2d and torch.backends.mkldnn.is_available():
        fused = FusedConv(conv)
        best = min(best, best_time(lambda: fused(x), repeat))
    return best


def conv_peak(size: int, repeat: int) -> dict[str, Any]:
    """GFLOP/s of a 64->64 3x3 convolution on a (1, 64, size, size) input, channels_last and NCHW."""
    conv = nn.Conv2d(64, 64, 3, padding=1)
    flops = 2 * 64 * 64 * 9 * size * size
    cl = time_conv(conv, (1, 64, size, size), repeat, True)
    nchw = time_conv(conv, (1, 64, size, size), repeat, False)
    return {"shape": f"64->64 3x3 on 64x{size}x{size}", "gflops": round(flops / cl / 1e9, 1),
            "gflops_nchw": round(flops / nchw / 1e9, 1), "threads": torch.get_num_threads(),
            "how": "best of aten channels_last and oneDNN with a prepacked weight, inference_mode"}


def same_shape_peak(calls: list[tuple[nn.Module, tuple[int, ...], int]], repeat: int) -> tuple[float, int]:
    """(seconds, FLOPs) of the given conv calls when each distinct one runs alone at its best (channels_last)."""
    groups: dict[tuple[int, tuple[int, ...]], list[Any]] = {}
    for m, shape, flops in calls:
        key = (id(m), shape)
        groups.setdefault(key, [m, shape, flops, 0])[3] += 1
    # identical convolutions (same hyper-parameters and input shape) are timed once
    timed: dict[tuple[Any, ...], float] = {}
    total_t, total_f = 0.0, 0
    for m, shape, flops, count in groups.values():
        sig = (type(m).__name__, m.in_channels, m.out_channels, m.kernel_size, m.groups, m.stride, m.padding, shape)
        if sig not in timed:
            timed[sig] = time_conv(m, shape, repeat)
        total_t += timed[sig] * count
        total_f += flops * count
    return total_t, total_f


# --------------------------------------------------------------------------- images


def realistic_image(size: int, seed: int = 0) -> torch.Tensor:
    """A (1, size, size) normalised chest radiograph: the sample CR resampled to ``size`` with mild noise."""
    from medsr.io import load_image
    from medsr.transforms import ModalityNormalize

    img = ModalityNormalize()(load_image(CR)).as_tensor()[None]
    side = min(img.shape[-2:])
    img = img[..., :side, :side]
    x = torch.nn.functional.interpolate(img, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    g = torch.Generator().manual_seed(seed)
    return (x[0] + 0.004 * torch.randn(x[0].shape, generator=g)).clamp(0, 1)


def write_png16(x: torch.Tensor, path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.rint(x[0].numpy().T * 65535).astype(np.uint16)).save(path)


def synthetic_radiograph(size: int, path: Path, seed: int = 0) -> None:
    """A ``size`` x ``size`` 16-bit CR DICOM: the sample chest CR (RG1) resampled, with quantum-like noise."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = pydicom.dcmread(CR)
    raw = torch.from_numpy(ds.pixel_array.astype(np.float32))[None, None]
    side = min(raw.shape[-2:])
    raw = raw[..., :side, :side]
    up = torch.nn.functional.interpolate(raw, size=(size, size), mode="bicubic", align_corners=False)[0, 0]
    up = up * (65535.0 / 32767.0)  # 15 -> 16 stored bits
    g = torch.Generator().manual_seed(seed)
    noisy = up + torch.randn(up.shape, generator=g) * up.clamp(min=1).sqrt() * 2.0
    del up, raw
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = ds.ImagerPixelSpacing = ["0.1", "0.1"]
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = noisy.clamp(0, 65535).round().to(torch.int32).numpy().astype("<u2").tobytes()
    del noisy
    ds.save_as(path, enforce_file_format=True)


# --------------------------------------------------------------------------- networks


def bundle_network(name: str, scale: int) -> tuple[nn.Module, dict[str, Any], str]:
    """The bundle's network with its shipped weights, or random weights (speed is the same) when they are missing."""
    info = resolve_bundle(name)
    net, extras = parse_bundle(info, scale)
    weights = info.weights(scale)
    if weights.is_file():
        load_weights(net, weights, name=name)
        return net.eval(), extras, "shipped"
    return net.eval(), extras, "random (weights not shipped yet)"


def psnr(a: torch.Tensor, b: torch.Tensor, border: int) -> float:
    d = (a - b)[..., border:-border, border:-border]
    return float(10 * torch.log10(1.0 / d.pow(2).mean()))


def accuracy_images(tiny: bool) -> list[tuple[str, torch.Tensor]]:
    """Real normalised HR images (chest CR, chest PNG, CT slice), cropped for speed."""
    from medsr.io import load_image
    from medsr.transforms import ModalityNormalize

    crop = 96 if tiny else 384
    out = []
    for label, path in (("CR chest", CR), ("CXR png", CXR_PNG), ("CT slice", CT_SLICE)):
        if not path.is_file():
            continue
        x = ModalityNormalize()(load_image(path)).as_tensor()
        x = x[..., 0] if x.ndim == 4 else x
        cx, cy = x.shape[1] // 2, x.shape[2] // 2
        out.append((label, x[:, cx - crop // 2 : cx + crop // 2, cy - crop // 2 : cy + crop // 2].contiguous()))
    return out


_PLAIN = r"""
import json, sys, time, torch
from medsr.inference import parse_bundle, resolve_bundle  # only to build the same network
name, state, x_path, y_path, repeat = sys.argv[1:6]
net, _ = parse_bundle(resolve_bundle(name), 2)
net.load_state_dict(torch.load(state, weights_only=True))
net.eval()
x = torch.load(x_path)
def plain():
    with torch.no_grad():
        return net(x[None])[0]
y = plain()  # warm-up
times = []
for _ in range(int(repeat)):
    t = time.perf_counter(); plain(); times.append(time.perf_counter() - t)
torch.save(y, y_path)
print(json.dumps({"s": min(times), "threads": torch.get_num_threads()}))
"""


def plain_loop(name: str, net: nn.Module, x: torch.Tensor, repeat: int, tmp: Path) -> tuple[float, torch.Tensor, int]:
    """The plain eager loop in a fresh process (nothing of medsr's tuning applies): same network and weights,
    NCHW, ``torch.no_grad``, the whole image, PyTorch's default threads. (seconds, output, threads)."""
    paths = [tmp / f"{name}_{k}.pt" for k in ("state", "x", "y")]
    torch.save(net.state_dict(), paths[0])
    torch.save(x, paths[1])
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MEDSR_NUM_THREADS"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-c", _PLAIN, name, *map(str, paths), str(repeat)], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"plain loop failed: {proc.stderr[-1000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["s"], torch.load(paths[2]), out["threads"]


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Best time of each function, run round-robin (one warm-up each first) so that load changes hit all alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}


def peer_runtimes(net: nn.Module, tmp: Path, threads: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """OpenVINO and ONNX Runtime on the same network exported to ONNX (f32, whole image, ``threads`` threads),
    each configured as its documentation advises for latency; missing runtimes are left out."""
    from monai.utils import optional_import

    from medsr.ov_engine import _export_onnx

    peers: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if not optional_import("onnx")[1]:
        return peers
    path = tmp / "net.onnx"
    _export_onnx(net, 1, path)
    ov, has_ov = optional_import("openvino")
    if has_ov:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
        req = compiled.create_infer_request()
        peers[f"openvino {ov.__version__.split('-')[0]}"] = lambda a: req.infer({0: a})[0]
    ort, has_ort = optional_import("onnxruntime")
    if has_ort:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        peers[f"onnxruntime {ort.__version__}"] = lambda a: sess.run(None, {"lr": a})[0]
    return peers


def bench_bundle(name: str, sizes: Sequence[int], repeat: int, tiny: bool, plain_size: int,
                 global_max: int = 1 << 30) -> dict[str, Any]:
    """medsr (default engine, and its PyTorch path) against OpenVINO, ONNX Runtime and the plain eager loop,
    same network and weights, same image, interleaved in one run, at each size."""
    net, extras, weights = bundle_network(name, 2)
    halo = extras.get("halo")
    threads = torch.get_num_threads()
    from medsr.ov_engine import available

    up = NetworkUpscaler(net, 2, name=name, halo=halo)  # the default engine
    up_ov = NetworkUpscaler(net, 2, name=name, halo=halo, engine="openvino") if available() else None
    out: dict[str, Any] = {"weights": weights, "engine": up.engine, "scale": 2, "threads": threads, "sizes": {}}
    if not up.exact and any(s > global_max for s in sizes):
        # the peers run global attention on the whole image: at 1024^2 they were killed for memory beside other jobs
        out["not_measured"] = [f"{s}x{s}" for s in sizes if s > global_max]
        sizes = [s for s in sizes if s <= global_max]
        plain_size = sizes[-1]
    with tempfile.TemporaryDirectory(prefix="medsr_peers_") as tmp:
        peers = peer_runtimes(net, Path(tmp), threads)
        for size in sizes:
            x = realistic_image(size, seed=1)
            arr = x[None].numpy()
            fns: dict[str, Callable[[], Any]] = {"medsr": lambda: up(x)}
            if up_ov is not None:
                fns["medsr --engine openvino"] = lambda: up_ov(x)
            for k, run in peers.items():
                fns[k] = lambda run=run: run(arr)
            best = interleaved(fns, repeat)
            y = up(x)
            out_mpix = y.numel() / 1e6
            probe = x[:, :64, :64]
            with torch.no_grad():
                useful = sum(f for _, _, f in conv_calls(net, lambda: net(probe[None]))) * (size * size) // (64 * 64)
            res: dict[str, Any] = {
                "input": f"{size}x{size}",
                "tiles": "{}x{} + halo {}, batch {}, {}".format(*up.plan(x.shape[1:])[0], up.halo,
                                                               up.plan(x.shape[1:])[1], "blend" if up.blend else "crop"),
                "conv_gflop_useful": round(useful / 1e9, 2),
                "s": {k: round(v, 4) for k, v in best.items()},
                "gflops": {k: round(useful / v / 1e9, 1) for k, v in best.items()},
                "mpix_per_s": {k: round(out_mpix / v, 3) for k, v in best.items()},
                "medsr_speedup": {k: round(v / best["medsr"], 3) for k, v in best.items() if k != "medsr"},
            }
            diffs = {k: float(np.abs(np.asarray(run(arr))[0] - y.numpy()).max()) for k, run in peers.items()}
            if up_ov is not None:
                diffs["medsr --engine openvino"] = float((up_ov(x) - y).abs().max())
            if size == plain_size:
                t_plain, y_plain, plain_threads = plain_loop(name, net, x, repeat, Path(tmp))
                res["s"]["plain eager"] = round(t_plain, 4)
                res["gflops"]["plain eager"] = round(useful / t_plain / 1e9, 1)
                res["medsr_speedup"]["plain eager"] = round(t_plain / best["medsr"], 3)
                res["plain_note"] = f"fresh process, PyTorch default threads ({plain_threads}), not interleaved"
                diffs["plain eager"] = float((y_plain - y).abs().max())
            res["max_abs_diff_vs_medsr"] = diffs
            if size == sizes[-1]:  # how close the PyTorch path's convolutions run to this machine's peak
                calls = conv_calls(up.net, lambda: up(x))
                peak_t, _ = same_shape_peak(calls, max(2, repeat))
                res["fraction_of_same_shape_peak"] = round(peak_t / best["medsr"], 3)
            out["sizes"][str(size)] = res
            log(f"{name} {size}: {json.dumps(res)}")
    return out


def bench_blend(tiny: bool) -> dict[str, Any] | None:
    """The attention bundle (global operations) tiled with crop only vs crop + blend, against untiled."""
    net, extras, weights = bundle_network("attention_residual", 2)
    size, tile = (96, 32) if tiny else (512, 160)
    x = realistic_image(size, seed=2)
    with torch.no_grad():
        ref = NetworkUpscaler(net, 2, halo=extras.get("halo"), tile=size)(x)
    out = {"weights": weights, "input": f"{size}x{size}", "tile": tile}
    for blend in (False, True):
        y = NetworkUpscaler(net, 2, halo=extras.get("halo"), tile=tile, blend=blend)(x)
        d = (y - ref).abs()
        out["blend" if blend else "crop"] = {"max_abs_diff": round(float(d.max()), 6),
                                            "psnr_vs_untiled_db": round(psnr(y, ref, 2), 2)}
    return out


# --------------------------------------------------------------------------- end to end


def medsr_env(threads: int | None = None, cache: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["MEDSR_NUM_THREADS"] = str(threads)
    if cache is not None:
        env["MEDSR_CACHE_DIR"] = str(cache)
    return env


def seam_check(src: Path, out: Path, net: nn.Module, halo: int, crop: tuple[int, int, int]) -> dict[str, Any]:
    """Untiled inference on a crop of the input vs the same region of medsr's (tiled) output, normalised."""
    from medsr.io import load_image
    from medsr.transforms import ModalityNormalize

    x0, y0, c = crop
    img = ModalityNormalize()(load_image(src)).as_tensor()
    lr = img[:, x0 : x0 + c, y0 : y0 + c].clone()
    del img
    ref = NetworkUpscaler(net, 2, halo=halo, tile=c, engine="torch")(lr)
    sr = ModalityNormalize()(load_image(out)).as_tensor()
    m = 32  # more than the receptive field: the crop's own border is not compared
    got = sr[:, 2 * (x0 + m) : 2 * (x0 + c - m), 2 * (y0 + m) : 2 * (y0 + c - m)]
    want = ref[:, 2 * m : 2 * (c - m), 2 * m : 2 * (c - m)].clamp(0, 1)  # the stored output is clipped to the bit depth
    return {"crop_lr": f"[{x0}:{x0 + c}, {y0}:{y0 + c}] minus a {m}-pixel border",
            "max_abs_diff_vs_untiled": float((got - want).abs().max())}


def imports_monai(args: Sequence[str], env: dict[str, str]) -> bool:
    """Whether a command imports MONAI (``python -X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, env=env)
    return any(line.rsplit("|", 1)[-1].strip() == "monai" for line in proc.stderr.splitlines())


def bench_startup(tmp: Path, tiny: bool, edsr_model: str, trust: list[str], forward_512: float | None) -> dict[str, Any]:
    """Whole commands that do little work against ``python -c "import torch, pydicom"``, interleaved, best of n."""
    n = 1 if tiny else 3
    env = medsr_env(cache=tmp / "cache")
    ct = str(CT_SLICE)
    cmds: dict[str, list[str]] = {
        "reference: python -c 'import torch, pydicom'": [sys.executable, "-c", "import torch, pydicom"],
        "medsr --help": [str(MEDSR_BIN), "--help"],
        "upscale 512x512 CT slice -m bicubic": [str(MEDSR_BIN), "upscale", ct, "-o", str(tmp / "ct_bic.dcm"), "-m", "bicubic",
                                                 "--overwrite", "-q"],
        "upscale 512x512 CT slice -m lanczos": [str(MEDSR_BIN), "upscale", ct, "-o", str(tmp / "ct_lan.dcm"), "-m", "lanczos",
                                                 "--overwrite", "-q"],
        "degrade 512x512 CT slice": [str(MEDSR_BIN), "degrade", ct, "-o", str(tmp / "ct_lr.dcm"), "--overwrite", "-q"],
        "upscale 512x512 CT slice -m edsr_m": [str(MEDSR_BIN), "upscale", ct, "-o", str(tmp / "ct_edsr.dcm"), "-m",
                                                edsr_model, *trust, "--overwrite", "-q"],
    }
    if tiny:  # the script works: the reference and one command
        cmds = {k: v for k, v in cmds.items() if k.startswith("reference") or k.endswith("bicubic")}
    edsr_cmd = [str(MEDSR_BIN), "upscale", ct, "-o", str(tmp / "ct_edsr0.dcm"), "-m", edsr_model, *trust, "-q"]
    first_edsr = run_cli(edsr_cmd, env)  # exports the network into the empty cache
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in cmds}
    for _ in range(n):
        for k, c in cmds.items():
            runs[k].append(run_cli(c, env))
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
    ref = best["reference: python -c 'import torch, pydicom'"]["wall_s"]
    out: dict[str, Any] = {"reference_s": ref, "runs": {}, "edsr_first_run_s": first_edsr["wall_s"],
                           "forward_512_s": forward_512}
    for k, r in best.items():
        args = cmds[k]
        mod = ["-c", args[2]] if args[0] == sys.executable else ["-m", "medsr", *args[1:]]
        out["runs"][k] = {**r, "ratio_to_reference": round(r["wall_s"] / ref, 2), "imports_monai": imports_monai(mod, env)}
    return out


def write_formats(size: int, tmp: Path) -> dict[str, Path]:
    """The same synthetic radiograph as 16-bit PNG and TIFF, 8-bit JPEG, 16-bit NIfTI and 16-bit CR DICOM."""
    import nibabel as nib
    import tifffile
    from PIL import Image

    x = realistic_image(size, seed=3)
    rows = np.rint(x[0].numpy().T * 65535).astype(np.uint16)
    del x
    paths = {"png16": tmp / f"r{size}.png", "tiff16": tmp / f"r{size}.tif", "jpeg8": tmp / f"r{size}.jpg",
             "nifti16": tmp / f"r{size}.nii.gz", "dicom16": tmp / f"r{size}.dcm"}
    Image.fromarray(rows).save(paths["png16"])
    tifffile.imwrite(paths["tiff16"], rows, photometric="minisblack")
    Image.fromarray((rows >> 8).astype(np.uint8)).save(paths["jpeg8"], quality=95)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(rows.T)[:, :, None], np.diag([0.1, 0.1, 1.0, 1.0]), dtype=np.uint16),
             paths["nifti16"])
    del rows
    synthetic_radiograph(size, paths["dicom16"])
    return paths


def bench_formats(tmp: Path, tiny: bool, edsr_model: str, trust: list[str]) -> dict[str, Any]:
    """EDSR-M x2 on a large radiograph in every format, whole command: wall time and peak RSS; seam check on DICOM."""
    size = 256 if tiny else 4096
    env = medsr_env(cache=tmp / "cache")
    res: dict[str, Any] = {"size": size}
    for fmt, src in write_formats(size, tmp).items():
        if tiny and fmt not in ("png16", "dicom16"):  # the script works: one raster, and DICOM for the seam check
            continue
        out = src.with_name(src.name.replace(f"r{size}", f"r{size}_sr2x"))
        args = [str(MEDSR_BIN), "upscale", str(src), "-o", str(out), "-m", edsr_model, *trust, "--no-progress", "-q"]
        if tiny:
            args += ["--tile", "64"]  # several tiles even on a tiny image
        r = run_cli(args, env)
        log(f"{fmt} {size}: {r}")
        if fmt == "dicom16" and r["rc"] == 0:
            net, extras, _ = bundle_network(edsr_model if edsr_model in BUNDLES else "edsr_m", 2)
            if edsr_model not in BUNDLES:  # a random-weights copy: the same weights as the CLI used
                load_weights(net, Path(edsr_model) / "models" / "model.pt")
            crop = (40, 40, 160) if tiny else (400, 300, 800)  # straddles tile boundaries
            r.update(seam_check(src, out, net, int(extras.get("halo", 24)), crop))
        res[fmt] = r
        for p in (out, src):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
    return res


_SCALE = r"""
import json, sys, time
from medsr.inference import load_upscaler, upscale_image
from medsr.io import load_image, save_image
model, small, large, out_dir, repeat = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
up = load_upscaler(model, 2, trust_bundle=True)
def once(src, name):
    t = time.perf_counter()
    save_image(upscale_image(load_image(src), up), f"{out_dir}/{name}", overwrite=True)
    return time.perf_counter() - t
once(small, "warm.png")
small_s = min(once(small, "small.png") for _ in range(repeat))
large_s = once(large, "large.png")
print(json.dumps({"small_s": small_s, "large_s": large_s}))
"""


def bench_scale(tmp: Path, tiny: bool, edsr_model: str) -> dict[str, Any]:
    """One process: read + upscale + write of a 1024^2 and a 4096^2 16-bit PNG (EDSR-M x2), start-up excluded."""
    small_n, large_n = (64, 256) if tiny else (1024, 4096)
    small, large = tmp / "scale_small.png", tmp / "scale_large.png"
    write_png16(realistic_image(small_n, seed=4), small)
    write_png16(realistic_image(large_n, seed=4), large)
    proc = subprocess.run([sys.executable, "-c", _SCALE, edsr_model, str(small), str(large), str(tmp), "1" if tiny else "2"],
                          capture_output=True, text=True, env=medsr_env(cache=tmp / "cache"), cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"scale run failed: {proc.stderr[-1000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    k = (large_n // small_n) ** 2
    return {"small": f"{small_n}x{small_n}", "large": f"{large_n}x{large_n}", "small_s": round(r["small_s"], 3),
            "large_s": round(r["large_s"], 3), "ratio_to_k_small": round(r["large_s"] / (k * r["small_s"]), 3), "k": k}


def bench_distributed(tmp: Path, tiny: bool) -> dict[str, Any]:
    """``torchrun --nproc_per_node 2`` of ``medsr upscale`` over a folder: each output written exactly once."""
    import re

    from PIL import Image

    src, out = tmp / "dist_in", tmp / "dist_out"
    src.mkdir()
    rng = np.random.default_rng(0)
    n = 6 if tiny else 12
    for k in range(n):
        Image.fromarray((rng.random((64 + k, 48)) * 65535).astype(np.uint16)).save(src / f"img{k:02d}.png")
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0", "-m", "medsr",
            "upscale", str(src), "-o", str(out), "-m", "bicubic", "--no-progress", "-v"]
    env = medsr_env()
    env["OMP_NUM_THREADS"] = "1"
    t = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    wrote = re.findall(r"medsr: rank (\d+)/2: wrote (\S+)", proc.stdout + proc.stderr)
    paths = [p for _, p in wrote]
    files = sorted(str(p) for p in out.rglob("*_sr2x.png"))
    return {
        "command": "torchrun --nproc_per_node 2 -m medsr upscale IN -o OUT -m bicubic -v",
        "inputs": n, "rc": proc.returncode, "wall_s": round(time.perf_counter() - t, 2),
        "written_per_rank": {r: sum(1 for rr, _ in wrote if rr == r) for r in sorted({r for r, _ in wrote})},
        "each_exactly_once": len(paths) == len(set(paths)) == n and sorted(paths) == files,
    }


# --------------------------------------------------------------------------- report


def targets(r: dict[str, Any]) -> list[list[Any]]:
    """The issue's targets, measured value and verdict."""
    rows: list[list[Any]] = []

    def add(what: str, value: Any, ok: bool | None) -> None:
        rows.append([what, value, "n/a" if ok is None else ("**met**" if ok else "**missed**")])

    for name, b in r["bundles"].items():
        for size, s in b["sizes"].items():
            ov = next((k for k in s["medsr_speedup"] if k.startswith("openvino")), None)
            if ov:
                v = s["medsr_speedup"][ov]
                alt = s["s"].get("medsr --engine openvino")
                alt_txt = f"; `--engine openvino` {s['s'][ov] / alt:.2f}x" if alt else ""
                add(f"{name} {size}x{size}: medsr >= 1.0x OpenVINO", f"{v:.2f}x{alt_txt}", v >= 1.0)
    st = r.get("startup")
    if st:
        ref = st["reference_s"]
        bic = st["runs"]["upscale 512x512 CT slice -m bicubic"]
        add("`upscale -m bicubic` (512^2 CT slice) <= 1.5x `import torch, pydicom`",
            f"{bic['ratio_to_reference']}x ({bic['wall_s']} s vs {ref} s)", bic["ratio_to_reference"] <= 1.5)
        edsr = st["runs"].get("upscale 512x512 CT slice -m edsr_m")
        if edsr and st.get("forward_512_s"):
            limit = ref + 1.5 * st["forward_512_s"]
            add("`upscale -m edsr_m` (512^2 CT slice) <= reference + 1.5x forward",
                f"{edsr['wall_s']} s vs {ref} + 1.5 x {st['forward_512_s']} = {limit:.2f} s", edsr["wall_s"] <= limit)
        for k in ("medsr --help", "upscale 512x512 CT slice -m bicubic", "upscale 512x512 CT slice -m lanczos",
                  "degrade 512x512 CT slice"):
            if k not in st["runs"]:
                continue
            add(f"`{k}` imports no MONAI", "imports MONAI" if st["runs"][k]["imports_monai"] else "no MONAI",
                not st["runs"][k]["imports_monai"])
    f = r.get("formats")
    if f:
        for fmt in ("png16", "tiff16", "jpeg8", "nifti16", "dicom16"):
            if fmt in f:
                x = f[fmt]
                ok = x["rc"] == 0 and x["peak_rss_mb"] <= 2048
                add(f"{f['size']}^2 {fmt} x2 EDSR-M: peak RSS <= 2 GB", f"{x['peak_rss_mb']} MB, {x['wall_s']} s, rc {x['rc']}", ok)
        d = f.get("dicom16", {})
        if "max_abs_diff_vs_untiled" in d:
            add("... tiled output identical to untiled inference on a crop (<= 1e-4)", f"{d['max_abs_diff_vs_untiled']:.1e}",
                d["max_abs_diff_vs_untiled"] <= 1e-4)
    sc = r.get("scale")
    if sc:
        add(f"{sc['large']} time <= 1.2 x {sc['k']} x {sc['small']} time (read + upscale + write)",
            f"{sc['ratio_to_k_small']}x ({sc['large_s']} s vs {sc['k']} x {sc['small_s']} s)", sc["ratio_to_k_small"] <= 1.2)
    d = r.get("distributed")
    if d:
        add(f"torchrun, 2 processes, {d['inputs']} files: each output exactly once",
            f"per rank {d['written_per_rank']}, rc {d['rc']}", d["each_exactly_once"] and d["rc"] == 0)
    return rows


def table(rows: list[list[Any]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        f"Measured {m['date']} on {m['cpu']} ({m['isa']}), {m['cpus_available']} cores available, torch {m['torch']} "
        f"({m['torch_threads']} threads), Python {m['python']}; load average {m['load_avg_1min']} at the start, "
        f"{r.get('load_avg_end', '?')} at the end"
        + ("; **other jobs were running: absolute times are contended, read the ratios (each measured in one run, "
           "interleaved)**." if r.get("contended") else "."),
        "",
        f"Command: `{r['command']}`",
        "",
        table(targets(r), ["target", "measured", ""]),
        "",
        f"Conv peak ({r['conv_peak']['shape']}, channels_last (best of aten and prepacked oneDNN), "
        f"{r['conv_peak']['threads']} threads): **{r['conv_peak']['gflops']} GFLOP/s** (NCHW: {r['conv_peak']['gflops_nchw']}).",
        "",
        "### Networks: medsr against the runtimes users would pick instead (same network, weights, image, threads)",
        "",
        "Speed-up = the peer's time / medsr's time (> 1: medsr faster). OpenVINO and ONNX Runtime run the network "
        "exported to ONNX, whole image, f32; the runs are interleaved, best of each. GFLOP/s count the useful conv "
        "FLOPs of the untiled image; *of peak* = medsr's GFLOP/s / the 64->64 conv peak above.",
        "",
    ]
    rows = []
    for name, b in r["bundles"].items():
        for size, s in b["sizes"].items():
            peers = ", ".join(f"{k} {v:.2f}x" for k, v in s["medsr_speedup"].items())
            rows.append([name, s["input"], b["engine"], s["s"]["medsr"], s["gflops"]["medsr"],
                         f"{100 * s['gflops']['medsr'] / r['conv_peak']['gflops']:.0f}%", peers,
                         f"{max(s['max_abs_diff_vs_medsr'].values()):.1e}"])
    out.append(table(rows, ["bundle", "input", "medsr engine", "medsr s", "medsr GFLOP/s", "of peak",
                            "medsr speed-up vs", "max diff"]))
    for name, b in r["bundles"].items():
        if b.get("not_measured"):
            out += ["", f"{name} at {', '.join(b['not_measured'])}: not measured. It has global operations, so the "
                    "peers run it on the whole image, and in an earlier run of this benchmark the process was killed "
                    "for memory there (the machine was shared with other jobs); see `--global-max`."]
    st = r.get("startup")
    if st:
        out += ["", "### Start-up: whole commands vs `python -c \"import torch, pydicom\"` (same run, best of 3)", ""]
        rows = [[f"`{k}`", v["wall_s"], v["ratio_to_reference"], v["peak_rss_mb"], "yes" if v["imports_monai"] else "no"]
                for k, v in st["runs"].items()]
        out.append(table(rows, ["command", "wall s", "x reference", "peak RSS MB", "imports MONAI"]))
        out += ["", f"EDSR-M's forward pass on a 512x512 image (in process, above): {st['forward_512_s']} s; the first "
                f"EDSR-M command of the run took {st['edsr_first_run_s']} s."]
    f = r.get("formats")
    if f:
        out += ["", f"### Memory: {f['size']}x{f['size']} x2 with EDSR-M, whole command, every format", ""]
        rows = [[k, v["wall_s"], v["peak_rss_mb"], v["rc"]] for k, v in f.items() if isinstance(v, dict)]
        out.append(table(rows, ["input", "wall s", "peak RSS MB", "exit code"]))
        d = f.get("dicom16", {})
        if "max_abs_diff_vs_untiled" in d:
            out += ["", f"Seam check (DICOM output): untiled inference on LR crop {d['crop_lr']} vs the same region of the "
                    f"tiled CLI output, normalised: max abs diff **{d['max_abs_diff_vs_untiled']:.1e}**."]
    if r.get("blend"):
        b = r["blend"]
        out += ["", f"### Global network tiled (attention_residual, {b['weights'].split(' ')[0]} weights, "
                f"{b['input']}, tile {b['tile']})", "",
                table([["halo crop only", b["crop"]["max_abs_diff"], b["crop"]["psnr_vs_untiled_db"]],
                       ["halo crop + linear blend", b["blend"]["max_abs_diff"], b["blend"]["psnr_vs_untiled_db"]]],
                      ["tiling", "max abs diff vs untiled", "PSNR vs untiled (dB)"])]
    return "\n".join(out)


def write_doc(doc: Path, text: str, begin: str = "<!-- bench:begin -->", end: str = "<!-- bench:end -->") -> None:
    body = doc.read_text() if doc.is_file() else f"# Performance\n\n{begin}\n{end}\n"
    if begin not in body:
        body += f"\n{begin}\n{end}\n"
    head, rest = body.split(begin, 1)
    tail = rest.split(end, 1)[1] if end in rest else ""
    doc.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny inputs, one repeat: checks that the script works")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results.json", help="where to write the JSON")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md", help="markdown file to update")
    ap.add_argument("--no-doc", action="store_true", help="do not update the markdown file")
    ap.add_argument("--bundles", default=",".join(BUNDLES), help="comma-separated bundles")
    ap.add_argument("--sizes", default="512,1024", help="comma-separated image sizes for the network comparison")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each network per size (interleaved)")
    ap.add_argument("--global-max", type=int, default=512,
                    help="largest size for networks with global operations (the peers run them whole)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: startup, formats, scale, distributed, blend")
    args = ap.parse_args(argv)
    tiny = args.tiny
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    threads = configure_threads()
    repeat = 1 if tiny else args.repeat
    sizes = [64] if tiny else [int(s) for s in args.sizes.split(",")]
    cmd = "python benchmarks/bench_upscale.py" + (" --tiny" if tiny else "") + (f" --skip {args.skip}" if skip else "")
    results: dict[str, Any] = {"command": cmd, "machine": machine()}
    log(f"machine: {results['machine']}")
    results["conv_peak"] = conv_peak(32 if tiny else 256, repeat)
    log(f"conv peak: {results['conv_peak']}")
    with tempfile.TemporaryDirectory(prefix="medsr_bench_") as tmpdir:
        tmp = Path(tmpdir)
        os.environ["MEDSR_CACHE_DIR"] = str(tmp / "cache")  # exports of this run only
        results["bundles"] = {}
        names = [n.strip() for n in args.bundles.split(",") if n.strip()]
        if tiny:
            names = names[:1]
        for name in names:
            results["bundles"][name] = bench_bundle(name, sizes, repeat, tiny, plain_size=sizes[-1],
                                                    global_max=args.global_max)
        if ("attention_residual" in names or tiny) and "blend" not in skip:
            results["blend"] = bench_blend(tiny)
            log(f"blend: {results['blend']}")
        edsr_model, trust = "edsr_m", []
        if not resolve_bundle("edsr_m").weights(2).is_file():  # weights still training: a random copy
            copy_root = tmp / "edsr_m_random"
            shutil.copytree(ROOT / "bundles" / "edsr_m" / "configs", copy_root / "configs")
            (copy_root / "models").mkdir()
            net, _, _ = bundle_network("edsr_m", 2)
            torch.save(net.state_dict(), copy_root / "models" / "model.pt")
            edsr_model, trust = str(copy_root), ["--trust-bundle"]
        e = results["bundles"].get("edsr_m", {}).get("sizes", {})
        forward_512 = e.get("512", {}).get("s", {}).get("medsr")
        if "startup" not in skip:
            results["startup"] = bench_startup(tmp, tiny, edsr_model, trust, forward_512)
            log(f"startup: {results['startup']}")
        if "scale" not in skip:
            results["scale"] = bench_scale(tmp, tiny, edsr_model)
            log(f"scale: {results['scale']}")
        if "formats" not in skip:
            results["formats"] = bench_formats(tmp, tiny, edsr_model, trust)
        if not tiny and "distributed" not in skip:  # tests/integration/test_distributed_upscale.py covers it in the test suite
            results["distributed"] = bench_distributed(tmp, tiny)
            log(f"distributed: {results['distributed']}")
    results["load_avg_end"] = round(os.getloadavg()[0], 2)
    results["contended"] = results["machine"]["load_avg_1min"] > 1.5 or results["load_avg_end"] > 1.5 or training_running()
    results["threads"] = threads
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_doc and not tiny:
        write_doc(args.doc, markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
