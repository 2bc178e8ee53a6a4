"""`Customer.buyAgain` through HTTP: the products bought before, timed by their cycle, batched
for many customers, withheld as the other predictions are (no trained model needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.access import Role
from domain.consent import OBJECTED, WITHHELD
from domain.predictions import RiskBands
from ml.serving.models import ModelStore
from ml.serving.scoring import Scorer
from sql.database import connect
from tests.api.test_gdpr import ERASE
from tests.conftest import api_key
from tests.factories import add_consent, add_customer, add_product, add_purchase
from tests.http_client import data, error_codes, gql
from tests.ml.conftest import serving, serving_settings

AT = datetime(2025, 6, 1, tzinfo=UTC)
BUY_AGAIN = """query($ids: [ID!], $at: DateTime, $first: Int) { scores(customerIds: $ids) {
  id scoresWithheld
  buyAgain(first: $first, asOf: $at) { product { id sku } score orders daysSinceLast cycleDays
                                       daysUntilDue dueAt }
} }"""


async def shopper(db, products: dict[str, int], created: datetime) -> int:
    """Milk every 7 days (last 7 days ago, due now), bread every 7 days up to 70 days ago (long
    overdue), a candle once, 20 days ago."""
    cid = await add_customer(db, created_at=created)
    for week in range(5):
        await add_purchase(db, cid, AT - timedelta(days=7 + 7 * week), product_id=products["milk"])
        await add_purchase(
            db, cid, AT - timedelta(days=70 + 7 * week), product_id=products["bread"]
        )
    await add_purchase(db, cid, AT - timedelta(days=20), product_id=products["candle"])
    return cid


async def test_buy_again_is_served_timed_batched_and_withheld_like_the_other_scores(
    db, database_url, tmp_path
):
    products = {name: await add_product(db, name) for name in ("milk", "bread", "candle", "tea")}
    created = AT - timedelta(days=200)
    plain = await shopper(db, products, created)
    agreed = await shopper(db, products, created)
    await add_consent(db, agreed, "personalization", True, created)
    objecting = await shopper(db, products, created)
    await add_consent(db, objecting, "profiling", False, created)
    newcomer = await add_customer(db, created_at=created)  # bought nothing
    erased = await shopper(db, products, created)
    ids = [str(i) for i in (plain, agreed, objecting, newcomer)]

    async with serving(database_url, serving_settings(tmp_path)) as http:
        gone = await gql(http, ERASE, {"id": str(erased)})
        response = await http.post(
            "/graphql", json={"query": BUY_AGAIN, "variables": {"ids": ids, "at": AT.isoformat()}}
        )
        body = response.json()
        statements = int(response.headers["X-SQL-Statements"])
        single = await gql(
            http,
            "query($id: ID!, $at: DateTime) { customer(id: $id) { buyAgain(first: 1, asOf: $at)"
            " { product { sku } daysUntilDue } } }",
            {"id": str(plain), "at": AT.isoformat()},
        )
        too_many = await gql(http, BUY_AGAIN, {"ids": ids, "first": 21})
    assert "errors" not in body, body
    assert data(gone)["eraseCustomer"]["__typename"] == "CustomerErased"
    first, second, third, fourth = data(body)["scores"]
    # Milk is due today, bread nine weeks overdue, the candle a one-off; tea never bought.
    assert [b["product"]["sku"] for b in first["buyAgain"]] == ["milk", "bread", "candle"]
    milk, bread, candle = first["buyAgain"]
    assert milk["orders"] == 5
    assert milk["daysSinceLast"] == pytest.approx(7.0)
    assert milk["cycleDays"] == pytest.approx(7.0)
    assert milk["daysUntilDue"] == pytest.approx(0.0)
    assert datetime.fromisoformat(milk["dueAt"]) == AT
    assert bread["daysUntilDue"] == pytest.approx(-63.0)
    assert milk["score"] > bread["score"] > candle["score"] > 0
    assert second["buyAgain"] == first["buyAgain"]  # the same history, the same list
    assert third == {"id": ids[2], "scoresWithheld": OBJECTED, "buyAgain": []}
    assert fourth == {"id": ids[3], "scoresWithheld": None, "buyAgain": []}
    # customers, consents, customers scored + history + product cycles, products: however many.
    assert statements <= 6
    (only,) = data(single)["customer"]["buyAgain"]
    assert only == {"product": {"sku": "milk"}, "daysUntilDue": pytest.approx(0.0)}
    assert set(error_codes(too_many)) == {"BAD_USER_INPUT"}  # one per customer

    # An erased customer is scored by nobody, through the scorer too (not only the API).
    conn = await connect(database_url)
    try:
        scorer = Scorer(ModelStore(lambda: None, tmp_path / "cache"), RiskBands())  # no models
        found = await scorer.buy_again(conn, [erased, plain], AT)
    finally:
        await conn.close()
    assert sorted(found) == [plain]

    # A machine client: only customers who consented to personalization or profiling.
    engine = await api_key(database_url, Role.PERSONALIZATION)
    async with serving(database_url, serving_settings(tmp_path), key=engine) as http:
        machine = data(await gql(http, BUY_AGAIN, {"ids": ids[:2], "at": AT.isoformat()}))
    withheld, served = machine["scores"]
    assert withheld == {"id": ids[0], "scoresWithheld": WITHHELD, "buyAgain": []}
    assert served["buyAgain"] == first["buyAgain"]
