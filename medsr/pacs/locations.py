"""PACS locations: DICOMweb and DIMSE URLs parsed into what the transfers need.

Two URL forms name a place in a PACS, as a folder names a place on disk:

- DICOMweb: ``http(s)://HOST[:PORT]/ROOT[/studies/STUDY_UID[/series/SERIES_UID]]``.
  Everything before ``/studies`` is the service root (QIDO-RS, WADO-RS and STOW-RS
  live under it, e.g. Orthanc's ``http://host:8042/dicom-web``).
- DIMSE: ``dicom://AET@HOST:PORT[/studies/STUDY_UID[/series/SERIES_UID]][?OPTIONS]``
  with the options ``calling=AET`` (medsr's own AE title, default ``MEDSR``),
  ``retrieve=get|move`` (C-GET, the default, or C-MOVE) and, for C-MOVE,
  ``move-port=PORT`` (where medsr's temporary storage SCP listens; the PACS must
  know ``calling`` at this host and port) and ``move-host=ADDRESS`` (the address
  it binds, default all interfaces).

Credentials never appear in a URL (they would end up in shell histories and logs):
a DICOMweb URL with ``user:password@`` is refused; see :mod:`medsr.pacs.dicomweb`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from medsr.errors import UsageError

__all__ = ["DicomWebLocation", "DimseLocation", "Location", "is_remote", "parse_location", "series_label"]

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_AET = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII without backslash, 16 at most
_SCHEMES = ("http://", "https://", "dicom://")


@dataclass(frozen=True)
class DicomWebLocation:
    """A DICOMweb service root, study or series."""

    root: str
    study_uid: str | None = None
    series_uid: str | None = None

    @property
    def host(self) -> str:
        """``host:port`` only: safe to print (no path, so no UID)."""
        return urlsplit(self.root).netloc


@dataclass(frozen=True)
class DimseLocation:
    """A DICOM node (AE title, host, port), optionally a study or series on it."""

    ae_title: str
    address: str
    port: int
    study_uid: str | None = None
    series_uid: str | None = None
    calling_ae: str = "MEDSR"
    retrieve: str = "get"
    move_port: int | None = None
    move_host: str = ""

    @property
    def host(self) -> str:
        """``AET@host:port``: safe to print."""
        return f"{self.ae_title}@{self.address}:{self.port}"


Location = DicomWebLocation | DimseLocation


def is_remote(text: str | None) -> bool:
    """True when ``text`` is a DICOMweb (http/https) or DIMSE (dicom://) URL rather than a path."""
    return text is not None and str(text).lower().startswith(_SCHEMES)


def series_label(uid: str, kind: str = "series") -> str:
    """A short, stable name for a series (or study...) that reveals nothing: ``<kind>_<8 hex of sha1(uid)>``."""
    return f"{kind}_{hashlib.sha1(uid.encode()).hexdigest()[:8]}"


def _uid(value: str, what: str) -> str:
    if not _UID.match(value) or len(value) > 64:
        raise UsageError(f"the {what} UID in the URL must be dotted digits of at most 64 characters; check the URL.")
    return value


def _study_series(path: str, url_kind: str) -> tuple[str, str | None, str | None]:
    """Split ``/root/studies/S/series/T`` into (root path, S, T)."""
    path = path.rstrip("/")
    parts = path.split("/")
    if "studies" not in parts:
        return path, None, None
    k = len(parts) - 1 - parts[::-1].index("studies")
    rest = parts[k + 1 :]
    if len(rest) == 1:
        return "/".join(parts[:k]), _uid(rest[0], "study"), None
    if len(rest) == 3 and rest[1] == "series":
        return "/".join(parts[:k]), _uid(rest[0], "study"), _uid(rest[2], "series")
    raise UsageError(
        f"a {url_kind} URL must end in /studies/<StudyInstanceUID> or /studies/<StudyInstanceUID>/series/<SeriesInstanceUID>; "
        "check the URL."
    )


def parse_location(text: str) -> Location:
    """Parse a DICOMweb or ``dicom://`` URL; raises ``UsageError`` naming what is wrong and the fix."""
    text = str(text).strip()
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError as err:
        raise UsageError(f"the PACS URL is not valid ({err}); expected http(s)://HOST:PORT/ROOT/... or dicom://AET@HOST:PORT/...") from None
    scheme = url.scheme.lower()
    if scheme in ("http", "https"):
        if url.username is not None or url.password is not None:
            raise UsageError(
                "credentials must not be part of a DICOMweb URL; set MEDSR_DICOMWEB_USER and MEDSR_DICOMWEB_PASSWORD "
                "(or MEDSR_DICOMWEB_TOKEN) in the environment, or use a netrc file."
            )
        if not url.hostname:
            raise UsageError("the DICOMweb URL has no host; expected http(s)://HOST[:PORT]/ROOT[/studies/...].")
        if url.query or url.fragment:
            raise UsageError("a DICOMweb URL takes no ?query or #fragment; name the study/series in the path.")
        root_path, study, series = _study_series(url.path, "DICOMweb")
        return DicomWebLocation(f"{scheme}://{url.netloc}{root_path}", study, series)
    if scheme == "dicom":
        if not url.username or not url.hostname or port is None:
            raise UsageError("a DICOM node URL must be dicom://AET@HOST:PORT[/studies/<uid>[/series/<uid>]]; something is missing.")
        aet = url.username
        if not _AET.match(aet):
            raise UsageError("the AE title in a dicom:// URL must be 1-16 printable characters without backslash.")
        if url.password is not None:
            raise UsageError("a dicom:// URL takes no password (DIMSE has none); remove the ':...' after the AE title.")
        _, study, series = _study_series(url.path, "dicom://")
        opts = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        unknown = sorted(set(opts) - {"calling", "retrieve", "move-port", "move-host"})
        if unknown:
            raise UsageError(f"unknown option(s) {', '.join(unknown)} in the dicom:// URL; known: calling, retrieve, move-port, move-host.")
        calling = opts.get("calling", "MEDSR")
        if not _AET.match(calling):
            raise UsageError(f"`calling` must be an AE title of 1-16 printable characters, got {calling!r}.")
        retrieve = opts.get("retrieve", "get").lower()
        if retrieve not in ("get", "move"):
            raise UsageError(f"`retrieve` must be get or move, got {retrieve!r}.")
        move_port = None
        if "move-port" in opts:
            if not opts["move-port"].isdigit() or not 0 < int(opts["move-port"]) < 65536:
                raise UsageError(f"`move-port` must be a TCP port (1-65535), got {opts['move-port']!r}.")
            move_port = int(opts["move-port"])
        if retrieve == "move" and move_port is None:
            raise UsageError("retrieve=move needs move-port=PORT: where medsr receives the images the PACS sends back.")
        return DimseLocation(aet, url.hostname, port, study, series, calling, retrieve, move_port, opts.get("move-host", ""))
    raise UsageError(f"unsupported URL scheme {url.scheme!r}; use http, https or dicom.")
