"""Write the held-out validation set of the shipped bundles as a datalist for ``medsr evaluate``.

The bundles' ``train.json`` hold out 10% of the radiographs (seeded split by
image, stratified by modality) and the last 10% of the slices of every CT/MR volume. This
script rebuilds exactly that split from ``../shared/data`` with medsr's own
functions, writes each held-out volume slice as a 2D NIfTI (physical units,
geometry kept), and writes ``OUT/heldout.json`` with the radiographs' finding
classes (Covid / Normal / Pneumonia) and explicit modalities:

    python scripts/heldout_validation.py /tmp/heldout --per-class 10
    medsr evaluate /tmp/heldout/heldout.json -o /tmp/heldout_results -s 2 -s 4 -m edsr_m

``--per-class`` draws at most N radiographs per class (seeded) to bound the run time.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import nibabel as nib
import numpy as np

from medsr.data import build_datalist, split_datalist, split_slices
from medsr.io import load_image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXCLUDE = ["*kermany_test224*"]  # as in the bundles' train.json
VAL_FRACTION, SEED = 0.1, 0


def finding_class(path: str) -> str:
    """Covid (Hannover), Normal or Pneumonia (Kermany) from the radiograph's folder."""
    parts = {p.lower() for p in Path(path).parts}
    if "hannover" in parts:
        return "Covid"
    return "Pneumonia" if "pneumonia" in parts else "Normal" if "normal" in parts else "all"


def write_slice(entry: dict, out: Path) -> Path:
    """Slice ``entry["slices"][0]`` of the volume as a 2D NIfTI in physical units."""
    img = load_image(entry["image"], modality=entry["modality"])
    k = int(entry["slices"][0])
    affine = np.asarray(img.affine, dtype=np.float64)
    affine[:3, 3] += k * affine[:3, 2]  # the slice's own origin
    data = img.as_tensor()[0, :, :, k : k + 1].numpy().astype(np.float32)
    path = out / f"{entry['modality']}_{Path(str(entry['image']).rstrip('/')).name.split('.')[0]}_z{k:03d}.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def build(out: Path, data_dir: Path = SHARED, per_class: int | None = None) -> Path:
    datalist = build_datalist(data_dir, exclude=EXCLUDE)
    train, val = split_datalist(datalist, VAL_FRACTION, seed=SEED)
    _, slabs = split_slices(train, VAL_FRACTION)
    rng = random.Random(SEED)
    radiographs: dict[str, list[dict]] = {}
    for e in val:
        if "slices" not in e and e["modality"] == "xray":
            radiographs.setdefault(finding_class(e["image"]), []).append(e)
    rows = []
    for label, entries in sorted(radiographs.items()):
        if per_class and len(entries) > per_class:
            entries = rng.sample(entries, per_class)
        rows += [{"image": str(Path(e["image"]).resolve()), "class": label, "modality": "xray"} for e in entries]
    slices = out / "slices"
    slices.mkdir(parents=True, exist_ok=True)
    for e in slabs + [e for e in val if e["modality"] != "xray"]:
        if "slices" in e:
            rows.append({"image": str(write_slice(e, slices)), "class": "all", "modality": e["modality"]})
    target = out / "heldout.json"
    target.write_text(json.dumps(rows, indent=1))
    return target


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--per-class", type=int, default=None)
    args = ap.parse_args()
    path = build(args.out, args.data, args.per_class)
    rows = json.loads(path.read_text())
    counts: dict[str, int] = {}
    for r in rows:
        key = f"{r['modality']}/{r['class']}"
        counts[key] = counts.get(key, 0) + 1
    print(path, counts)
