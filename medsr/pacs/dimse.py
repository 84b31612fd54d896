"""DIMSE transfers through pynetdicom: C-FIND to list, C-GET or C-MOVE to pull, C-STORE to push.

A ``dicom://AET@HOST:PORT/...`` URL (:mod:`medsr.pacs.locations`) names the node.
C-GET needs nothing from the PACS's configuration beyond accepting medsr's calling
AE title. C-MOVE makes the PACS open its own association back to medsr: the PACS
must know the calling AE title (``calling=``, default ``MEDSR``) at this machine's
address and ``move-port``, where medsr runs a storage SCP for the time of the move.
Received instances are written durably (fsync) before they are acknowledged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from medsr._lazy import optional_module
from medsr.errors import InputError, MedsrError, OutputError

from .locations import DimseLocation
from .transfer import NON_IMAGE_MODALITIES, check_complete, instance_name, write_bytes_durably

__all__ = ["list_series", "download_series", "store_files", "TIMEOUT"]

_HINT = "DIMSE needs pynetdicom: pip install 'medsr[pacs]'"
TIMEOUT = 60.0  # seconds for association set-up, each DIMSE message, and an idle network
_STATUS_SUCCESS = 0x0000
_PENDING = (0xFF00, 0xFF01)


def _pynetdicom() -> Any:
    mod = optional_module("pynetdicom")
    if mod is None:
        raise MedsrError(_HINT)
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # its log lines can quote peers' identifiers
    return mod


def _ae(calling: str) -> Any:
    pnd = _pynetdicom()
    ae = pnd.AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    return ae


def _associate(ae: Any, loc: DimseLocation, error: type[MedsrError], **kwargs: Any) -> Any:
    assoc = ae.associate(loc.address, loc.port, ae_title=loc.ae_title, **kwargs)
    if not assoc.is_established:
        why = "rejected the association (is medsr's AE title known to it?)" if assoc.is_rejected else "cannot be reached"
        raise error(f"DICOM node {loc.host} {why}.")
    return assoc


def _find(loc: DimseLocation, query: Any) -> list[Any]:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    ae = _ae(loc.calling_ae)
    ae.add_requested_context(FIND)
    assoc = _associate(ae, loc, InputError)
    found, status = [], None
    try:
        for status, identifier in assoc.send_c_find(query, FIND):
            if status is not None and status.get("Status") in _PENDING and identifier is not None:
                found.append(identifier)
    finally:
        assoc.release()
    if status is None or status.get("Status") != _STATUS_SUCCESS:
        code = "no answer" if status is None or "Status" not in status else f"status 0x{status.Status:04X}"
        raise InputError(f"DICOM node {loc.host}: C-FIND failed ({code}).")
    return found


def _query(level: str, **keys: Any) -> Any:
    from pydicom import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def list_series(loc: DimseLocation) -> list[str]:
    """SeriesInstanceUIDs to process: the series of a series URL, or every image series of a study URL (C-FIND)."""
    if loc.study_uid is None:
        raise InputError("a dicom:// input must name a study (…/studies/<uid>) or a series (…/studies/<uid>/series/<uid>).")
    if loc.series_uid is not None:
        return [loc.series_uid]
    found = _find(loc, _query("SERIES", StudyInstanceUID=loc.study_uid, SeriesInstanceUID="", Modality=""))
    uids = [str(s.SeriesInstanceUID) for s in found if str(s.get("Modality", "")).upper() not in NON_IMAGE_MODALITIES]
    if not uids:
        raise InputError(f"DICOM node {loc.host}: the study has no image series.")
    return uids


def _storage_handler(folder: Path, received: set[str], allowed: set[str] | None = None) -> Any:
    """An EVT_C_STORE handler that writes each instance durably into ``folder`` before acknowledging it."""
    lock = threading.Lock()

    def handle(event: Any) -> int:
        sop = str(event.request.AffectedSOPInstanceUID)
        if allowed is not None and sop not in allowed:
            return 0xA900  # not part of what was asked for
        try:
            write_bytes_durably(event.encoded_dataset(), folder / instance_name(sop))
        except OSError:
            return 0xA700  # out of resources: not stored, so not acknowledged
        with lock:
            received.add(sop)
        return _STATUS_SUCCESS

    return handle


def download_series(loc: DimseLocation, series_uid: str, folder: Path) -> int:
    """Pull one series with C-GET (or C-MOVE, per ``loc.retrieve``) into ``folder``; returns the instance count.

    The instances are checked against a C-FIND of the series: a dropped association
    or a partial retrieve raises ``InputError`` (the caller deletes ``folder``).
    """
    pnd = _pynetdicom()
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

    listed = _find(loc, _query("IMAGE", StudyInstanceUID=loc.study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID="", SOPClassUID=""))
    expected = {str(i.SOPInstanceUID) for i in listed}
    classes = sorted({str(i.get("SOPClassUID", "")) for i in listed} - {""})
    if not expected:
        raise InputError(f"DICOM node {loc.host}: the series is empty or not found.")
    folder.mkdir(parents=True, exist_ok=True)
    received: set[str] = set()
    handler = [(pnd.evt.EVT_C_STORE, _storage_handler(folder, received, expected))]
    query = _query("SERIES", StudyInstanceUID=loc.study_uid, SeriesInstanceUID=series_uid)
    ae = _ae(loc.calling_ae)
    server = None
    if loc.retrieve == "get":
        if len(classes) > 120:
            raise InputError(f"DICOM node {loc.host}: the series mixes {len(classes)} SOP classes, more than one C-GET can negotiate.")
        ae.add_requested_context(GET)
        for cls in classes:
            ae.add_requested_context(cls, pnd.ALL_TRANSFER_SYNTAXES)
        roles = [pnd.build_role(cls, scp_role=True) for cls in classes]
        assoc = _associate(ae, loc, InputError, ext_neg=roles, evt_handlers=handler)
        responses = lambda: assoc.send_c_get(query, GET)  # noqa: E731
    else:
        for cls in classes:
            ae.add_supported_context(cls, pnd.ALL_TRANSFER_SYNTAXES)
        try:
            server = ae.start_server((loc.move_host, loc.move_port), block=False, evt_handlers=handler)
        except OSError as err:
            raise InputError(f"cannot listen on port {loc.move_port} for the C-MOVE ({err.strerror}); choose another move-port.") from None
        ae.add_requested_context(MOVE)
        assoc = _associate(ae, loc, InputError)
        responses = lambda: assoc.send_c_move(query, loc.calling_ae, MOVE)  # noqa: E731
    status = None
    try:
        for status, _identifier in responses():
            pass
        aborted = assoc.is_aborted
        if assoc.is_established:
            assoc.release()
    finally:
        if server is not None:
            server.shutdown()
    where = f"DICOM node {loc.host}"
    if aborted or status is None or "Status" not in status:
        raise InputError(f"{where} dropped the association during C-{loc.retrieve.upper()}; nothing was upscaled or stored.")
    check_complete(expected, received, where)  # a warning or failure status leaves some out
    return len(received)


def store_files(loc: DimseLocation, files: Sequence[Path]) -> int:
    """C-STORE DICOM files to ``loc`` over one association; raises ``OutputError`` when one is refused."""
    import pydicom

    pnd = _pynetdicom()
    headers = [pydicom.dcmread(str(f), stop_before_pixels=True) for f in files]
    syntaxes: dict[str, set[str]] = {}
    for ds in headers:
        syntaxes.setdefault(str(ds.SOPClassUID), set()).add(str(ds.file_meta.TransferSyntaxUID))
    if len(syntaxes) > 120:
        raise OutputError(f"{len(syntaxes)} SOP classes to store, more than one association can negotiate.")
    ae = _ae(loc.calling_ae)
    for cls, ts in syntaxes.items():
        ae.add_requested_context(cls, sorted(ts))
    assoc = _associate(ae, loc, OutputError)
    stored = 0
    try:
        for f in files:
            status = assoc.send_c_store(pydicom.dcmread(str(f)))
            if status is None or "Status" not in status:
                raise OutputError(f"DICOM node {loc.host} dropped the association after {stored} of {len(files)} derived instances.")
            if status.Status not in (_STATUS_SUCCESS, 0xB000, 0xB007, 0xB006):
                raise OutputError(f"DICOM node {loc.host} refused a derived instance (C-STORE status 0x{status.Status:04X}).")
            stored += 1
    finally:
        if assoc.is_established:
            assoc.release()
    return stored
