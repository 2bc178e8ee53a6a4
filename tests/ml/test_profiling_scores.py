"""Erasure and objections to profiling reach the scores, with real models: after
`eraseCustomer` and a refusal recorded with `setConsent`, their stored scores are gone at
once, the live API computes none, and the next `cdm score --all` neither stores nor exports
one (nor for customers whose refusal came with the data).
"""

from __future__ import annotations

import csv
from typing import Any

import pytest

from cdm.scoring import build_scorer
from domain.consent import OBJECTED
from ml.serving.batch import score_everyone, store
from sql.database import connect
from sql.gdpr import erase_customer
from tests.cli.test_cli import cdm
from tests.http_client import data, gql
from tests.ml.conftest import (
    SEED_NOW,
    cli_env,
    copy_store,
    seeded_database,
    serving,
    serving_settings,
)

AT = SEED_NOW.isoformat()
CUSTOMERS = 1500

# Buyers by their latest personalization/profiling decisions (an independent reading of the
# rule, not the view under test): ok = no refusal among them.
BUYERS = """
WITH latest AS (
    SELECT DISTINCT ON (customer_id, purpose) customer_id, granted
      FROM consents WHERE purpose IN ('personalization', 'profiling')
     ORDER BY customer_id, purpose, recorded_at DESC, id DESC)
SELECT s.customer_id, coalesce(bool_and(l.granted), true) AS ok
  FROM customer_purchase_stats s LEFT JOIN latest l USING (customer_id)
 GROUP BY s.customer_id ORDER BY s.customer_id"""

MODELLED = """
WITH latest AS (
    SELECT DISTINCT ON (customer_id, purpose) customer_id, granted
      FROM consents WHERE purpose IN ('personalization', 'profiling')
     ORDER BY customer_id, purpose, recorded_at DESC, id DESC)
SELECT c.id FROM customers c
 WHERE c.created_at < $1 AND c.erased_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM latest l WHERE l.customer_id = c.id AND NOT l.granted)
 ORDER BY c.id"""

LIVE = """query($ids: [ID!], $at: DateTime) { scores(customerIds: $ids) {
  id scoresWithheld churnRisk(asOf: $at) { probability } nextPurchase(asOf: $at) { probability30d }
  recommendations(first: 3, asOf: $at) { product { id } } } }"""

ERASE = """mutation($id: ID!) { eraseCustomer(id: $id) { __typename } }"""
REFUSE = """mutation($id: ID!) { setConsent(source: "web", input: {customerId: $id,
  purpose: "profiling", granted: false}) { __typename } }"""


async def _ids(url: str, sql: str, *args: object) -> list[Any]:
    conn = await connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _stored(url: str) -> set[int]:
    return {r["customer_id"] for r in await _ids(url, "SELECT customer_id FROM customer_scores")}


@pytest.fixture(scope="module")
async def story(server_url, champions_dir, tmp_path_factory) -> dict[str, Any]:
    """Score everyone, erase one buyer, record another's refusal, ask the live API, score
    everyone again to a file; what each step left behind."""
    async with seeded_database(server_url, "cdm_optout", customers=CUSTOMERS, seed=11) as url:
        buyers = await _ids(url, BUYERS)
        ok = [r["customer_id"] for r in buyers if r["ok"]]
        who = {
            "erased": ok[0], "refusing": ok[1], "kept": ok[2],
            "refused_before": next(r["customer_id"] for r in buyers if not r["ok"]),
        }  # fmt: skip
        data_dir = copy_store(champions_dir, tmp_path_factory.mktemp("optout") / "data")
        env = cli_env(url, data_dir)
        first = cdm("score", "--all", "--as-of", AT, env=env, timeout=600)
        assert first.returncode == 0, first.stderr
        story: dict[str, Any] = {"who": who, "stored_first": await _stored(url)}

        async with serving(url, serving_settings(data_dir)) as http:
            erased = data(await gql(http, ERASE, {"id": str(who["erased"])}))
            refused = data(await gql(http, REFUSE, {"id": str(who["refusing"])}))
            assert erased["eraseCustomer"]["__typename"] == "CustomerErased"
            assert refused["setConsent"]["__typename"] == "Consent"
            story["stored_after"] = await _stored(url)
            asked = [str(i) for i in who.values()]
            live = data(await gql(http, LIVE, {"ids": asked, "at": AT}))["scores"]
            story["live"] = {int(c["id"]): c for c in live}

        output = data_dir / "scores.csv"
        second = cdm("score", "--all", "--as-of", AT, "--output", str(output), env=env,
                     timeout=600)  # fmt: skip
        assert second.returncode == 0, second.stderr
        story["stdout"] = second.stdout
        story["stored_second"] = await _stored(url)
        with output.open(newline="") as f:
            story["exported"] = [int(row["customer_id"]) for row in csv.DictReader(f)]
        story["modelled"] = [r["id"] for r in await _ids(url, MODELLED, SEED_NOW)]
        story["url"], story["data_dir"] = url, data_dir
        yield story


