"""Datalists: which images train and validate a network, with their modality and class.

A datalist is a list of dicts in MONAI's style::

    {"image": "path/to/file_or_series_folder", "modality": "xray", "class": "Covid",
     "group": "patient-or-series id", "slices": [0, 32]}   # slices: optional, volumes only

``slices`` restricts a volume to a slab, so the slices of one scan can be split
between training and validation without leaking. ``group`` keeps all images of
one patient/series on the same side of a split.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from medsr import meta as mk
from medsr.errors import InputError, UsageError
from medsr.io import discover_inputs, load_image
from medsr.io.dicom import XRAY_MODALITIES
from medsr.io.nifti import read_nifti
from medsr.privacy import one_line
from medsr.typing import PathLike
from medsr.validation import check_modality

__all__ = [
    "CLASS_ALL",
    "CLASS_NAMES",
    "DATALIST_SECTIONS",
    "MAX_DATALIST_BYTES",
    "class_name",
    "entry_class",
    "read_datalist",
    "detect_modality",
    "build_datalist",
    "load_datalist",
    "split_datalist",
    "split_slices",
    "volume_depth",
    "modality_weights",
    "limit_per_modality",
]

CLASS_ALL = "all"
"""Class of images directly in a data folder (no class sub-folder) or of datalist rows without one."""

CLASS_NAMES = {"covid": "Covid", "covid-19": "Covid", "normal": "Normal", "pneumonia": "Pneumonia"}
"""Finding-class folder names, case-insensitive, mapped to the names reports use; other folder names are kept as they are."""

DATALIST_SECTIONS = ("data", "test", "testing", "validation", "training")
"""Keys of a JSON datalist object that hold its rows, in the order an evaluation looks for them."""

MAX_DATALIST_BYTES = 64 << 20
"""Largest datalist file medsr parses."""


def class_name(label: Any) -> str:
    """The one rule that names a class, for training and evaluation alike.

    A sub-folder name or a datalist's ``class``: :data:`CLASS_NAMES` spellings
    (case-insensitive: ``covid/`` -> ``Covid``), other names as they are (stripped),
    empty -> :data:`CLASS_ALL`.
    """
    text = str(label if label is not None else "").strip()
    if not text:
        return CLASS_ALL
    return CLASS_NAMES.get(text.lower(), text)


def entry_class(entry: dict[str, Any]) -> str:
    """The class of a datalist row: its ``class`` (else ``label``) named by :func:`class_name`."""
    return class_name(entry.get("class") or entry.get("label"))


def read_datalist(
    path: PathLike, sections: Sequence[str] = DATALIST_SECTIONS, *, combine: bool = False
) -> list[dict[str, Any]]:
    """The rows of a datalist file, each checked; paths are returned as written.

    A ``.csv`` file needs a header with an ``image`` column; anything else is read as
    JSON: a list of objects, or an object holding that list under one of ``sections``
    (the first one present; ``combine=True`` joins every one present, in order).
    Each row's ``image`` must be a file path or a non-empty list of paths; ``class``,
    ``label`` and ``modality`` must be text. Errors quote no value (a datalist may
    hold patient names).
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_DATALIST_BYTES:
            raise InputError(f"the datalist is larger than {MAX_DATALIST_BYTES >> 20} MB; split it.")
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read the datalist ({err.strerror or err}).") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"the datalist is not UTF-8 text (byte {err.start}); save it as UTF-8.") from err
    if path.suffix.lower() == ".csv":
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            if reader.fieldnames is None or "image" not in reader.fieldnames:
                raise InputError(f"the datalist CSV needs a column named `image`; it has {len(reader.fieldnames or [])} other columns.")
            doc: Any = [{k: v for k, v in r.items() if k is not None} for r in reader]
        except csv.Error as err:
            raise InputError(f"the datalist CSV cannot be parsed ({one_line(err)}).") from err
    else:
        try:
            doc = json.loads(text)
        except RecursionError as err:
            raise InputError("the datalist JSON is nested too deeply to be a datalist.") from err
        except ValueError as err:
            raise InputError(f"the datalist is not readable JSON: {one_line(err)}") from err
    if isinstance(doc, dict):
        found = [doc[key] for key in sections if isinstance(doc.get(key), list)]
        if found:
            doc = [row for rows in found for row in rows] if combine else found[0]
    if not isinstance(doc, list) or not all(isinstance(e, dict) and "image" in e for e in doc):
        raise InputError(
            "the datalist must be a list of objects with an `image` key "
            f"(or hold one under {', '.join(f'`{k}`' for k in sections[:-1])} or `{sections[-1]}`)."
        )
    for i, entry in enumerate(doc):
        image = entry["image"]
        paths = image if isinstance(image, list) else [image]
        if not paths or not all(isinstance(p, str) and p.strip() and "\x00" not in p for p in paths):
            raise InputError(
                f"datalist row {i + 1}: `image` must be a file path or a non-empty list of file paths, "
                f"got {_kind(image)}; fix that row."
            )
        for field in ("class", "label", "modality"):
            if entry.get(field) is not None and not isinstance(entry[field], (str, int)):
                raise InputError(f"datalist row {i + 1}: `{field}` must be text, got {_kind(entry[field])}; fix that row.")
    return doc


