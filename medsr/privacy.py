"""The one rule for identifiers in what medsr writes or prints, and for message lines.

Without ``--show-ids``, nothing medsr writes (tables, JSON, reports, ``errors.csv``)
or prints carries a file name, folder name, header string or UID from the input:

- every input is named by a pseudonym (``case-0001``), assigned in a stable order;
- a class label (a sub-folder or a datalist's ``class``) is shown only when it is one
  of the declared classes (``--classes``, default :data:`DEFAULT_CLASSES`), matched
  case-insensitively; any other label becomes ``class-01``, ``class-02``...;
- every message about an input goes through :meth:`Redactor.text`: the input's paths
  and names are replaced by its pseudonym, quoted header strings and UIDs are removed;
- a private key file (:data:`KEY_FILE`, permissions 0600) maps each pseudonym to its
  input (path, and the datalist row), so that a failure can still be traced by whoever
  ran the command. It is the only file that holds identifiers; keep it, do not share it.

With ``show_ids=True`` names and labels are shown as they are (still one line each).

Every message line medsr prints or records goes through :func:`one_line`: control
characters (a newline in a file name would forge a second line), and bytes of file
names that are not valid UTF-8, are escaped.

Used by ``medsr evaluate`` / ``medsr report`` and by anything else that names inputs
in its outputs (e.g. a DICOM node's logs).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_CLASSES", "KEY_FILE", "one_line", "parse_classes", "Redactor"]

DEFAULT_CLASSES: tuple[str, ...] = ("Covid", "Normal", "Pneumonia")
"""The finding classes medsr knows; labels outside the declared list are pseudonymised."""

KEY_FILE = "case-key.private.csv"
"""Name of the private key file (pseudonym -> input) written beside the results."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UID = re.compile(r"(?<![\w.])\d+(?:\.\d+){3,}(?![\w.])")
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_MAX_LINE = 2000


