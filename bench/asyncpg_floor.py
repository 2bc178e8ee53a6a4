"""A hand-written floor for bench/vs_postgraphile.py: the least a Python server can do per request.

    FLOOR_DATABASE_URL=postgresql://... python -m uvicorn asyncpg_floor:app --app-dir bench \
        --workers 2 --port 8767 --log-level warning

A raw ASGI app on uvicorn with an asyncpg pool. It answers POST /graphql for the benchmark's
workloads only, picked by the body's `operationName` (W1, W2, W2C, W3; SUMMARY for the data
check): one fixed SQL statement per workload builds the whole response JSON inside PostgreSQL
(json_build_object / json_agg), in the same shape as CDM's answer, and the server passes that
text through. No GraphQL parsing, no validation, no authentication, no per-field Python: the
floor, not a competitor.

Where CDM's data rules and formats can be written in SQL they are (erased customers are skipped,
purchases newest first with id as tie-breaker, an empty purchase summary for a customer who never
bought, the average order value rounded half to even like Python's Decimal.quantize, timestamps
written as Python's isoformat() writes them). Not done: a merged
customer's old id resolving to the survivor (the benchmark asks only for live ids).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

# Total spend per distinct order, to the cent, ties to even (Decimal.quantize's default), so that
# the figures match CDM's byte for byte. `s` is customer_purchase_stats, `d.order_count` the
# customer's distinct orders. Shared with the PostGraphile plugin in vs_postgraphile.py.
AVERAGE_ORDER_VALUE = """
CASE WHEN d.order_count > 0 THEN (
  SELECT CASE WHEN q * 100 - trunc(q * 100) = 0.5 AND trunc(q * 100) % 2 = 0
              THEN round(trunc(q * 100) / 100, 2) ELSE round(q, 2) END
    FROM (SELECT s.total_spend / d.order_count AS q) AS x) END"""

ORDER_COUNT = """
SELECT count(DISTINCT coalesce(p.order_ref, p.external_id)) AS order_count
  FROM purchases p WHERE p.customer_id = c.id"""


def _iso(column: str) -> str:
    """`column` (timestamptz) as Python's isoformat() writes it in UTC: microseconds only when
    not zero, all six digits (PostgreSQL's own JSON drops trailing zeros)."""
    return (
        f"to_char({column} AT TIME ZONE 'UTC', CASE WHEN date_trunc('second', {column}) = "
        f"""{column} THEN 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"' """
        """ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"' END)"""
    )


_PURCHASE = f"""json_build_object('id', p.id::text, 'amount', p.amount::text,
  'currency', p.currency, 'purchasedAt', {_iso("p.purchased_at")}"""
_SUMMARY = f"""json_build_object(
    'purchaseCount', coalesce(s.purchase_count, 0),
    'totalSpend', coalesce(s.total_spend::text, '0'),
    'firstPurchaseAt', {_iso("s.first_purchase_at")},
    'lastPurchaseAt', {_iso("s.last_purchase_at")},
    'averageOrderValue', ({AVERAGE_ORDER_VALUE})::text)"""

W1 = f"""
SELECT json_build_object('data', json_build_object('customer', (
  SELECT json_build_object(
           'id', c.id::text, 'firstName', c.first_name, 'lastName', c.last_name,
           'email', c.email, 'country', c.country,
           'purchases', json_build_object('nodes', coalesce((
             SELECT json_agg({_PURCHASE}, 'quantity', p.quantity,
                      'product', CASE WHEN pr.id IS NOT NULL THEN json_build_object(
                        'id', pr.id::text, 'sku', pr.sku, 'name', pr.name,
                        'category', pr.category) END)
                    ORDER BY p.purchased_at DESC, p.id DESC)
               FROM (SELECT * FROM purchases
                      WHERE customer_id = c.id
                      ORDER BY purchased_at DESC, id DESC LIMIT 10) p
               LEFT JOIN products pr ON pr.id = p.product_id), '[]'::json)))
    FROM customers c
   WHERE c.id = $1 AND c.erased_at IS NULL)))::text"""

_W2_NODES = f"""
coalesce(json_agg(json_build_object(
  'id', c.id::text, 'firstName', c.first_name, 'lastName', c.last_name, 'email', c.email,
  'country', c.country,
  'purchases', json_build_object('nodes', coalesce((
    SELECT json_agg({_PURCHASE}) ORDER BY p.purchased_at DESC, p.id DESC)
      FROM (SELECT * FROM purchases WHERE customer_id = c.id
             ORDER BY purchased_at DESC, id DESC LIMIT 5) p), '[]'::json)),
  'purchaseSummary', {_SUMMARY})
  ORDER BY c.created_at DESC, c.id DESC), '[]'::json)"""

_W2_FROM = f"""
  FROM (SELECT * FROM customers WHERE erased_at IS NULL
         ORDER BY created_at DESC, id DESC LIMIT 50) c
  LEFT JOIN customer_purchase_stats s ON s.customer_id = c.id
  LEFT JOIN LATERAL ({ORDER_COUNT}) d ON s.customer_id IS NOT NULL"""

W2 = f"""
SELECT json_build_object('data', json_build_object('customers', json_build_object(
         'nodes', {_W2_NODES})))::text
{_W2_FROM}"""

W2C = f"""
SELECT json_build_object('data', json_build_object('customers', json_build_object(
         'totalCount', (SELECT count(*) FROM customers WHERE erased_at IS NULL),
         'nodes', {_W2_NODES})))::text
{_W2_FROM}"""

W3 = """
SELECT json_build_object('data', json_build_object('customers', json_build_object(
         'totalCount', (SELECT count(*) FROM customers
                         WHERE erased_at IS NULL AND search_text LIKE $1),
         'nodes', coalesce(json_agg(json_build_object(
                    'id', c.id::text, 'firstName', c.first_name, 'lastName', c.last_name,
                    'email', c.email) ORDER BY c.created_at DESC, c.id DESC), '[]'::json))))::text
  FROM (SELECT * FROM customers WHERE erased_at IS NULL AND search_text LIKE $1
         ORDER BY created_at DESC, id DESC LIMIT 10) c"""

# Not a timed workload: one customer's purchase summary, to compare the average order value.
SUMMARY = f"""
SELECT json_build_object('data', json_build_object('customer', (
  SELECT json_build_object('purchaseSummary', {_SUMMARY})
    FROM customers c
    LEFT JOIN customer_purchase_stats s ON s.customer_id = c.id
    LEFT JOIN LATERAL ({ORDER_COUNT}) d ON s.customer_id IS NOT NULL
   WHERE c.id = $1 AND c.erased_at IS NULL)))::text"""

SEARCH = "%anna%"  # W3's fixed search, as CDM's contains_pattern("anna") makes it

Handler = Callable[[asyncpg.Connection, dict[str, Any]], Awaitable[str]]


async def _w1(conn: asyncpg.Connection, variables: dict[str, Any]) -> str:
    return await conn.fetchval(W1, int(variables["id"]))


async def _w2(conn: asyncpg.Connection, variables: dict[str, Any]) -> str:
    return await conn.fetchval(W2)


async def _w2c(conn: asyncpg.Connection, variables: dict[str, Any]) -> str:
    return await conn.fetchval(W2C)


async def _w3(conn: asyncpg.Connection, variables: dict[str, Any]) -> str:
    return await conn.fetchval(W3, SEARCH)


async def _summary(conn: asyncpg.Connection, variables: dict[str, Any]) -> str:
    return await conn.fetchval(SUMMARY, int(variables["id"]))


HANDLERS: dict[str, Handler] = {
    "W1": _w1, "W2": _w2, "W2C": _w2c, "W3": _w3, "SUMMARY": _summary,
}  # fmt: skip

_pool: asyncpg.Pool | None = None


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset round trip, as CDM's pool does (sql/database.py)."""


async def _body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _send(send: Send, status: int, body: bytes) -> None:
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI entry point: lifespan opens and closes the pool; POST /graphql answers."""
    global _pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _pool = await asyncpg.create_pool(
                    os.environ["FLOOR_DATABASE_URL"],
                    min_size=2, max_size=int(os.environ.get("FLOOR_POOL_MAX_SIZE", "10")),
                    reset=_keep_session,
                    server_settings={"timezone": "UTC"},  # JSON timestamps as +00:00, as CDM's
                )  # fmt: skip
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] != "POST" or scope["path"] != "/graphql":
        await _send(send, 404, b'{"errors":[{"message":"not found"}]}')
        return
    request = orjson.loads(await _body(receive))
    handler = HANDLERS.get(request.get("operationName") or "")
    if handler is None:
        await _send(send, 400, b'{"errors":[{"message":"unknown operationName"}]}')
        return
    assert _pool is not None
    async with _pool.acquire() as conn:
        text = await handler(conn, request.get("variables") or {})
    await _send(send, 200, text.encode())
