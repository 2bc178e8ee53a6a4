"""Scores through HTTP: consistent with the registered models, batched, explained, and safe
when models are missing, corrupt, unreachable or swapped under load."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

import numpy as np
import pytest

from domain.access import Role
from domain.consent import WITHHELD
from ml.features import FEATURES, compute_features
from ml.registry import ModelRegistry, default_tracking_uri
from sql.database import connect
from tests.conftest import api_key
from tests.factories import add_customer
from tests.http_client import data, error_codes, gql
from tests.ml.conftest import SEED_NOW, copy_store, serving, serving_settings

CUSTOMER = """query($id: ID!, $at: DateTime) { customer(id: $id) {
  churnRisk(asOf: $at) { probability band percentile baseValue horizonDays
              factors(first: 100) { feature value contribution }
              features { name value } provenance { model version runId asOf } }
  nextPurchase(asOf: $at) { probability30d expectedPurchases expectedDays expectedAt horizonDays
                 provenance { model version asOf } }
  recommendations(first: 5, asOf: $at) { score reason explanation product { id name category }
                              becauseOf { id } provenance { model version } }
} }"""

AT = SEED_NOW.isoformat()  # the seeded histories end here
SCORES = """query($ids: [ID!], $at: DateTime) { scores(customerIds: $ids) {
  id churnRisk(asOf: $at) { probability band } nextPurchase(asOf: $at) { probability30d }
  recommendations(first: 5, asOf: $at) { product { id } }
} }"""


async def buyer_ids(url: str, limit: int) -> list[int]:
    """Buyers the models score: none whose latest personalization or profiling decision is a
    refusal (those get no score at all, see test_profiling_scores.py)."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT customer_id FROM customer_purchase_stats s WHERE NOT EXISTS ("
            " SELECT 1 FROM (SELECT DISTINCT ON (purpose) granted FROM consents k"
            "  WHERE k.customer_id = s.customer_id AND purpose IN ('personalization', 'profiling')"
            "  ORDER BY purpose, recorded_at DESC, id DESC) latest WHERE NOT granted)"
            " ORDER BY customer_id LIMIT $1",
            limit,
        )
    finally:
        await conn.close()
    return [r["customer_id"] for r in rows]


async def test_served_models_are_compiled_in_the_background_and_answer_the_same(
    seeded_url, champions_dir, tmp_path
):
    ids = await buyer_ids(seeded_url, 50)
    settings = serving_settings(copy_store(champions_dir, tmp_path / "data"))
    async with serving(seeded_url, settings) as http:
        first = data(await gql(http, SCORES, {"ids": [str(i) for i in ids], "at": AT}))["scores"]
        for _ in range(600):  # compiling runs in another process after start-up
            models = (await http.get("/readyz")).json()["models"]
            if all(m["compiled"] for m in models.values()):
                break
            await asyncio.sleep(0.2)
        assert all(m["compiled"] and m["state"] == "ok" for m in models.values()), models
        again = data(await gql(http, SCORES, {"ids": [str(i) for i in ids], "at": AT}))["scores"]
    for before, after in zip(first, again, strict=True):
        assert after["churnRisk"]["probability"] == pytest.approx(
            before["churnRisk"]["probability"], abs=1e-12
        )
        assert after["nextPurchase"]["probability30d"] == pytest.approx(
            before["nextPurchase"]["probability30d"], abs=1e-12
        )
        assert after["recommendations"] == before["recommendations"]
    # Native code for this CPU sits beside each head, with its checksum.
    version_dir = next((settings.data_dir / "models" / "next_purchase").glob("v*"))
    assert len(list(version_dir.glob("*.so"))) == 3
    assert len(list(version_dir.glob("*.so.sha256"))) == 3


