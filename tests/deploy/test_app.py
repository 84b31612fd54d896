"""The MONAI Deploy application (deploy/medsr_sr_app) end to end on a real CT series: derived series, dciodvfy-clean.

Needs the optional ``deploy`` extra (``pip install "medsr[deploy]"``: monai-deploy-app-sdk, Holoscan,
highdicom); skipped without it.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "deploy" / "medsr_sr_app"
SERIES = ROOT / "sample_data" / "ct_series_lung_dx_a0001"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("holoscan") is None or importlib.util.find_spec("highdicom") is None,
    reason='MONAI Deploy App SDK not installed (pip install "medsr[deploy]")',
)


def _bigger_stack() -> None:  # Holoscan asks for a 32 MB stack
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = 32 << 20 if hard == resource.RLIM_INFINITY else min(32 << 20, hard)
    resource.setrlimit(resource.RLIMIT_STACK, (max(soft, want), hard))


@pytest.mark.slow
def test_app_upscales_a_ct_series_into_a_valid_derived_series(tmp_path: Path, dciodvfy) -> None:
    src = tmp_path / "in"
    src.mkdir()
    files = sorted(SERIES.glob("*.dcm"))[:3]
    for f in files:
        shutil.copy(f, src / f.name)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDSR_BUNDLE": "edsr_m", "MEDSR_SCALE": "2"}
    proc = subprocess.run([sys.executable, str(APP), "-i", str(src), "-o", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=_bigger_stack)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    source = [pydicom.dcmread(f) for f in files]
    series_uid = source[0].SeriesInstanceUID
    written = sorted((out / f"{series_uid}_sr2x").glob("*.dcm"))
    assert len(written) == len(files)
    derived = [pydicom.dcmread(f) for f in written]
    src_uids = {ds.SOPInstanceUID for ds in source}
    assert not src_uids & {ds.SOPInstanceUID for ds in (pydicom.dcmread(f) for f in written)}
    for ds in derived:
        assert (ds.Rows, ds.Columns) == (2 * source[0].Rows, 2 * source[0].Columns)
        assert ds.SeriesInstanceUID != series_uid and ds.StudyInstanceUID == source[0].StudyInstanceUID
        assert "DERIVED" in ds.ImageType and "edsr_m x2" in ds.DerivationDescription
        assert np.ptp(ds.pixel_array) > 0
    for f in written:
        assert dciodvfy(f) == [], f
