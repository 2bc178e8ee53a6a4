"""Browser tests' shared fixture."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots are kept (created): test-artifacts/, or CDM_TEST_ARTIFACTS."""
    found = Path(os.environ.get("CDM_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    found.mkdir(parents=True, exist_ok=True)
    return found


async def watched_page(browser: Any, origin: str, problems: list[str], height: int) -> Any:
    """A new page of ``browser`` that notes in ``problems`` every console error, page error,
    failed or 4xx/5xx response, and any request leaving ``origin`` (refused: offline)."""
    page = await browser.new_page(viewport={"width": 1400, "height": height})
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status}: {r.url}"))
    await page.route(
        lambda url: not url.startswith(f"{origin}/"),
        lambda route: (problems.append(f"outside request: {route.request.url}"),
                       route.abort())[1],
    )  # fmt: skip
    return page
