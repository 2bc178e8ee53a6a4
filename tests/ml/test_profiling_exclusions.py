"""Erasure and objections to profiling reach the models, on hand-made data: who has feature
rows, who is in a training population, whose purchases feed the item statistics, and which
stored scores survive a refusal. Consent itself is not a model feature.

(The same rules through `cdm score --all`, its file export and the live API, with real models:
tests/ml/test_profiling_scores.py.)
"""

from __future__ import annotations

import numpy as np

from domain.consent import PROFILING_PURPOSES, refused_profiling
from domain.merging import Merged, MergeRequest
from domain.survivorship import Policy, Rule
from ml.features import FEATURES, compute_features
from ml.recommendations import customer_history, load_catalogue, market_basket
from ml.training.datasets import buyers_before
from sql import rfm
from sql.gdpr import erase_customer
from sql.identity import merge_customers
from tests.factories import T0, add_consent, add_customer, add_product, add_purchase, days

AS_OF = T0 + days(400)
KEPT = ("silent", "granted", "refused_then_granted")


async def buyer(db, product: int) -> int:
    cid = await add_customer(db, created_at=T0)
    await add_purchase(db, cid, AS_OF - days(20), "10.00", product_id=product)
    return cid


async def people(db) -> dict[str, int]:
    """A customer of every kind, each of whom bought the same book before AS_OF; those who
    are not to be modelled also bought a pen."""
    product = await add_product(db, "B-1", "books")
    pen = await add_product(db, "P-1", "office")
    who = {name: await buyer(db, product) for name in (
        "silent", "granted", "refused_then_granted", "refuses_profiling",
        "refuses_personalization", "refused_long_after", "erased",
    )}  # fmt: skip
    await add_consent(db, who["granted"], "profiling", True, T0)
    await add_consent(db, who["refused_then_granted"], "profiling", False, T0)
    await add_consent(db, who["refused_then_granted"], "profiling", True, T0 + days(1))
    await add_consent(db, who["refuses_profiling"], "profiling", True, T0)
    await add_consent(db, who["refuses_profiling"], "profiling", False, T0 + days(1))
    await add_consent(db, who["refuses_personalization"], "profiling", True, T0)
    await add_consent(db, who["refuses_personalization"], "personalization", False, T0)
    # An objection counts from when it is made for everything computed afterwards, even
    # for a past as-of time: training at an old cutoff must not use this person either.
    await add_consent(db, who["refused_long_after"], "profiling", False, AS_OF + days(100))
    for name, cid in who.items():
        if name not in KEPT:
            await add_purchase(db, cid, AS_OF - days(10), "2.00", product_id=pen)
    async with db.acquire() as conn:
        assert not isinstance(await erase_customer(conn, who["erased"], "test", None), str)
    return who


async def test_erased_and_refusing_customers_have_no_feature_rows(db):
    who = await people(db)
    async with db.acquire() as conn:
        everyone = await compute_features(conn, AS_OF)
        asked = await compute_features(conn, AS_OF, list(who.values()))
    expected = sorted(who[name] for name in KEPT)
    assert everyone.customer_ids.tolist() == expected
    assert asked.customer_ids.tolist() == expected


async def test_consent_is_not_a_model_feature(db):
    assert not [f for f in FEATURES if "consent" in f]
    product = await add_product(db, "B-1", "books")
    silent, granted = await buyer(db, product), await buyer(db, product)
    for purpose in (*PROFILING_PURPOSES, "email_marketing", "sms"):
        await add_consent(db, granted, purpose, True, T0)
    async with db.acquire() as conn:
        frame = await compute_features(conn, AS_OF)
    assert frame.customer_ids.tolist() == [silent, granted]
    assert np.array_equal(frame.matrix[0], frame.matrix[1], equal_nan=True)


async def test_training_populations_leave_them_out(db):
    who = await people(db)
    async with db.acquire() as conn:
        population = await buyers_before(conn, AS_OF)
        catalogue = await load_catalogue(conn)
        # Asking for them by id (a history for scoring) finds no purchase of theirs either.
        history = await customer_history(conn, catalogue, AS_OF, list(who.values()))
        basket = await market_basket(conn, catalogue, AS_OF)
    assert population.tolist() == sorted(who[name] for name in KEPT)
    bought = dict(zip(history.customer_ids.tolist(), history.orders.sum(axis=1).A1, strict=True))
    assert {c for c, n in bought.items() if n} == {who[name] for name in KEPT}
    # The item statistics (inputs of the ranker, in training and serving) count only the
    # kept buyers: all three bought the book, none the pen.
    assert catalogue.names == ("Product B-1", "Product P-1")
    assert basket.popularity_365d.tolist() == [1.0, 0.0]


