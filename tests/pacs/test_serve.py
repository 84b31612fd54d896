"""``medsr serve``: configuration checks, the allow-list, durable receipt, failures parked, and a real round trip.

The round trip runs the node as a subprocess (so it can be killed): Orthanc sends it two
studies, the node forwards both derived series back, and a SIGKILL between them loses
nothing: after a restart the second study is finished.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from medsr.errors import UsageError

from pacs_support import make_series

pynetdicom = pytest.importorskip("pynetdicom", reason="pynetdicom is not installed (pip install 'medsr[pacs]')")

MEDSR = Path(sys.executable).parent / "medsr"


def _config(tmp: Path, port: int, forward: str, *, quiet: float = 0.0, retries: int = 3, retry_delay: float = 60,
            allow: str = '[[allow]]\nae_title = "ORTHANC"\nhost = "127.0.0.1"\n', model: str = "bicubic") -> Path:
    path = tmp / "serve.toml"
    path.write_text(
        f'[node]\nae_title = "MEDSRNODE"\nhost = "127.0.0.1"\nport = {port}\nstorage = "{tmp / "node"}"\nquiet_period = {quiet}\n\n'
        f"{allow}\n[model]\nname = \"{model}\"\nscale = 2\n\n"
        f'[forward]\nto = "{forward}"\nretries = {retries}\nretry_delay = {retry_delay}\n'
    )
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('[[allow]]\nae_title = "ORTHANC"\nhost = "127.0.0.1"\n', ""), "[[allow]]"),
        (lambda t: t.replace("scale = 2", "scale = 3"), "`model.scale` must be 2 or 4"),
        (lambda t: t.replace("port = ", "port = 'x' #"), "`node.port` must be a int"),
        (lambda t: t.replace('to = "dicom://', 'to = "ftp://'), "`forward.to`"),
        (lambda t: t + "[extra]\n", "unknown section"),
        (lambda t: t.replace("[node]", "[node"), "not valid TOML"),
        (lambda t: t.replace('host = "127.0.0.1"\n\n', 'host = "no-such-host.invalid"\n\n'), "does not resolve"),
    ],
)
def test_config_errors_name_the_key(tmp_path, edit, message):
    from medsr.pacs.serve import load_config

    path = _config(tmp_path, 11112, "dicom://PACS@127.0.0.1:104")
    path.write_text(edit(path.read_text()))
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_receipt_is_fsynced_before_it_returns(tmp_path, monkeypatch):
    from medsr.pacs import transfer

    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(transfer.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    path = transfer.write_bytes_durably(b"DICM", tmp_path / "x.dcm")
    assert path.read_bytes() == b"DICM" and len(synced) == 2  # the file, then its folder
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]  # no temporary left


def _node(tmp_path: Path, port: int, forward: str, show_ids: bool = False, **kw):
    from medsr.inference import load_upscaler
    from medsr.pacs.serve import Node, load_config

    lines: list[str] = []
    cfg = load_config(_config(tmp_path, port, forward, **kw))
    node = Node(cfg, load_upscaler("bicubic", 2), show_ids=show_ids, log=lines.append)
    node.start()
    return node, lines


def _send(port: int, files: list[Path], calling: str = "ORTHANC", bind: str = "127.0.0.1"):
    """C-STORE ``files`` to the node as ``calling`` from address ``bind``; the association (or None when refused)."""
    from pynetdicom.sop_class import CTImageStorage

    ae = pynetdicom.AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="MEDSRNODE", bind_address=(bind, 0))
    if not assoc.is_established:
        return None, assoc
    statuses = [assoc.send_c_store(pydicom.dcmread(str(f))).Status for f in files]
    assoc.release()
    return statuses, assoc


def test_allow_list_refuses_other_ae_titles_and_hosts(tmp_path):
    from pacs_support import free_port

    port = free_port()
    node, lines = _node(tmp_path, port, "dicom://PACS@127.0.0.1:9", quiet=3600)
    try:
        files = make_series(tmp_path / "src", n=2)
        statuses, assoc = _send(port, files, calling="INTRUDER")
        assert statuses is None and assoc.is_rejected  # AE title not on the list: A-ASSOCIATE-RJ
        statuses, assoc = _send(port, files, bind="127.0.0.2")
        assert statuses is None  # a host not on the list: the connection is closed at once
        assert not list((tmp_path / "node" / "incoming").iterdir())
        statuses, _ = _send(port, files)
        assert statuses == [0, 0]
        received = list((tmp_path / "node" / "incoming").rglob("*.dcm"))
        assert len(received) == 2  # acknowledged = on disk
    finally:
        node.stop()
    text = "\n".join(lines)
    assert "'INTRUDER'" in text and "127.0.0.2" in text and "not on the allow-list" in text
    uid = str(pydicom.dcmread(str(files[0])).SeriesInstanceUID)
    assert uid not in text


def test_failed_forward_is_retried_then_parked(tmp_path):
    from pacs_support import free_port

    port, dead = free_port(), free_port()  # nothing listens on `dead`
    node, lines = _node(tmp_path, port, f"dicom://PACS@127.0.0.1:{dead}", quiet=0.2, retries=1, retry_delay=0.5)
    try:
        files = make_series(tmp_path / "src", n=2)
        assert _send(port, files)[0] == [0, 0]
        deadline = time.monotonic() + 60
        while not list((tmp_path / "node" / "failed").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        node.stop()
    parked = list((tmp_path / "node" / "failed").iterdir())
    assert len(parked) == 1 and len(list((parked[0] / "in").glob("*.dcm"))) == 2  # nothing lost
    assert "cannot be reached" in (parked[0] / "reason.txt").read_text()
    text = "\n".join(lines)
    assert "attempt 1 failed" in text and "FAILED after 2 attempt(s)" in text
    ds = pydicom.dcmread(str(files[0]))
    assert str(ds.SeriesInstanceUID) not in text and str(ds.StudyInstanceUID) not in text


@pytest.mark.slow
def test_forward_with_stowrs_and_show_ids(orthanc, ports, tmp_path):
    node, lines = _node(tmp_path, ports["node"], orthanc.dicomweb, show_ids=True, quiet=0.5)
    try:
        files = make_series(tmp_path / "src", n=2)
        assert _send(ports["node"], files)[0] == [0, 0]
        ds = pydicom.dcmread(str(files[0]))
        _wait(lambda: [len(x["Instances"]) for x in orthanc.series_of_study(str(ds.StudyInstanceUID))] == [2],
              "the derived series with both instances (STOW-RS)", 60)
    finally:
        node.stop()
    (derived,) = orthanc.series_of_study(str(ds.StudyInstanceUID))  # only the derived series: the source never went to Orthanc
    assert derived["MainDicomTags"]["SeriesInstanceUID"] != str(ds.SeriesInstanceUID) and len(derived["Instances"]) == 2
    text = "\n".join(lines)
    assert str(ds.SeriesInstanceUID) in text and str(ds.StudyInstanceUID) in text  # --show-ids


def _wait(predicate, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.mark.slow
def test_serve_round_trip_survives_a_kill(orthanc, ports, tmp_path):
    forward = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}?calling=MEDSRNODE"
    cfg = _config(tmp_path, ports["node"], forward, quiet=4.0, model="edsr_m")
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([str(MEDSR), "serve", "-c", str(cfg)], stderr=open(log_path, "a"), stdout=subprocess.DEVNULL, env=env)
        _wait(lambda: log_path.read_text().count("listening as") > starts.count(1) or proc.poll() is not None, "the node to listen")
        assert proc.poll() is None, log_path.read_text()
        starts.append(1)
        return proc

    def derived_series(study_uid: str, files: list) -> list[dict]:
        source = str(pydicom.dcmread(str(files[0])).SeriesInstanceUID)
        return [x for x in orthanc.series_of_study(study_uid) if x["MainDicomTags"]["SeriesInstanceUID"] != source]

    def forwarded(k: int) -> bool:  # the derived series is in Orthanc with all its instances (they arrive one by one)
        study_uid, _, files = studies[k]
        return any(len(x["Instances"]) == len(files) for x in derived_series(study_uid, files))

    starts: list[int] = []
    studies = []
    for k in range(2):
        files = make_series(tmp_path / f"study{k}", n=3, seed=k)
        answer = orthanc.upload(files)
        studies.append((str(pydicom.dcmread(str(files[0])).StudyInstanceUID), answer["ParentStudy"], files))

    proc = start()
    try:
        orthanc.post("/modalities/node/store", {"Resources": [studies[0][1]], "Synchronous": True})
        _wait(lambda: forwarded(0), "the first derived series")
        # the second study: received (acknowledged) and then the node is killed before its quiet period ends
        orthanc.post("/modalities/node/store", {"Resources": [studies[1][1]], "Synchronous": True})
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(list((tmp_path / "node" / "incoming").rglob("*.dcm"))) == 3  # every acknowledged instance is on disk
        assert len(orthanc.series_of_study(studies[1][0])) == 1
        proc = start()
        _wait(lambda: forwarded(1), "the second derived series after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    for study_uid, _, files in studies:
        derived = derived_series(study_uid, files)
        assert len(derived) == 1 and len(derived[0]["Instances"]) == len(files)  # one derived instance per input
        ds = orthanc.instance_datasets(derived[0])[0]
        assert (ds.Rows, ds.Columns) == (256, 256) and "DERIVED" in ds.ImageType
    text = log_path.read_text()
    assert text.count("model loaded") == 2  # once per start, not per series
    assert "resuming 1 unfinished series" in text and text.count("forwarded the derived series") == 2
    assert not list((tmp_path / "node" / "work").iterdir()) and not list((tmp_path / "node" / "incoming").iterdir())
    for study_uid, _, files in studies:
        assert study_uid not in text and str(pydicom.dcmread(str(files[0])).SeriesInstanceUID) not in text


def test_cli_config_error_is_one_line_exit_2(tmp_path):
    from typer.testing import CliRunner

    from medsr.cli import app
    from medsr.errors import EXIT_USAGE

    cfg = _config(tmp_path, 11112, "dicom://PACS@127.0.0.1:104")
    cfg.write_text(cfg.read_text().replace("scale = 2", "scale = 8"))
    res = CliRunner().invoke(app, ["serve", "-c", str(cfg)])
    assert res.exit_code == EXIT_USAGE and res.stderr == "medsr: error: `model.scale` must be 2 or 4, got 8.\n"
