"""A customer's current scores with their explanations, as one JSON-ready document: what a
data-subject export shows of the predictions made about a person (GDPR art. 15 and 22)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from domain.predictions import ModelUnavailable, Provenance
from ml.serving.scoring import Scorer
from sql.queries import query


def _model(p: Provenance) -> dict[str, Any]:
    return {"model": p.model, "version": p.version, "runId": p.run_id}


async def current_scores(
    scorer: Scorer, conn: asyncpg.Connection, customer_id: int, as_of: datetime
) -> dict[str, Any]:
    """Churn risk with every factor behind it, next purchase, recommendations with their
    reasons and the products to buy again with their cycle, as of ``as_of``; a model that is
    not available says why instead."""
    document: dict[str, Any] = {"asOf": as_of.isoformat()}
    frame = await scorer.features(conn, [customer_id], as_of)
    try:
        risk = (await scorer.churn(frame, explain=True)).get(customer_id)
        document["churnRisk"] = risk and {
            "probability": risk.probability, "band": risk.band.value, **_model(risk.provenance),
            "factors": [
                {"feature": f.feature, "description": f.description, "value": f.value,
                 "contribution": f.contribution}
                for f in (risk.explanation.factors(risk.inputs, len(risk.inputs.names))
                          if risk.explanation else [])
            ],
        }  # fmt: skip
    except ModelUnavailable as exc:
        document["churnRisk"] = {"unavailable": exc.message}
    try:
        nxt = (await scorer.next_purchase(frame)).get(customer_id)
        document["nextPurchase"] = nxt and {
            "probability30d": nxt.probability_30d, "expectedPurchases": nxt.expected_purchases,
            "expectedDays": nxt.expected_days, "horizonDays": nxt.horizon_days,
            **_model(nxt.provenance),
        }  # fmt: skip
    except ModelUnavailable as exc:
        document["nextPurchase"] = {"unavailable": exc.message}
    try:
        found = (await scorer.recommendations(conn, [customer_id], as_of)).get(customer_id)
        document["recommendations"] = found and {
            **_model(found.provenance),
            "items": [
                {"sku": r.product.sku, "score": r.score, "reason": r.reason.value,
                 "explanation": r.explanation}
                for r in found.top(5)
            ],
        }  # fmt: skip
    except ModelUnavailable as exc:
        document["recommendations"] = {"unavailable": exc.message}
    # Buy again needs no model: the products bought before, their cycle and when due.
    again = (await scorer.buy_again(conn, [customer_id], as_of)).get(customer_id)
    if again is not None:
        rows = await conn.fetch(query("products_by_ids"), [i.product_id for i in again[:5]])
        skus = {r["id"]: r["sku"] for r in rows}
        again = [
            {"sku": skus[i.product_id], "score": i.score, "orders": i.orders,
             "cycleDays": i.cycle_days, "dueAt": i.due_at.isoformat()}
            for i in again[:5] if i.product_id in skus
        ]  # fmt: skip
    document["buyAgain"] = again
    return document
