"""DICOMweb transfers through ``dicomweb-client``: QIDO-RS to list, WADO-RS to pull, STOW-RS to push.

Credentials come from the environment, never from the command line:

- ``MEDSR_DICOMWEB_TOKEN``: sent as ``Authorization: Bearer <token>``;
- ``MEDSR_DICOMWEB_USER`` and ``MEDSR_DICOMWEB_PASSWORD``: HTTP basic authentication;
- otherwise a netrc file (``~/.netrc``, or the file named by ``NETRC``), looked up by
  ``requests`` for the server's host.

HTTPS certificates are always checked; a private CA is given with
``REQUESTS_CA_BUNDLE=/path/to/ca.pem``. Error messages name the server (``host:port``)
and the HTTP status, never a URL path (it holds UIDs) or a credential.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


from medsr._lazy import optional_module
from medsr.errors import InputError, MedsrError, OutputError

from .locations import DicomWebLocation
from .transfer import NON_IMAGE_MODALITIES, check_complete, write_part10

__all__ = ["client", "list_series", "download_series", "upload_files"]

_HINT = "DICOMweb needs dicomweb-client: pip install 'medsr[pacs]'"


def _session() -> Any:
    requests = optional_module("requests")
    if requests is None:
        raise MedsrError(_HINT)
    session = requests.Session()  # trust_env: netrc and REQUESTS_CA_BUNDLE are honoured; verify stays True
    token = os.environ.get("MEDSR_DICOMWEB_TOKEN")
    user = os.environ.get("MEDSR_DICOMWEB_USER")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif user:
        session.auth = (user, os.environ.get("MEDSR_DICOMWEB_PASSWORD", ""))
    return session


def client(loc: DicomWebLocation, timeout: float = 60.0) -> Any:
    """A ``dicomweb_client.DICOMwebClient`` for ``loc.root`` with medsr's credentials and certificate checks."""
    web = optional_module("dicomweb_client.web")
    if web is None:
        raise MedsrError(_HINT)
    return web.DICOMwebClient(url=loc.root, session=_session(), timeout=timeout)


def _explain(err: BaseException, loc: DicomWebLocation, doing: str) -> str:
    """One line about a failed request: server, status, kind of failure; no URL path, no credentials."""
    import requests

    where = f"DICOMweb server {loc.host}"
    if isinstance(err, requests.exceptions.SSLError):
        return f"{where}: HTTPS certificate check failed while {doing}; give the CA with REQUESTS_CA_BUNDLE=/path/ca.pem."
    if isinstance(err, requests.exceptions.HTTPError) and err.response is not None:
        code = err.response.status_code
        fix = {
            401: "; set MEDSR_DICOMWEB_USER/MEDSR_DICOMWEB_PASSWORD or MEDSR_DICOMWEB_TOKEN, or a netrc entry",
            403: "; the account may not do this",
            404: "; check the study/series UIDs and the service root",
        }.get(code, "")
        return f"{where} answered HTTP {code} {err.response.reason} while {doing}{fix}."
    if isinstance(err, requests.exceptions.ConnectionError):
        return f"{where}: cannot connect while {doing} (is it running and reachable?)."
    if isinstance(err, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return f"{where} dropped the connection while {doing}; nothing was kept, try again."
    if isinstance(err, requests.exceptions.Timeout):
        return f"{where} timed out while {doing}."
    return f"{where}: {type(err).__name__} while {doing}."


def _call(loc: DicomWebLocation, doing: str, fn: Callable[[], Any], error: type[MedsrError] = InputError) -> Any:
    import requests

    try:
        return fn()
    except MedsrError:
        raise
    except requests.exceptions.RequestException as err:
        raise error(_explain(err, loc, doing)) from None
    except (ValueError, OSError) as err:  # a malformed multipart body or JSON from the server
        raise error(f"DICOMweb server {loc.host} sent a malformed answer while {doing} ({type(err).__name__}).") from None


def _value(item: dict, tag: str) -> Any:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def list_series(loc: DicomWebLocation) -> list[str]:
    """SeriesInstanceUIDs to process: the series of a series URL, or every image series of a study URL."""
    if loc.study_uid is None:
        raise InputError("a DICOMweb input must name a study (…/studies/<uid>) or a series (…/studies/<uid>/series/<uid>).")
    if loc.series_uid is not None:
        return [loc.series_uid]
    web = client(loc)
    found = _call(loc, "listing the study's series", lambda: web.search_for_series(loc.study_uid, fields=["Modality"], get_remaining=True))
    uids = [_value(s, "0020000E") for s in found if str(_value(s, "00080060") or "").upper() not in NON_IMAGE_MODALITIES]
    uids = [u for u in uids if u]
    if not uids:
        raise InputError(f"DICOMweb server {loc.host}: the study has no image series.")
    return uids


def download_series(loc: DicomWebLocation, series_uid: str, folder: Path) -> int:
    """Pull one series with WADO-RS into ``folder`` (DICOM Part-10 files); returns the number of instances.

    The instances are checked against the QIDO-RS list of the series: a connection
    that drops, or a server that sends fewer instances than it lists, raises
    ``InputError`` (the caller deletes ``folder``).
    """
    web = client(loc)
    listed = _call(
        loc, "listing the series' instances",
        lambda: web.search_for_instances(loc.study_uid, series_uid, fields=["SOPInstanceUID"], get_remaining=True),
    )
    expected = {_value(i, "00080018") for i in listed} - {None}
    if not expected:
        raise InputError(f"DICOMweb server {loc.host}: the series is empty or not found.")
    folder.mkdir(parents=True, exist_ok=True)
    received: set[str] = set()

    def pull() -> None:
        # transfer-syntax=*: the instances as stored, so the pixels are exactly the PACS's
        for ds in web.iter_series(loc.study_uid, series_uid, media_types=(("application/dicom", "*"),)):
            received.add(str(ds.SOPInstanceUID))
            write_part10(ds, folder)

    _call(loc, "downloading a series", pull)
    check_complete(expected, received, f"DICOMweb server {loc.host}")
    return len(received)


def upload_files(loc: DicomWebLocation, files: Sequence[Path]) -> int:
    """Store DICOM files with one STOW-RS request; raises ``OutputError`` when any instance is refused."""
    import pydicom

    web = client(loc)
    datasets = [pydicom.dcmread(str(f)) for f in files]
    answer = _call(loc, "storing the derived series", lambda: web.store_instances(datasets), OutputError)
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        raise OutputError(f"DICOMweb server {loc.host} refused {len(failed)} of {len(datasets)} derived instances (STOW-RS FailedSOPSequence).")
    return len(datasets)
