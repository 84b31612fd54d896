"""``medsr upscale`` over a folder under ``torchrun --nproc_per_node 2``: every output written exactly once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def test_two_processes_split_a_folder_without_gaps_or_duplicates(tmp_path: Path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"img{k}.png" for k in range(5)] + ["sub/small.png"]
    for k, name in enumerate(names):
        Image.fromarray((rng.random((20 + k, 16)) * 65535).astype(np.uint16)).save(src / name)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0",
        "-m", "medsr", "upscale", str(src), "-o", str(out), "-m", "bicubic", "--no-progress", "-v",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    wrote = re.findall(r"medsr: rank (\d)/2: wrote (\S+)", log)
    by_rank = {r: [p for rr, p in wrote if rr == r] for r in ("0", "1")}
    assert len(by_rank["0"]) == len(by_rank["1"]) == 3  # an even split
    paths = [p for _, p in wrote]
    assert len(paths) == len(set(paths)) == 6  # no output written twice
    expected = sorted(str(out / n.replace(".png", "_sr2x.png")) for n in names)
    assert sorted(paths) == expected  # and none missing
    assert sorted(str(p) for p in out.rglob("*.png")) == expected
    assert re.findall(r"3 written, 0 already done, 0 failed", log) == ["3 written, 0 already done, 0 failed"] * 2
    assert not list(out.glob("errors*.csv"))
