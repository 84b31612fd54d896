"""Reading an evaluation folder (``metrics.csv``, ``summary.json``, ``cases/*/panel.json``) for the report.

What the report needs to know about the folder is what ``summary.json`` records (the metric
names, which way each is better, the settings); medsr reads nothing outside the folder.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from medsr.errors import InputError
from medsr.typing import PathLike

__all__ = ["MAX_RESULT_FILE_BYTES", "ROW_COLUMNS", "inside", "load_results"]

ROW_COLUMNS = ("case", "path", "modality", "class", "format", "size", "model", "is_gan", "scale")
"""Columns of ``metrics.csv`` before the metrics, which ``summary.json`` names under ``metrics``."""


def _num(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def load_results(outdir: PathLike) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, dict[str, Any]]]:
    """``(metrics rows, summary, panels by "<case>_x<scale>")`` from an evaluation folder."""
    root = Path(outdir)
    metrics_csv, summary_json = root / "metrics.csv", root / "summary.json"
    for f in (metrics_csv, summary_json):
        if not f.is_file():
            raise InputError(f"{root} is not an evaluation folder: {f.name} is missing; run `medsr evaluate` first.")
    for f in (metrics_csv, summary_json):
        inside(root, f, required=True)
    summary = _read_json(summary_json)
    if not isinstance(summary, dict):
        raise InputError(f"{summary_json} is damaged: it does not hold a JSON object; run `medsr evaluate` again.")
    metrics = summary.get("metrics")
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise InputError(f"{summary_json} is damaged: it names no metrics; run `medsr evaluate` again.")
    rows = _read_metrics_csv(metrics_csv, metrics)
    panels = {}
    cases = root / "cases"
    if inside(root, cases) and cases.is_dir():
        for pj in sorted(cases.glob("*/panel.json")):
            if not inside(root, pj):
                continue
            try:
                panel = _read_json(pj)
            except InputError:
                continue
            if not isinstance(panel, dict):
                continue
            panel["dir"] = pj.parent
            panels[pj.parent.name] = panel
    return rows, summary, panels


def _read_metrics_csv(metrics_csv: Path, metrics: list[str]) -> list[dict[str, Any]]:
    """The rows of ``metrics.csv``: metric values as floats (NaN when empty), ``scale`` an int, ``is_gan`` a bool."""
    try:
        with open(metrics_csv, newline="", encoding="utf-8") as fh:
            rows = []
            reader = csv.DictReader(fh)
            missing = [c for c in (*ROW_COLUMNS, *metrics) if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{metrics_csv} is damaged: columns {', '.join(missing)} are missing; run `medsr evaluate` again.")
            for n, r in enumerate(reader, start=2):
                if None in r or any(v is None for v in r.values()):
                    raise InputError(f"{metrics_csv} is damaged: line {n} has the wrong number of fields.")
                for m in metrics:
                    r[m] = _num(r.get(m, ""))
                try:
                    r["scale"] = int(r["scale"])
                except ValueError as err:
                    raise InputError(f"{metrics_csv} is damaged: line {n} has no integer scale.") from err
                r["is_gan"] = str(r.get("is_gan", "")).lower() == "true"
                rows.append(r)
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{metrics_csv} is damaged ({type(err).__name__}); run `medsr evaluate` again.") from err
    except OSError as err:
        raise InputError(f"cannot read {metrics_csv} ({err.strerror or err}).") from err
    return rows


MAX_RESULT_FILE_BYTES = 64 << 20
"""Largest metrics/summary/panel file the report reads."""


def inside(root: Path, path: Path, required: bool = False) -> bool:
    """Whether ``path`` (links followed) lies inside the results folder ``root``; medsr reads nothing outside it."""
    try:
        ok = path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        ok = False
    if not ok and required:
        raise InputError(f"{path} points outside the results folder {root}; medsr reads only files inside it.")
    return ok


def _read_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_RESULT_FILE_BYTES:
            raise InputError(f"{path} is larger than {MAX_RESULT_FILE_BYTES >> 20} MB; it is not medsr's.")
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise InputError(f"{path} is not valid JSON ({type(err).__name__}); run `medsr evaluate` again.") from err
    except OSError as err:
        raise InputError(f"cannot read {path} ({err.strerror or err}).") from err
