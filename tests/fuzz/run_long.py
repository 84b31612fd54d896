"""Long fuzz campaign of medsr's readers (the CI fuzz tests, many more random cases).

Runs ``tests/fuzz`` under pytest in a child process with new random cases
(``MEDSR_FUZZ_RANDOM=1``), ``--scale`` times the CI number of cases (scale 20 is
about 12,000 cases), a per-case time bound, and an address-space limit so that a
reader that trusts a header and allocates gigabytes fails with ``MemoryError`` (a
finding) instead of swapping. The pytest output goes to ``--log``; the last lines
(cases run, outcomes per format, failures) and the peak RSS are printed.

Usage (from the repository root; niced, it can run beside other work)::

    nice -n 19 .venv/bin/python tests/fuzz/run_long.py --scale 20 --log fuzz_long.log

Exit status: pytest's (0 when no case broke the contract). Results of the campaigns
run so far are recorded in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=20.0, help="multiple of the CI number of cases (default 20: ~12,000)")
    ap.add_argument("--case-timeout", type=float, default=5.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit of the fuzzing process (GiB)")
    ap.add_argument("--max-rss-gb", type=float, default=2.0, help="the campaign fails when the process's peak RSS passes this")
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    ap.add_argument("--log", type=Path, default=Path("fuzz_long.log"), help="where the full pytest output goes")
    ap.add_argument("-k", default=None, help="only the fuzz tests matching this pytest -k expression")
    args = ap.parse_args(argv)

    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    env = {
        **os.environ,
        "MEDSR_FUZZ_SCALE": str(args.scale),
        "MEDSR_FUZZ_RANDOM": "1",
        "MEDSR_FUZZ_CASE_TIMEOUT": str(args.case_timeout),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "fuzz"), "-q", "-p", "no:cacheprovider",
           "-p", "no:logging", "-W", "ignore", f"--hypothesis-seed={seed}", "--tb=short", "-o", "timeout=0"]
    if args.k:
        cmd += ["-k", args.k]
    limit = int(args.memory_gb * (1 << 30))

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    print(f"fuzz campaign: scale {args.scale:g}, hypothesis seed {seed}, case bound {args.case_timeout:g} s, "
          f"memory limit {args.memory_gb:g} GiB, log {args.log}", flush=True)
    start = time.monotonic()
    with open(args.log, "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_memory)
    minutes = (time.monotonic() - start) / 60
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
    tail = args.log.read_text(errors="replace").splitlines()[-15:]
    print("\n".join(tail))
    code = proc.returncode
    if peak_gb > args.max_rss_gb:
        print(f"fuzz campaign: peak RSS {peak_gb:.2f} GB exceeds the {args.max_rss_gb:g} GB bound")
        code = code or 1
    print(f"fuzz campaign: exit {code} after {minutes:.1f} min, peak RSS {peak_gb:.2f} GB (hypothesis seed {seed})")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
