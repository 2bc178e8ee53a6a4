"""The dashboard in a real browser: Chromium (headless) against `cdm serve` on a seeded
database. The page must load, draw every chart from the API's data, and log no error; a
screenshot is kept in test-artifacts/ (or CDM_TEST_ARTIFACTS)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import sql.rfm
from domain.access import Role
from tests.conftest import api_key
from tests.dashboard.conftest import watched_page
from tests.factories import add_customer, add_product, add_purchase

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser() -> str:
    if CHROMIUM is None:
        if os.environ.get("CDM_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required here (apt-get install chromium) but not found")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    pytest.importorskip("playwright")
    return CHROMIUM


async def seed(db) -> None:
    now = datetime.now(UTC)
    products = [await add_product(db, f"SKU-{n}", category) for n, category in
                enumerate(("books", "home", "garden"))]  # fmt: skip
    for n in range(30):
        customer = await add_customer(db, first_name=f"c{n}", country=("GB", "DE", "FR")[n % 3])
        for k in range(1 + n % 4):
            at = now - timedelta(days=5 + 29 * ((n + 3 * k) % 11))
            await add_purchase(db, customer, at, f"{10 + n + k}.00", product_id=products[k % 3])
        await db.execute(
            "INSERT INTO customer_scores (customer_id, as_of, churn_probability)"
            " VALUES ($1, now(), $2)", customer, (n % 10) / 10 + 0.05,
        )  # fmt: skip
    async with db.acquire() as conn:
        assert await sql.rfm.refresh(conn, now) == 30


def _serve(database_url: str, data_dir: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CDM_DATABASE_URL": database_url, "CDM_DATA_DIR": str(data_dir),
           "CDM_LOG_LEVEL": "warning", "CDM_MODEL_REFRESH_SECONDS": "0"}  # fmt: skip
    with (data_dir / "serve.log").open("w") as log:  # the child keeps its own handle
        server = subprocess.Popen(
            [sys.executable, "-m", "cdm.cli", "serve", "--port", str(port)], env=env,
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    return server, port


async def _ready(http: httpx.AsyncClient, server: subprocess.Popen) -> None:
    for _ in range(200):
        try:
            if (await http.get("/readyz", timeout=2)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None, "the server exited (see serve.log)"
        await asyncio.sleep(0.3)
    raise AssertionError("the server did not become ready")


async def test_the_dashboard_draws_every_chart_without_errors(
    db, database_url, tmp_path, artifacts
):
    executable = _browser()
    from playwright.async_api import async_playwright

    await seed(db)
    key = await api_key(db, Role.ANALYST)
    server, port = _serve(database_url, tmp_path)
    problems: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await _ready(http, server)
            script = await http.get("/dashboard/plotly.min.js")
            assert script.status_code == 200  # served from the plotly package: no CDN
            assert len(script.content) > 1_000_000
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
            )
            page = await watched_page(browser, f"http://127.0.0.1:{port}", problems, 1400)
            await page.goto(f"http://127.0.0.1:{port}/dashboard#key={key}")
            await page.wait_for_selector("body[data-state=ready]", timeout=60_000)
            assert "#key" not in page.url  # the key does not linger in the address bar
            kpis = await page.inner_text("#kpis")
            assert "Customers" in kpis
            assert "30" in kpis
            for chart in ("revenue", "cohorts", "rfm", "churn"):
                drawn = await page.locator(f"#{chart} .main-svg").count()
                assert drawn >= 1, f"{chart} was not drawn"
            bars = await page.locator("#revenue .bars path").count()
            assert bars >= 10  # a bar per month with sales
            assert await page.locator("#cohorts .hm, #cohorts image").count() >= 1
            assert await page.locator("#rfm .bars path").count() >= 3  # segments with members
            assert await page.locator("#churn .bars path").count() == 20  # one per bin
            assert await page.locator("#models tbody tr").count() == 3
            await page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
            await page.wait_for_load_state("networkidle")  # late requests (e.g. an icon)
            await page.wait_for_timeout(500)
            await browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert problems == []
