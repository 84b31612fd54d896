"""Fuzz whole commands with hostile inputs (issue 12): size and frame bombs, datalists, results folders, file names.

Same rules as ``test_fuzz_readers.py``: derandomized in CI, ``MEDSR_FUZZ_SCALE`` times more cases and new
random ones in a long campaign (``run_long.py``, docs/reliability.md). Each case ends in a result or in one
of medsr's one-line errors, in time, with no input changed and nothing outside the output touched.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from hostile import (
    check_datalist,
    check_frame_bomb,
    check_names,
    check_results,
    check_size_bomb,
    datalists,
    frame_bombs,
    hostile_names,
    results_damage,
    size_bombs,
)
from test_fuzz_readers import _settings

_TMP = Path(tempfile.mkdtemp(prefix="medsr_fuzz_cmd_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


@_settings(30)
@given(case=size_bombs())
def test_output_size_bombs(case: tuple) -> None:
    check_size_bomb(case, _TMP)


@_settings(60)
@given(case=frame_bombs())
def test_frame_bombs(case: tuple) -> None:
    check_frame_bomb(case, _TMP)


@_settings(200)
@given(case=datalists())
def test_hostile_datalists(case: tuple) -> None:
    check_datalist(case, _TMP)


@_settings(5)
@given(ops=results_damage())
def test_hostile_results_folders(ops: list[tuple]) -> None:
    check_results(ops, _TMP)


@_settings(15)
@given(name=hostile_names(), good=st.booleans())
def test_hostile_file_names(name: bytes, good: bool) -> None:
    check_names(name, good, _TMP)
