"""The analytics root fields answered by the one SQL statement (api/sql_analytics.py).

Besides the parity check (api/parity.py compares values), each answer is compared byte for
byte with the Python path's: parity parses both sides, and 1 == 1.0 in Python, so only the
bytes tell whether a float kept its ".0" (whitespace aside: PostgreSQL writes ``{"a" : 1}``).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from api.metrics import READS
from domain.rfm import RfmSegment
from tests.api.test_analytics import shop
from tests.conftest import api_key, serving

WINDOW = 'from: "2025-01-01T00:00:00Z", to: "2025-05-01T00:00:00Z"'
# Every analytics root, each with the variables it declares: one root per statement (several
# in one operation fall back, so that the Python paths run them side by side).
ROOTS = {
    "range": ("", "range: purchaseTimeRange { first last __typename }"),
    "revenue": (
        "$g: Granularity!, $filter: RevenueFilterInput",
        f"revenue(granularity: $g, {WINDOW}, filter: $filter) {{"
        " period revenue orders activeCustomers averageOrderValue }",
    ),
    "cohortRetention": (
        "$months: Int!",
        'cohortRetention(from: "2025-01-01T00:00:00Z", to: "2025-03-01T00:00:00Z",'
        " months: $months) { month size retention }",
    ),
    "topProducts": (
        "$category: String",
        f"topProducts({WINDOW}, first: 5, category: $category) {{"
        " product { id sku category price } revenue units customers }",
    ),
    "topCategories": (
        "",
        f"topCategories({WINDOW}, first: 1) {{ category revenue units customers }}",
    ),
    "churnRiskDistribution": (
        "$bins: Int!",
        "churnRiskDistribution(bins: $bins) { from to customers }",
    ),
    "kpis": (
        "",
        f"kpis({WINDOW}) {{ customers revenue orders activeCustomers averageOrderValue }}",
    ),
}
EVERYTHING = (
    "query($g: Granularity!, $filter: RevenueFilterInput, $category: String, $months: Int!,"
    " $bins: Int!) { " + " ".join(text for _, text in ROOTS.values()) + " }"
)
MONTHS = {"g": "MONTH", "months": 3, "bins": 3}


async def _post(http: Any, query: str, variables: dict[str, Any] | None) -> Any:
    return await http.post("/graphql", json={"query": query, "variables": variables})


async def by_sql(client: Any, query: str, variables: dict[str, Any] | None = None) -> bytes:
    """The response body, checked to come from one statement that built the JSON."""
    before = READS.answered.copy(), READS.fallbacks.copy()
    response = await _post(client, query, variables)
    assert response.status_code == 200, response.text
    assert READS.fallbacks - before[1] == {}
    assert READS.answered - before[0] == {"sql": 1}
    assert response.headers["X-SQL-Statements"] == "1"
    return response.content


async def python_answer(
    database_url: str, settings: Any, key: str, query: str, variables: dict[str, Any] | None
) -> bytes:
    """The same query answered by the Python paths (no SQL compiler)."""
    python = settings.model_copy(update={"sql_reads": False})
    async with serving(database_url, python, key=key) as http:
        return (await _post(http, query, variables)).content


async def every_root(
    client: Any, database_url: str, settings: Any, key: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """Each root of ROOTS asked alone: answered by one statement, with the Python path's bytes;
    the data of all of them, as one query would have it."""
    data: dict[str, Any] = {}
    for declared, text in ROOTS.values():
        query = f"query({declared}) {{ {text} }}" if declared else f"{{ {text} }}"
        names = {d.split(":")[0].strip().lstrip("$") for d in declared.split(",") if d}
        own = {k: v for k, v in variables.items() if k in names}
        sql = await by_sql(client, query, own)
        same_bytes(sql, await python_answer(database_url, settings, key, query, own))
        data.update(orjson.loads(sql)["data"])
    return data


def same_bytes(sql: bytes, python: bytes) -> None:
    """Equal once PostgreSQL's whitespace is gone: orjson writes back exactly what it read
    (an int stays an int, a float keeps its digits), in orjson's layout."""
    assert orjson.dumps(orjson.loads(sql)) == python