def one_line(text: Any, limit: int = _MAX_LINE) -> str:
    """``text`` as one printable line: control characters and undecodable bytes escaped, length bounded.

    ``"a\\nb"`` -> ``"a\\\\nb"``; a file name holding the byte 0xff (read by Python as the
    surrogate U+DCFF) -> ``"\\\\xff"``. Lines over ``limit`` characters are shortened with "...".
    """
    s = str(text)
    if any("\udc80" <= ch <= "\udcff" for ch in s):  # os.fsdecode's escapes of bytes that are not UTF-8
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    s = s.encode("utf-8", "backslashreplace").decode("utf-8")  # any other lone surrogate
    s = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), s)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def parse_classes(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"Covid,Normal"`` -> ``("Covid", "Normal")``; ``None`` -> :data:`DEFAULT_CLASSES`."""
    if text is None:
        return DEFAULT_CLASSES
    parts = text.split(",") if isinstance(text, str) else [str(p) for p in text]
    return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))


class Redactor:
    """Pseudonyms for inputs and class labels, and the redaction of messages about them.

    Args:
        show_ids: show names and labels as they are (only :func:`one_line` applies).
        classes: the declared class labels shown as they are (default :data:`DEFAULT_CLASSES`).
        prefix: the pseudonym prefix (``case`` -> ``case-0001``).

    Example::

        red = Redactor()
        cid = red.case("data/DOE_JOHN/img.dcm", files=[...], detail="datalist row 3")
        red.label("DOE_JOHN")          # 'class-01'
        red.label("covid")             # 'Covid'
        red.text("data/DOE_JOHN/img.dcm: holds 2 series ('CT DOE^JOHN')")  # "case-0001: holds 2 series ('...')"
        red.write_key(out / KEY_FILE)
    """

    def __init__(self, show_ids: bool = False, classes: Iterable[str] | None = None, prefix: str = "case") -> None:
        self.show_ids = bool(show_ids)
        self.classes = parse_classes(None if classes is None else list(classes))
        self._declared = {c.casefold(): c for c in self.classes}
        self.prefix = prefix
        self._names: list[tuple[str, str]] = []  # (text to replace, pseudonym), longest first when used
        self._key: list[tuple[str, str, str, str]] = []  # (pseudonym, kind, input, detail)
        self._labels: dict[str, str] = {}
        self._cases = 0

    # ------------------------------------------------------------------ pseudonyms

    def case(self, path: Any, files: Iterable[Any] = (), detail: str = "") -> str:
        """The next pseudonym (``case-0001``...) for the input ``path`` (and the ``files`` of a series)."""
        self._cases += 1
        pid = f"{self.prefix}-{self._cases:04d}"
        self.register(pid, path, kind="case", detail=detail)
        for k, f in enumerate(files):
            if Path(str(f)) != Path(str(path)):
                self._add_names(f"{pid}/file-{k + 1:04d}", f)
        return pid

    def register(self, pseudonym: str, path: Any, kind: str = "input", detail: str = "") -> str:
        """Record ``path`` under ``pseudonym`` (key file and redaction); returns ``pseudonym``."""
        self._key.append((pseudonym, kind, os.fsdecode(str(path)) if path is not None else "", detail))
        if path is not None:
            self._add_names(pseudonym, path)
        return pseudonym

    def _add_names(self, pseudonym: str, path: Any) -> None:
        p = Path(str(path))
        forms = {str(path), str(p)}
        try:
            forms |= {str(p.resolve()), str(p.absolute())}
        except (OSError, RuntimeError, ValueError):
            pass
        forms |= {one_line(f) for f in list(forms)}  # as it appears in an escaped message
        if len(p.name) >= 3:
            forms.add(p.name)
        self._names.extend((f, pseudonym) for f in forms if f and f not in (".", "/"))
        self._names.sort(key=lambda t: -len(t[0]))

    def label(self, name: Any) -> str:
        """A class label as shown: declared ones (any case) in their declared spelling, others as ``class-NN``."""
        text = str(name)
        if self.show_ids or text == "all":
            return one_line(text)
        declared = self._declared.get(text.strip().casefold())
        if declared is not None:
            return declared
        if text not in self._labels:
            pid = f"class-{len(self._labels) + 1:02d}"
            self._labels[text] = pid
            self.register(pid, None, kind="class", detail=text)
            self._names.append((text, pid))
            self._names.sort(key=lambda t: -len(t[0]))
        return self._labels[text]

    def shown(self, pseudonym: str, path: Any) -> str:
        """What tables show for an input: its path with ``show_ids``, else its pseudonym."""
        return one_line(os.fsdecode(str(path))) if self.show_ids else pseudonym

    # ------------------------------------------------------------------ messages

    def text(self, message: Any) -> str:
        """``message`` as one line; without ``show_ids`` with every input name, quoted string and UID removed."""
        s = str(message)
        if not self.show_ids:
            for name, pid in self._names:
                if name in s:
                    s = s.replace(name, pid)
            s = _QUOTED.sub("'...'", s)
            s = _UID.sub("<uid>", s)
        return one_line(s)

    # ------------------------------------------------------------------ key file

    def key_rows(self) -> list[tuple[str, str, str, str]]:
        """``(pseudonym, kind, input, detail)`` of every pseudonym given so far."""
        return list(self._key)

    def write_key(self, path: Any) -> Path | None:
        """Write the private key file (CSV ``pseudonym,kind,input,detail``, mode 0600), atomically.

        Nothing is written with ``show_ids`` (names are shown anyway) or when no pseudonym was given.
        """
        from medsr.io import atomic_path  # deferred: one_line() serves light paths (CLI errors); medsr.io pulls in torch and MONAI

        if self.show_ids or not self._key:
            return None
        target = Path(path)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["pseudonym", "kind", "input", "detail"])
        writer.writerows(self._key)
        data = buf.getvalue().encode("utf-8", "surrogateescape")  # input names byte for byte, even if not UTF-8
        with atomic_path(target) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        return target
