#!/usr/bin/env python
"""Peak memory and time of ``medsr upscale --slices`` on a 512 x 512 x Z CT volume (synthetic, int16 NIfTI).

Each run is a subprocess; wall time and peak RSS come from ``os.wait4``. The volume
is smooth random HU texture (not anatomy): memory and time do not depend on content.
Prints one JSON line per run and writes ``benchmarks/slices_memory.json``.

    python benchmarks/bench_slices_memory.py                   # 512x512x400, cubic N=2 and N=4; slice_smore N=2 on 512x512x40
    python benchmarks/bench_slices_memory.py --slices 40       # smaller
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def make_volume(path: Path, z: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    small = rng.normal(0, 300, (33, 33, max(2, z // 16 + 2)))
    from scipy.ndimage import zoom

    data = zoom(small, (512 / 33, 512 / 33, z / small.shape[2]), order=1)[:512, :512, :z] - 200
    nib.save(nib.Nifti1Image(data.astype(np.int16), np.diag([0.7, 0.7, 5.0, 1.0])), str(path))


def run(args: list[str]) -> dict:
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "medsr", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()[-500:] if proc.stderr else ""
    return {"args": " ".join(args[1:]), "rc": os.waitstatus_to_exitcode(status), "wall_s": round(time.monotonic() - t0, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024), "stderr_tail": err.strip()[-200:]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--net-slices", type=int, default=40)
    args = ap.parse_args()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    flags = next((ln.split(":", 1)[1].split() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("flags")), [])
    results = {"cpu": cpu, "avx512f": "avx512f" in flags, "avx2": "avx2" in flags, "cores": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "ct_big.nii", Path(tmp) / "ct_small.nii"
        make_volume(big, args.slices)
        make_volume(small, args.net_slices)
        in_mb = 512 * 512 * args.slices * 4 / 2**20
        results["input_float32_mb"] = round(in_mb)
        for n in (2, 4):
            r = run(["upscale", str(big), "--slices", str(n), "-m", "cubic", "--no-progress", "-o", f"{tmp}/o{n}.nii"])
            r["output_float32_mb"] = round(in_mb * ((args.slices - 1) * n + 1) / args.slices)
            results["runs"].append(r)
            print(json.dumps(r), flush=True)
        r = run(["upscale", str(small), "--slices", "2", "-m", "slice_smore", "--no-progress", "-o", f"{tmp}/s.nii"])
        results["runs"].append(r)
        print(json.dumps(r), flush=True)
    out = Path(__file__).with_name("slices_memory.json")
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