async def test_every_analytics_root_is_one_statement_with_python_bytes(
    client, db, database_url, settings
):
    ids = await shop(db)
    for customer, churn in ((ids["x"], 0.05), (ids["y"], 0.55), (ids["z"], 1.0)):
        await db.execute(
            "INSERT INTO customer_scores (customer_id, as_of, churn_probability)"
            " VALUES ($1, now(), $2)", customer, churn,
        )  # fmt: skip
    body = await every_root(client, database_url, settings, await api_key(db), MONTHS)
    assert body["range"] == {
        "first": "2025-01-05T12:00:00+00:00", "last": "2025-04-15T12:00:00+00:00",
        "__typename": "TimeRange",
    }  # fmt: skip
    assert [(m["period"], m["revenue"], m["orders"], m["averageOrderValue"])
            for m in body["revenue"]] == [
        ("2025-01-01T00:00:00+00:00", "45.00", 2, "22.50"),
        ("2025-02-01T00:00:00+00:00", "90.00", 2, "45.00"),
        ("2025-03-01T00:00:00+00:00", "140.00", 2, "70.00"),
        ("2025-04-01T00:00:00+00:00", "40.00", 1, "40.00"),
    ]  # fmt: skip
    assert body["cohortRetention"] == [
        {"month": "2025-01-01T00:00:00+00:00", "size": 2, "retention": [1.0, 0.5, 0.5, 0.5]},
        {"month": "2025-02-01T00:00:00+00:00", "size": 1, "retention": [1.0, 1.0, 0.0, 0.0]},
    ]
    assert b'"retention":[1.0,0.5,0.5,0.5]' in orjson.dumps(body)
    assert [(p["product"]["sku"], p["revenue"], p["units"]) for p in body["topProducts"]] == [
        ("SKU-LAMP", "225.00", 5), ("SKU-BOOK", "90.00", 4),
    ]  # fmt: skip
    assert body["topCategories"] == [
        {"category": "home", "revenue": "225.00", "units": 5, "customers": 3}
    ]
    assert body["churnRiskDistribution"] == [
        {"from": 0.0, "to": 1 / 3, "customers": 1},
        {"from": 1 / 3, "to": 2 / 3, "customers": 1},
        {"from": 2 / 3, "to": 1.0, "customers": 1},
    ]
    assert body["kpis"] == {
        "customers": 3, "revenue": "315.00", "orders": 7, "activeCustomers": 3,
        "averageOrderValue": "45.00",
    }  # fmt: skip


async def test_an_empty_window_and_no_purchases_at_all(client, db, database_url, settings):
    fields = [
        "purchaseTimeRange { first last }",
        'revenue(granularity: WEEK, from: "2030-01-01T00:00:00Z", to: "2030-01-15T00:00:00Z")'
        " { period revenue orders activeCustomers averageOrderValue }",
        'cohortRetention(from: "2030-01-01T00:00:00Z", to: "2030-02-01T00:00:00Z") { size }',
        'topProducts(from: "2030-01-01T00:00:00Z", to: "2030-02-01T00:00:00Z") { units }',
        "churnRiskDistribution(bins: 2) { from to customers }",
        'kpis(from: "2030-01-01T00:00:00Z", to: "2030-02-01T00:00:00Z")'
        " { customers revenue orders activeCustomers averageOrderValue }",
    ]
    key = await api_key(db)
    body: dict[str, Any] = {}
    for field in fields:
        sql = await by_sql(client, f"{{ {field} }}")
        same_bytes(sql, await python_answer(database_url, settings, key, f"{{ {field} }}", None))
        body.update(orjson.loads(sql)["data"])
    assert body["purchaseTimeRange"] == {"first": None, "last": None}
    empty = {"revenue": "0", "orders": 0, "activeCustomers": 0, "averageOrderValue": None}
    assert body["revenue"] == [
        {"period": "2029-12-31T00:00:00+00:00", **empty},  # ISO weeks start on Monday
        {"period": "2030-01-07T00:00:00+00:00", **empty},
        {"period": "2030-01-14T00:00:00+00:00", **empty},
    ]
    assert body["cohortRetention"] == body["topProducts"] == []
    assert body["churnRiskDistribution"] == [
        {"from": 0.0, "to": 0.5, "customers": 0}, {"from": 0.5, "to": 1.0, "customers": 0},
    ]  # fmt: skip
    assert body["kpis"] == {"customers": 0, **empty}
    await shop(db)
    later = await by_sql(client, f"{{ {fields[-1]} }}")  # purchases, none in the window
    assert orjson.loads(later)["data"]["kpis"] == {"customers": 3, **empty}


