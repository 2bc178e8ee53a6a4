"""Analytics on a hand-made dataset whose answers are known."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.factories import add_customer, add_product, add_purchase
from tests.http_client import data, error_codes, gql


def at(month: int, day: int = 15) -> datetime:
    return datetime(2025, month, day, 12, tzinfo=UTC)


async def shop(db) -> dict[str, int]:
    """x: first buys in January, again in February and April; y: January and March;
    z: first buys in February, again in March. Two categories, two countries."""
    x = await add_customer(db, first_name="x", country="GB")
    y = await add_customer(db, first_name="y", country="GB")
    z = await add_customer(db, first_name="z", country="DE")
    book = await add_product(db, "SKU-BOOK", "books")
    lamp = await add_product(db, "SKU-LAMP", "home")
    await add_purchase(db, x, at(1, 5), "10.00", product_id=book, order_ref="x1", quantity=2)
    await add_purchase(db, x, at(1, 5), "5.00", product_id=lamp, order_ref="x1")  # same order
    await add_purchase(db, x, at(2), "20.00", product_id=book)
    await add_purchase(db, x, at(4), "40.00", product_id=lamp)
    await add_purchase(db, y, at(1, 20), "30.00", product_id=lamp)
    await add_purchase(db, y, at(3), "60.00", product_id=book)
    await add_purchase(db, z, at(2, 3), "70.00", product_id=lamp)
    await add_purchase(db, z, at(3, 3), "80.00", product_id=lamp)
    return {"x": x, "y": y, "z": z}


REVENUE = """query($g: Granularity!, $filter: RevenueFilterInput) {
  revenue(granularity: $g, from: "2025-01-01T00:00:00Z", to: "2025-05-01T00:00:00Z",
          filter: $filter) { period revenue orders activeCustomers averageOrderValue } }"""


async def test_revenue_by_month_with_filters(client, db):
    await shop(db)
    months = data(await gql(client, REVENUE, {"g": "MONTH"}))["revenue"]
    assert [
        (m["period"][:10], m["revenue"], m["orders"], m["activeCustomers"]) for m in months
    ] == [
        ("2025-01-01", "45.00", 2, 2),  # x's two lines are one order
        ("2025-02-01", "90.00", 2, 2),
        ("2025-03-01", "140.00", 2, 2),
        ("2025-04-01", "40.00", 1, 1),
    ]
    assert months[0]["averageOrderValue"] == "22.50"
    gb = data(await gql(client, REVENUE, {"g": "MONTH", "filter": {"country": "gb"}}))
    assert [m["revenue"] for m in gb["revenue"]] == ["45.00", "20.00", "60.00", "40.00"]
    books = data(await gql(client, REVENUE, {"g": "MONTH", "filter": {"category": "Books"}}))
    assert [m["revenue"] for m in books["revenue"]] == ["10.00", "20.00", "60.00", "0"]
    assert books["revenue"][3]["orders"] == 0  # an empty month counts no order
    assert books["revenue"][3]["averageOrderValue"] is None
    weeks = data(await gql(client, REVENUE, {"g": "WEEK"}))["revenue"]
    assert weeks[0]["period"].startswith("2024-12-30")  # ISO weeks start on Monday
    assert sum(float(w["revenue"]) for w in weeks) == 315.0
    days = data(await gql(client, REVENUE, {"g": "DAY"}))["revenue"]
    assert len(days) == 120


async def test_revenue_of_a_segment(client, db):
    await shop(db)
    made = """mutation { createSegment(name: "de", definition: {countryIn: ["DE"]}) {
        ... on Segment { id } } }"""
    sid = data(await gql(client, made))["createSegment"]["id"]
    body = data(await gql(client, REVENUE, {"g": "MONTH", "filter": {"segmentId": sid}}))
    assert [m["revenue"] for m in body["revenue"]] == ["0", "70.00", "80.00", "0"]
    unknown = await gql(client, REVENUE, {"g": "MONTH", "filter": {"segmentId": "999"}})
    assert error_codes(unknown) == ["BAD_USER_INPUT"]


COHORTS = """query($months: Int!) { cohortRetention(from: "2025-01-01T00:00:00Z",
  to: "2025-03-01T00:00:00Z", months: $months) { month size retention } }"""


async def test_cohort_retention_on_a_known_dataset(client, db):
    await shop(db)
    cohorts = data(await gql(client, COHORTS, {"months": 3}))["cohortRetention"]
    assert cohorts == [
        {"month": "2025-01-01T00:00:00+00:00", "size": 2, "retention": [1.0, 0.5, 0.5, 0.5]},
        {"month": "2025-02-01T00:00:00+00:00", "size": 1, "retention": [1.0, 1.0, 0.0, 0.0]},
    ]


async def test_top_sellers_histogram_and_kpis(client, db):
    ids = await shop(db)
    window = 'from: "2025-01-01T00:00:00Z", to: "2025-05-01T00:00:00Z"'
    top = data(
        await gql(
            client,
            f"""{{ topProducts({window}, first: 5) {{
        product {{ sku }} revenue units customers }}
        topCategories({window}) {{ category revenue units customers }}
        kpis({window}) {{ customers revenue orders activeCustomers averageOrderValue }} }}""",
        )
    )
    assert top["topProducts"] == [
        {"product": {"sku": "SKU-LAMP"}, "revenue": "225.00", "units": 5, "customers": 3},
        {"product": {"sku": "SKU-BOOK"}, "revenue": "90.00", "units": 4, "customers": 2},
    ]
    assert [c["category"] for c in top["topCategories"]] == ["home", "books"]
    assert top["kpis"] == {
        "customers": 3, "revenue": "315.00", "orders": 7, "activeCustomers": 3,
        "averageOrderValue": "45.00",
    }  # fmt: skip
    for customer, churn in ((ids["x"], 0.05), (ids["y"], 0.55), (ids["z"], 1.0)):
        await db.execute(
            "INSERT INTO customer_scores (customer_id, as_of, churn_probability)"
            " VALUES ($1, now(), $2)", customer, churn,
        )  # fmt: skip
    bins = data(await gql(client, "{ churnRiskDistribution(bins: 4) { from to customers } }"))
    assert bins["churnRiskDistribution"] == [
        {"from": 0.0, "to": 0.25, "customers": 1}, {"from": 0.25, "to": 0.5, "customers": 0},
        {"from": 0.5, "to": 0.75, "customers": 1}, {"from": 0.75, "to": 1.0, "customers": 1},
    ]  # fmt: skip


AGGREGATE = """query($by: [CustomerDimension!], $filter: SegmentFilterInput) {
  customersAggregate(groupBy: $by, filter: $filter) { key { country churnBand rfmSegment } count
    spend { sum avg min max } orders { sum max } purchases { sum } churnProbability { avg } } }"""


async def test_customers_aggregate_groups_and_filters(client, db):
    ids = await shop(db)
    await db.execute(
        "INSERT INTO customer_scores (customer_id, as_of, churn_probability) VALUES"
        " ($1, now(), 0.9), ($2, now(), 0.1)", ids["x"], ids["z"],
    )  # fmt: skip
    by_country = data(await gql(client, AGGREGATE, {"by": ["COUNTRY"]}))["customersAggregate"]
    assert [(g["key"]["country"], g["count"], g["spend"]["sum"]) for g in by_country] == [
        ("DE", 1, 150.0),
        ("GB", 2, 165.0),
    ]
    assert by_country[1]["spend"]["min"] == 75.0  # x: 10 + 5 + 20 + 40
    assert by_country[1]["spend"]["max"] == 90.0
    assert by_country[1]["purchases"]["sum"] == 6.0
    assert by_country[1]["orders"] == {"sum": 5.0, "max": 3.0}  # x's two first lines: one order
    both = data(await gql(client, AGGREGATE, {"by": ["COUNTRY", "CHURN_BAND"]}))
    assert [(g["key"]["country"], g["key"]["churnBand"], g["count"])
            for g in both["customersAggregate"]] == [
        ("DE", "low", 1), ("GB", "high", 1), ("GB", None, 1),
    ]  # fmt: skip
    everyone = data(await gql(client, AGGREGATE, {}))["customersAggregate"]
    assert [(g["count"], g["key"]["country"]) for g in everyone] == [(3, None)]
    assert everyone[0]["churnProbability"]["avg"] == pytest.approx(0.5)
    filtered = data(
        await gql(client, AGGREGATE, {"filter": {"totalSpend": {"min": "100"}}, "by": []})
    )["customersAggregate"]
    assert filtered[0]["count"] == 1


async def test_windows_and_sizes_are_checked(client, db):
    bad = '{ kpis(from: "2025-02-01T00:00:00Z", to: "2025-01-01T00:00:00Z") { orders } }'
    assert error_codes(await gql(client, bad)) == ["BAD_USER_INPUT"]
    naive = '{ kpis(from: "2025-01-01T00:00:00", to: "2025-02-01T00:00:00Z") { orders } }'
    assert error_codes(await gql(client, naive)) == ["BAD_USER_INPUT"]
    years = """{ revenue(granularity: DAY, from: "2020-01-01T00:00:00Z",
        to: "2025-01-01T00:00:00Z") { orders } }"""
    assert error_codes(await gql(client, years)) == ["BAD_USER_INPUT"]
    assert error_codes(await gql(client, "{ churnRiskDistribution(bins: 0) { to } }")) == [
        "BAD_USER_INPUT"
    ]


def _coded(body: dict) -> list[tuple[str, str | None]]:
    return [(e["extensions"]["code"], e["extensions"].get("field")) for e in body["errors"]]


async def test_time_arguments_are_range_checked_before_anything_runs(client, db):
    """Year 1 reached PostgreSQL as -infinity: a daily series from it ran until the statement
    timeout. Every time argument lies in 1900-01-01 .. 2200-01-01 (UTC), or is refused by name."""
    year_one = """{ revenue(granularity: DAY, from: "0001-01-01T00:00:00Z",
        to: "0001-01-31T00:00:00Z") { orders } }"""
    body = await gql(client, year_one)
    assert _coded(body) == [("BAD_USER_INPUT", "from")]
    assert "between 1900-01-01 and 2200-01-01" in body["errors"][0]["message"]
    late = '{ kpis(from: "2025-01-01T00:00:00Z", to: "2200-01-02T00:00:00Z") { orders } }'
    assert _coded(await gql(client, late)) == [("BAD_USER_INPUT", "to")]
    as_of = '{ customers(first: 1, filter: {createdAfter: "1899-12-31T00:00:00Z"}) { totalCount } }'
    assert _coded(await gql(client, as_of)) == [("BAD_USER_INPUT", "createdAfter")]


@pytest.mark.parametrize(
    ("granularity", "start", "end", "allowed"),
    [
        ("DAY", "1900-01-01", "2200-01-01", False),
        ("WEEK", "1900-01-01", "2200-01-01", False),
        ("MONTH", "1900-01-01", "2200-01-01", False),
        ("DAY", "2025-01-01", "2028-01-06", True),  # 1,100 days: the most
        ("DAY", "2025-01-01", "2028-01-07", False),
        ("WEEK", "2006-01-02", "2027-01-04", True),  # 1,096 weeks
        ("WEEK", "2006-01-02", "2027-02-08", False),  # 1,101 weeks
        ("MONTH", "1950-01-01", "2025-01-01", True),  # 900 months
    ],
)
async def test_series_are_bounded_in_periods_before_they_run(
    client, db, granularity, start, end, allowed
):
    query = f"""{{ revenue(granularity: {granularity}, from: "{start}T00:00:00Z",
        to: "{end}T00:00:00Z") {{ period }} }}"""
    body = await gql(client, query)
    if allowed:
        assert "errors" not in body, body
        assert len(body["data"]["revenue"]) >= 900
        return
    assert _coded(body) == [("BAD_USER_INPUT", "to")]
    assert "narrow the range or use a coarser granularity" in body["errors"][0]["message"]


async def test_cohort_matrices_are_bounded_before_they_run(client, db):
    wide = """{ cohortRetention(from: "1900-01-01T00:00:00Z", to: "2200-01-01T00:00:00Z",
        months: 12) { size } }"""
    body = await gql(client, wide)
    assert _coded(body) == [("BAD_USER_INPUT", "to")]
    assert "narrow the range" in body["errors"][0]["message"]
    decade = """{ cohortRetention(from: "2015-01-01T00:00:00Z", to: "2025-01-01T00:00:00Z",
        months: 60) { size } }"""
    assert "errors" not in await gql(client, decade)
