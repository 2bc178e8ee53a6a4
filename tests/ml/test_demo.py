"""`cdm demo`: its example queries are valid, and a second run reuses what exists."""

from __future__ import annotations

import re

from graphql import parse, validate

from api.schema import schema
from cdm.cli.demo import EXAMPLES, _prepare
from sql.database import connect
from tests.http_client import data, gql
from tests.ml.conftest import copy_store, serving, serving_settings


def test_the_printed_example_queries_are_valid():
    queries = [q for q in re.split(r"^# \d\..*$", EXAMPLES, flags=re.MULTILINE) if q.strip()]
    assert len(queries) == 4
    for text in queries:
        assert validate(schema._schema, parse(text)) == [], text


async def test_a_second_run_reuses_customers_models_and_scores(
    seeded_url, champions_dir, tmp_path, capsys
):
    data_dir = copy_store(champions_dir, tmp_path / "data")
    settings = serving_settings(data_dir, database_url=seeded_url)
    conn = await connect(seeded_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM customers")
        key = await _prepare(settings, customers=100)
        scored_at = await conn.fetchval("SELECT max(scored_at) FROM customer_scores")
        assert await _prepare(settings, customers=100) == key  # the same admin key again
        assert await conn.fetchval("SELECT count(*) FROM customers") == before  # no re-seed
        # The second run did not score again.
        assert await conn.fetchval("SELECT max(scored_at) FROM customer_scores") == scored_at
    finally:
        await conn.close()
    # The printed key is an admin key the API accepts; it is saved for the owner only.
    assert (data_dir / "demo-admin-key").stat().st_mode & 0o077 == 0
    async with serving(seeded_url, settings, key=key) as http:
        assert data(await gql(http, "{ models { task } }"))["models"]
    out = capsys.readouterr().out
    assert out.count("reusing them") == 4  # customers and models, twice
    assert "Training" not in out