@pytest.mark.parametrize(
    ("variables", "revenues", "skus"),
    [
        ({"filter": {"country": "gb"}}, ["45.00", "20.00", "60.00", "40.00"], None),
        ({"filter": {"category": " Books "}, "category": "BOOKS"},
         ["10.00", "20.00", "60.00", "0"], ["SKU-BOOK"]),
        ({"filter": {"channel": "Store"}}, ["0", "0", "0", "0"], None),
    ],
)  # fmt: skip
async def test_filters(client, db, database_url, settings, variables, revenues, skus):
    await shop(db)
    variables = {**MONTHS, **variables}
    body = await every_root(client, database_url, settings, await api_key(db), variables)
    assert [m["revenue"] for m in body["revenue"]] == revenues
    if skus is not None:
        assert [p["product"]["sku"] for p in body["topProducts"]] == skus


async def test_retention_is_null_for_months_still_to_come(client, db, database_url, settings):
    await shop(db)
    variables = {**MONTHS, "months": 60}  # January 2025 + 60 months: still to come
    body = await every_root(client, database_url, settings, await api_key(db), variables)
    january = body["cohortRetention"][0]["retention"]
    assert january[:5] == [1.0, 0.5, 0.5, 0.5, 0.0]
    assert len(january) == 61
    assert january[-1] is None


BAD = [
    ('kpis(from: "2025-02-01T00:00:00Z", to: "2025-01-01T00:00:00Z") { orders }', "from"),
    ('kpis(from: "2025-01-01T00:00:00", to: "2025-02-01T00:00:00Z") { orders }', "from"),
    ('revenue(granularity: DAY, from: "2020-01-01T00:00:00Z", to: "2025-01-01T00:00:00Z")'
     " { orders }", "to"),
    ('revenue(granularity: DAY, from: "2025-01-01T00:00:00Z", to: "2025-01-02T00:00:00Z",'
     ' filter: {country: "Narnia"}) { orders }', "country"),
    ('cohortRetention(from: "2025-01-01T00:00:00Z", to: "2025-02-01T00:00:00Z", months: 61)'
     " { size }", "months"),
    ('topProducts(from: "2025-01-01T00:00:00Z", to: "2025-02-01T00:00:00Z", first: 0)'
     " { units }", "first"),
    ('topProducts(from: "2025-01-01T00:00:00Z", to: "2025-02-01T00:00:00Z",'
     f' category: "{"x" * 501}") {{ units }}', "category"),
    ('topCategories(from: "2025-01-01T00:00:00Z", to: "2025-02-01T00:00:00Z", first: 101)'
     " { units }", "first"),
    ("churnRiskDistribution(bins: 0) { to }", "bins"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "argument"), BAD)
async def test_arguments_python_refuses_fall_back_and_are_refused_alike(
    client, db, database_url, settings, field, argument
):
    query = f"{{ {field} }}"
    before = READS.fallbacks.copy()
    response = await _post(client, query, None)
    assert READS.fallbacks - before == {"analytics arguments to refuse": 1}
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"].get("field") == argument
    python = await python_answer(database_url, settings, await api_key(db), query, None)
    assert response.content == python


async def test_the_revenue_of_a_segment_is_left_to_python(client, db):
    await shop(db)
    made = """mutation { createSegment(name: "de", definition: {countryIn: ["DE"]}) {
        ... on Segment { id } } }"""
    sid = (await _post(client, made, None)).json()["data"]["createSegment"]["id"]
    declared, text = ROOTS["revenue"]
    before = READS.fallbacks.copy()
    query = f"query({declared}) {{ {text} }}"
    body = (await _post(client, query, {"g": "MONTH", "filter": {"segmentId": sid}})).json()
    assert READS.fallbacks - before == {"revenue of a segment": 1}
    assert [m["revenue"] for m in body["data"]["revenue"]] == ["0", "70.00", "80.00", "0"]


async def test_several_analytics_roots_are_left_to_python_side_by_side(client, db):
    """One statement would scan for each root in turn; the Python paths overlap them."""
    await shop(db)
    before = READS.fallbacks.copy()
    body = (await _post(client, EVERYTHING, MONTHS)).json()
    assert READS.fallbacks - before == {"several analytics roots": 1}
    assert body["data"]["kpis"]["orders"] == 7


