"""Fixtures shared by the whole suite: the sample data, pydicom test files, the dciodvfy validator,
the test device and seeded one-thread runs. The OpenVINO export cache goes to a temporary folder,
never the user's.

Test modules in sub-folders keep only the fixtures of their own package in their conftest.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"


@pytest.fixture(autouse=True, scope="session")
def _medsr_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["MEDSR_CACHE_DIR"] = str(tmp_path_factory.mktemp("medsr_cache"))


@pytest.fixture
def sample() -> Path:
    """The repository's sample_data folder."""
    if not SAMPLE_DATA.is_dir():
        pytest.skip("sample_data/ is missing (run sample_data/make_sample_data.py)")
    return SAMPLE_DATA


@pytest.fixture
def testdata() -> Callable[[str], Path]:
    """``testdata(name)``: a pydicom / pydicom-data test file, or skip when it is not installed."""

    def get(name: str) -> Path:
        from pydicom.data import get_testdata_file

        try:
            path = get_testdata_file(name)
        except Exception:  # pragma: no cover - pydicom-data missing or broken
            path = None
        if path is None:
            pytest.skip(f"{name} is not installed (pip install pydicom-data)")
        return Path(path)

    return get


@pytest.fixture
def dciodvfy() -> Callable[[Path], list[str]]:
    """``dciodvfy(path)``: the 'Error' lines dciodvfy prints for a DICOM file; skips the test
    at that call when dciodvfy is not installed (so what the test checked before still counts)."""

    def run(path: Path) -> list[str]:
        exe = shutil.which("dciodvfy")
        if exe is None:
            pytest.skip("dciodvfy is not installed (apt-get install dicom3tools; `make test` installs it)")
        proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
        return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]

    return run


@pytest.fixture
def device() -> torch.device:
    """Test device, from ``MEDSR_TEST_DEVICE`` (default ``cpu``)."""
    return torch.device(os.environ.get("MEDSR_TEST_DEVICE", "cpu"))


@pytest.fixture
def seed_and_threads() -> Iterator[None]:
    """Seed, and use one CPU thread: the tensors are tiny and the test machines are shared.

    Folders whose every test wants it make it autouse in their conftest.py.
    """
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
