"""Report figures (matplotlib, Agg, no global pyplot state), returned as PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MODEL_COLOURS", "model_colour", "box_plot", "paired_plot", "gain_plot", "colorbar"]

MODEL_COLOURS = ("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
"""Bicubic grey, then one colour per model (colour-blind friendly order kept short)."""


def model_colour(index: int) -> str:
    return MODEL_COLOURS[index % len(MODEL_COLOURS)]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _finish_class_axes(fig: Any, ax: Any, labels: list[str], *, ylabel: str, title: str, fontsize: float | None = None) -> bytes:
    """Class labels under ticks 0, 1, ..., axis labels, grid and legend; the figure as PNG."""
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=fontsize)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def box_plot(values: dict[str, dict[str, Sequence[float]]], models: Sequence[str], *, ylabel: str, title: str) -> bytes:
    """Box plots of one metric: ``values[class][model]`` -> a box per model, grouped by class.

    Each image is also drawn as a dot so small groups are not hidden behind a box.
    """
    classes = list(values)
    nm = len(models)
    width = min(0.8 / max(nm, 1), 0.3)
    fig = _figure(max(4.5, 1.3 + 0.55 * len(classes) * nm), 3.2)
    ax = fig.add_subplot(1, 1, 1)
    rng = np.random.default_rng(0)
    for j, model in enumerate(models):
        pos, data = [], []
        for i, label in enumerate(classes):
            v = np.asarray([x for x in values[label].get(model, []) if math.isfinite(x)], dtype=float)
            if v.size:
                pos.append(i + (j - (nm - 1) / 2) * width * 1.15)
                data.append(v)
        if not data:
            continue
        colour = model_colour(j)
        ax.boxplot(
            data, positions=pos, widths=width, patch_artist=True, showfliers=False,
            boxprops={"facecolor": colour, "alpha": 0.35, "edgecolor": colour},
            medianprops={"color": colour, "linewidth": 2}, whiskerprops={"color": colour}, capprops={"color": colour},
        )
        for p, v in zip(pos, data):
            ax.scatter(p + rng.uniform(-width / 4, width / 4, v.size), v, s=8, color=colour, alpha=0.7, zorder=3, linewidths=0)
        ax.plot([], [], color=colour, linewidth=6, alpha=0.5, label=model)
    return _finish_class_axes(fig, ax, list(classes), ylabel=ylabel, title=title)


def paired_plot(values: dict[str, dict[str, Sequence[float]]], models: Sequence[str], *, ylabel: str, title: str) -> bytes:
    """Paired dot / slope plot for small groups: every image's value under each method, joined by a line.

    ``values[class][model]``: one value per image, in the same image order for every model
    (NaN where missing). A box drawn from a handful of points would hide them; here each
    image is visible and so is whether it gained or lost against bicubic.
    """
    classes = list(values)
    nm = len(models)
    fig = _figure(max(4.5, 1.4 + (0.5 + 0.6 * nm) * len(classes)), 3.2)
    ax = fig.add_subplot(1, 1, 1)
    step = 0.7 / max(nm - 1, 1)
    labels: list[str] = []
    for i, label in enumerate(classes):
        xs = [i + (j - (nm - 1) / 2) * step if nm > 1 else float(i) for j in range(nm)]
        columns = [np.asarray(values[label].get(m, []), dtype=float) for m in models]
        n = max((c.size for c in columns), default=0)
        for k in range(n):
            ys = [c[k] if k < c.size else math.nan for c in columns]
            pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
            if len(pts) > 1:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#9aa0a6", linewidth=1, zorder=2)
        for j, (x, c) in enumerate(zip(xs, columns)):
            ok = c[np.isfinite(c)]
            ax.scatter(np.full(ok.size, x), ok, s=22, color=model_colour(j), zorder=3, linewidths=0,
                       label=models[j] if i == 0 else None)
        labels.append(f"{label}\n(n = {n})")
    return _finish_class_axes(fig, ax, labels, ylabel=ylabel, title=title, fontsize=8)


def gain_plot(rows: Sequence[dict[str, Any]], *, xlabel: str, title: str) -> bytes:
    """Forest plot: mean paired difference to bicubic with its 95% CI, one line per class x model.

    ``rows``: ``{"label", "model_index", "mean", "low", "high"}``; a vertical line marks 0 (no change).
    """
    n = len(rows)
    fig = _figure(6.0, 0.9 + 0.32 * max(n, 1))
    ax = fig.add_subplot(1, 1, 1)
    ax.axvline(0.0, color="black", linewidth=1)
    for i, r in enumerate(rows):
        y = n - 1 - i
        colour = model_colour(int(r["model_index"]))
        m, lo, hi = r["mean"], r["low"], r["high"]
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=colour, linewidth=2.5, solid_capstyle="butt")
        if m is not None and math.isfinite(m):
            ax.plot([m], [y], "o", color=colour, markersize=6)
    ax.set_yticks(range(n))
    ax.set_yticklabels([r["label"] for r in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    lo_x, hi_x = ax.get_xlim()
    span = 1.08 * max(abs(lo_x), abs(hi_x))  # symmetric about 0, with room for a dot at the edge
    ax.text(span * 0.98, -0.65, "better than bicubic \u2192", ha="right", va="bottom", fontsize=7, color="#2a7a2a")
    ax.text(-span * 0.98, -0.65, "\u2190 worse", ha="left", va="bottom", fontsize=7, color="#a33")
    ax.set_xlim(-span, span)
    return _png(fig)


def colorbar(vmax: float, unit: str) -> bytes:
    """A horizontal colour scale for the error maps (inferno, 0 to ``vmax``)."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.colorbar import ColorbarBase

    fig = _figure(2.4, 0.62)
    ax = fig.add_axes((0.05, 0.55, 0.9, 0.3))
    ColorbarBase(ax, cmap=colormaps["inferno"], norm=Normalize(0, vmax), orientation="horizontal")
    ax.tick_params(labelsize=7)
    ax.set_xlabel(f"error ({unit})", fontsize=7, labelpad=1)
    return _png(fig)
