from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

from medsr.privacy import DEFAULT_CLASSES, KEY_FILE, Redactor, one_line, parse_classes


def test_one_line_escapes_newlines_and_undecodable_bytes() -> None:
    assert one_line("a\nmedsr: forged") == "a\\nmedsr: forged"
    name = os.fsdecode(b"scan\xff.png")
    assert one_line(f"skipped {name}") == "skipped scan\\xff.png"
    assert "\n" not in one_line("x\r\n\x1b[31m") and len(one_line("y" * 5000)) <= 2000
    one_line(name).encode("utf-8")  # always encodable


def test_redactor_pseudonyms_labels_and_messages(tmp_path: Path) -> None:
    folder = tmp_path / "DOE_JOHN_MRN12345"
    red = Redactor(classes=parse_classes("Covid,Normal"))
    cid = red.case(folder, files=[folder / "DOE_JOHN_001.dcm"], detail="datalist row 3")
    assert cid == "case-0001"
    assert red.label("covid") == "Covid" and red.label("all") == "all"
    assert red.label("DOE_JOHN_MRN12345") == "class-01" == red.label("DOE_JOHN_MRN12345")
    msg = red.text(f"{folder}/DOE_JOHN_001.dcm: holds 2 DICOM series (1.2.840.113619.2.55 (1 files, 'CT DOE^JOHN MRN12345'))")
    for secret in ("DOE", "MRN12345", "1.2.840"):
        assert secret not in msg, msg
    assert msg.startswith("case-0001/file-0001")
    key = red.write_key(tmp_path / KEY_FILE)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    rows = list(csv.DictReader(open(key, encoding="utf-8")))
    assert rows[0] == {"pseudonym": "case-0001", "kind": "case", "input": str(folder), "detail": "datalist row 3"}
    assert rows[1]["pseudonym"] == "class-01" and rows[1]["detail"] == "DOE_JOHN_MRN12345"


def test_show_ids_keeps_names_on_one_line(tmp_path: Path) -> None:
    red = Redactor(show_ids=True)
    red.case(tmp_path / "a")
    assert red.label("DOE") == "DOE" and red.text("x 'CT DOE'\nz") == "x 'CT DOE'\\nz"
    assert red.write_key(tmp_path / KEY_FILE) is None and parse_classes(None) == DEFAULT_CLASSES