async def test_erasure_and_a_refusal_remove_stored_scores_at_once(story):
    who = story["who"]
    # The first run already left out the customer who had refused before it.
    assert {who["erased"], who["refusing"], who["kept"]} <= story["stored_first"]
    assert who["refused_before"] not in story["stored_first"]
    assert story["stored_after"] == story["stored_first"] - {who["erased"], who["refusing"]}


async def test_the_live_api_scores_none_of_them(story):
    who, live = story["who"], story["live"]
    assert live[who["kept"]]["churnRisk"]["probability"] > 0
    assert len(live[who["kept"]]["recommendations"]) == 3
    for name in ("erased", "refusing", "refused_before"):
        # Answered as for an unknown customer: left out, or present with nothing computed.
        got = live.get(who[name])
        if got is not None:
            nothing = (got["churnRisk"], got["nextPurchase"], got["recommendations"])
            assert nothing == (None, None, []), name
    for name in ("refusing", "refused_before"):
        # Said, not just left null, to the person at the frontend (an admin key here).
        assert live[who[name]]["scoresWithheld"] == OBJECTED, name
    assert live[who["kept"]]["scoresWithheld"] is None


async def test_score_all_stores_and_exports_only_who_may_be_profiled(story):
    who, modelled = story["who"], story["modelled"]
    assert who["kept"] in modelled
    assert not {who["erased"], who["refusing"], who["refused_before"]} & set(modelled)
    assert CUSTOMERS // 2 < len(modelled) < CUSTOMERS  # the seed has refusals (about 1 in 6)
    assert sorted(story["stored_second"]) == modelled
    assert story["exported"] == modelled
    assert f"Scored {len(modelled):,} customers" in story["stdout"]


async def test_who_objects_or_is_erased_while_a_run_scores_is_stored_nowhere(story):
    """The run reads one snapshot; a refusal and an erasure committed before it stores are
    left out of the table and of what the run hands to its file export."""
    url = story["url"]
    scorer = build_scorer(serving_settings(story["data_dir"]))
    await scorer.store.refresh()
    try:
        table = await score_everyone(url, scorer, SEED_NOW, recommend=False)
    finally:
        scorer.store.close()
    objector, erased = table.customer_ids[:2].tolist()
    conn = await connect(url)
    try:
        await conn.execute(
            "INSERT INTO consents (customer_id, purpose, granted, source)"
            " VALUES ($1, 'personalization', false, 'web')",
            objector,
        )
        assert not isinstance(await erase_customer(conn, erased, "test", None), str)
        stored = await store(conn, table)
        in_table = {
            r["customer_id"] for r in await conn.fetch("SELECT customer_id FROM customer_scores")
        }
    finally:
        await conn.close()
    expected = set(table.customer_ids.tolist()) - {objector, erased}
    assert set(stored.customer_ids.tolist()) == in_table == expected
    assert len(stored.churn) == len(stored.p30) == len(expected)
    assert stored.churn.tolist() == table.churn[2:].tolist()  # the rows kept are unchanged
