"""Evaluation protocol: HR image -> simulated LR -> every method -> compared with the HR image.

:func:`run_evaluation` scores each model beside bicubic interpolation of the same
low-resolution input and summarises per modality x class x model x scale with paired
statistics against bicubic (DESIGN.md "Evaluation protocol"); see
:mod:`medsr.evaluation.run` for the files it writes. The parts:

- :mod:`~medsr.evaluation.cases`: inputs (folders with class sub-folders, datalists, DICOM series) -> :class:`Case` s;
- :mod:`~medsr.evaluation.protocol`: how the LR image is made from the HR one, and how outputs are scored;
- :mod:`~medsr.evaluation.stats`: summaries, BCa intervals, Wilcoxon tests, case selection;
- :mod:`~medsr.evaluation.panels`: the PNG case panels of the report;
- :mod:`~medsr.evaluation.run`: the driver.
"""

from __future__ import annotations

from medsr.evaluation.cases import CLASS_ALL, Case, collect_cases
from medsr.evaluation.protocol import degrade_image
from medsr.evaluation.run import CASES_MARKER, run_evaluation
from medsr.evaluation.stats import (
    BOOTSTRAP_METHOD,
    DEGRADATIONS,
    HIGHER_IS_BETTER,
    METRIC_COLUMNS,
    STAT_METRICS,
    bootstrap_ci,
    paired_wilcoxon,
    select_cases,
    summarize,
)

__all__ = [
    "CLASS_ALL",
    "CASES_MARKER",
    "DEGRADATIONS",
    "METRIC_COLUMNS",
    "STAT_METRICS",
    "HIGHER_IS_BETTER",
    "Case",
    "collect_cases",
    "degrade_image",
    "BOOTSTRAP_METHOD",
    "bootstrap_ci",
    "paired_wilcoxon",
    "summarize",
    "select_cases",
    "run_evaluation",
]
