"""Suite-wide settings: networks exported for the OpenVINO engine go to a temporary cache, never the user's."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _medsr_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["MEDSR_CACHE_DIR"] = str(tmp_path_factory.mktemp("medsr_cache"))
