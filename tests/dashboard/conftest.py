"""Browser tests' shared fixture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots are kept (created): test-artifacts/, or CDM_TEST_ARTIFACTS."""
    found = Path(os.environ.get("CDM_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    found.mkdir(parents=True, exist_ok=True)
    return found
