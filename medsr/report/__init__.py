"""Clinician report (HTML + PDF) from the results of :func:`medsr.evaluation.run_evaluation`.

``build_report(outdir)`` reads ``metrics.csv``, ``summary.json`` and the case
panels under ``cases/`` and writes ``report.html`` (one self-contained page,
images inline) and ``report.pdf`` (reportlab), so ``medsr report OUTDIR``
can rebuild them at any time.
"""

from __future__ import annotations

from medsr.report.build import build_report, render_html, report_context
from medsr.report.results import load_results

__all__ = ["build_report", "load_results", "report_context", "render_html"]
