"""Batch processing of image files and series: output naming, resuming, per-file failures.

Shared by the CLI (``medsr upscale`` / ``medsr degrade``) and the bundles'
``inference.json``. One unreadable file never stops a batch: it is reported
with a one-line reason and listed in ``errors.csv`` beside the outputs.
"""

from __future__ import annotations

import csv
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsr.errors import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, InputError, MedsrError, OutputError

__all__ = ["RASTER_SUFFIXES", "FILE_SUFFIXES", "output_name", "plan_outputs", "discover", "BatchResult", "run_batch"]

RASTER_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
FILE_SUFFIXES = (".dcm", ".dicom", ".ima", ".nii", ".nii.gz") + RASTER_SUFFIXES


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def output_name(src: Path, scale: int, tag: str = "sr", is_dir: bool = False) -> str:
    """``<stem>_<tag><scale>x.<ext>``; a series folder gets ``<folder>_<tag><scale>x``."""
    if is_dir:
        return f"{src.name}_{tag}{scale}x"
    suffix = _suffix(src)
    stem = src.name[: len(src.name) - len(suffix)] if suffix else src.name
    return f"{stem}_{tag}{scale}x{src.name[len(stem):]}"


def plan_outputs(items: list[Any], input_path: Path, output: Path | None, scale: int, tag: str = "sr") -> list[Path]:
    """Output path of every input item, by the naming rule of the user guide.

    - a single file or series: beside the input, or inside ``output`` (a folder),
      or exactly ``output`` when it ends in an image file extension;
    - a folder of several inputs: the same relative paths under ``output``
      (default ``<folder>_<tag><scale>x`` beside the input folder).
    """
    input_path = Path(input_path)
    if len(items) == 1 and items[0].path.resolve() == input_path.resolve():
        item = items[0]
        name = output_name(item.path, scale, tag, is_dir=item.kind == "series")
        if output is None:
            return [item.path.parent / name]
        if _suffix(output) in FILE_SUFFIXES and not output.is_dir():
            return [output]
        return [output / name]
    root = output if output is not None else input_path.parent / output_name(input_path, scale, tag, is_dir=True)
    return [
        root / item.path.relative_to(input_path).parent / output_name(item.path, scale, tag, is_dir=item.kind == "series")
        for item in items
    ]


def discover(input_path: Path, exclude: Path | None = None) -> list[Any]:
    """Images under ``input_path`` (``medsr.io.discover_inputs``), minus anything inside ``exclude`` (the output)."""
    from medsr.io import discover_inputs

    items = discover_inputs(input_path)
    if exclude is not None and exclude.exists() and Path(input_path).is_dir():
        ex = exclude.resolve()
        items = [i for i in items if not i.path.resolve().is_relative_to(ex)]
    if not items:
        raise InputError(f"{input_path} contains no images (DICOM, NIfTI, PNG, TIFF or JPEG).")
    return items


@dataclass
class BatchResult:
    """What a batch did; ``exit_code`` follows medsr.errors."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    errors_csv: Path | None = None

    @property
    def exit_code(self) -> int:
        if not self.failed:
            return EXIT_OK
        return EXIT_INPUT if self.done + self.skipped == 0 else EXIT_PARTIAL

    def summary(self) -> str:
        msg = f"{self.done} written, {self.skipped} already done, {len(self.failed)} failed"
        return msg + (f" (see {self.errors_csv})" if self.errors_csv else "")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def run_batch(
    items: list[Any],
    outputs: list[Path],
    work: Callable[[Any, Path], None],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = False,
    description: str = "",
    log: Callable[[str], None] = _stderr,
) -> BatchResult:
    """Run ``work(item, output)`` for every input; skip finished outputs with ``resume``; collect failures.

    Raises ``OutputError`` before doing anything when an output is an input or
    exists (without ``resume``/``overwrite``). With several inputs, a failing one
    is reported and listed in ``errors.csv`` (path, reason) beside the outputs;
    with a single input its error is raised (``InputError`` for unexpected ones).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    result = BatchResult()
    inputs = {p.resolve() for item in items for p in (item.path, *item.files)}
    todo: list[tuple[Any, Path]] = []
    for item, out in zip(items, outputs):
        if out.resolve() in inputs:
            raise OutputError(f"output {out} is an input; choose another -o.")
        if out.exists() and resume:
            result.skipped += 1
        elif out.exists() and not overwrite:
            raise OutputError(f"output {out} exists; pass --overwrite to replace it or --continue to skip finished outputs.")
        else:
            todo.append((item, out))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(description, total=len(todo))
        for item, out in todo:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                work(item, out)
                result.done += 1
            except (MedsrError, OSError, ValueError, RuntimeError, MemoryError) as err:
                if verbose:
                    traceback.print_exception(err)
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                if len(items) == 1:  # a single input: its error is the command's error, no errors.csv
                    if isinstance(err, MedsrError):
                        raise
                    raise InputError(f"{item.path}: {reason}") from err
                log(f"medsr: skipped: {reason}" if str(item.path) in reason else f"medsr: skipped {item.path}: {reason}")
                result.failed.append((str(item.path), reason))
            bar.advance(task)
    if result.failed:
        result.errors_csv = _write_errors(outputs, result.failed)
    return result


def _write_errors(outputs: list[Path], failed: list[tuple[str, str]]) -> Path:
    from medsr.io import atomic_path

    folder = outputs[0].parent if len(outputs) == 1 else Path(os.path.commonpath([str(o.parent) for o in outputs]))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "errors.csv"
    with atomic_path(target) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "reason"])
        writer.writerows(failed)
    return target
