"""Training of the slice-direction network (the ``slice_smore`` bundle) on real thin-slice volumes.

Pairs are made as in SMORE (Zhao et al., IEEE TMI 2021): a thin-slice volume is
degraded along one axis with a slice profile and decimation
(:func:`medsr.slices.degrade_slices`), interpolated back with cubic
(:func:`medsr.slices.interpolate_slices`), and the network learns the residual to
the original on 2D planes that contain that axis (the axis last). The axis is the
volume's own slice axis (``mode="slice"``: real thin slices as ground truth) or, with
probability ``p_inplane``, one of its in-plane axes (SMORE's self-supervision: the
in-plane resolution stands in for the missing through-plane resolution). The slice
profile is drawn per block: Gaussian with FWHM in ``fwhm_range`` thick-slice spacings,
or box. Every random number comes from one seeded ``numpy`` generator.

Run: ``python -m medsr.slice_training --factor 2 --out model.pt --seconds 840 VOLUME ...``
(VOLUME: a DICOM series folder or a NIfTI file; see ``bundles/slice_smore/docs/README.md``
for the exact command behind the shipped weights).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsr.errors import UsageError
from medsr.io import atomic_path, load_image
from medsr.networks.slice_refiner import SliceRefiner
from medsr.slices import check_factor, degrade_slices, interpolate_slices, slice_axis, thick_length, thin_length
from medsr.transforms import ModalityNormalize

__all__ = ["load_training_volumes", "sample_batch", "train_slice_refiner", "adapt_to_scan", "main"]


def load_training_volumes(paths: Sequence[str | Path]) -> list[tuple[torch.Tensor, int, str]]:
    """``(normalised (X, Y, Z) volume, slice axis, name)`` for each path (DICOM series folder or NIfTI)."""

    out = []
    for p in paths:
        img = load_image(p)
        if img.ndim != 4:
            raise UsageError(f"{p}: a training input must be a volume (1, X, Y, Z), got shape {tuple(img.shape)}.")
        axis = slice_axis(img)
        norm = ModalityNormalize()(img)
        out.append((norm.as_tensor()[0].float().contiguous(), axis, Path(p).name))
    return out


def sample_batch(
    volumes: Sequence[tuple[torch.Tensor, int, str]],
    factor: int,
    rng: np.random.Generator,
    *,
    blocks: int = 4,
    planes: int = 4,
    patch: int = 64,
    thick: int | None = None,
    p_inplane: float = 0.4,
    fwhm_range: tuple[float, float] = (0.8, 1.25),
    p_box: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cubic input, thin target)`` planes ``(blocks * planes, 1, patch, L)`` with the degraded axis last."""
    thick = thick or (20 if factor == 2 else 10)
    xs, ys = [], []
    tries = 0
    while len(xs) < blocks:
        tries += 1
        if tries > 1000 * blocks:
            raise UsageError(
                f"no training block found in 1000 draws: the volumes need >= {patch} pixels across the plane, "
                f">= {thin_length(3, factor)} slices along the degraded axis and some structure (std >= 0.01)."
            )
        vol, s_axis, _ = volumes[int(rng.integers(len(volumes)))]
        axes = [0, 1, 2]
        a = s_axis if rng.random() >= p_inplane else int(rng.choice([i for i in axes if i != s_axis]))
        b = int(rng.choice([i for i in axes if i != a]))
        c = 3 - a - b
        n_a, n_b, n_c = vol.shape[a], vol.shape[b], vol.shape[c]
        m = min(thick, thick_length(n_a, factor))
        length = thin_length(m, factor)
        if m < 3 or n_b < patch:
            continue
        a0 = int(rng.integers(0, n_a - length + 1))
        b0 = int(rng.integers(0, n_b - patch + 1))
        cs = torch.as_tensor(rng.choice(n_c, size=min(planes, n_c), replace=False))
        block = vol.permute(c, b, a)[cs, b0 : b0 + patch, a0 : a0 + length].contiguous()  # (P, B, A)
        if float(block.std()) < 0.01:  # background (MR air, outside the body): little to learn
            continue
        hr = block.unsqueeze(0)  # (1, P, B, A): degrade along spatial axis 2
        profile = "box" if rng.random() < p_box else "gaussian"
        fwhm = float(rng.uniform(*fwhm_range)) if profile == "gaussian" else float(rng.uniform(0.8, 1.0))
        lr = degrade_slices(hr, 2, factor, profile, fwhm)
        up = interpolate_slices(lr, 2, factor, "cubic")
        if rng.random() < 0.5:
            hr, up = hr.flip(2), up.flip(2)
        if rng.random() < 0.5:
            hr, up = hr.flip(3), up.flip(3)
        xs.append(up[0].unsqueeze(1))
        ys.append(hr[0].unsqueeze(1))
    length = min(x.shape[-1] for x in xs)
    return torch.cat([x[..., :length] for x in xs]), torch.cat([y[..., :length] for y in ys])


