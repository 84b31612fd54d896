"""Batch processing of image files and series: output naming, resuming, per-file failures.

Shared by the CLI (``medsr upscale`` / ``medsr degrade``) and the bundles'
``inference.json``. One unreadable file never stops a batch: it is reported
with a one-line reason and listed in ``errors.csv`` beside the outputs.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsr.errors import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, InputError, MedsrError, OutputError
from medsr.io import atomic_path, discover_inputs
from medsr.privacy import one_line

__all__ = [
    "RASTER_SUFFIXES", "FILE_SUFFIXES", "output_name", "plan_outputs", "errors_folder", "discover", "BatchResult",
    "ItemProgress", "progress_bar", "run_batch", "output_lock", "check_output_folder", "write_errors_csv",
]

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
      (default ``<folder>_<tag><scale>x`` beside the input folder); several DICOM series in
      one folder are told apart by a hash of their SeriesInstanceUID,
      ``<folder>_<hash8>_<tag><scale>x``.
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
    # several series in one folder share its path: their outputs get a short, stable hash of their SeriesInstanceUID
    shared = Counter(item.path for item in items if item.kind == "series")

    def name(item: Any) -> str:
        src = item.path
        if item.kind == "series" and shared[item.path] > 1:
            src = Path(f"{item.path.name or 'series'}_{hashlib.sha1(item.series_uid.encode()).hexdigest()[:8]}")
        return output_name(src, scale, tag, is_dir=item.kind == "series")

    return [root / item.path.relative_to(input_path).parent / name(item) for item in items]


def discover(input_path: Path, exclude: Path | None = None) -> list[Any]:
    """Images under ``input_path`` (``medsr.io.discover_inputs``), minus anything inside ``exclude`` (the output)."""

    if exclude is not None and Path(input_path).is_dir() and Path(input_path).resolve().is_relative_to(exclude.resolve()):
        raise OutputError(f"output {one_line(exclude)} is the input folder or contains it; choose another -o.")
    items = discover_inputs(input_path)
    if exclude is not None and exclude.exists() and Path(input_path).is_dir():
        ex = exclude.resolve()
        items = [i for i in items if not i.path.resolve().is_relative_to(ex)]
    if not items:
        raise InputError(f"{one_line(input_path)} contains no images (DICOM, NIfTI, PNG, TIFF or JPEG).")
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


class ItemProgress:
    """How far the item being processed is, reported from inside ``work`` (per slice or tile).

    ``run_batch`` connects it to its progress bar for the duration of each item; calling it
    (``done``, ``total``) moves the bar within that item's share, so a long series or a large
    tiled image shows progress and a time estimate before its output is written.
    """

    def __init__(self) -> None:
        self._sink: Callable[[float], None] | None = None

    def __call__(self, done: float, total: float) -> None:
        if self._sink is not None and total > 0:
            self._sink(min(max(float(done) / float(total), 0.0), 1.0))


def progress_bar(enabled: bool, unit: str = "") -> Any:
    """A rich progress bar on stderr (stdout stays for results): count, percentage, elapsed and remaining time."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    count = "{task.completed:.0f}/{task.total:.0f}" + (f" {unit}" if unit else "")
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn(count), TaskProgressColumn(),
        TimeElapsedColumn(), TextColumn("remaining"), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled,
    )


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def run_batch(
    items: list[Any],
    outputs: list[Path],
    work: Callable[[Any, Path], Future | None],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = False,
    description: str = "",
    log: Callable[[str], None] = _stderr,
    errors_csv: Path | None = None,
    lock: bool = True,
    units: Callable[[Any], int] | None = None,
    unit: str = "",
    item_progress: ItemProgress | None = None,
) -> BatchResult:
    """Run ``work(item, output)`` for every input; skip finished outputs with ``resume``; collect failures.

    Raises ``OutputError`` before doing anything when an output is an input or
    exists (without ``resume``/``overwrite``). With several inputs, a failing one
    is reported and listed in ``errors.csv`` (path, reason) beside the outputs,
    or in ``errors_csv`` when given; with a single input its error is raised
    (``InputError`` for unexpected ones).

    ``work`` may return a ``concurrent.futures.Future`` (e.g. a write running in a
    background thread): the item counts as done, or failed, when the future
    resolves, which is checked before the next item's future is accepted, so at
    most one such write is in flight.

    The folder that holds the outputs is locked for the run (:func:`output_lock`; ``lock=False``
    for processes that share it by design, e.g. the ranks of one ``torchrun``). An ``errors.csv``
    left by an earlier run is removed when every input is done. Messages are single lines
    (:func:`medsr.privacy.one_line`).

    The progress bar (stderr) counts ``units(item)`` per item (default 1: files; e.g. the
    slices of a series), named ``unit``; ``item_progress``, called from inside ``work``,
    moves it within the current item. It counts computed items: a background write still
    running is waited for at the end.
    """
    result = BatchResult()
    inputs = {p.resolve() for item in items for p in (item.path, *item.files)}
    for folder in dict.fromkeys(out.parent for out in outputs):
        check_output_folder(folder)
    root = errors_csv.parent if errors_csv is not None else errors_folder(outputs)
    with output_lock(root) if lock else _no_lock():
        return _run_locked(
            items, outputs, work, inputs, result, resume=resume, overwrite=overwrite, progress=progress, verbose=verbose,
            description=description, log=log, errors_csv=errors_csv, units=units, unit=unit, item_progress=item_progress,
        )


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


