"""Model-card results from `medsr evaluate` summaries: PSNR/SSIM per modality (and class) beside bicubic.

    # print a table
    python scripts/model_card_table.py RESULTS/summary.json edsr_m [--classes]
    # rewrite the results section of a bundle's docs/README.md and eval_metrics of configs/metadata.json
    python scripts/model_card_table.py --card bundles/edsr_m --external EXT/summary.json --heldout HELD/summary.json

The card's section lies between ``<!-- results:begin -->`` and ``<!-- results:end -->``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

__all__ = ["table", "gains", "write_card"]

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _fmt(x: float | None, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _groups(summary: dict, model: str, classes: bool) -> list[tuple[dict, dict]]:
    """(model group, bicubic group) pairs per modality x class x scale, sorted."""
    groups = [g for g in summary["groups"] if classes or g["class"] == "all"]
    by_key = {(g["modality"], g["class"], g["scale"], g["model"]): g for g in groups}
    pairs = []
    for key in sorted(k for k in by_key if k[3] == model):
        ref = by_key.get((*key[:3], "bicubic"))
        if ref is not None:
            pairs.append((by_key[key], ref))
    return pairs


def table(summary: dict, model: str, *, classes: bool = False) -> str:
    """Rows: modality x scale (all classes; with ``classes`` also each finding class) with n, bicubic and
    model PSNR/SSIM and the paired gain with its 95% CI."""
    lines = [
        "| modality | class | scale | n | bicubic PSNR | model PSNR | gain dB (95% CI) | bicubic SSIM | model SSIM | SSIM gain (95% CI) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g, b in _groups(summary, model, classes):
        p, s = g["psnr"], g["ssim"]
        pd, sd = p.get("diff") or {}, s.get("diff") or {}
        lines.append(
            f"| {g['modality']} | {g['class']} | x{g['scale']} | {p['n']} | {_fmt(b['psnr']['mean'], 2)} | "
            f"{_fmt(p['mean'], 2)} | {_fmt(pd.get('mean'), 2)} ({_fmt(pd.get('ci_low'), 2)}, {_fmt(pd.get('ci_high'), 2)}) | "
            f"{_fmt(b['ssim']['mean'], 4)} | {_fmt(s['mean'], 4)} | "
            f"{_fmt(sd.get('mean'), 4)} ({_fmt(sd.get('ci_low'), 4)}, {_fmt(sd.get('ci_high'), 4)}) |"
        )
    return "\n".join(lines)


def gains(summary: dict, model: str, prefix: str) -> dict[str, float]:
    """Flat metrics for metadata.json: ``{prefix}_{modality}_x{scale}_{psnr,ssim,psnr_gain_db}``."""
    out = {}
    for g, _ in _groups(summary, model, classes=False):
        key = f"{prefix}_{g['modality']}_x{g['scale']}"
        out[f"{key}_psnr"] = round(g["psnr"]["mean"], 3)
        out[f"{key}_ssim"] = round(g["ssim"]["mean"], 4)
        out[f"{key}_psnr_gain_db"] = round((g["psnr"].get("diff") or {}).get("mean", float("nan")), 3)
    return out


def write_card(bundle: Path, external: dict, heldout: dict, commands: tuple[str, str]) -> None:
    """Replace the results section of ``bundle/docs/README.md`` and ``eval_metrics`` in its metadata.json."""
    model = bundle.name
    section = "\n".join([
        BEGIN,
        "## Results (images the network never trained on)",
        "",
        "Classic protocol (antialiased bicubic downsampling of the real image, then",
        "upscaling), metrics on the [0, 1] normalised images with a border of `scale`",
        "pixels cropped (docs/metrics.md); gain = paired mean difference to bicubic with",
        "a 95% bootstrap interval.",
        "",
        "**External validation** — other hospitals, vendors and scanners, none in the",
        "training data (files shipped in pydicom, pydicom-data and nibabel; built by",
        "`scripts/external_validation.py`). Small n: read the intervals.",
        "",
        table(external, model),
        "",
        f"Command: `{commands[0]}`",
        "",
        "**Held-out validation** — the held-out split of the training sources: 10% of",
        "the radiographs (split by image, so a Hannover patient may have other images",
        "in training; at most 10 per class here) and the last 10% of each CT/MR",
        "volume's slices, per finding class; built by `scripts/heldout_validation.py`.",
        "The checkpoint was chosen on a subset of these images, so they flatter the",
        "model a little; the external table is the fairer one.",
        "",
        table(heldout, model, classes=True),
        "",
        f"Command: `{commands[1]}`",
        END,
    ])
    card = bundle / "docs" / "README.md"
    text = card.read_text()
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.replace("\nRESULTS\n", f"\n{section}\n")
    card.write_text(text)
    meta_path = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["eval_metrics"] = {**gains(external, model, "external"), **gains(heldout, model, "heldout")}
    meta_path.write_text(json.dumps(meta, indent=4) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary", nargs="?", type=Path)
    ap.add_argument("model", nargs="?")
    ap.add_argument("--classes", action="store_true")
    ap.add_argument("--card", type=Path, help="bundle folder whose card and metadata to rewrite")
    ap.add_argument("--external", type=Path)
    ap.add_argument("--heldout", type=Path)
    ap.add_argument("--commands", nargs=2, default=("", ""), help="the evaluate commands that made the summaries")
    args = ap.parse_args()
    if args.card:
        summaries = [json.loads(p.read_text()) for p in (args.external, args.heldout)]
        write_card(args.card, *summaries, tuple(args.commands))
    else:
        print(table(json.loads(args.summary.read_text()), args.model, classes=args.classes))
