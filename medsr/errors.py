"""Exceptions medsr raises for expected failures, and the CLI exit code of each.

Every error a user can cause (a bad file, a bad option, an unwritable output)
is one of these, so the CLI can print one line and exit with a documented code
instead of a traceback.

Exit codes (``medsr`` CLI, also in docs/user-guide.md):

====  =========================================================
0     every input processed
1     partial failure: some inputs failed (see ``errors.csv``)
2     usage error: bad option value, unknown model, bad scale
3     input error: nothing could be processed
4     output error: output exists, is an input, or cannot be written
====  =========================================================
"""

from __future__ import annotations

__all__ = [
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "EXIT_INPUT",
    "EXIT_OUTPUT",
    "MedsrError",
    "InputError",
    "OutputError",
    "UsageError",
]

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT = 4


class MedsrError(Exception):
    """Base class of medsr's expected errors; ``exit_code`` is what the CLI returns."""

    exit_code = EXIT_USAGE


class InputError(MedsrError, ValueError):
    """An input file or folder cannot be read as a medical image."""

    exit_code = EXIT_INPUT


class OutputError(MedsrError, OSError):
    """An output cannot be written (exists, equals an input, or not writable)."""

    exit_code = EXIT_OUTPUT


class UsageError(MedsrError, ValueError):
    """An option has a value medsr does not accept (scale, model name, device...)."""

    exit_code = EXIT_USAGE
