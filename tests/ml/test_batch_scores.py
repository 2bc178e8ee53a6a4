"""`cdm score --all`: stored scores equal online scores; targeting lists read them."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from sql.database import connect
from tests.cli.test_cli import assert_one_line_error, cdm
from tests.http_client import data, error_codes, gql
from tests.ml.conftest import SEED_NOW, cli_env, copy_store, serving, serving_settings

AT = SEED_NOW.isoformat()
# Everyone the seed made but those whose latest personalization/profiling decision is a
# refusal: they are not scored (tests/ml/test_profiling_scores.py).
MODELLED = """SELECT count(*) FROM customers c WHERE NOT EXISTS (
  SELECT 1 FROM (SELECT DISTINCT ON (purpose) granted FROM consents k WHERE k.customer_id = c.id
                    AND purpose IN ('personalization', 'profiling')
                  ORDER BY purpose, recorded_at DESC, id DESC) latest WHERE NOT granted)"""


@pytest.fixture(scope="module")
def scored(seeded_url, champions_dir, tmp_path_factory):
    """The seeded database scored by `cdm score --all` as of the seed's end."""
    data_dir = copy_store(champions_dir, tmp_path_factory.mktemp("scored") / "data")
    output = data_dir / "scores.parquet"
    result = cdm("score", "--all", "--as-of", AT, "--output", str(output),
                 env=cli_env(seeded_url, data_dir), timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return data_dir, output, result.stdout


async def test_stored_scores_equal_online_scores(seeded_url, scored):
    data_dir, output, stdout = scored
    conn = await connect(seeded_url)
    try:
        rows = await conn.fetch("SELECT * FROM customer_scores ORDER BY customer_id LIMIT 25")
        stored = await conn.fetchval("SELECT count(*) FROM customer_scores")
        modelled = await conn.fetchval(MODELLED)
    finally:
        await conn.close()
    assert 4000 < stored == modelled < 5000
    assert f"Scored {modelled:,} customers" in stdout
    query = """query($ids: [ID!], $at: DateTime) { scores(customerIds: $ids) { id
      churnRisk(asOf: $at) { probability provenance { version asOf } }
      nextPurchase(asOf: $at) { probability30d expectedPurchases expectedDays }
      recommendations(first: 5, asOf: $at) { product { id } } } }"""
    ids = [str(r["customer_id"]) for r in rows]
    async with serving(seeded_url, serving_settings(data_dir)) as http:
        online = data(await gql(http, query, {"ids": ids, "at": AT}))["scores"]
    for row, live in zip(rows, online, strict=True):
        assert row["as_of"] == SEED_NOW
        assert row["churn_probability"] == live["churnRisk"]["probability"]  # exactly equal
        assert row["churn_model_version"] == live["churnRisk"]["provenance"]["version"]
        assert row["purchase_30d_probability"] == live["nextPurchase"]["probability30d"]
        assert row["expected_purchases"] == live["nextPurchase"]["expectedPurchases"]
        assert row["expected_days_to_next"] == live["nextPurchase"]["expectedDays"]
        assert row["recommended_product_ids"] == [
            int(r["product"]["id"]) for r in live["recommendations"]
        ]

    written = pq.read_table(output).to_pylist()
    assert len(written) == modelled
    first = written[0]
    assert first["customer_id"] == rows[0]["customer_id"]
    assert first["churn_probability"] == rows[0]["churn_probability"]
    assert first["recommended_product_ids"] == rows[0]["recommended_product_ids"]


async def test_targeting_lists_filter_and_order_by_stored_churn_risk(seeded_url, scored):
    data_dir, _, _ = scored
    query = """query($after: String) {
      storedScoresSummary { customers asOf churnModelVersion }
      customers(first: 50, after: $after, filter: {minChurnRisk: 0.7},
                orderBy: {field: CHURN_RISK, direction: DESC}) {
        totalCount pageInfo { hasNextPage endCursor }
        nodes { id storedScores { churnProbability asOf } } } }"""
    async with serving(seeded_url, serving_settings(data_dir)) as http:
        first = data(await gql(http, query))
        second = data(
            await gql(http, query, {"after": first["customers"]["pageInfo"]["endCursor"]})
        )
        bad = await gql(http, "{ customers(filter: {minChurnRisk: 1.5}) { totalCount } }")
    summary = first["storedScoresSummary"]
    assert summary["asOf"] == AT
    conn = await connect(seeded_url)
    try:
        expected = await conn.fetchval(
            "SELECT count(*) FROM customer_scores WHERE churn_probability >= 0.7"
        )
        modelled = await conn.fetchval(MODELLED)
    finally:
        await conn.close()
    assert summary["customers"] == modelled
    assert first["customers"]["totalCount"] == expected > 50
    risks = [n["storedScores"]["churnProbability"]
             for page in (first, second) for n in page["customers"]["nodes"]]  # fmt: skip
    assert risks == sorted(risks, reverse=True)
    assert min(risks) >= 0.7
    assert len({n["id"] for page in (first, second) for n in page["customers"]["nodes"]}) == 100
    assert error_codes(bad) == ["BAD_USER_INPUT"]


def test_score_errors_are_one_line(seeded_url, tmp_path):
    settings = cli_env(seeded_url, tmp_path)
    assert_one_line_error(cdm("score", env=settings), "say --all")
    assert_one_line_error(
        cdm("score", "--all", "--output", "x.xlsx", env=settings), "must end in .csv or .parquet"
    )
    assert_one_line_error(cdm("score", "--all", env=settings), "no model to score with")