def train_slice_refiner(
    volumes: Sequence[tuple[torch.Tensor, int, str]],
    factor: int,
    out: str | Path | None,
    *,
    init: torch.nn.Module | None = None,
    seconds: float = 840.0,
    max_iters: int = 100000,
    seed: int = 0,
    num_features: int = 24,
    num_layers: int = 6,
    lr: float = 1e-3,
    p_inplane: float = 0.4,
    log: Any = print,
) -> dict[str, Any]:
    """Train a :class:`medsr.networks.SliceRefiner` for ``factor`` within ``seconds``; save its state dict to ``out``.

    L1 loss, Adam, learning rate cosine-annealed over the time budget. ``init``: a
    network to continue from (trained in place; e.g. shipped weights adapted to one
    scan), else a new one. The state dict is written atomically (temp + rename) when
    ``out`` is given and loads with ``torch.load(weights_only=True)``. Returns a
    summary (iterations, seconds, last losses of network and of cubic, the network).
    """

    factor = check_factor(factor, "factor")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = init if init is not None else SliceRefiner(num_features=num_features, num_layers=num_layers)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    start = time.monotonic()
    it, run_net, run_cub = 0, [], []
    while it < max_iters:
        frac = (time.monotonic() - start) / seconds
        if frac >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = 1e-5 + 0.5 * (lr - 1e-5) * (1 + math.cos(math.pi * frac))
        x, y = sample_batch(volumes, factor, rng, p_inplane=p_inplane)
        pred = net(x)
        loss = torch.nn.functional.l1_loss(pred, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        run_net.append(float(loss.detach()))
        run_cub.append(float(torch.nn.functional.l1_loss(x, y)))
        if it % 50 == 0:
            log(f"iter {it} t={time.monotonic() - start:.0f}s l1 net {np.mean(run_net[-50:]):.5f} "
                f"cubic {np.mean(run_cub[-50:]):.5f} lr {opt.param_groups[0]['lr']:.2e}")
    net.eval()
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, tmp)
    summary = {
        "factor": factor, "iterations": it, "seconds": round(time.monotonic() - start, 1), "seed": seed,
        "l1_net_last200": float(np.mean(run_net[-200:])) if run_net else None,
        "l1_cubic_last200": float(np.mean(run_cub[-200:])) if run_cub else None,
        "volumes": [name for _, _, name in volumes], "num_features": num_features, "num_layers": num_layers,
        "p_inplane": p_inplane,
    }
    log(json.dumps(summary))
    summary["network"] = net
    return summary


def adapt_to_scan(slicer: Any, norm: Any, axis: int, seconds: float, *, seed: int = 0,
                  log: Any = None) -> dict[str, Any]:
    """SMORE's self-supervision with a time budget: fine-tune ``slicer``'s network on this scan's in-plane axes.

    Pairs come only from the scan itself (``p_inplane = 1``): its in-plane axes are
    degraded by the slice factor with the slice profiles of training and restored,
    so the network adapts to this scanner's in-plane texture, noise and
    reconstruction kernel. ``norm`` is the normalised ``(1, X, Y, Z)`` volume.
    The fine-tuned network replaces ``slicer.network`` (the shipped weights on disk
    are untouched). Learning rate 1e-4 (a tenth of training's).
    """
    if slicer.network is None:
        raise UsageError("`--adapt` needs a learned model (-m slice_smore); interpolation has nothing to adapt.")
    vol = (norm.as_tensor() if hasattr(norm, "as_tensor") else torch.as_tensor(norm))[0].float().contiguous()
    if min(s for i, s in enumerate(vol.shape) if i != axis) < 64:
        raise UsageError(f"`--adapt` needs at least 64x64 pixels in-plane, got shape {tuple(vol.shape)}.")
    with torch.inference_mode(False):
        net = copy.deepcopy(slicer.network).cpu()
        res = train_slice_refiner([(vol, axis, "scan")], slicer.factor, None, init=net, seconds=seconds, seed=seed,
                                  lr=1e-4, p_inplane=1.0, log=log or (lambda m: None))
    slicer.network = res.pop("network").to(slicer.device).eval()
    return res


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsr.slice_training", description=__doc__.splitlines()[0])
    parser.add_argument("volumes", nargs="+", help="thin-slice volumes: DICOM series folders or NIfTI files")
    parser.add_argument("--factor", type=int, required=True, help="slice factor: 2 or 4")
    parser.add_argument("--out", required=True, help="output state dict (.pt)")
    parser.add_argument("--seconds", type=float, default=840.0, help="time budget in seconds")
    parser.add_argument("--max-iters", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--p-inplane", type=float, default=0.4, help="share of SMORE in-plane pairs")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        vols = load_training_volumes(args.volumes)
        train_slice_refiner(vols, args.factor, args.out, seconds=args.seconds, max_iters=args.max_iters,
                            seed=args.seed, p_inplane=args.p_inplane, log=lambda m: print(m, flush=True))
    except UsageError as err:
        print(f"medsr: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