def _run_locked(
    items: list[Any],
    outputs: list[Path],
    work: Callable[[Any, Path], Future | None],
    inputs: set[Path],
    result: BatchResult,
    *,
    resume: bool,
    overwrite: bool,
    progress: bool,
    verbose: bool,
    description: str,
    log: Callable[[str], None],
    errors_csv: Path | None,
    units: Callable[[Any], int] | None,
    unit: str,
    item_progress: ItemProgress | None,
) -> BatchResult:
    todo: list[tuple[Any, Path]] = []
    for item, out in zip(items, outputs):
        if len(os.fsencode(out.name)) > 255:
            raise OutputError(
                f"output name {one_line(out.name)[:40]}... is {len(os.fsencode(out.name))} bytes, over the 255 a file "
                "name may have; rename the input or give -o a shorter file name."
            )
        if out.resolve() in inputs:
            raise OutputError(f"output {one_line(out)} is an input; choose another -o.")
        if out.exists() and resume:
            result.skipped += 1
        elif out.exists() and not overwrite:
            raise OutputError(
                f"output {one_line(out)} exists; pass --overwrite to replace it or --continue to skip finished outputs."
            )
        else:
            todo.append((item, out))
    weight = [max(1, int(units(item))) if units is not None else 1 for item, _ in todo]
    with progress_bar(progress, unit) as bar:
        task = bar.add_task(description, total=sum(weight))
        base = 0.0

        def move(fraction: float, w: int = 1) -> None:
            bar.update(task, completed=base + fraction * w)

        def attempt(item: Any, call: Callable[[], Any]) -> Any:
            """``call()``; an expected failure is recorded (or raised for a single input) and gives None."""
            try:
                return call()
            except Exception as err:  # one bad input never stops a batch (KeyboardInterrupt does)
                if verbose:
                    traceback.print_exception(err)
                text = one_line(str(err).strip().splitlines()[0]) if str(err).strip() else ""
                if isinstance(err, MedsrError):
                    reason = text or type(err).__name__
                else:  # unexpected: name the exception, its message alone may mean nothing ("'x'")
                    reason = f"{type(err).__name__}: {text}" if text else type(err).__name__
                if len(items) == 1:  # a single input: its error is the command's error, no errors.csv
                    if isinstance(err, MedsrError):
                        raise
                    raise InputError(f"{one_line(item.path)}: {reason}") from err
                shown = one_line(item.path)
                log(f"medsr: skipped: {reason}" if shown in reason else f"medsr: skipped {shown}: {reason}")
                result.failed.append((shown, reason))
                return None

        def settle(item: Any, future: Future) -> None:
            if attempt(item, lambda: future.result() or True):
                result.done += 1

        in_flight: tuple[Any, Future] | None = None  # a background write, settled before the next one starts
        try:
            for (item, out), w in zip(todo, weight):

                def start(item: Any = item, out: Path = out) -> Any:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    return work(item, out) or True

                if item_progress is not None:
                    item_progress._sink = lambda f, w=w: move(f, w)
                started = attempt(item, start)
                base += w
                bar.update(task, completed=base)
                if isinstance(started, Future):
                    if in_flight is not None:
                        settle(*in_flight)
                    in_flight = (item, started)
                    continue
                if started:
                    result.done += 1
            if in_flight is not None:
                settle(*in_flight)
        finally:
            if item_progress is not None:
                item_progress._sink = None
    target = errors_csv or errors_folder(outputs) / "errors.csv"
    if result.failed:
        result.errors_csv = write_errors_csv(target, result.failed)
    elif target.is_file() and not target.is_symlink():  # an earlier run's failures are all done now
        try:
            target.unlink()
        except OSError as err:
            raise OutputError(f"cannot remove the stale {one_line(target)} ({err.strerror or err}).") from err
    return result


def errors_folder(outputs: list[Path]) -> Path:
    """Where a batch's ``errors.csv`` goes: the deepest folder holding every output."""
    return outputs[0].parent if len(outputs) == 1 else Path(os.path.commonpath([str(o.parent) for o in outputs]))


def write_errors_csv(target: Path, failed: list[tuple[str, str]]) -> Path:
    """Write ``errors.csv`` (``path,reason``) atomically; a failure to write it is an ``OutputError``.

    Every field is made a printable line first (:func:`medsr.privacy.one_line`), so file names
    that are not valid UTF-8 or hold newlines cannot break the file.
    """

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "reason"])
            writer.writerows((one_line(p), one_line(r)) for p, r in failed)
    except OSError as err:
        raise OutputError(
            f"cannot write {one_line(target)} ({err.strerror or err}); the {len(failed)} failed input(s) are listed "
            "above; free space or choose a writable -o."
        ) from err
    return target


def check_output_folder(folder: Path) -> None:
    """Refuse, before any work, an output folder that cannot exist: a path through an existing file."""
    p = Path(folder)
    for q in (p, *p.parents):
        try:
            if q.is_dir():
                return
            if q.exists() or q.is_symlink():
                raise OutputError(f"output folder {one_line(folder)}: {one_line(q)} is a file, not a folder; choose another -o.")
        except OSError as err:
            raise OutputError(f"output folder {one_line(folder)}: {err.strerror or err}; choose another -o.") from err


@contextmanager
def output_lock(folder: Path) -> Iterator[Path]:
    """Hold an exclusive lock on the output ``folder`` (created if missing) for the duration of a run.

    A second medsr run writing into the same folder is refused at once with an ``OutputError``
    instead of overwriting the first one's outputs. The lock is ``flock`` on the folder itself:
    nothing is written, and the kernel releases it when the process ends, even on SIGKILL.
    """
    import fcntl

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as err:
        raise OutputError(f"cannot create or open the output folder {one_line(folder)} ({err.strerror or err}).") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"another medsr run is writing into {one_line(folder)}; wait for it to finish or choose another -o."
                ) from err
            raise OutputError(f"cannot lock the output folder {one_line(folder)} ({err.strerror or err}).") from err
        yield folder
    finally:
        os.close(fd)
