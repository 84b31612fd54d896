"""Which heavy modules a ``medsr`` command imports, run in a fresh interpreter (start-up, issue 15).

Imported by bare name (``from cli_imports import imported_by``), as tests/dicom_files.py.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["imported_by"]


def imported_by(args: Sequence[str], modules: Sequence[str]) -> tuple[list[str], int]:
    """``(the modules of `modules` that `medsr ARGS` imported, its exit code)``; a module blocked by
    medsr (``sys.modules[name] = None``) does not count as imported."""
    code = (
        "import sys\nfrom medsr.cli import run\n"
        f"try:\n    run({[str(a) for a in args]!r})\nexcept SystemExit as e:\n    code = e.code\n"
        f"print('RESULT', sorted(m for m in {list(modules)!r} if sys.modules.get(m)), code)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    imported, exit_code = lines[-1][len("RESULT ") :].rsplit(" ", 1)
    return ast.literal_eval(imported), int(exit_code)