def _kind(value: Any) -> str:
    """A description of a JSON value that quotes none of it."""
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)" + ("" if all(isinstance(v, str) for v in value) else " that are not all text")
    if isinstance(value, str):
        return "an empty text" if not value.strip() else "a text with a NUL character"
    return f"a {type(value).__name__}"


def detect_modality(path: PathLike) -> str:
    """``xray``/``ct``/``mr`` from a DICOM header, raster extension, or NIfTI intensities.

    Reads headers only for DICOM; a NIfTI gets ``medsr.io``'s guess from its intensities.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file())
        if not files:
            raise InputError(f"{p} is an empty folder.")
        p = files[0]
    name = p.name.lower()
    if name.endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff")):
        return "xray"
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti(p)[1][mk.MODALITY]  # the reader's own guess from the intensities
    try:
        ds = pydicom.dcmread(str(p), stop_before_pixels=True)
    except Exception as err:
        raise InputError(f"{p}: not a readable DICOM file ({err}).") from err
    mod = str(getattr(ds, "Modality", "")).upper()
    if mod in XRAY_MODALITIES:
        return "xray"
    if mod in ("CT", "MR"):
        return mod.lower()
    raise InputError(f"{p}: DICOM modality {mod or 'missing'!r} is not X-ray, CT or MR; pass the modality explicitly.")


def _class_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    return class_name(rel.parts[0]) if len(rel.parts) >= 2 else CLASS_ALL


def build_datalist(
    root: PathLike, *, modality: str | None = None, classes: bool = True, exclude: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """One entry per image (a DICOM series is one entry) found under ``root``.

    Args:
        root: a folder; its first-level sub-folders name the class (``Covid/``, ``Normal/``...)
            when ``classes`` is true; files directly under it have class ``all``.
        modality: force ``xray``/``ct``/``mr``; ``None`` detects it per image.
        classes: take classes from sub-folder names.
        exclude: ``fnmatch`` patterns on the path relative to ``root`` (e.g. ``"*test224*"``) to leave out.
    """
    root = Path(root)
    check_modality(modality)
    out = []
    for item in discover_inputs(root):
        path = item.path
        rel = str(path.relative_to(root)) if root.is_dir() else path.name
        if any(fnmatch.fnmatch(rel, pattern) for pattern in exclude):
            continue
        try:
            mod = modality or detect_modality(path)
        except InputError:
            continue  # unreadable: the evaluation/upscale commands report these; a datalist skips them
        out.append(
            {
                "image": str(path),
                "modality": mod,
                "class": _class_of(path, root) if classes and root.is_dir() else CLASS_ALL,
                "group": str(path if item.kind == "series" else path.parent / path.stem),
            }
        )
    if not out:
        raise InputError(f"{root} contains no readable X-ray, CT or MR images.")
    return out


def load_datalist(path: PathLike, *, base_dir: PathLike | None = None) -> list[dict[str, Any]]:
    """Read a datalist from JSON (a list, or MONAI's ``{"training": [...], "validation": [...]}``, joined) or CSV.

    Parsed and checked by :func:`read_datalist`; the class named by :func:`entry_class`;
    relative ``image`` paths are taken relative to ``base_dir`` (default: the datalist's folder);
    a missing ``group`` is the image and a missing ``modality`` is detected from the file.
    """
    path = Path(path)
    base = Path(base_dir) if base_dir is not None else path.parent
    out = []
    for row in read_datalist(path, ("training", "validation"), combine=True):
        entry = dict(row)
        image = entry["image"]
        files = [str(f if f.is_absolute() else base / f) for f in map(Path, image if isinstance(image, list) else [image])]
        entry["image"] = files if isinstance(image, list) else files[0]
        entry["class"] = entry_class(entry)
        entry.setdefault("group", entry["image"] if isinstance(image, str) else files[0])
        if not entry.get("modality"):
            entry["modality"] = detect_modality(files[0])
        out.append(entry)
    return out


def split_datalist(
    datalist: Sequence[dict[str, Any]], val_fraction: float = 0.1, *, seed: int = 0, key: str = "group"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split by ``key`` (patient / series) so that no group is on both sides; stratified by modality."""
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"`val_fraction` must be in [0, 1), got {val_fraction}.")
    rng = random.Random(seed)
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    by_mod: dict[str, list[dict[str, Any]]] = {}
    for entry in datalist:
        by_mod.setdefault(entry.get("modality", "xray"), []).append(entry)
    for entries in by_mod.values():
        groups = sorted({str(e.get(key, e["image"])) for e in entries})
        rng.shuffle(groups)
        n_val = int(round(val_fraction * len(groups)))
        val_groups = set(groups[:n_val])
        for e in entries:
            (val if str(e.get(key, e["image"])) in val_groups else train).append(e)
    return train, val


def volume_depth(path: PathLike) -> int:
    """Number of slices of a series folder, NIfTI volume or multi-frame DICOM (1 for a 2D image); headers only."""
    p = Path(path)
    if p.is_dir():
        return max((len(item.files) for item in discover_inputs(p) if item.kind == "series"), default=1)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        shape = nib.load(str(p)).shape
        return int(shape[2]) if len(shape) >= 3 else 1
    if name.endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff")):
        return 1
    ds = pydicom.dcmread(str(p), stop_before_pixels=True)
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def split_slices(
    datalist: Sequence[dict[str, Any]], val_fraction: float, *, min_content: float = 0.05
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split each volume into a training slab and a held-out validation slab.

    The validation slab is the last ``val_fraction`` of the slices (one entry per
    slice, so it is scored in 2D). Contiguous slabs, not random slices, so
    neighbouring (near-identical) slices do not leak across the split. Validation
    slices that are nearly blank (fewer than ``min_content`` of their pixels above
    a tenth of the volume's 99th percentile, e.g. above the skull) are left out:
    a blank image has an infinite PSNR and says nothing about upscaling. 2D
    entries are returned unchanged in the training list.
    """
    train, val = [], []
    for e in datalist:
        depth = volume_depth(e["image"])
        if depth < 2:
            train.append(dict(e))
            continue
        cut = max(1, int(round(depth * (1.0 - val_fraction))))
        train.append({**e, "slices": [0, cut]})
        keep = _slices_with_content(e["image"], range(cut, depth), min_content)
        val.extend({**e, "slices": [k, k + 1]} for k in keep)
    return train, val


def _slices_with_content(path: PathLike, slices: range, min_content: float) -> list[int]:
    vol = load_image(path).as_tensor()[0].numpy()
    threshold = 0.1 * float(np.percentile(vol, 99)) + 0.9 * float(vol.min())
    return [k for k in slices if float((vol[..., k] > threshold).mean()) >= min_content]


def limit_per_modality(datalist: Sequence[dict[str, Any]], n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """At most ``n`` entries per modality, drawn at random (seeded) — keeps per-epoch validation cheap and balanced."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    by_mod: dict[str, list[dict[str, Any]]] = {}
    for entry in datalist:
        by_mod.setdefault(entry.get("modality", "xray"), []).append(entry)
    for entries in by_mod.values():
        out.extend(entries if len(entries) <= n else rng.sample(entries, n))
    return out


def modality_weights(datalist: Sequence[dict[str, Any]], shares: dict[str, float] | None = None) -> list[float]:
    """Per-entry sampling weights so each modality gets its ``share`` of draws (default: equal).

    Use with ``torch.utils.data.WeightedRandomSampler`` (or MONAI's
    ``DistributedWeightedRandomSampler``) so a few CT/MR volumes are not drowned
    by hundreds of radiographs.
    """
    counts = Counter(e.get("modality", "xray") for e in datalist)
    shares = shares or {m: 1.0 / len(counts) for m in counts}
    return [shares.get(e.get("modality", "xray"), 0.0) / counts[e.get("modality", "xray")] for e in datalist]