async def test_scores_match_the_registered_models_and_explain_themselves(seeded_url, champions_dir):
    (cid,) = await buyer_ids(seeded_url, 1)
    async with serving(seeded_url, serving_settings(champions_dir)) as http:
        body = data(await gql(http, CUSTOMER, {"id": str(cid), "at": AT}))["customer"]
    churn, nxt, recs = body["churnRisk"], body["nextPurchase"], body["recommendations"]
    as_of = datetime.fromisoformat(churn["provenance"]["asOf"])

    # Replay: the same features as of the same time through the registered model.
    registry = ModelRegistry(default_tracking_uri(champions_dir))
    conn = await connect(seeded_url)
    try:
        frame = await compute_features(conn, as_of, [cid])
    finally:
        await conn.close()
    churn_model = registry.load("churn")
    raw_churn = churn_model.heads["churn"].predict(frame.matrix)
    # Served calibrated: the version's map, chosen on its held-out cutoff, over the booster.
    assert churn["probability"] == pytest.approx(
        churn_model.calibration("churn").apply(raw_churn)[0]
    )
    assert churn["horizonDays"] == 90
    assert churn["provenance"]["model"] == "cdm-churn"
    assert churn["provenance"]["version"] == churn_model.version
    assert churn["provenance"]["runId"] == churn_model.run_id
    replayed = {f["name"]: f["value"] for f in churn["features"]}
    assert list(replayed) == list(FEATURES)
    for name, value in zip(FEATURES, frame.matrix[0].tolist(), strict=True):
        assert replayed[name] == (None if math.isnan(value) else pytest.approx(value))

    # Contributions of every feature plus the base value add up to the raw score.
    raw = churn["baseValue"] + sum(f["contribution"] for f in churn["factors"])
    assert len(churn["factors"]) == len(FEATURES)
    assert 1 / (1 + math.exp(-raw)) == pytest.approx(raw_churn[0], rel=1e-6)
    strengths = [abs(f["contribution"]) for f in churn["factors"]]
    assert strengths == sorted(strengths, reverse=True)
    assert churn["band"] in {"LOW", "MEDIUM", "HIGH"}
    assert 0 <= churn["percentile"] <= 100

    next_model = registry.load("next_purchase")
    heads = next_model.heads
    assert nxt["probability30d"] == pytest.approx(
        next_model.calibration("p30").apply(heads["p30"].predict(frame.matrix))[0]
    )
    # Counts are served through the version's scale (the held-out cutoff's total).
    scale = next_model.calibration("count")
    assert scale.kind == "scale"
    raw_count = heads["count"].predict(frame.matrix)[0]
    assert nxt["expectedPurchases"] == pytest.approx(scale.apply(raw_count))
    assert 0 <= nxt["expectedDays"] <= nxt["horizonDays"] == 90
    expected_at = datetime.fromisoformat(nxt["expectedAt"])
    assert (expected_at - as_of).total_seconds() == pytest.approx(
        nxt["expectedDays"] * 86400, abs=5
    )

    assert len(recs) == 5
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    conn = await connect(seeded_url)
    try:
        owned = {
            r["product_id"]
            for r in await conn.fetch(
                "SELECT product_id FROM purchases WHERE customer_id = $1", cid
            )
        }
    finally:
        await conn.close()
    assert not owned & {int(r["product"]["id"]) for r in recs}  # never what they already own
    for r in recs:
        assert r["explanation"]
        if r["reason"] == "BOUGHT_TOGETHER":
            assert int(r["becauseOf"]["id"]) in owned


async def test_a_batch_of_1000_costs_the_same_statements_as_a_batch_of_10(
    seeded_url, champions_dir
):
    ids = await buyer_ids(seeded_url, 1000)
    async with serving(seeded_url, serving_settings(champions_dir)) as http:
        counts = {}
        for size in (10, 1000):
            response = await http.post(
                "/graphql",
                json={
                    "query": SCORES,
                    "variables": {"ids": [str(i) for i in ids[:size]], "at": AT},
                },
            )
            body = response.json()
            assert "errors" not in body, body["errors"]
            scores = body["data"]["scores"]
            assert [int(s["id"]) for s in scores] == ids[:size]
            assert all(s["churnRisk"] and len(s["recommendations"]) == 5 for s in scores)
            counts[size] = int(response.headers["X-SQL-Statements"])
    # customers + features + purchase history + products: one each, whatever the size.
    assert counts[1000] == counts[10] <= 5


async def test_more_than_1000_or_both_kinds_of_ids_are_refused(seeded_url, champions_dir):
    async with serving(seeded_url, serving_settings(champions_dir)) as http:
        too_many = await gql(http, SCORES, {"ids": [str(i) for i in range(1, 1002)]})
        assert error_codes(too_many) == ["BAD_USER_INPUT"]
        assert "at most 1000" in too_many["errors"][0]["message"]
        both = await gql(http, '{ scores(customerIds: ["1"], externalIds: ["x"]) { id } }')
        assert error_codes(both) == ["BAD_USER_INPUT"]


