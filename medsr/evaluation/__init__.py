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

from typing import TYPE_CHECKING

from medsr._lazy import lazy_exports

if TYPE_CHECKING:  # what the names below resolve to, for type checkers and IDEs
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

# name -> sub-module; loaded on first use, so `medsr degrade` (protocol only) does not import
# SciPy's statistics nor matplotlib (docs/performance.md, start-up)
_EXPORTS = {
    "CLASS_ALL": "cases", "Case": "cases", "collect_cases": "cases",
    "degrade_image": "protocol",
    "CASES_MARKER": "run", "run_evaluation": "run",
    "BOOTSTRAP_METHOD": "stats", "DEGRADATIONS": "stats", "HIGHER_IS_BETTER": "stats", "METRIC_COLUMNS": "stats",
    "STAT_METRICS": "stats", "bootstrap_ci": "stats", "paired_wilcoxon": "stats", "select_cases": "stats",
    "summarize": "stats",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
