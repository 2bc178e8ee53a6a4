"""GraphiQL in a real browser, offline: every file from this server, the API key taken from
the address's fragment into the Authorization header, and a query answered."""

from __future__ import annotations

import httpx

from domain.access import Role
from tests.conftest import api_key
from tests.dashboard.conftest import watched_page
from tests.dashboard.test_dashboard import _browser, _ready, _serve
from tests.factories import add_customer


async def test_graphiql_runs_a_query_with_no_request_leaving_the_server(
    db, database_url, tmp_path, artifacts
):
    executable = _browser()
    from playwright.async_api import async_playwright

    for n in range(3):
        await add_customer(db, first_name=f"Grace{n}")
    key = await api_key(db, Role.ANALYST)
    server, port = _serve(database_url, tmp_path)
    origin = f"http://127.0.0.1:{port}"
    problems: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=origin) as http:
            await _ready(http, server)
            page = await http.get("/graphql", headers={"Accept": "text/html"})
            assert page.status_code == 200
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert (await http.get("/graphiql/graphiql.min.js")).status_code == 200
            assert (await http.get("/graphiql/../../etc/passwd")).status_code == 404
            assert (await http.get("/graphiql/app.py")).status_code == 404
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
            )
            tab = await watched_page(browser, origin, problems, 900)
            async with tab.expect_response(
                lambda r: r.request.method == "POST" and "__schema" in (r.request.post_data or ""),
                timeout=60_000,
            ) as schema:  # GraphiQL asks for the schema (docs, completion) as it starts
                await tab.goto(f"{origin}/graphql#key={key}")
            introspected = await (await schema.value).json()
            assert "__schema" in introspected.get("data", {}), introspected
            await tab.wait_for_selector(".graphiql-container", timeout=60_000)
            assert "#key" not in tab.url  # the key does not linger in the address bar
            # The example query's answer (GraphiQL also posts its schema introspection).
            async with tab.expect_response(
                lambda r: r.request.method == "POST" and "totalCount" in (r.request.post_data or "")
            ) as answered:
                await tab.click(".graphiql-execute-button")
            response = await answered.value
            sent = await response.request.all_headers()
            assert sent["authorization"] == f"Bearer {key}"
            body = await response.json()
            assert body.get("data", {}).get("customers", {}).get("totalCount") == 3, body
            await tab.wait_for_function(
                "document.querySelector('.result-window')?.innerText.includes('totalCount')",
                timeout=60_000,
            )
            await tab.screenshot(path=str(artifacts / "graphiql.png"))
            await browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert problems == []
