"""Churn and next purchase in the hazard form (ml/survival.py, ml/training/hazard.py): a
history too short for whole windows trains monthly steps, and the version serves through
the registry, the canary and the API like any other, explaining its churn risk."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from ml.features import FEATURES, compute_features
from ml.registry import ModelRegistry, default_tracking_uri
from ml.survival import STEP_DAYS, outlook, with_step
from ml.training import pipeline
from ml.training.errors import InsufficientData
from ml.training.plan import TrainingPlan
from sql.database import connect
from tests.http_client import data, gql
from tests.ml.conftest import serving, serving_settings
from tests.ml.test_scores_api import buyer_ids

# The seeded history starts three years before SEED_NOW: 200 days of it before this as-of,
# the 50th buyer some 70 days in. A 90-day horizon needs 180 days after that, directly.
SHORT = timedelta(days=3 * 365 - 200)


SCORES = """query($id: ID!, $at: DateTime) { customer(id: $id) {
  churnRisk(asOf: $at) {
    probability baseValue horizonDays factors(first: 100) { feature contribution }
  }
  nextPurchase(asOf: $at) { probability30d expectedPurchases expectedDays horizonDays }
} }"""


@pytest.fixture(scope="module")
async def short_run(seeded_url, plan):
    conn = await connect(seeded_url)
    try:
        return await pipeline.train(conn, pipeline.TASKS, TrainingPlan(as_of=plan.as_of - SHORT))
    finally:
        await conn.close()


async def test_direct_refuses_a_short_history_and_auto_learns_monthly_steps(
    seeded_url, plan, short_run
):
    conn = await connect(seeded_url)
    try:
        direct = TrainingPlan(as_of=plan.as_of - SHORT, method="direct")
        with pytest.raises(InsufficientData, match="or --method hazard"):
            await pipeline.train(conn, ["churn"], direct)
    finally:
        await conn.close()
    run = short_run
    assert run.plan.method == "hazard"
    assert "method hazard" in run.notes[0]
    assert "upsell" in run.skipped
    assert "shorter --horizon" in run.skipped["upsell"]
    churn, nxt = run.trained
    # Some 130 days since the 50th buyer: 60 days judged (half of it), 90 served.
    assert churn.data["evaluation_days"] == 2 * STEP_DAYS
    assert f"judged on the {2 * STEP_DAYS:.0f} days before as-of" in run.notes[1]
    assert churn.horizon_days == nxt.horizon_days == 90
    assert set(churn.heads) == {"hazard"}
    assert set(nxt.heads) == {"hazard", "rate"}
    assert churn.tags == nxt.tags
    assert int(churn.tags["steps_seen"]) == 3  # the horizon's three steps, all observed
    # Judged on customers none of it learnt from: better than the recency rule.
    table = churn.comparison
    assert table["lightgbm"]["roc_auc"] > table["rfm_recency"]["roc_auc"]
    assert np.isfinite(list(nxt.comparison["lightgbm"].values())).all()
    assert 0.5 < nxt.comparison["lightgbm"]["days_c_index"] <= 1


async def test_a_hazard_version_serves_and_explains_itself(seeded_url, short_run, tmp_path):
    registry = ModelRegistry(default_tracking_uri(tmp_path), tmp_path / "mlartifacts")
    for trained in short_run.trained:
        decision = registry.record(trained, short_run.plan.describe()).decision
        if not decision.promoted:  # a short history may not beat BG/NBD: served all the same
            registry.promote(trained.task, decision.version)
    at = short_run.plan.as_of
    conn = await connect(seeded_url)
    try:  # a buyer before as-of whom the models may score
        early = await conn.fetch("SELECT customer_id FROM purchases WHERE purchased_at < $1", at)
    finally:
        await conn.close()
    cid = min(set(await buyer_ids(seeded_url, 5000)) & {r["customer_id"] for r in early})
    async with serving(seeded_url, serving_settings(tmp_path)) as http:
        body = data(await gql(http, SCORES, {"id": str(cid), "at": at.isoformat()}))
    churn, nxt = body["customer"]["churnRisk"], body["customer"]["nextPurchase"]

    conn = await connect(seeded_url)
    try:
        x = (await compute_features(conn, at, [cid])).matrix
    finally:
        await conn.close()
    model = registry.load("churn")
    assert model.tags["method"] == "hazard"
    hazard = model.heads["hazard"]
    calibrated = model.calibration("hazard")
    steps = int(model.tags["steps_seen"])
    expected = outlook(lambda r: calibrated.apply(hazard.predict(r)), x, 90, steps_seen=steps)
    assert churn["probability"] == pytest.approx(expected.p_none[0])
    assert churn["horizonDays"] == 90
    # The factors explain not ordering in the first step: they add up to its log-odds.
    raw = churn["baseValue"] + sum(f["contribution"] for f in churn["factors"])
    first_step = hazard.predict(with_step(x, 0))[0]
    assert 1 / (1 + math.exp(-raw)) == pytest.approx(1 - first_step, rel=1e-6)
    assert [f["feature"] for f in churn["factors"]] != []
    assert {f["feature"] for f in churn["factors"]} == set(FEATURES)

    nxt_model = registry.load("next_purchase")
    heads, scale = nxt_model.heads, nxt_model.calibration("rate")
    assert scale.kind == "scale"
    expected = outlook(
        lambda r: calibrated.apply(heads["hazard"].predict(r)), x, 90, steps_seen=steps,
        rate=lambda r: scale.apply(heads["rate"].predict(r)),
    )  # fmt: skip
    assert nxt["probability30d"] == pytest.approx(expected.p30[0])
    assert nxt["expectedPurchases"] == pytest.approx(expected.count[0])
    assert nxt["expectedDays"] == pytest.approx(expected.wait[0])
    assert 0 <= nxt["expectedDays"] <= nxt["horizonDays"] == 90
