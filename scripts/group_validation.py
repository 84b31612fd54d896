"""Score networks against bicubic per modality, CT vendor, plane and finding class, full image and body only.

Two steps:

    python scripts/group_validation.py build OUT          # OUT/cases.json + one .npy per 2D case
    python scripts/group_validation.py score OUT -m edsr_m -m base=runs/abl_base/model.pt@8,32,0.1 -s 2 -s 4

``build`` writes normalised [0, 1] HR slices (medsr's modality normalisation, CT window
[-1024, 3071] HU) with their labels:

* ``heldout``: images of the training sources that the bundles' ``train.json`` never train on
  (``val_fraction`` 0.1, seed 0, Siemens CT excluded): the whole GE patient LIDC-IDRI-0003
  (native axial slices and coronal/sagittal reformats), the last 10% slab of every other CT/MR
  volume (GE, Philips, the GE noise phantom...), the held-out MR series and up to
  ``--per-class`` held-out radiographs per finding class (centre crop of at most 1024 px).
* ``external``: scanners and hospitals not in training: Siemens CT (NSCLC-Radiogenomics R01-001,
  kernel B45f; TotalSegmentator example, Biograph40 mCT, Br38f; Siemens is the CT vendor left out of
  training), native axial slices and reformats; the CT, MR and CR files shipped in pydicom /
  pydicom-data / nibabel (GE, Philips, Fuji, Siemens, unknown vendors).

``score`` degrades each slice with the classic protocol (antialiased bicubic), upscales it with
bicubic and every model, and writes ``rows.csv`` (one row per case, scale and model: PSNR of the
full image and of the body, :func:`medsr.metrics.body_mask`, border = scale) and ``groups.csv`` /
``groups.md``: per group, the mean gain over bicubic with a 95% bootstrap interval and the fraction
of slices where the model loses to bicubic. Models: ``bicubic``/``lanczos``, shipped bundle names or
paths (``medsr evaluate``'s ``-m``), or ``LABEL=weights.pt@BLOCKS,FEATURES,RES_SCALE`` for an EDSR
checkpoint of a training run. ``--tta`` adds each network's self-ensemble (:mod:`medsr.tta`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsr.data import build_datalist, split_datalist, volume_depth
from medsr.evaluation import bootstrap_ci
from medsr.io import load_image
from medsr.metrics import body_mask, body_psnr, psnr
from medsr.transforms import BicubicDegradation, ModalityNormalize

__all__ = ["build", "score", "load_model"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXCLUDE = ["*kermany_test224*", "ct/*siemens*"]  # as the edsr_m train.json: Siemens CT is the external vendor
VAL_FRACTION, SEED, MAX_XRAY = 0.1, 0, 1024

VENDOR_HINTS = {  # folder name -> CT/MR vendor (DICOM Manufacturer, or the kernel name where the tag is blank)
    "_ge": "GE", "philips": "Philips", "lung_pet_ct_dx": "Philips", "siemens": "Siemens", "4d_lung": "unknown (ADAC export)",
    "uih": "UIH", "ixi": "Philips (IXI Guys)",
}
EXTERNAL_FILES = {  # pydicom(-data) test files: modality, vendor (Manufacturer tag; blank tags marked)
    "693_UNCR.dcm": ("ct", "unknown (blank tag, kernel STANDARD)"),
    "CT_small.dcm": ("ct", "GE (JFK Imaging Center)"),
    "explicit_VR-UN.dcm": ("ct", "unknown (NIH)"),
    "MR2_UNCR.dcm": ("mr", "Philips"),
    "MR-SIEMENS-DICOM-WithOverlays.dcm": ("mr", "Siemens (AKH Wien)"),
    "RG1_UNCR.dcm": ("xray", "Philips CR"),
    "RG3_UNCR.dcm": ("xray", "Fuji CR"),
}


def _vendor(name: str) -> str:
    low = name.lower()
    return next((v for k, v in VENDOR_HINTS.items() if k in low), "unknown")


def _finding(path: str) -> str:
    parts = {p.lower() for p in Path(path).parts}
    if "hannover" in parts:
        return "Covid"
    return "Pneumonia" if "pneumonia" in parts else "Normal" if "normal" in parts else "all"


def _normalised(path: str | Path, modality: str) -> np.ndarray:
    img = ModalityNormalize(clip=True)(load_image(path, modality=modality))
    arr = img.as_tensor()[0].numpy().astype(np.float32)
    return arr[..., None] if arr.ndim == 2 else arr  # (X, Y, Z)


def _centre(a: np.ndarray, edge: int) -> np.ndarray:
    x0 = max(0, (a.shape[0] - edge) // 2)
    y0 = max(0, (a.shape[1] - edge) // 2)
    return a[x0 : x0 + edge, y0 : y0 + edge]


def build(out: Path, data_dir: Path = SHARED, per_class: int = 10) -> Path:
    """Write the cases (see the module docstring); returns ``out/cases.json``."""
    import pydicom.data

    out.mkdir(parents=True, exist_ok=True)
    cases: list[dict[str, Any]] = []

    def add(arr: np.ndarray, **label: Any) -> None:
        arr = np.ascontiguousarray(arr[: arr.shape[0] // 4 * 4, : arr.shape[1] // 4 * 4], dtype=np.float32)
        if min(arr.shape) < 32 or float(arr.std()) < 1e-3:
            return
        name = f"case{len(cases):04d}.npy"
        np.save(out / name, arr)
        cases.append({"file": name, **label})

    def add_volume(path: str, modality: str, split: str, vendor: str, source: str, slices: range, reformats: int = 0) -> None:
        vol = _normalised(path, modality)
        label = "phantom" if "phantom" in source else "all"
        for k in slices:
            add(vol[..., k], split=split, modality=modality, vendor=vendor, plane="native", **{"class": label, "source": source})
        depth = vol.shape[2]
        if reformats and depth >= 24:  # coronal and sagittal reformats through the centre of the slab
            for j in np.linspace(vol.shape[1] * 0.35, vol.shape[1] * 0.65, reformats).astype(int):
                add(vol[:, j, :], split=split, modality=modality, vendor=vendor, plane="reformat", **{"class": "all", "source": source})
            for i in np.linspace(vol.shape[0] * 0.35, vol.shape[0] * 0.65, reformats).astype(int):
                add(vol[i, :, :], split=split, modality=modality, vendor=vendor, plane="reformat", **{"class": "all", "source": source})

    everything = build_datalist(data_dir, exclude=["*kermany_test224*"])
    datalist = [e for e in everything if not any(Path(e["image"]).match(p) for p in ("*siemens*",)) or e["modality"] != "ct"]
    train, val = split_datalist(datalist, VAL_FRACTION, seed=SEED)
    rng = np.random.default_rng(SEED)
    by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in val:
        if e["modality"] == "xray":
            by_class[_finding(e["image"])].append(e)
    for label, entries in sorted(by_class.items()):
        for k in sorted(rng.choice(len(entries), size=min(per_class, len(entries)), replace=False)):
            arr = _normalised(entries[k]["image"], "xray")[..., 0]
            add(_centre(arr, MAX_XRAY), split="heldout", modality="xray", vendor="-", plane="native", **{"class": label, "source": "cxr"})
    for e in train + val:
        if e["modality"] == "xray":
            continue
        name = Path(str(e["image"]).rstrip("/")).name
        depth = volume_depth(e["image"])
        whole = e in val  # the patient/series is held out entirely
        if whole:
            step = max(1, depth // 8)
            slices = range(step // 2, depth, step)
        else:
            slices = range(max(1, int(round(depth * (1.0 - VAL_FRACTION)))), depth)
        add_volume(e["image"], e["modality"], "heldout", _vendor(name), name, slices, reformats=2 if whole and e["modality"] == "ct" else 0)
    for e in everything:
        name = Path(str(e["image"]).rstrip("/")).name
        if e["modality"] == "ct" and "siemens" in name.lower():
            depth = volume_depth(e["image"])
            step = max(1, depth // 8)
            add_volume(e["image"], "ct", "external", "Siemens", name, range(step // 2, depth, step), reformats=2)
    for fname, (modality, vendor) in EXTERNAL_FILES.items():
        src = pydicom.data.get_testdata_file(fname, download=False)
        if not src:
            print(f"skipped {fname}: not installed (pip install pydicom-data)", file=sys.stderr)
            continue
        arr = _normalised(src, modality)[..., 0]
        add(_centre(arr, MAX_XRAY), split="external", modality=modality, vendor=vendor, plane="native", **{"class": "all", "source": fname})
    import nibabel

    anatomical = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    if anatomical.is_file():
        vol = _normalised(anatomical, "mr")
        for k in np.linspace(vol.shape[2] * 0.3, vol.shape[2] * 0.7, 3).astype(int):
            add(vol[..., k], split="external", modality="mr", vendor="unknown (nibabel)", plane="native", **{"class": "all", "source": "anatomical.nii"})
    target = out / "cases.json"
    target.write_text(json.dumps(cases, indent=1))
    return target


def load_model(spec: str, scale: int, tta: bool = False) -> Any:
    """An upscaler from ``bicubic``/bundle name/path, or ``LABEL=weights.pt@BLOCKS,FEATURES,RES_SCALE``."""
    from medsr.inference import NetworkUpscaler, load_upscaler, load_weights
    from medsr.networks.edsr import EDSR
    from medsr.tta import with_tta

    if "=" in spec:
        label, rest = spec.split("=", 1)
        path, _, arch = rest.partition("@")
        blocks, feats, res = (arch or "8,32,1.0").split(",")
        if scale == 4 and "{x}" not in path and path.endswith("model.pt"):
            path = path[: -len("model.pt")] + "model_x4.pt"
        path = path.replace("{x}", str(scale))
        net = EDSR(2, 1, 1, scale, num_features=int(feats), num_blocks=int(blocks), res_scale=float(res))
        up = NetworkUpscaler(load_weights(net, path, name=label), scale, name=label)
    else:
        up = load_upscaler(spec, scale)
    return with_tta(up, tta)


def score(
    folder: Path, models: list[str], scales: list[int], tta: bool = False, splits: tuple[str, ...] = (), out: Path | None = None
) -> Path:
    """Score every case of ``folder``; writes ``rows.csv``, ``groups.csv`` and ``groups.md`` into ``out`` (default ``folder``)."""
    out = out or folder
    out.mkdir(parents=True, exist_ok=True)
    cases = json.loads((folder / "cases.json").read_text())
    if splits:
        cases = [c for c in cases if c["split"] in splits]
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    timing: dict[str, float] = defaultdict(float)
    for s in scales:
        ups = {"bicubic": load_model("bicubic", s)}
        for spec in models:
            up = load_model(spec, s)
            ups[up.name] = up
            if tta and up.name != "bicubic":
                t = load_model(spec, s, tta=True)
                ups[t.name] = t
        labels = list(ups)
        for i, c in enumerate(cases):
            hr = torch.from_numpy(np.load(folder / c["file"]))[None]  # (1, X, Y)
            lr = BicubicDegradation(s)(hr)
            mask = body_mask(hr, c["modality"])
            for label, up in ups.items():
                t0 = time.perf_counter()
                sr = torch.as_tensor(up(lr)).float().clamp(0, 1)
                timing[f"{label} x{s}"] += time.perf_counter() - t0
                rows.append({**c, "scale": s, "model": label, "psnr": psnr(sr, hr, border=s), "psnr_body": body_psnr(sr, hr, mask, border=s)})
            print(f"x{s} {i + 1}/{len(cases)}", end="\r", file=sys.stderr, flush=True)
    with open(out / "rows.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    groups = summarize(rows, [m for m in labels if m != "bicubic"])
    with open(out / "groups.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(groups[0]))
        w.writeheader()
        w.writerows(groups)
    (out / "groups.md").write_text(markdown(groups) + "\n\nseconds per model and scale (all cases): "
                                      + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()) + "\n")
    return out / "groups.md"


GROUPINGS = (("split", "modality"), ("split", "modality", "vendor"), ("split", "modality", "plane"), ("split", "modality", "vendor", "plane"), ("split", "modality", "class"))


def summarize(rows: list[dict[str, Any]], models: list[str]) -> list[dict[str, Any]]:
    """Per grouping of :data:`GROUPINGS`, model and scale: mean gains over bicubic (95% bootstrap CI), loss fractions."""
    ref = {(r["file"], r["scale"]): r for r in rows if r["model"] == "bicubic"}
    out = []
    seen = set()
    for keys in GROUPINGS:
        buckets: dict[tuple, list[tuple[dict, dict]]] = defaultdict(list)
        for r in rows:
            if r["model"] == "bicubic":
                continue
            if "class" in keys and r["modality"] == "mr":
                continue
            buckets[tuple(r[k] for k in keys) + (r["model"], r["scale"])].append((r, ref[(r["file"], r["scale"])]))
        for key, pairs in sorted(buckets.items(), key=lambda kv: tuple(str(v) for v in kv[0])):
            group = dict(zip(keys, key[: len(keys)]))
            ident = tuple(sorted(group.items())) + key[len(keys) :]
            members = frozenset(p[0]["file"] for p in pairs)
            if (ident[:-2], members, key[-2:]) in seen and len(keys) > 2:
                continue  # the same slices as a coarser row (e.g. a vendor with one plane)
            seen.add((ident[:-2], members, key[-2:]))
            row = {"group": " / ".join(f"{v}" for v in group.values()), "model": key[-2], "scale": key[-1], "n": len(pairs)}
            for metric in ("psnr", "psnr_body"):
                diffs = np.array([m[metric] - b[metric] for m, b in pairs], dtype=float)
                finite = diffs[np.isfinite(diffs)]
                lo, hi = bootstrap_ci(finite)
                row[f"bicubic_{metric}"] = float(np.nanmean([b[metric] for _, b in pairs]))
                row[f"gain_{metric}"] = float(finite.mean()) if finite.size else math.nan
                row[f"ci_{metric}"] = f"({lo:.2f}, {hi:.2f})"
                row[f"loses_{metric}"] = f"{int((finite < 0).sum())}/{finite.size}"
            out.append(row)
    return out


def markdown(groups: list[dict[str, Any]]) -> str:
    head = "| group | model | scale | n | bicubic PSNR | gain dB (95% CI) | loses | bicubic body PSNR | body gain dB (95% CI) | loses (body) |"
    lines = [head, "|" + "---|" * 10]
    for g in groups:
        lines.append(
            f"| {g['group']} | {g['model']} | x{g['scale']} | {g['n']} | {g['bicubic_psnr']:.2f} | {g['gain_psnr']:+.2f} {g['ci_psnr']} | "
            f"{g['loses_psnr']} | {g['bicubic_psnr_body']:.2f} | {g['gain_psnr_body']:+.2f} {g['ci_psnr_body']} | {g['loses_psnr_body']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("out", type=Path)
    b.add_argument("--data", type=Path, default=SHARED)
    b.add_argument("--per-class", type=int, default=10)
    s = sub.add_parser("score")
    s.add_argument("folder", type=Path)
    s.add_argument("-m", "--model", action="append", default=[])
    s.add_argument("-s", "--scale", type=int, action="append", default=[])
    s.add_argument("--split", action="append", default=[], help="heldout and/or external (default both)")
    s.add_argument("--tta", action="store_true")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("-o", "--out", type=Path, default=None, help="results folder (default: the cases folder)")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        print(build(args.out, args.data, args.per_class))
        return
    from medsr.inference import configure_threads

    configure_threads(args.threads)
    path = score(args.folder, args.model, args.scale or [2], args.tta, tuple(args.split), args.out)
    print(path.read_text())


if __name__ == "__main__":
    main()
