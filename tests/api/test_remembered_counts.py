"""A search's totalCount reused while the customers' generation stands (api/remembered_counts.py).

The first test rigs the worker's memory with a wrong count at the current generation: served
back, it proves the statement did not count; after any change of customers, the true count
must come back instead. The second races writers against readers with the parity check on,
which compares every answer with a fresh count by graphql-core on the same snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from api.app import create_app
from api.remembered_counts import CountMemory
from tests.conftest import api_key, bearer
from tests.factories import T0, add_customer, days
from tests.http_client import data, gql

SEARCH = """query { customers(first: 2, filter: {search: "anna"}) { totalCount
  nodes { firstName } } }"""
ACTUAL = "SELECT count(*) FROM customers WHERE erased_at IS NULL AND search_text LIKE '%anna%'"
RIGGED = 999


@asynccontextmanager
async def served(url, settings, key) -> AsyncIterator[tuple[httpx.AsyncClient, CountMemory]]:
    app = create_app(settings, url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://cdm.test", headers=bearer(key)
        ) as http:
            yield http, app.graphql.counts


def rig(memory: CountMemory) -> None:
    """Pretend the count seen at the current generation was RIGGED."""
    known = memory.known()
    assert len(known) == 1, known  # one list, one filter
    [(key, (generation, _count))] = known.items()
    memory.learn([key], [generation, RIGGED])


async def total(http: httpx.AsyncClient) -> int:
    response = await http.post("/graphql", json={"query": SEARCH})
    assert response.headers["X-SQL-Statements"] == "1"  # the generation rides along
    return data(response.json())["customers"]["totalCount"]


async def test_a_search_count_is_reused_only_while_no_customer_changed(db, database_url, settings):
    unchecked = settings.model_copy(update={"verify_sql_reads": False})  # it would see the rig
    for i in range(3):
        await add_customer(db, first_name=f"Anna{i}", created_at=T0 + days(i))
    bob = await add_customer(db, first_name="Bob")
    await add_customer(db, first_name="Carl")
    async with served(database_url, unchecked, await api_key(db)) as (http, memory):
        assert await total(http) == 3
        rig(memory)
        assert await total(http) == RIGGED  # nothing changed: not counted again
        assert await total(http) == RIGGED

        # A write that rolls back leaves the generation (and the count) where they were.
        async with db.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("UPDATE customers SET first_name = 'Annabel' WHERE id = $1", bob)
            await transaction.rollback()
        assert await total(http) == RIGGED

        # Any committed change of customers, even one that leaves the count as it was, or
        # one that touches no matching row, makes the next answer a fresh count.
        changes = [
            ("INSERT INTO customers (first_name, created_at, updated_at) "
             "VALUES ('Anna9', $1, $1)", T0),
            ("UPDATE customers SET first_name = 'Annabel' WHERE id = $1", bob),
            ("UPDATE customers SET last_name = 'Other' WHERE first_name = 'Anna0'",),
            ("UPDATE customers SET erased_at = now() WHERE first_name = 'Anna1'",),
            ("DELETE FROM customers WHERE first_name = 'Anna2'",),
            ("UPDATE customers SET country = 'DE' WHERE first_name = 'Carl'",),
            ("TRUNCATE customers CASCADE",),
        ]  # fmt: skip
        for change in changes:
            rig(memory)
            await db.execute(*change)
            assert await total(http) == await db.fetchval(ACTUAL) != RIGGED, change[0]

        # A statement that changes no row is no change: the rig stays.
        await add_customer(db, first_name="Anna")
        assert await total(http) == 1
        rig(memory)
        await db.execute("UPDATE customers SET first_name = 'x' WHERE id = -1")
        await db.execute("DELETE FROM customers WHERE id = -1")
        assert await total(http) == RIGGED

        # A write through the API moves it too.
        upsert = """mutation { upsertCustomer(source: "web",
            input: {externalId: "W-1", firstName: "Anna", email: "anna@example.org"}) {
            __typename } }"""
        assert data(await gql(http, upsert))["upsertCustomer"]["__typename"] == "Customer"
        assert await total(http) == await db.fetchval(ACTUAL) == 2


async def test_counts_stay_exact_while_writers_race_the_readers(db, database_url, settings):
    """Parity is on here: each answer is checked against graphql-core counting afresh on the
    same snapshot, so a count reused across a change fails the request."""
    assert settings.verify_sql_reads
    for i in range(5):
        await add_customer(db, first_name=f"Anna{i}")
    writers, each = 4, 15

    async def write(w: int) -> None:
        for i in range(each):
            await add_customer(db, first_name=f"Anna-{w}-{i}" if i % 3 else f"Zed-{w}-{i}")
            if i % 5 == 4:
                await db.execute(
                    "UPDATE customers SET erased_at = now() WHERE first_name = $1",
                    f"Anna-{w}-{i - 1}",
                )

    async with served(database_url, settings, await api_key(db)) as (http, _memory):
        seen: list[list[int]] = []

        async def read(done: asyncio.Event) -> None:
            mine: list[int] = []
            while not done.is_set():
                mine.append(await total(http))
            mine.append(await total(http))
            seen.append(mine)

        done = asyncio.Event()
        readers = [asyncio.create_task(read(done)) for _ in range(6)]
        await asyncio.gather(*(write(w) for w in range(writers)))
        done.set()
        await asyncio.gather(*readers)
        final = await db.fetchval(ACTUAL)
        assert final == 5 + writers * (10 - 2)  # 10 Annas each; 2 erased (the 3rd names a Zed)
        assert [answers[-1] for answers in seen] == [final] * len(seen)
        assert sum(len(answers) for answers in seen) > len(seen)  # they did read meanwhile


@pytest.mark.parametrize(
    "filter_",
    [
        '{country: "GB"}',
        '{minTotalSpend: "1", search: "anna"}',
        '{purchasedSince: "2020-01-01T00:00:00Z", search: "anna"}',
    ],
)
async def test_counts_over_other_tables_are_not_remembered(db, database_url, settings, filter_):
    """Counters already answer a country alone; spend and purchases live in other tables,
    whose changes the customers' generation does not follow."""
    await add_customer(db, first_name="Anna")
    query = f"{{ customers(first: 1, filter: {filter_}) {{ totalCount }} }}"
    async with served(database_url, settings, await api_key(db)) as (http, memory):
        assert "totalCount" in data(await gql(http, query))["customers"]
        assert memory.known() == {}
        assert await total(http) == 1  # while a search alone is
        assert len(memory.known()) == 1
