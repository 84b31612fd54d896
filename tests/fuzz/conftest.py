"""Fuzz tests: case counts in the terminal summary; ``MEDSR_FUZZ_SCALE`` multiplies the number of cases."""

from __future__ import annotations

import medsr_fuzz


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    counts = medsr_fuzz.COUNTS
    if not counts:
        return
    total = sum(v for k, v in counts.items() if ":" not in k)
    outcomes = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if ":" not in k)
    detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if ":" in k)
    terminalreporter.write_line(f"medsr fuzz: {total} cases passed ({outcomes}); {detail}")
