"""Fixtures for the PACS tests: a fresh Orthanc per test (skipped with the reason when it is absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pacs_support import PASSWORD, PLUGIN_CANDIDATES, USER, Orthanc, free_port


@pytest.fixture
def ports() -> dict[str, int]:
    """Ports medsr listens on during a test (C-MOVE destination, serve node), known to Orthanc as modalities."""
    return {"move": free_port(), "node": free_port()}


@pytest.fixture
def orthanc(tmp_path: Path, ports: dict[str, int], monkeypatch: pytest.MonkeyPatch):
    """A fresh Orthanc on loopback; medsr's DICOMweb credentials are set in the environment."""
    if shutil.which("Orthanc") is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; `make test` does it)")
    if not any(p.exists() for p in PLUGIN_CANDIDATES):
        pytest.skip("the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb; `make test` does it)")
    pytest.importorskip("dicomweb_client", reason="dicomweb-client is not installed (pip install 'medsr[pacs]')")
    pytest.importorskip("pynetdicom", reason="pynetdicom is not installed (pip install 'medsr[pacs]')")
    monkeypatch.setenv("MEDSR_DICOMWEB_USER", USER)
    monkeypatch.setenv("MEDSR_DICOMWEB_PASSWORD", PASSWORD)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    server = Orthanc(tmp_path / "orthanc", {"medsr": ("MEDSR", ports["move"]), "node": ("MEDSRNODE", ports["node"])})
    yield server
    server.stop()
