"""Markdown table for a model card from a `medsr evaluate` summary.json: PSNR/SSIM per modality beside bicubic.

    python scripts/model_card_table.py RESULTS/summary.json edsr_m [--classes]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["table"]


def _fmt(x: float | None, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def table(summary: dict, model: str, *, classes: bool = False) -> str:
    """Rows: modality x scale (all classes; with ``classes`` also each finding class) with n, bicubic and
    model PSNR/SSIM and the paired gain with its 95% CI."""
    groups = [g for g in summary["groups"] if classes or g["class"] == "all"]
    by_key = {(g["modality"], g["class"], g["scale"], g["model"]): g for g in groups}
    lines = [
        "| modality | class | scale | n | bicubic PSNR | model PSNR | gain dB (95% CI) | bicubic SSIM | model SSIM | SSIM gain (95% CI) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for modality, label, scale, _ in sorted(k for k in by_key if k[3] == model):
        g, b = by_key[(modality, label, scale, model)], by_key.get((modality, label, scale, "bicubic"))
        if b is None:
            continue
        p, s = g["psnr"], g["ssim"]
        pd, sd = p.get("diff") or {}, s.get("diff") or {}
        lines.append(
            f"| {modality} | {label} | x{scale} | {p['n']} | {_fmt(b['psnr']['mean'], 2)} | {_fmt(p['mean'], 2)} | "
            f"{_fmt(pd.get('mean'), 2)} ({_fmt(pd.get('ci_low'), 2)}, {_fmt(pd.get('ci_high'), 2)}) | "
            f"{_fmt(b['ssim']['mean'], 4)} | {_fmt(s['mean'], 4)} | "
            f"{_fmt(sd.get('mean'), 4)} ({_fmt(sd.get('ci_low'), 4)}, {_fmt(sd.get('ci_high'), 4)}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2], classes="--classes" in sys.argv[3:]))
