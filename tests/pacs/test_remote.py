"""``medsr upscale`` from and to a real Orthanc: DICOMweb (WADO-RS/STOW-RS) and DIMSE (C-GET/C-MOVE + C-STORE).

Each test uploads a small CT series to a fresh Orthanc, runs the CLI on its URL, and
checks with Orthanc's own REST API that the derived series is in the same study, one
instance per input, with the geometry, UIDs and pixels of a local run of
``upscale_path`` on the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from medsr.cli import app
from medsr.errors import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from medsr.inference import load_upscaler, upscale_path

from pacs_support import DropProxy, make_series

runner = CliRunner()


def _upscale(*args: str) -> object:
    return runner.invoke(app, ["upscale", *args, "--no-progress"])


def _local_run(files: list[Path], tmp: Path, model: str) -> list[pydicom.Dataset]:
    """The derived series of the same files upscaled from a folder (the reference)."""
    out = tmp / "local_out"
    upscale_path(files[0].parent, out, load_upscaler(model, 2), progress=False)
    derived = [pydicom.dcmread(str(f)) for f in sorted(out.rglob("*.dcm"))]
    return sorted(derived, key=lambda ds: int(ds.InstanceNumber))


def _check_same_as_local(remote: list[pydicom.Dataset], local: list[pydicom.Dataset], sources: list[Path]) -> None:
    src = sorted((pydicom.dcmread(str(f)) for f in sources), key=lambda ds: int(ds.InstanceNumber))
    assert len(remote) == len(local) == len(src)  # one derived instance per input
    assert len({ds.SeriesInstanceUID for ds in remote}) == 1
    assert remote[0].SeriesInstanceUID not in (src[0].SeriesInstanceUID, local[0].SeriesInstanceUID)  # new series
    assert {ds.SOPInstanceUID for ds in remote}.isdisjoint({ds.SOPInstanceUID for ds in src})
    for r, l, s in zip(remote, local, src):
        assert r.StudyInstanceUID == s.StudyInstanceUID  # same study
        assert (r.Rows, r.Columns) == (l.Rows, l.Columns) == (2 * s.Rows, 2 * s.Columns)
        for key in ("PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient", "ImageType", "SeriesNumber", "DerivationDescription"):
            assert r.get(key) == l.get(key), key
        if "SourceImageSequence" in l:  # provenance (issue 14) comes through the same writer
            assert r.SourceImageSequence[0].ReferencedSOPInstanceUID == s.SOPInstanceUID
        np.testing.assert_array_equal(r.pixel_array, l.pixel_array)  # pixels identical to the local run


def _derived(orthanc, study_uid: str, source_series_uid: str) -> list[list[pydicom.Dataset]]:
    series = orthanc.series_of_study(study_uid)
    return [orthanc.instance_datasets(s) for s in series if s["MainDicomTags"]["SeriesInstanceUID"] != source_series_uid]


@pytest.mark.slow
def test_dicomweb_series_url_to_dicomweb_root(orthanc, tmp_path):
    files = make_series(tmp_path / "src", n=3)
    orthanc.upload(files)
    ds = pydicom.dcmread(str(files[0]))
    url = f"{orthanc.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    res = _upscale(url, "-o", orthanc.dicomweb, "-s", "2", "-m", "edsr_m")
    assert res.exit_code == EXIT_OK, res.stderr
    assert ds.StudyInstanceUID not in res.stderr and ds.SeriesInstanceUID not in res.stderr  # no identifiers in the log
    derived = _derived(orthanc, ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert len(derived) == 1
    _check_same_as_local(derived[0], _local_run(files, tmp_path, "edsr_m"), files)


def test_dicomweb_study_url_upscales_every_image_series(orthanc, tmp_path):
    a = make_series(tmp_path / "a", n=2)
    study = str(pydicom.dcmread(str(a[0])).StudyInstanceUID)
    b = make_series(tmp_path / "b", n=3, study_uid=study, seed=5)
    orthanc.upload(a + b)
    out = tmp_path / "local"
    res = _upscale(f"{orthanc.dicomweb}/studies/{study}", "-o", str(out))  # a PACS input, a folder output
    assert res.exit_code == EXIT_OK, res.stderr
    written = sorted(out.rglob("*.dcm"))
    assert len(written) == 5 and len({pydicom.dcmread(str(f)).SeriesInstanceUID for f in written}) == 2
    assert all(study not in p.as_posix() for p in written)  # folders named by hash, not by UID


@pytest.mark.parametrize("credentials", ["none", "netrc"])
def test_dicomweb_credentials_from_environment_or_netrc(orthanc, tmp_path, monkeypatch, credentials):
    from pacs_support import PASSWORD, USER

    files = make_series(tmp_path / "src", n=1)
    orthanc.upload(files)
    ds = pydicom.dcmread(str(files[0]))
    monkeypatch.delenv("MEDSR_DICOMWEB_USER")
    monkeypatch.delenv("MEDSR_DICOMWEB_PASSWORD")
    if credentials == "netrc":
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
    res = _upscale(f"{orthanc.dicomweb}/studies/{ds.StudyInstanceUID}", "-o", orthanc.dicomweb)
    if credentials == "none":
        assert res.exit_code == EXIT_INPUT
        assert "HTTP 401" in res.stderr and "MEDSR_DICOMWEB_USER" in res.stderr and "Traceback" not in res.stderr
        assert ds.StudyInstanceUID not in res.stderr
    else:
        assert res.exit_code == EXIT_OK, res.stderr
        assert len(orthanc.series_of_study(str(ds.StudyInstanceUID))) == 2


@pytest.mark.parametrize("retrieve", ["get", "move"])
def test_dimse_pull_and_cstore(orthanc, ports, tmp_path, retrieve):
    files = make_series(tmp_path / "src", n=3)
    orthanc.upload(files)
    ds = pydicom.dcmread(str(files[0]))
    node = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    options = "?retrieve=get" if retrieve == "get" else f"?retrieve=move&move-port={ports['move']}&move-host=127.0.0.1"
    url = f"{node}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}{options}"
    res = _upscale(url, "-o", node, "-m", "bicubic")
    assert res.exit_code == EXIT_OK, res.stderr
    derived = _derived(orthanc, ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert len(derived) == 1
    _check_same_as_local(derived[0], _local_run(files, tmp_path, "bicubic"), files)


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_connection_dropped_mid_series(orthanc, tmp_path, protocol):
    files = make_series(tmp_path / "src", n=4)  # 4 x 32 kB of pixels; the proxy cuts after 40 kB
    orthanc.upload(files)
    ds = pydicom.dcmread(str(files[0]))
    if protocol == "dicomweb":
        proxy = DropProxy(orthanc.http_port, 40_000)
        url = f"http://127.0.0.1:{proxy.port}/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        out = orthanc.dicomweb
    else:
        proxy = DropProxy(orthanc.dicom_port, 40_000)
        url = f"dicom://{orthanc.aet}@127.0.0.1:{proxy.port}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        out = f"dicom://{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    try:
        res = _upscale(url, "-o", out)
    finally:
        proxy.close()
    assert proxy.cut >= 1
    assert res.exit_code == EXIT_INPUT, res.stdout + res.stderr
    assert "dropped" in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and ds.SeriesInstanceUID not in res.stderr
    assert len(orthanc.series_of_study(str(ds.StudyInstanceUID))) == 1  # no derived series, not even part of one


@pytest.mark.parametrize(
    "url, output",
    [
        ("http://user:pw@127.0.0.1:1/dicom-web/studies/1.2", "out"),
        ("http://127.0.0.1:1/dicom-web/studies/1.2/series", "out"),
        ("http://127.0.0.1:1/dicom-web/studies/not-a-uid", "out"),
        ("dicom://127.0.0.1:104/studies/1.2", "out"),
        ("dicom://PACS@127.0.0.1:104/studies/1.2?retrieve=move", "out"),
        ("dicom://PACS@127.0.0.1:104/studies/1.2?bogus=1", "out"),
        ("dicom://PACS@127.0.0.1:104/studies/1.2", None),
        ("ftp://127.0.0.1/x", "out"),
        ("dicom://PACS@127.0.0.1:104/studies/1.2", "http://127.0.0.1:1/dicom-web/studies/1.2"),
    ],
)
def test_bad_urls_are_usage_errors(url, output, tmp_path):
    res = _upscale(url, *(["-o", str(tmp_path / output) if output == "out" else output] if output else []))
    assert res.exit_code == EXIT_USAGE, res.stderr
    assert res.stderr.startswith("medsr: error:") and res.stderr.count("\n") == 1


def test_missing_local_input_is_a_usage_error(tmp_path):
    res = _upscale(str(tmp_path / "nope"))
    assert res.exit_code == EXIT_USAGE and "does not exist" in res.stderr


def _https_server(tmp_path: Path):
    """A loopback HTTPS server with a self-signed certificate that answers every GET with an empty JSON list."""
    import http.server
    import shutil
    import ssl
    import subprocess
    import threading

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, cert


@pytest.mark.slow
def test_https_certificates_are_checked(tmp_path, monkeypatch):
    pytest.importorskip("dicomweb_client", reason="dicomweb-client is not installed (pip install 'medsr[pacs]')")
    server, cert = _https_server(tmp_path)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    url = f"https://127.0.0.1:{server.server_address[1]}/dicom-web/studies/1.2.3"
    try:
        res = _upscale(url, "-o", str(tmp_path / "out"))
        assert res.exit_code == EXIT_INPUT and "certificate check failed" in res.stderr and "REQUESTS_CA_BUNDLE" in res.stderr
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # the private CA given: TLS passes, the (empty) study is listed
        res = _upscale(url, "-o", str(tmp_path / "out"))
        assert res.exit_code == EXIT_INPUT and "the study has no image series" in res.stderr
    finally:
        server.shutdown()
