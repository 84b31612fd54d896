"""``python -m medsr`` runs the CLI."""

from __future__ import annotations

from medsr.cli import run

run()
