"""Model features: known answers on hand-made data, no leakage from the as-of time on, the same
rows for a subset as for everyone (serving = training), determinism, and sane seeded data."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

import ml.features as features_module
from ingestion.seed import seed_database
from ml.features import (
    FEATURE_DESCRIPTIONS,
    FEATURES,
    FeatureFrame,
    compute_features,
    feature_definition_hash,
)
from sql.matrix import decode_binary_copy
from sql.queries import query
from tests.factories import (
    T0,
    add_consent,
    add_customer,
    add_interaction,
    add_product,
    add_purchase,
    days,
)

AS_OF = T0 + days(400)
SEED_NOW = datetime(2025, 6, 1, tzinfo=UTC)

COUNTS = (
    "orders_30d", "orders_90d", "orders_365d", "orders_lifetime", "orders_next_30d_last_year",
    "orders_next_90d_last_year", "spend_30d", "spend_90d",
    "spend_365d", "spend_lifetime", "distinct_categories", "complaints_30d", "complaints_90d",
    "tickets_30d", "tickets_90d", "email_opens_30d", "email_opens_90d", "email_clicks_30d",
    "email_clicks_90d", "page_views_30d", "page_views_90d", "reviews_90d",
    "web_interactions_90d", "app_interactions_90d", "interactions_90d",
)  # fmt: skip
NAN = math.nan


async def features(db, as_of=AS_OF, customer_ids=None) -> FeatureFrame:
    async with db.acquire() as conn:
        return await compute_features(conn, as_of, customer_ids)


def same(a: FeatureFrame, b: FeatureFrame) -> bool:
    return np.array_equal(a.customer_ids, b.customer_ids) and np.array_equal(
        a.matrix, b.matrix, equal_nan=True
    )


def assert_row(row: dict[str, float], expected: dict[str, float]) -> None:
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(row[name]), (name, row[name])
        else:
            assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (name, row[name])


async def regular_customer(db) -> int:
    """Three orders, two categories, support contacts, e-mails and consents, before AS_OF."""
    books = await add_product(db, "B-1", "books")
    kitchen = await add_product(db, "K-1", "kitchen")
    cid = await add_customer(db, created_at=T0)
    # Order 1: two lines at one instant (one order), 3 units.
    await add_purchase(db, cid, AS_OF - days(200), "10.00", product_id=books, order_ref="o1")
    await add_purchase(
        db, cid, AS_OF - days(200), "30.00", product_id=kitchen, order_ref="o1", quantity=2
    )
    await add_purchase(db, cid, AS_OF - days(100), "20.00", product_id=books)
    await add_purchase(db, cid, AS_OF - days(10), "15.00", product_id=books)
    for ago in (5, 60, 200):
        await add_interaction(db, cid, AS_OF - days(ago), "complaint", "support")
    await add_interaction(db, cid, AS_OF - days(300), "ticket_opened", "support")
    for ago in (1, 20, 50, 95):
        await add_interaction(db, cid, AS_OF - days(ago), "email_open", "email")
    await add_interaction(db, cid, AS_OF - days(20) + timedelta(minutes=2), "email_click", "email")
    await add_interaction(db, cid, AS_OF - days(3), "page_view", "web")
    await add_interaction(db, cid, AS_OF - days(40), "page_view", "app")
    await add_consent(db, cid, "email_marketing", True, T0)
    await add_consent(db, cid, "email_marketing", False, AS_OF - days(30))
    await add_consent(db, cid, "personalization", True, AS_OF - days(1))
    return cid


# --- the definition --------------------------------------------------------------------


async def test_sql_columns_are_the_features_in_order(db):
    async with db.acquire() as conn:
        statement = await conn.prepare(query("customer_features"))
        attributes = statement.get_attributes()
    assert [a.name for a in attributes] == ["customer_id", *FEATURES]
    assert [a.type.name for a in attributes] == ["int8"] + ["float8"] * len(FEATURES)


def test_every_feature_is_described_once():
    assert len(set(FEATURES)) == len(FEATURES)
    assert set(FEATURE_DESCRIPTIONS) == set(FEATURES)
    assert all(text and text == text.strip() for text in FEATURE_DESCRIPTIONS.values())


def test_definition_hash_is_stable_and_follows_the_feature_list(monkeypatch):
    first = feature_definition_hash()
    assert first == feature_definition_hash()
    assert len(first) == 64
    int(first, 16)
    monkeypatch.setattr(features_module, "FEATURES", (*FEATURES, "something_new"))
    assert feature_definition_hash() != first
    monkeypatch.setattr(features_module, "FEATURES", tuple(reversed(FEATURES)))
    assert feature_definition_hash() != first


def test_definition_hash_follows_the_sql(monkeypatch):
    first = feature_definition_hash()
    real = features_module.query
    monkeypatch.setattr(features_module, "query", lambda name: real(name) + " ")
    assert feature_definition_hash() != first


# --- known answers ---------------------------------------------------------------------


async def test_season_counts_the_coming_window_one_year_earlier(db):
    cid = await add_customer(db, created_at=T0)
    for ago in (366, 350, 300, 280, 270):  # 366: before the window; 270: after it
        await add_purchase(db, cid, AS_OF - days(ago), "10.00")
    row = (await features(db)).row(cid)
    assert row["orders_next_30d_last_year"] == 1  # [-365, -335): day -350
    assert row["orders_next_90d_last_year"] == 3  # [-365, -275): days -350, -300, -280


async def test_known_answers_for_a_regular_customer(db):
    cid = await regular_customer(db)
    frame = await features(db)
    assert frame.customer_ids.tolist() == [cid]
    assert frame.matrix.shape == (1, len(FEATURES))
    assert frame.as_of == AS_OF
    assert_row(frame.row(cid), {
        "days_since_last_purchase": 10,
        "days_since_first_purchase": 200,
        "tenure_days": 400,
        "orders_30d": 1, "orders_90d": 1, "orders_365d": 3, "orders_lifetime": 3,
        "spend_30d": 15, "spend_90d": 15, "spend_365d": 75, "spend_lifetime": 75,
        # last 90 days: 15; the 90 before (order of day -100): 20
        "spend_trend_90d": (15 - 20) / (15 + 20),
        "orders_trend_90d": 0,
        "avg_order_value": 25,
        "avg_basket_lines": 4 / 3,
        "avg_basket_quantity": 5 / 3,
        # gaps 100 and 90 days
        "interpurchase_mean_days": 95,
        "interpurchase_std_days": math.sqrt(50),
        "overdue_ratio": 10 / 95,
        "distinct_categories": 2,
        "top_category_share": 45 / 75,  # books 10 + 20 + 15 of 75
        "complaints_30d": 1, "complaints_90d": 2,
        "tickets_30d": 0, "tickets_90d": 0,
        "days_since_last_complaint": 5,
        "days_since_last_ticket": 300,
        "email_opens_30d": 2, "email_opens_90d": 3,
        "email_clicks_30d": 1, "email_clicks_90d": 1,
        "email_click_rate_90d": 1 / 3,
        "page_views_30d": 1, "page_views_90d": 2,
        "reviews_90d": 0,
        "web_interactions_90d": 1, "app_interactions_90d": 1,
        "interactions_90d": 2 + 3 + 1 + 2,
    })  # fmt: skip


async def test_missing_values_for_a_customer_without_history(db):
    cid = await add_customer(db, created_at=AS_OF - days(300))
    frame = await features(db)
    row = frame.row(cid)
    assert row["tenure_days"] == pytest.approx(300)
    assert all(row[name] == 0 for name in COUNTS)
    undefined = set(FEATURES) - set(COUNTS) - {"tenure_days"}
    assert all(math.isnan(row[name]) for name in undefined), {n: row[n] for n in undefined}


async def test_one_or_two_orders_leave_the_spread_undefined(db):
    once = await add_customer(db)
    twice = await add_customer(db)
    # A line without a product: spend counts, categories do not.
    await add_purchase(db, once, AS_OF - days(50), "12.50")
    await add_purchase(db, twice, AS_OF - days(30), "10.00")
    await add_purchase(db, twice, AS_OF - days(6), "10.00")
    frame = await features(db)
    assert_row(frame.row(once), {
        "days_since_last_purchase": 50, "orders_lifetime": 1, "spend_lifetime": 12.5,
        "avg_basket_lines": 1, "interpurchase_mean_days": NAN, "interpurchase_std_days": NAN,
        "overdue_ratio": NAN, "distinct_categories": 0, "top_category_share": NAN,
        "spend_trend_90d": 1, "orders_trend_90d": 1,
    })  # fmt: skip
    assert_row(frame.row(twice), {
        "interpurchase_mean_days": 24, "interpurchase_std_days": NAN, "overdue_ratio": 6 / 24,
        "orders_30d": 2, "spend_30d": 20,
    })  # fmt: skip


# --- point in time ---------------------------------------------------------------------


async def test_nothing_at_or_after_the_as_of_time_changes_the_features(db):
    cid = await regular_customer(db)
    quiet = await add_customer(db, created_at=T0 + days(10))
    before = await features(db)

    for who in (cid, quiet):
        await add_purchase(db, who, AS_OF, "99.00")  # exactly at the as-of time
        await add_purchase(db, who, AS_OF + days(3), "99.00", order_ref="later")
        await add_interaction(db, who, AS_OF, "complaint", "support")
        for minutes, (kind, channel) in enumerate((
            ("complaint", "support"), ("email_open", "email"), ("email_click", "email"),
            ("ticket_opened", "support"), ("page_view", "web"), ("page_view", "app"),
        ), start=1):  # fmt: skip
            await add_interaction(db, who, AS_OF + timedelta(minutes=minutes), kind, channel)
        for purpose in ("email_marketing", "personalization", "profiling"):
            await add_consent(db, who, purpose, False, AS_OF)
            await add_consent(db, who, purpose, True, AS_OF + days(1))
    await add_customer(db, created_at=AS_OF)  # created at the as-of time: not a customer yet
    await add_customer(db, created_at=AS_OF + days(1))
    after = await features(db)
    assert same(before, after)
    assert after.customer_ids.tolist() == [cid, quiet]

    # The same kinds of change just before the as-of time do count.
    await add_purchase(db, quiet, AS_OF - timedelta(microseconds=1), "5.00")
    await add_interaction(db, quiet, AS_OF - timedelta(seconds=1), "complaint", "support")
    changed = (await features(db)).row(quiet)
    assert changed["orders_30d"] == 1
    assert changed["spend_lifetime"] == 5
    assert changed["days_since_last_purchase"] == pytest.approx(1e-6 / 86400, abs=1e-12)
    assert changed["complaints_30d"] == 1


async def test_the_as_of_time_is_an_instant_whatever_its_zone(db):
    await regular_customer(db)
    utc = await features(db)
    berlin = await features(db, AS_OF.astimezone(timezone(timedelta(hours=2))))
    assert same(utc, berlin)


async def test_customers_created_later_are_absent(db):
    early = await add_customer(db, created_at=T0)
    await add_customer(db, created_at=AS_OF)
    late = await add_customer(db, created_at=AS_OF + days(1))
    assert (await features(db)).customer_ids.tolist() == [early]
    subset = await features(db, customer_ids=[late, early])
    assert subset.customer_ids.tolist() == [early]
    with pytest.raises(KeyError):
        subset.row(late)


async def test_naive_as_of_is_refused(db):
    with pytest.raises(ValueError, match="timezone"):
        await features(db, datetime(2025, 1, 1))


# --- serving = training, determinism, seeded data --------------------------------------


async def test_seeded_data_subset_parity_and_determinism(db):
    async with db.acquire() as conn:
        await seed_database(conn, customers=300, seed=3, now=SEED_NOW)
    as_of = SEED_NOW - days(30)
    full = await features(db, as_of)
    # Everyone existing then, but those whose latest personalization/profiling decision now is
    # a refusal (tests/ml/test_profiling_exclusions.py covers who is modelled in detail).
    existing = await db.fetchval(
        """SELECT count(*) FROM customers c WHERE created_at < $1 AND NOT EXISTS (
             SELECT 1 FROM (SELECT DISTINCT ON (purpose) granted FROM consents k
                             WHERE k.customer_id = c.id
                               AND purpose IN ('personalization', 'profiling')
                             ORDER BY purpose, recorded_at DESC, id DESC) latest
              WHERE NOT granted)""",
        as_of,
    )
    assert 0 < len(full) == existing
    assert full.customer_ids.dtype == np.int64
    assert full.matrix.dtype == np.float64
    assert (np.diff(full.customer_ids) > 0).all()
    assert not full.matrix.flags.writeable
    assert same(full, await features(db, as_of))  # same data, same matrix

    # Serving asks for a few ids (unsorted, repeated, some unknown): the same rows.
    picked = full.customer_ids[::37].tolist()
    unknown = [int(full.customer_ids.max()) + 1000, -1]
    subset = await features(db, as_of, [*reversed(picked), picked[0], *unknown])
    assert subset.customer_ids.tolist() == picked
    rows = np.searchsorted(full.customer_ids, subset.customer_ids)
    assert np.array_equal(full.matrix[rows], subset.matrix, equal_nan=True)
    empty = await features(db, as_of, [])
    assert empty.matrix.shape == (0, len(FEATURES))

    # Counts are never missing and windows nest.
    m = {name: full.column(name) for name in FEATURES}
    for name in COUNTS:
        assert not np.isnan(m[name]).any(), name
        assert (m[name] >= 0).all(), name
    for kind in ("orders", "spend"):
        windows = [m[f"{kind}_{w}"] for w in ("30d", "90d", "365d", "lifetime")]
        assert all((a <= b + 1e-9).all() for a, b in itertools.pairwise(windows))
    assert (m["tenure_days"] > 0).all()
    bought = ~np.isnan(m["days_since_last_purchase"])
    assert bought.mean() > 0.4
    assert (m["orders_lifetime"][bought] >= 1).all()
    assert (m["orders_lifetime"][~bought] == 0).all()
    assert (m["days_since_last_purchase"][bought] <= m["days_since_first_purchase"][bought]).all()
    assert (m["days_since_first_purchase"][bought] <= m["tenure_days"][bought] + 1e-9).all()
    share = m["top_category_share"][bought]
    assert ((share > 0) & (share <= 1)).all()
    for name in ("spend_trend_90d", "orders_trend_90d"):
        trend = m[name][~np.isnan(m[name])]
        assert ((trend >= -1) & (trend <= 1)).all()
    assert (m["email_opens_90d"] > 0).any()
    assert (m["page_views_90d"] > 0).any()
    assert np.nanmax(m["avg_order_value"]) < 50_000

    # Frequency and monetary value agree with a plain per-customer query.
    plain = await db.fetch(
        """SELECT customer_id, count(DISTINCT purchased_at) AS orders, sum(amount) AS spend
             FROM purchases WHERE purchased_at < $1 GROUP BY customer_id""",
        as_of,
    )
    for r in plain:
        if r["customer_id"] in full.customer_ids:
            row = full.row(r["customer_id"])
            assert row["orders_lifetime"] == r["orders"]
            assert row["spend_lifetime"] == pytest.approx(float(r["spend"]))


def test_decoder_refuses_what_it_cannot_read():
    with pytest.raises(RuntimeError):
        decode_binary_copy(bytearray(b"not a copy"), 3)
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    # One row of (bigint, NULL): a NULL would misalign the fixed-width rows.
    row = (2).to_bytes(2, "big") + (8).to_bytes(4, "big") + (7).to_bytes(8, "big")
    row += (-1).to_bytes(4, "big", signed=True) + bytes(8)
    with pytest.raises(RuntimeError):
        decode_binary_copy(bytearray(header + row + b"\xff\xff"), 1)