async def test_without_a_trained_model_scores_are_null_with_a_typed_error(
    db, database_url, tmp_path
):
    cid = await add_customer(db)
    async with serving(database_url, serving_settings(tmp_path)) as http:
        body = await gql(http, f'{{ customer(id: "{cid}") {{ id churnRisk {{ probability }} }} }}')
        ready = (await http.get("/readyz")).json()
    assert body["data"]["customer"] == {"id": str(cid), "churnRisk": None}
    assert error_codes(body) == ["MODEL_NOT_TRAINED"]
    assert "cdm train churn" in body["errors"][0]["message"]
    assert ready["status"] == "ok"
    assert ready["models"]["churn"]["state"] == "missing"


async def test_a_corrupt_model_never_takes_the_service_down(seeded_url, trained, plan, tmp_path):
    data_dir = tmp_path / "data"
    registry = ModelRegistry(default_tracking_uri(data_dir), data_dir / "mlartifacts")
    for task in ("churn", "next_purchase"):
        registry.record(trained[task], plan.describe())
    # Corrupt the churn booster in the artifact store, as a truncated upload would.
    (model_file,) = data_dir.glob("mlartifacts/cdm-churn/models/*/artifacts/model.lgb")
    model_file.write_bytes(model_file.read_bytes()[:200])
    (cid,) = await buyer_ids(seeded_url, 1)
    async with serving(seeded_url, serving_settings(data_dir)) as http:
        body = await gql(
            http, CUSTOMER.replace("factors(first: 100)", "factors"), {"id": str(cid), "at": AT}
        )
        ready = (await http.get("/readyz")).json()
    # Churn (corrupt) and upsell (never trained here) answer null; next purchase still serves.
    assert {e["path"][-1]: e["extensions"]["code"] for e in body["errors"]} == {
        "churnRisk": "MODEL_UNAVAILABLE", "recommendations": "MODEL_NOT_TRAINED"
    }  # fmt: skip
    assert body["data"]["customer"]["churnRisk"] is None
    assert body["data"]["customer"]["nextPurchase"]["probability30d"] > 0
    assert ready["status"] == "degraded"
    assert ready["models"]["churn"]["state"] == "degraded"
    assert "canary" in ready["models"]["churn"]["reason"]


async def test_an_unreachable_registry_serves_the_cached_models(
    seeded_url, champions_dir, tmp_path
):
    data_dir = copy_store(champions_dir, tmp_path / "data")
    (cid,) = await buyer_ids(seeded_url, 1)
    query = (
        f'{{ customer(id: "{cid}") {{ churnRisk {{ probability provenance {{ version }} }} }} }}'
    )
    async with serving(seeded_url, serving_settings(data_dir)) as http:  # fills the cache
        first = data(await gql(http, query))["customer"]["churnRisk"]
    down = serving_settings(
        data_dir, mlflow_tracking_uri="http://127.0.0.1:9", model_load_timeout_seconds=20
    )
    started = asyncio.get_running_loop().time()
    async with serving(seeded_url, down) as http:
        again = data(await gql(http, query))["customer"]["churnRisk"]
        ready = (await http.get("/readyz")).json()
    assert asyncio.get_running_loop().time() - started < 25
    assert again == first
    assert ready["models"]["churn"]["state"] == "degraded"
    assert "cached" in ready["models"]["churn"]["reason"]


async def test_a_new_champion_is_swapped_in_under_load_without_a_failed_request(
    seeded_url, champions_dir, tmp_path, trained, plan
):
    data_dir = copy_store(champions_dir, tmp_path / "data")
    registry = ModelRegistry(default_tracking_uri(data_dir), data_dir / "mlartifacts")
    v2 = registry.record(trained["churn"], plan.describe()).decision.version  # a challenger
    ids = await buyer_ids(seeded_url, 20)
    query = (
        "query($ids: [ID!]) { scores(customerIds: $ids) { churnRisk { provenance { version } } } }"
    )
    async with serving(seeded_url, serving_settings(data_dir)) as http:
        seen: list[int] = []
        failures: list[object] = []
        done = asyncio.Event()

        async def client() -> None:
            while not done.is_set():
                body = (
                    await http.post(
                        "/graphql",
                        json={"query": query, "variables": {"ids": [str(i) for i in ids]}},
                    )
                ).json()
                if "errors" in body:
                    failures.append(body["errors"])
                    continue
                seen.extend(
                    {s["churnRisk"]["provenance"]["version"] for s in body["data"]["scores"]}
                )

        workers = [asyncio.create_task(client()) for _ in range(4)]
        await asyncio.sleep(0.3)
        registry.promote("churn", v2)
        reloaded = data(await gql(http, "mutation { reloadModels { task state version } }"))
        await asyncio.sleep(0.3)
        done.set()
        await asyncio.gather(*workers)
    assert failures == []
    assert {"task": "churn", "state": "ok", "version": v2} in reloaded["reloadModels"]
    assert seen[0] == 1
    assert seen[-1] == v2
    assert set(seen) == {1, v2}
    # Each response used one model version for all its customers (checked per response above).
    assert np.all(np.diff([s == v2 for s in seen]) >= 0)  # never back to the old version


