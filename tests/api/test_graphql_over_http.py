"""The endpoint speaks GraphQL over HTTP the way standard clients expect."""

from __future__ import annotations

import pytest

from tests.http_client import GRAPHQL_RESPONSE

Q = "{ customers(first: 1) { totalCount } }"


async def test_post_with_new_media_type(client, db):
    r = await client.post("/graphql", json={"query": Q}, headers={"Accept": GRAPHQL_RESPONSE})
    assert r.status_code == 200
    assert r.headers["content-type"] == GRAPHQL_RESPONSE
    assert r.json() == {"data": {"customers": {"totalCount": 0}}}


async def test_legacy_json_clients_get_json(client, db):
    r = await client.post("/graphql", json={"query": Q}, headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    r = await client.post("/graphql", json={"query": "{ nope }"})  # no Accept: legacy
    assert r.status_code == 200
    assert r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"query": "{ customers(first: 1) { totalCount "}, 400),  # syntax
        ({"query": "{ nope }"}, 400),  # validation
        ({"query": "query($id: ID!) { customer(id: $id) { id } }"}, 400),  # missing variable
        ({"query": ""}, 400),
        ({"query": 5}, 400),
        ({"query": Q, "variables": [1]}, 400),
        ({"query": Q, "operationName": 3}, 400),
        ({"query": "query A { __typename } query B { __typename }"}, 400),
        ({"query": "query A { __typename }", "operationName": "B"}, 400),
    ],
)
async def test_request_errors_are_400_with_new_media_type(client, db, body, status):
    r = await client.post("/graphql", json=body, headers={"Accept": GRAPHQL_RESPONSE})
    assert r.status_code == status
    payload = r.json()
    assert "data" not in payload
    assert payload["errors"][0]["message"]


async def test_malformed_requests(client, db):
    r = await client.post(
        "/graphql", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    r = await client.post("/graphql", content=b"query", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = await client.post("/graphql", json={"query": Q}, headers={"Accept": "text/csv"})
    assert r.status_code == 406
    r = await client.put("/graphql", json={"query": Q})
    assert r.status_code == 405


async def test_get_serves_queries_and_refuses_mutations(client, db):
    r = await client.get("/graphql", params={"query": Q}, headers={"Accept": GRAPHQL_RESPONSE})
    assert r.status_code == 200
    assert r.json()["data"]["customers"]["totalCount"] == 0
    r = await client.get(
        "/graphql", params={"query": "mutation { x }"}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert r.status_code in (400, 405)  # no mutation type yet: invalid, or refused on GET


async def test_graphiql_for_browsers(client, db):
    r = await client.get("/graphql", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert "graphiql" in r.text.lower()


async def test_health_and_readiness(client, db):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    # No model trained in this data directory: reported, and not a reason to be unready.
    assert body["models"]["churn"] == {
        "state": "missing", "version": None, "compiled": False,
        "reason": "model not trained: run `cdm train churn`",
    }  # fmt: skip


async def test_unexpected_errors_are_masked(client, db, monkeypatch):
    from api import graphql_http
    from sql.repositories import CustomerRepository

    # On the Python paths: a resolver's error is one masked error beside the data.
    monkeypatch.setattr(graphql_http, "compile_sql", lambda *_a, **_k: "not in SQL (test)")

    async def broken(self, flt):
        raise RuntimeError("relation customers_secret does not exist: SELECT password FROM x")

    monkeypatch.setattr(CustomerRepository, "count", broken)
    r = await client.post("/graphql", json={"query": Q}, headers={"Accept": GRAPHQL_RESPONSE})
    assert r.status_code == 200
    error = r.json()["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert len(error["extensions"]["errorId"]) == 32
    assert "SELECT" not in r.text
    assert "customers_secret" not in r.text


async def test_unexpected_errors_in_the_sql_path_are_masked(client, db, monkeypatch):
    from api.sql_compiler import SqlQuery

    def broken(self, variables, settings):
        raise RuntimeError("relation customers_secret does not exist: SELECT password FROM x")

    monkeypatch.setattr(SqlQuery, "render", broken)
    r = await client.post("/graphql", json={"query": Q}, headers={"Accept": GRAPHQL_RESPONSE})
    assert r.status_code == 500
    error = r.json()["errors"][0]
    assert error["message"] == "Internal server error"
    assert len(error["extensions"]["errorId"]) == 32
    assert "SELECT" not in r.text
    assert "customers_secret" not in r.text


async def test_a_client_leaving_mid_body_is_not_an_error(db, database_url, settings, caplog):
    """A client that disconnects before its body arrives (wrk stopping, a closed tab) gets no
    answer and leaves no "unexpected error" in the log: nobody did anything wrong."""
    from api.app import create_app
    from tests.conftest import api_key

    app = create_app(settings, database_url)
    key = (await api_key(db)).encode()
    incoming = [
        {"type": "http.request", "body": b'{"query": "{ customers', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
        "headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer " + key),
                    (b"content-length", b"200")],
    }  # fmt: skip
    async with app.router.lifespan_context(app):
        with caplog.at_level("DEBUG", logger="api"):
            await app(scope, receive, send)
    assert not incoming  # the body was read up to the disconnect
    assert sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert "client disconnected" in caplog.text
