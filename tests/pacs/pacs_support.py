"""Test support for the PACS tests: a real Orthanc on loopback, small DICOM series, a connection-dropping proxy.

Orthanc (Debian packages ``orthanc`` and ``orthanc-dicomweb``, installed by ``make test``)
is started with a temporary configuration and storage, HTTP bound to 127.0.0.1, basic
authentication on, and the DICOMweb plugin at ``/dicom-web/``.
"""

from __future__ import annotations

import base64
import copy
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
USER, PASSWORD = "medsr", "orthanc-test-password"
PLUGIN_CANDIDATES = [Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"), *sorted(Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*"))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc process: REST helpers on its own API (independent of medsr's clients)."""

    def __init__(self, root: Path, modalities: dict[str, tuple[str, int]]) -> None:
        self.root = root
        self.http_port, self.dicom_port = free_port(), free_port()
        self.aet = "ORTHANC"
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb = f"{self.url}/dicom-web"
        plugin = next(p for p in PLUGIN_CANDIDATES if p.exists())
        (root / "db").mkdir(parents=True)
        config = {
            "Name": "medsr-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": self.aet,
            "RemoteAccessAllowed": False, "HttpBindAddress": "127.0.0.1",  # loopback only
            "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [str(plugin)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomModalities": {name: [aet, "127.0.0.1", port] for name, (aet, port) in modalities.items()},
            "DicomScuTimeout": 10, "DicomScpTimeout": 10, "ConcurrentJobs": 1,
        }
        (root / "orthanc.json").write_text(json.dumps(config))
        self.log = open(root / "orthanc.log", "wb")
        self.proc = subprocess.Popen(["Orthanc", str(root / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/system")
                break
            except (OSError, urllib.error.URLError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Orthanc did not start: {(root / 'orthanc.log').read_text()[-2000:]}")
                time.sleep(0.1)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
        if body is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=120) as rsp:
            return rsp.read()

    def get(self, path: str) -> object:
        return json.loads(self.request("GET", path))

    def post(self, path: str, payload: object) -> object:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return json.loads(self.request("POST", path, data, "application/dicom" if isinstance(payload, bytes) else "application/json"))

    def upload(self, files: list[Path]) -> dict:
        """POST /instances for each file; returns the last answer (ParentStudy, ParentSeries ids)."""
        answer: dict = {}
        for f in files:
            answer = self.post("/instances", f.read_bytes())  # type: ignore[assignment]
        return answer

    def series_of_study(self, study_uid: str) -> list[dict]:
        """The series of a study (by StudyInstanceUID) with their MainDicomTags and Instances ids."""
        found = self.post("/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
        if not found:
            return []
        return self.get(f"/studies/{found[0]}/series")  # type: ignore[return-value]

    def instance_datasets(self, series: dict) -> list[pydicom.Dataset]:
        """Every instance of a series as Orthanc stores it, sorted by InstanceNumber."""
        from io import BytesIO

        out = [pydicom.dcmread(BytesIO(self.request("GET", f"/instances/{i}/file"))) for i in series["Instances"]]
        return sorted(out, key=lambda ds: int(ds.InstanceNumber))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def make_series(folder: Path, n: int = 3, study_uid: str | None = None, seed: int = 0) -> list[Path]:
    """``n`` slices of the sample CT (128x128) at z = 2.5 k mm in one new series (of ``study_uid``, or a new study).

    Pixel values differ per slice (+ 7 k + seed) so that a swapped slice shows.
    """
    base = pydicom.dcmread(str(SAMPLE / "ct_small.dcm"))
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        ds = copy.deepcopy(base)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [ipp[0], ipp[1], 2.5 * k]
        ds.SliceLocation = 2.5 * k
        ds.InstanceNumber = k + 1
        ds.PixelData = (ds.pixel_array + 7 * k + seed).astype(ds.pixel_array.dtype).tobytes()
        path = folder / f"slice_{k:02d}.dcm"
        ds.save_as(str(path))
        paths.append(path)
    return paths


class DropProxy:
    """A TCP proxy to ``port`` that cuts a connection once the server has sent ``limit`` bytes on it."""

    def __init__(self, port: int, limit: int) -> None:
        self.upstream, self.limit = port, limit
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.cut = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.limit), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: limit - sent])
                    self.cut += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.sock.close()