WITHHELD_SCORES = """query($ids: [ID!], $at: DateTime) { scores(customerIds: $ids) {
  id scoresWithheld churnRisk(asOf: $at) { probability } nextPurchase(asOf: $at) { probability30d }
  recommendations(first: 3, asOf: $at) { product { id } } storedScores { asOf } } }"""


async def consent_groups(url: str) -> tuple[int, int]:
    """A buyer whose latest profiling-type decisions are all grants, and one without any."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "WITH latest AS (SELECT DISTINCT ON (customer_id, purpose) customer_id, granted"
            " FROM consents WHERE purpose IN ('personalization', 'profiling')"
            " ORDER BY customer_id, purpose, recorded_at DESC, id DESC)"
            " SELECT s.customer_id, bool_and(l.granted) AS ok, count(l.granted) AS decisions"
            " FROM customer_purchase_stats s LEFT JOIN latest l USING (customer_id)"
            " GROUP BY s.customer_id ORDER BY s.customer_id"
        )
    finally:
        await conn.close()
    agreed = next(r["customer_id"] for r in rows if r["decisions"] and r["ok"])
    silent = next(r["customer_id"] for r in rows if not r["decisions"])
    return agreed, silent


async def test_machine_clients_get_predictions_only_with_consent(seeded_url, champions_dir):
    agreed, silent = await consent_groups(seeded_url)
    ids = {"ids": [str(agreed), str(silent)], "at": AT}
    engine = await api_key(seeded_url, Role.PERSONALIZATION)
    async with serving(seeded_url, serving_settings(champions_dir), key=engine) as http:
        first, second = data(await gql(http, WITHHELD_SCORES, ids))["scores"]
    assert first["scoresWithheld"] is None
    assert first["churnRisk"]["probability"] > 0
    assert len(first["recommendations"]) == 3
    assert second == {
        "id": str(silent), "scoresWithheld": WITHHELD, "churnRisk": None, "nextPurchase": None,
        "recommendations": [], "storedScores": None,
    }  # fmt: skip
    # A person at the frontend (app) still sees them, with nothing withheld.
    async with serving(seeded_url, serving_settings(champions_dir)) as http:
        both = data(await gql(http, WITHHELD_SCORES, ids))["scores"]
    assert [c["scoresWithheld"] for c in both] == [None, None]
    assert both[1]["churnRisk"]["probability"] > 0


async def test_models_report_their_evaluation_metrics(seeded_url, champions_dir):
    query = "{ models { task state version primaryMetric metrics { name value } } }"
    async with serving(seeded_url, serving_settings(champions_dir)) as http:
        models = {m["task"]: m for m in data(await gql(http, query))["models"]}
    churn = models["churn"]
    assert churn["state"] == "ok"
    names = {m["name"]: m["value"] for m in churn["metrics"]}
    assert churn["primaryMetric"] in names  # the gate's metric is among those shown
    assert all(0 <= v <= 1 for k, v in names.items() if k in ("auc", "roc_auc", "pr_auc"))


async def test_a_data_subject_export_explains_the_current_scores(seeded_url, champions_dir):
    (cid,) = await buyer_ids(seeded_url, 1)
    export = "query($id: ID!) { exportCustomerData(id: $id) }"
    live = """query($id: ID!) { customer(id: $id) { churnRisk { probability } } }"""
    async with serving(seeded_url, serving_settings(champions_dir)) as http:
        document = data(await gql(http, export, {"id": str(cid)}))["exportCustomerData"]
        now = data(await gql(http, live, {"id": str(cid)}))["customer"]["churnRisk"]
    churn = document["currentScores"]["churnRisk"]
    assert churn["probability"] == pytest.approx(now["probability"], abs=1e-6)
    assert [f["feature"] for f in churn["factors"]] != []
    assert {f["feature"] for f in churn["factors"]} == set(FEATURES)  # every factor, not a few
    assert document["currentScores"]["nextPurchase"]["horizonDays"] > 0
    recommendations = document["currentScores"]["recommendations"]
    assert recommendations["model"] == "cdm-upsell"
    assert all(i["explanation"] for i in recommendations["items"])  # (the seeded past is quiet now)