FLOATS = [0.0, -0.0, 1.0, 0.5, 1 / 3, 2 / 3, 0.1 + 0.2, 1e-5, 1.5e-5, 1e-4, 1e-6, 1e-7, 123.0,
          1e15, 1e15 + 0.5, 1e16, 9007199254740991.0, 5e-324, 1.7976931348623157e308]  # fmt: skip


async def test_floats_render_as_orjson_writes_them(db):
    rows = await db.fetch(
        "SELECT u.x, cdm_json_float(u.x)::text AS t FROM unnest($1::float8[]) u(x)", FLOATS
    )
    assert [r["t"] for r in rows] == [orjson.dumps(x).decode() for x in FLOATS]
    assert await db.fetchval(
        "SELECT cdm_json_float('NaN') IS NULL AND cdm_json_float(NULL) IS NULL"
    )


AGGREGATE = """query($by: [CustomerDimension!], $filter: SegmentFilterInput, $first: Int!) {
  customersAggregate(groupBy: $by, filter: $filter, first: $first) {
    key { country churnBand rfmSegment __typename } count
    spend { sum avg min max } orders { sum avg max } purchases { sum min }
    churnProbability { avg min max } } }"""


async def _scored(db: Any) -> dict[str, int]:
    ids = await shop(db)
    await db.execute(
        "INSERT INTO customer_scores (customer_id, as_of, churn_probability) VALUES"
        " ($1, now(), 0.9), ($2, now(), 0.1)", ids["x"], ids["z"],
    )  # fmt: skip
    return ids


@pytest.mark.parametrize(
    ("variables", "groups"),
    [
        ({"by": ["COUNTRY"]}, [("DE", None, 1), ("GB", None, 2)]),
        # Each dimension once, in the order first given; the first two groups of three.
        ({"by": ["CHURN_BAND", "COUNTRY", "CHURN_BAND"], "first": 2},
         [("GB", "high", 1), ("DE", "low", 1)]),
        ({}, [(None, None, 3)]),
        ({"filter": {"totalSpend": {"min": "100"}}, "by": []}, [(None, None, 1)]),
        ({"by": ["RFM_SEGMENT"]}, None),  # segments as `refreshRfm` scores them
    ],
)  # fmt: skip
async def test_customers_aggregate(client, db, database_url, settings, variables, groups):
    await _scored(db)
    await _post(client, "mutation { refreshRfm { customers } }", None)
    variables = {"first": 100, **variables}
    sql = await by_sql(client, AGGREGATE, variables)
    key = await api_key(db)
    same_bytes(sql, await python_answer(database_url, settings, key, AGGREGATE, variables))
    found = orjson.loads(sql)["data"]["customersAggregate"]
    if groups is None:
        assert all(g["key"]["rfmSegment"] in RfmSegment.__members__ for g in found)
        assert sum(g["count"] for g in found) == 3
        return
    assert [(g["key"]["country"], g["key"]["churnBand"], g["count"]) for g in found] == groups
    if variables.get("by") == ["COUNTRY"]:
        assert found[1]["spend"] == {"sum": 165.0, "avg": 82.5, "min": 75.0, "max": 90.0}
        assert found[1]["orders"] == {"sum": 5.0, "avg": 2.5, "max": 3.0}
        assert found[1]["churnProbability"] == {"avg": 0.9, "min": 0.9, "max": 0.9}
        assert found[1]["key"]["__typename"] == "AggregateKey"


async def test_customers_aggregate_recency_and_refusals_are_left_to_python(client, db):
    await _scored(db)
    before = READS.fallbacks.copy()
    recency = "{ customersAggregate { count daysSinceLastPurchase { max } } }"
    body = (await _post(client, recency, None)).json()
    assert body["data"]["customersAggregate"][0]["count"] == 3
    bad = {"first": 0}
    refused = (await _post(client, AGGREGATE, bad)).json()
    assert refused["errors"][0]["extensions"]["field"] == "first"
    invalid = {"first": 10, "filter": {"totalSpend": {"min": "100", "max": "1"}}}
    refused = (await _post(client, AGGREGATE, invalid)).json()
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert READS.fallbacks - before == {
        "CustomerAggregate.daysSinceLastPurchase is not compiled to SQL": 1,
        "analytics arguments to refuse": 2,
    }


def test_rfm_segments_are_named_by_their_upper_cased_values():
    """What AGGREGATE_KEY's upper() relies on (sql/analytics_json.py)."""
    assert all(s.name == s.value.upper() for s in RfmSegment)
