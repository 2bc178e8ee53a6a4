"""A pooled connection the server drops while it sits idle: the request that draws it gets a
retryable 503, never a 500, and the next request is served on a fresh connection.

A shutting-down server sends each idle connection a FATAL error, then closes it. A request
can draw the connection between the two: asyncpg then refuses its first statement with an
``InternalClientError`` ("another operation is in progress") and aborts the connection. The
restart test met this about once in eight runs; here it is provoked deterministically by
handing the idle connection that FATAL message.
"""

from __future__ import annotations

import struct

import asyncpg
import httpx

from api.app import create_app
from api.errors import is_unavailable
from cdm.settings import Settings
from tests.conftest import api_key, bearer
from tests.factories import add_product
from tests.http_client import data, gql

UPDATE = """mutation($price: Decimal!) { upsertProducts(items: [{sku: "D-1", name: "Dropped",
  category: "faults", price: $price, currency: "EUR"}]) { ... on BatchWritten { updated } } }"""


def admin_shutdown_message() -> bytes:
    """The ErrorResponse a backend sends when told to terminate (57P01)."""
    fields = b"".join(
        kind + value + b"\0"
        for kind, value in (
            (b"S", b"FATAL"), (b"V", b"FATAL"), (b"C", b"57P01"),
            (b"M", b"terminating connection due to administrator command"),
        )
    ) + b"\0"  # fmt: skip
    return b"E" + struct.pack("!i", len(fields) + 4) + fields


async def test_a_connection_told_to_terminate_while_idle(
    db: asyncpg.Pool, database_url: str, settings: Settings
) -> None:
    await add_product(db, "D-1", "faults", "1.00")
    single = settings.model_copy(update={"pool_min_size": 1, "pool_max_size": 1})
    app = create_app(single, database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://cdm.test",
            headers=bearer(await api_key(db)),
        ) as http,
    ):  # fmt: skip
        assert data(await gql(http, UPDATE, {"price": "2.00"})) == {
            "upsertProducts": {"updated": 1}
        }
        (holder,) = app.state.pool._holders  # asyncpg internals: the one idle connection
        holder._con._protocol.data_received(admin_shutdown_message())

        refused = await gql(http, UPDATE, {"price": "3.00"}, expect_status=503)
        (error,) = refused["errors"]
        assert error["extensions"]["code"] == "DB_UNAVAILABLE"

        assert data(await gql(http, UPDATE, {"price": "4.00"})) == {
            "upsertProducts": {"updated": 1}
        }
    assert await db.fetchval("SELECT price::text FROM products WHERE sku = 'D-1'") == "4.00"


def test_only_protocol_state_errors_count_as_unavailable() -> None:
    """Other asyncpg client errors are our bugs: they stay 500s with an error id."""
    busy = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )
    assert is_unavailable(busy)
    assert not is_unavailable(asyncpg.exceptions.InternalClientError("something else"))