async def test_a_refusal_removes_the_stored_score_and_a_grant_keeps_it(db):
    product = await add_product(db, "B-1", "books")
    a, b, c = [await buyer(db, product) for _ in range(3)]
    await db.execute(
        "INSERT INTO customer_scores (customer_id, as_of, churn_probability)"
        " SELECT unnest($1::bigint[]), $2, 0.5",
        [a, b, c], AS_OF,
    )  # fmt: skip

    async def stored() -> list[int]:
        rows = await db.fetch("SELECT customer_id FROM customer_scores ORDER BY customer_id")
        return [r["customer_id"] for r in rows]

    await add_consent(db, a, "profiling", True, T0)
    await add_consent(db, b, "email_marketing", False, T0)  # not an objection to profiling
    assert await stored() == [a, b, c]
    await add_consent(db, a, "personalization", False, T0 + days(1))
    assert await stored() == [b, c]
    # An old refusal recorded late does not outrank a newer grant.
    await add_consent(db, c, "profiling", True, T0 + days(2))
    await add_consent(db, c, "profiling", False, T0 + days(1))
    assert await stored() == [b, c]
    # Several decisions in one statement (an import chunk): the refusals among them count.
    await db.execute(
        "INSERT INTO consents (customer_id, purpose, granted, source, recorded_at)"
        " VALUES ($1, 'profiling', true, 'crm', $3), ($2, 'profiling', false, 'crm', $3)",
        b, c, T0 + days(3),
    )  # fmt: skip
    assert await stored() == [b]


async def test_a_merge_that_brings_a_refusal_removes_the_survivors_stored_score(db):
    product = await add_product(db, "B-1", "books")
    survivor, objector = await buyer(db, product), await buyer(db, product)
    await add_consent(db, survivor, "profiling", True, T0)
    await add_consent(db, objector, "profiling", False, T0 + days(1))  # the newer decision
    await db.execute(
        "INSERT INTO customer_scores (customer_id, as_of, churn_probability) VALUES ($1, $2, 0.5)",
        survivor, AS_OF,
    )  # fmt: skip
    done = await merge_customers(
        db, MergeRequest(survivor, (objector,)), Policy(Rule.MOST_RECENT), "test"
    )
    assert isinstance(done, Merged)
    assert await db.fetchval("SELECT count(*) FROM customer_scores") == 0
    async with db.acquire() as conn:
        assert len(await compute_features(conn, AS_OF)) == 0


async def test_the_sql_and_the_domain_agree_on_who_refused(db):
    """One rule, read two ways: the SQL view (bulk) and domain.consent (a loaded customer)."""
    histories: list[list[tuple[str, bool]]] = [
        [], [("profiling", True)], [("profiling", False)], [("personalization", False)],
        [("profiling", False), ("profiling", True)], [("profiling", True), ("profiling", False)],
        [("profiling", True), ("personalization", False)], [("email_marketing", False)],
        [("personalization", True), ("profiling", True)], [("sms", False), ("profiling", True)],
    ]  # fmt: skip
    ids = []
    for history in histories:
        cid = await add_customer(db)
        for n, (purpose, granted) in enumerate(history):
            await add_consent(db, cid, purpose, granted, T0 + days(n))
        ids.append(cid)
    rows = await db.fetch("SELECT DISTINCT customer_id FROM profiling_refusals")
    in_sql = {r["customer_id"] for r in rows}
    latest: dict[int, dict[str, bool]] = {cid: {} for cid in ids}
    for cid, history in zip(ids, histories, strict=True):
        for purpose, granted in history:
            latest[cid][purpose] = granted
    in_domain = {cid for cid in ids if refused_profiling(latest[cid])}
    assert in_sql == in_domain == {ids[2], ids[3], ids[5], ids[6]}


async def test_rfm_covers_only_who_may_be_profiled_and_a_refusal_removes_it(db):
    who = await people(db)
    async with db.acquire() as conn:
        assert await rfm.refresh(conn, AS_OF) == len(KEPT)
    scored = await rfm.by_customer_ids(db, list(who.values()))
    assert sorted(scored) == sorted(who[name] for name in KEPT)
    await add_consent(db, who["silent"], "profiling", False, AS_OF + days(1))
    scored = await rfm.by_customer_ids(db, list(who.values()))
    assert sorted(scored) == sorted([who["granted"], who["refused_then_granted"]])
