"""scripts/compare_outputs.py: the record of two runs of the same checkout over two tiny sample files is identical."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "compare_outputs.py"
TINY = ("ct_small.dcm", "mr_small.dcm")
COMMANDS = ("upscale-edsr_m-x2", "degrade-x2")  # the network and the seeded simulator; 4 short CLI runs


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_outputs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_runs_record_the_same_outputs(script, sample: Path, tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    args = ["--python", sys.executable, "--inputs", *(str(sample / name) for name in TINY), "--commands", *COMMANDS]
    assert script.main([*args, "-o", str(first)]) == 0
    assert script.main([*args, "-o", str(second)]) == 0
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert first.read_text() == second.read_text()  # new UIDs and dates left out: byte-identical records
    assert set(a["runs"]) == set(COMMANDS)
    for name, run in a["runs"].items():
        assert run["exit_code"] == 0, name
        stem = "lr2x" if name.startswith("degrade") else "sr2x"
        assert sorted(run["files"]) == [f"ct_small_{stem}.dcm", f"mr_small_{stem}.dcm"], name
        for desc in run["files"].values():
            header = json.dumps(desc["header"])
            assert len(desc["pixels_sha256"]) == 64
            assert '"vr": "UI"' not in header and '"vr": "DA"' not in header and '"vr": "TM"' not in header
            assert '"00280010"' in header  # Rows is kept
    assert script.main(["--compare", str(first), str(second)]) == 0
    assert capsys.readouterr().out.strip().endswith("identical")
    changed = copy.deepcopy(b)
    changed["runs"]["degrade-x2"]["files"]["ct_small_lr2x.dcm"]["pixels_sha256"] = "0" * 64
    diffs = script.compare(a, changed)
    assert len(diffs) == 1 and diffs[0].startswith("/runs/degrade-x2/files/ct_small_lr2x.dcm/pixels_sha256: "), diffs
