"""Reproduce the published SRCNN / EDSR Set5-Set14 table with medsr's own networks, losses and trainer.

Protocol (SRCNN, Dong et al. TPAMI 2016; EDSR, Lim et al. CVPRW 2017; the MATLAB
evaluation code they share): every image is converted to the luminance Y of ITU-R
BT.601 YCbCr (MATLAB ``rgb2ycbcr`` on the 8-bit image; a greyscale file is its own Y),
cropped to a multiple of the scale, downsampled with MATLAB ``imresize`` bicubic
(antialiased, :class:`medsr.transforms.BicubicDegradation`), upscaled by the model, rounded
to 8 bits, and scored on Y with ``scale`` pixels of border cropped (:mod:`medsr.metrics`).

Training (CPU, a fixed number of iterations per model, see docs/reproduction.md):

* ``srcnn``: :class:`medsr.networks.srcnn.SRCNN` 9-1-5 (64/32 features), the 91-image set
  (T91), 32 x 32 HR sub-images at stride 14 (the paper: 33 x 33, stride 14), MSE
  (:class:`medsr.losses.PixelLoss` ``"l2"``), bicubic-upsampled input (inside the network);
* ``edsr_m``: :class:`medsr.networks.edsr.EDSR` (EDSR-M, 32 features, 8 blocks), T91 + BSD200,
  32 x 32 (x2) / 24 x 24 (x4) LR patches with random flips / 90-degree rotations, L1 loss (the EDSR paper).

Both train with :class:`medsr.training.SRTrainer` (MONAI ``SupervisedTrainer``), Adam and a
cosine learning-rate decay; the curve (training loss and Y PSNR on central 128 x 128 crops of
5 held-out BSD100 images, never Set5/Set14) is written to ``<model>_x<scale>_training.json`` beside the weights.
SRCNN x4 starts from the SRCNN x2 weights; EDSR-M starts from the shipped ``edsr_m`` bundle
(medsr's model trained on medical images only) and is fine-tuned on natural images.

    python scripts/reproduce_paper_table.py --train --t91 T91/ --bsd200 BSD200/ --bsd100 BSD100/
    python scripts/reproduce_paper_table.py --eval-only --set5 Set5/ --set14 Set14/

``--eval-only`` prints one JSON line per model x set x scale (bicubic included):
``{"model": "srcnn", "set": "Set5", "scale": 2, "psnr_y": ..., "ssim_y": ..., "n": 5}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from medsr.io import atomic_path
from medsr.losses import PixelLoss
from medsr.metrics import psnr, ssim
from medsr.networks.edsr import EDSR
from medsr.networks.srcnn import SRCNN
from medsr.transforms.colour import quantize8, rgb_to_y
from medsr.transforms.resample import downsample

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "benchmarks" / "paper"
EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
SCALES = (2, 4)
VAL_IMAGES, VAL_CROP = 5, 128

PUBLISHED = {  # Y-channel PSNR (dB), border = scale; SRCNN TPAMI 2016 Table 5 / EDSR CVPRW 2017 Table 3
    ("bicubic", "Set5", 2): 33.66, ("bicubic", "Set5", 4): 28.42,
    ("bicubic", "Set14", 2): 30.24, ("bicubic", "Set14", 4): 26.00,
    ("srcnn", "Set5", 2): 36.66, ("srcnn", "Set5", 4): 30.48,
    ("srcnn", "Set14", 2): 32.42, ("srcnn", "Set14", 4): 27.49,
    ("edsr_baseline", "Set5", 2): 37.99, ("edsr_baseline", "Set5", 4): 32.09,
    ("edsr_baseline", "Set14", 2): 33.57, ("edsr_baseline", "Set14", 4): 28.52,
}

# model name -> (constructor, training recipe)
RECIPES: dict[str, dict] = {
    "srcnn": {  # from scratch at x2; x4 starts from the x2 weights (same shapes: SRCNN works at HR)
        "net": lambda s: SRCNN(spatial_dims=2, scale_factor=s),
        "loss": "l2", "hr_patch": 32, "stride": 14, "augment": False, "batch": 64,
        "lr": 1e-3, "iterations": {2: 1000, 4: 400}, "train": ("t91",), "init": {4: "srcnn_x2"},
    },
    "edsr_m": {  # fine-tuned from the shipped edsr_m bundle (trained on medical images only)
        "net": lambda s: EDSR(spatial_dims=2, scale_factor=s),
        "loss": "l1", "lr_patch": {2: 32, 4: 24}, "augment": True, "batch": 16,
        "lr": 5e-4, "iterations": {2: 400, 4: 400}, "train": ("t91", "bsd200"),
        "init": {2: "bundle:model.pt", 4: "bundle:model_x4.pt"},
    },
}


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise SystemExit(f"error: {folder} is not a folder of images; check the path.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTS)
    if not files:
        raise SystemExit(f"error: {folder} holds no .png/.bmp/.jpg/.tif image; check the path.")
    return files


def load_y(path: Path) -> np.ndarray:
    """``(1, rows, cols)`` 8-bit Y in [0, 1]: MATLAB ``rgb2ycbcr`` of an RGB file, the grey level of a grey one."""
    with Image.open(path) as im:
        a = np.asarray(im.convert("L") if im.mode in ("L", "P", "1", "I;16") else im.convert("RGB"))
    a = a.astype(np.float64) / 255.0
    return a[None] if a.ndim == 2 else np.asarray(rgb_to_y(np.moveaxis(a, -1, 0), round8=True))


def center_crop_file(path: Path, size: int = VAL_CROP) -> np.ndarray:
    """The central ``size`` x ``size`` Y crop of an image (the cheap validation set of the curves)."""
    y = load_y(path)
    i, j = (y.shape[1] - size) // 2, (y.shape[2] - size) // 2
    return y[:, i : i + size, j : j + size]


def lr_hr(y: np.ndarray, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``y`` to a multiple of ``scale`` and downsample it (MATLAB ``imresize`` bicubic): ``(lr, hr)``."""
    h, w = (y.shape[1] // scale) * scale, (y.shape[2] // scale) * scale
    hr = torch.as_tensor(y[:, :h, :w], dtype=torch.float32)
    return downsample(hr, scale, axes=(0, 1)), hr


def patches(files: Sequence[Path], scale: int, lr_patch: int, lr_stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned ``(N, 1, p, p)`` LR and ``(N, 1, p*s, p*s)`` HR sub-images on a regular grid of every image."""
    lrs, hrs = [], []
    for f in files:
        lr, hr = lr_hr(load_y(f), scale)
        for i in range(0, lr.shape[1] - lr_patch + 1, lr_stride):
            for j in range(0, lr.shape[2] - lr_patch + 1, lr_stride):
                lrs.append(lr[:, i : i + lr_patch, j : j + lr_patch])
                hrs.append(hr[:, i * scale : (i + lr_patch) * scale, j * scale : (j + lr_patch) * scale])
    return torch.stack(lrs), torch.stack(hrs)


@torch.no_grad()
def upscale_y(net: torch.nn.Module | None, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Upscale a ``(1, h, w)`` LR Y image: bicubic (MATLAB ``imresize``) when ``net`` is None."""
    if net is None:
        from medsr.transforms.resample import upsample

        return upsample(lr, scale, axes=(0, 1))
    return net(lr[None])[0]


def score(net: torch.nn.Module | None, files: Sequence[Path | np.ndarray], scale: int) -> tuple[float, float]:
    """Mean Y PSNR / SSIM over ``files`` (paths or Y arrays; 8-bit output, border = scale)."""
    ps, ss = [], []
    for f in files:
        lr, hr = lr_hr(load_y(f) if isinstance(f, Path) else f, scale)
        sr = quantize8(upscale_y(net, lr, scale).double())
        ps.append(psnr(sr, hr.double(), border=scale))
        ss.append(ssim(sr, hr.double(), border=scale))
    return float(np.mean(ps)), float(np.mean(ss))


def weights_path(model: str, scale: int, folder: Path = WEIGHTS) -> Path:
    return folder / f"{model}_x{scale}.pt"


SHIPPED = "edsr_m_shipped"
"""``--eval-only`` name of the shipped ``edsr_m`` bundle weights (medical images only, no fine-tuning)."""


def load_model(model: str, scale: int, folder: Path = WEIGHTS) -> torch.nn.Module:
    if model == SHIPPED:
        net = RECIPES["edsr_m"]["net"](scale)
        path = ROOT / "bundles" / "edsr_m" / "models" / ("model.pt" if scale == 2 else f"model_x{scale}.pt")
    else:
        net = RECIPES[model]["net"](scale)
        path = weights_path(model, scale, folder)
    if not path.is_file():
        raise SystemExit(f"error: no weights {path}; train them first with --train.")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


# --------------------------------------------------------------------------- training


def train_one(
    model: str, scale: int, sets: dict[str, list[Path]], val: list[Path], out: Path, iterations: int,
    seed: int, log: Callable[[str], None], resume: bool = False,
) -> dict:
    """Train one model with :class:`medsr.training.SRTrainer`; write its weights and curve into ``out``."""
    from ignite.engine import Events
    from monai.data import DataLoader, Dataset
    from monai.handlers import from_engine
    from monai.transforms import Compose, RandFlipd, RandRotate90d

    from medsr.training import SRTrainer, seed_everything

    r = RECIPES[model]
    seed_everything(seed)
    files = [f for name in r["train"] for f in sets[name]]
    if "hr_patch" in r:  # SRCNN: sub-images of hr_patch at the paper's stride
        lr_p, lr_stride = r["hr_patch"] // scale, max(1, r["stride"] // scale)
    else:
        lr_p = lr_stride = r["lr_patch"][scale]
    lr, hr = patches(files, scale, lr_p, lr_stride)
    data = [{"lr": a, "hr": b} for a, b in zip(lr, hr, strict=True)]
    aug = Compose([RandFlipd(["lr", "hr"], prob=0.5, spatial_axis=0), RandRotate90d(["lr", "hr"], prob=0.5)])
    ds = Dataset(data, transform=aug if r["augment"] else None)
    loader = DataLoader(ds, batch_size=r["batch"], shuffle=True, drop_last=True, num_workers=0)
    net = r["net"](scale)
    init = weights_path(model, scale, out).stem if resume else r.get("init", {}).get(scale)
    if init:
        src = ROOT / "bundles" / model / "models" / init[7:] if init.startswith("bundle:") else out / f"{init}.pt"
        if not src.is_file():
            raise SystemExit(f"error: {model} x{scale} starts from {src}, which is missing; train that first.")
        net.load_state_dict(torch.load(src, map_location="cpu", weights_only=True))
        log(f"{model} x{scale}: initialised from {src.relative_to(ROOT) if src.is_relative_to(ROOT) else src}")
    base_lr = r["lr"][scale] if isinstance(r["lr"], dict) else r["lr"]
    opt = torch.optim.Adam(net.parameters(), lr=base_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iterations, eta_min=base_lr * 0.01)
    if not len(loader):
        raise SystemExit(f"error: {len(data)} training patches for {model} x{scale}, fewer than a batch of {r['batch']}.")
    epochs = math.ceil(iterations / len(loader))
    trainer = SRTrainer(
        "cpu", epochs, loader, net, opt, PixelLoss(r["loss"]), epoch_length=len(loader),
    )
    p0, _ = score(net.eval(), val, scale)
    curve: list[dict] = [{"iteration": 0, "patches": 0, "loss": None, "val_psnr_y": round(p0, 3), "seconds": 0.0}]
    log(f"{model} x{scale} {json.dumps(curve[0])}")
    t0 = time.perf_counter()
    every = max(1, iterations // 10)
    losses: list[float] = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def _step(engine) -> None:
        sched.step()
        losses.append(float(from_engine(["loss"], first=True)(engine.state.output)))
        it = engine.state.iteration
        if it % every == 0 or it == iterations:
            p, _ = score(net.eval(), val, scale)
            row = {"iteration": it, "patches": it * r["batch"], "loss": float(np.mean(losses)),
                   "val_psnr_y": round(p, 3), "seconds": round(time.perf_counter() - t0, 1)}
            losses.clear()
            curve.append(row)
            log(f"{model} x{scale} {json.dumps(row)}")
        if it >= iterations:
            engine.terminate()

    trainer.run()
    net.eval()
    target = weights_path(model, scale, out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save({k: v.contiguous() for k, v in net.state_dict().items()}, tmp)
    bic, _ = score(None, val, scale)
    return {
        "model": model, "scale": scale, "iterations": iterations, "batch": r["batch"], "lr": base_lr,
        "patches_seen": iterations * r["batch"], "train_pairs": len(data),
        "train_images": len(files), "train_sets": list(r["train"]), "seconds": round(time.perf_counter() - t0, 1),
        "params": sum(p.numel() for p in net.parameters()), "val_bicubic_psnr_y": round(bic, 3),
        "init": init, "curve": curve,
    }


def cpu_info() -> dict:
    model, flags = platform.processor(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx", "fma"))]
                break
    except OSError:
        pass
    return {"cpu": model, "flags": flags, "threads": torch.get_num_threads(), "torch": torch.__version__}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--train", action="store_true", help="train the models (see --models) and write their weights")
    mode.add_argument("--eval-only", action="store_true", help="evaluate the committed weights on --set5/--set14")
    ap.add_argument("--t91", type=Path, help="the 91-image training set (Yang et al. 2010)")
    ap.add_argument("--bsd200", type=Path, help="BSD200 (the 200 BSDS300 training images)")
    ap.add_argument("--bsd100", type=Path, help="BSD100; central crops of its first 5 images give the validation curve")
    ap.add_argument("--set5", type=Path, help="Set5 HR images (evaluation only)")
    ap.add_argument("--set14", type=Path, help="Set14 HR images (evaluation only)")
    ap.add_argument("--models", default="srcnn,edsr_m",
                    help=f"comma-separated: srcnn, edsr_m (and, with --eval-only, {SHIPPED})")
    ap.add_argument("--scales", default="2,4", help="comma-separated scales (2, 4)")
    ap.add_argument("--iterations", type=int, default=None, help="override every recipe's iteration count")
    ap.add_argument("--weights", type=Path, default=WEIGHTS, help=f"weights folder (default {WEIGHTS})")
    ap.add_argument("--continue", dest="resume", action="store_true",
                    help="train further from the weights already in --weights (the stages are kept in the JSON)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in RECIPES and not (args.eval_only and m == SHIPPED)]
    if bad:
        ap.error(f"--models must be among {sorted(RECIPES)}, got {bad}")
    try:
        scales = [int(s) for s in args.scales.split(",")]
    except ValueError:
        ap.error(f"--scales must be comma-separated integers, got {args.scales!r}")
    if any(s not in SCALES for s in scales):
        ap.error(f"--scales must be among {SCALES}, got {scales}")

    if args.eval_only:
        sets = {name: image_files(p) for name, p in (("Set5", args.set5), ("Set14", args.set14)) if p is not None}
        if not sets:
            ap.error("--eval-only needs --set5 and/or --set14")
        for name, files in sets.items():
            for s in scales:
                for model in ["bicubic", *models]:
                    net = None if model == "bicubic" else load_model(model, s, args.weights)
                    p, q = score(net, files, s)
                    row = {"model": model, "set": name, "scale": s, "psnr_y": round(p, 2), "ssim_y": round(q, 4),
                           "n": len(files)}
                    pub = PUBLISHED.get((model, name, s))
                    if pub is not None:
                        row["published_psnr_y"] = pub
                    print(json.dumps(row), flush=True)
        return 0

    needed = {n for m in models for n in RECIPES[m]["train"]}
    given = {"t91": args.t91, "bsd200": args.bsd200}
    missing = sorted(n for n in needed if given[n] is None)
    if missing or args.bsd100 is None:
        ap.error(f"--train needs --bsd100 and {', '.join('--' + n for n in sorted(needed))}")
    train_sets = {n: image_files(given[n]) for n in needed}
    val = [center_crop_file(f) for f in image_files(args.bsd100)[:VAL_IMAGES]]
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    for model in models:
        for s in scales:
            n_it = args.iterations or RECIPES[model]["iterations"][s]
            log(f"training {model} x{s} for {n_it} iterations")
            record = args.weights / f"{model}_x{s}_training.json"
            if args.resume and not record.is_file():
                raise SystemExit(f"error: --continue needs an earlier run of {model} x{s} in {args.weights}; train it first.")
            previous = json.loads(record.read_text()) if args.resume else None
            result = train_one(model, s, train_sets, val, args.weights, n_it, args.seed, log, resume=args.resume)
            result["machine"] = cpu_info()
            if previous is not None:  # earlier stages first, this one last
                result["previous_stages"] = [*previous.pop("previous_stages", []), previous]
            with atomic_path(record) as tmp:
                tmp.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
