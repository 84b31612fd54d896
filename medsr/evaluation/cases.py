"""What an evaluation reads: the HR images of a folder tree, a datalist or a DICOM series, as :class:`Case` s.

Classes are named by :func:`medsr.data.datalist.class_name` and datalists parsed by
:func:`medsr.data.datalist.read_datalist`, the rules training uses, so a ``covid/``
folder is the class ``Covid`` in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medsr.data.datalist import CLASS_ALL, class_name, entry_class, read_datalist
from medsr.errors import InputError
from medsr.io import discover_inputs
from medsr.typing import PathLike
from medsr.validation import check_modality_or_auto

__all__ = ["CLASS_ALL", "Case", "collect_cases", "inputs_inside"]


@dataclass(frozen=True)
class Case:
    """One HR image to evaluate.

    Args:
        source: what :func:`medsr.io.load_image` takes (a path, or the files of a series).
        path: the file or series folder, for messages and ``show_ids``.
        label: the finding class (``"all"`` when none).
        modality: a datalist's modality override, or ``None``.
        key: a stable text (path relative to the data root) that seeds the degradation.
        origin: where the case came from, for the private key file (``datalist row 3``).
    """

    source: Any
    path: Path
    label: str
    modality: str | None
    key: str
    origin: str = ""

    @property
    def files(self) -> Sequence[Any]:
        """The files of a series case (empty for a one-file case)."""
        return self.source if isinstance(self.source, (list, tuple)) else ()


def _load_source(item: Any) -> Any:
    return list(item.files) if getattr(item, "kind", "file") == "series" else item.path


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL: the case fails when it is read
        return False


def collect_cases(data: PathLike, *, modality: str = "auto", exclude: PathLike | None = None) -> list[Case]:
    """The images to evaluate in ``data``, sorted by class and path.

    ``data`` is a folder (each sub-folder is a class; images directly in it, and
    a DICOM series folder directly in it, have class ``"all"``), a datalist
    (``.json``: a list of ``{"image", "class", "modality"}`` objects, or MONAI's
    ``{"testing": [...]}``; ``.csv`` with columns ``image`` and optional
    ``class``, ``modality``; relative paths are relative to the datalist), a DICOM
    series folder, or one image file. ``exclude`` (the output folder) is skipped.
    """
    root = Path(data).expanduser()
    if not root.exists():
        raise InputError(f"`data` {root} does not exist.")
    default_mod = check_modality_or_auto(modality, "`modality`")
    if root.is_file() and root.suffix.lower() in (".json", ".csv"):
        cases = _datalist_cases(root, default_mod)
    else:
        cases = _folder_cases(root, default_mod, Path(exclude).resolve() if exclude is not None else None)
    if not cases:
        raise InputError(f"{root} contains no images (DICOM, NIfTI, PNG, TIFF or JPEG).")
    return sorted(cases, key=lambda c: (c.label, str(c.path)))


def _datalist_cases(datalist: Path, default_mod: str | None) -> list[Case]:
    cases = []
    for i, entry in enumerate(read_datalist(datalist)):
        image = entry["image"]
        files = [Path(p) for p in image] if isinstance(image, list) else [Path(str(image))]
        files = [f if f.is_absolute() else datalist.parent / f for f in files]
        source, path = (files if len(files) > 1 else files[0]), files[0]
        if len(files) == 1 and _is_dir(files[0]):
            try:
                items = discover_inputs(files[0])
            except InputError:
                items = []
            if len(items) == 1:  # otherwise reading the folder fails with its own message, in errors.csv
                source = _load_source(items[0])
        mod = check_modality_or_auto(entry.get("modality"), f"datalist row {i + 1}") or default_mod
        cases.append(Case(source, path, entry_class(entry), mod, str(image), origin=f"datalist row {i + 1}"))
    return cases


def _folder_cases(root: Path, default_mod: str | None, exclude: Path | None) -> list[Case]:
    base = root if root.is_dir() else root.parent
    cases = []
    for item in discover_inputs(root):
        p = Path(item.path)
        if exclude is not None and p.resolve().is_relative_to(exclude):
            continue
        parts = p.relative_to(base).parts if p.is_relative_to(base) else ()
        # a class is a sub-folder of DATA; a file or a series folder directly in DATA is a case, not a class
        label = class_name(parts[0]) if len(parts) >= 2 else CLASS_ALL
        key = ("/".join(parts) or p.name) + (f"#{item.series_uid}" if getattr(item, "series_uid", "") else "")
        cases.append(Case(_load_source(item), p, label, default_mod, key, origin=key))
    return cases


def inputs_inside(cases: Sequence[Case], out: Path) -> Case | None:
    """The first case with a file inside ``out`` (the output folder), if any."""
    ro = out.resolve()
    for c in cases:
        for f in c.files or (c.source, c.path):
            try:
                if Path(f).resolve().is_relative_to(ro):
                    return c
            except (OSError, RuntimeError, ValueError):
                continue
    return None
