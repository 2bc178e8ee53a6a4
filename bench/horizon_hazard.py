"""A prototype, not yet the product: any horizon from a short history with a discrete-time
hazard, on CDNOW's 39-week question (issue 15). Run bench/real_data.py first: it imports the
log into the database this reads.

    python bench/horizon_hazard.py [--as-of 1997-09-30] [--horizon 273d] [--resamples 200]

The product's models learn "no order within h" directly, so every training cutoff needs a
whole horizon of outcomes after it: nine months of history cannot support 39 weeks. Here the
question is split into 30-day steps. Cutoffs one step apart; from each, every month whose
outcome is known before as-of is a row: features as of the cutoff plus the month's index,
labelled by whether the first order after the cutoff fell in that month (rows stop at it:
a discrete-time hazard), and, for the count, by the orders placed in that month. Two
LightGBM models (binary and Poisson) then answer any horizon from one fit:
P(no order in h) = prod_k (1 - hazard_k), E[orders in h] = sum_k rate_k, the capped wait
from the survival curve. Months beyond any observed one are read at the last observed
index: a constant hazard past the data, said, not hidden.

Judged as bench/real_data.py judges the product, on the same customers and horizon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine
from real_data import DATABASE, OUT, judge, print_table

from ml.features import FEATURES, compute_features
from ml.training import baselines, boosting
from ml.training.datasets import feature_column, purchase_snapshot
from ml.training.plan import parse_duration
from sql.database import connect
from sql.embedded import replace_database, start_embedded_server

STEP = 30.0  # days per hazard step
MIN_BUYERS = 50
NAMES = (*FEATURES, "month_ahead")


async def monthly_rows(conn, as_of: datetime, months: int):
    """Hazard and count rows from every monthly cutoff with enough buyers before it."""
    hazard_x, hazard_y, count_x, count_y, cutoffs = [], [], [], [], []
    for j in range(months, 0, -1):  # oldest first: boosting.fit early-stops on the newest
        cutoff = as_of - timedelta(days=STEP * j)
        frame = await compute_features(conn, cutoff)
        if len(frame) < MIN_BUYERS:
            continue
        ids = frame.customer_ids
        rows = await conn.fetch(
            "SELECT customer_id, purchased_at FROM purchases WHERE purchased_at >= $1"
            " AND purchased_at < $2 AND customer_id = ANY($3::bigint[])",
            cutoff, as_of, ids.tolist(),
        )  # fmt: skip
        orders = np.zeros((len(ids), j))
        first = np.full(len(ids), np.inf)
        seen: set[tuple[int, datetime]] = set()
        for r in rows:
            key = (r["customer_id"], r["purchased_at"])
            if key in seen:  # an order is a distinct purchase time, as the product counts
                continue
            seen.add(key)
            u = int(np.searchsorted(ids, r["customer_id"]))
            k = int((r["purchased_at"] - cutoff).total_seconds() // (STEP * 86400))
            if k < j:
                orders[u, k] += 1
                first[u] = min(first[u], k)
        x = frame.matrix
        for k in range(j):
            at_risk = first >= k
            hazard_x.append(np.column_stack([x[at_risk], np.full(at_risk.sum(), k)]))
            hazard_y.append((first[at_risk] == k).astype(float))
            count_x.append(np.column_stack([x, np.full(len(x), k)]))
            count_y.append(orders[:, k])
        cutoffs.append(cutoff)
    return hazard_x, hazard_y, count_x, count_y, cutoffs


def by_cutoff(parts_x, parts_y, per_cutoff: list[int]):
    """Rows regrouped per cutoff (boosting.fit validates on the newest group)."""
    xs, ys, at = [], [], 0
    for n in per_cutoff:
        xs.append(np.vstack(parts_x[at : at + n]))
        ys.append(np.concatenate(parts_y[at : at + n]))
        at += n
    return xs, ys


def outlook(hazard: lgb.Booster, rate: lgb.Booster, x: np.ndarray, horizon_days: float):
    """P(no order), P(order within 30 days), expected orders and capped wait within h."""
    steps = math.ceil(horizon_days / STEP)
    survival = np.ones(len(x))
    count, wait, p30 = np.zeros(len(x)), np.zeros(len(x)), np.zeros(len(x))
    for k in range(steps):
        share = min(1.0, horizon_days / STEP - k)  # the last step may be partial
        rows = np.column_stack([x, np.full(len(x), k)])
        h = np.clip(hazard.predict(rows), 1e-9, 1 - 1e-9)
        if k == 0:
            p30 = h.copy()
        stay = (1 - h) ** share
        # Constant hazard within the step: the survival curve's integral over it.
        wait += survival * STEP * (1 - stay) / -np.log1p(-h)
        count += share * rate.predict(rows)
        survival = survival * stay
    return {"p_none": survival, "p30": p30, "count": count, "wait": np.minimum(wait, horizon_days)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", default="1997-09-30")
    parser.add_argument("--horizon", default="273d")
    parser.add_argument("--months", type=int, default=12, help="monthly cutoffs to try")
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    as_of = datetime.fromisoformat(args.as_of).replace(tzinfo=UTC)
    horizon = parse_duration(args.horizon)
    h = horizon.total_seconds() / 86400
    base = os.environ.get("CDM_BENCH_DATABASE_URL") or start_embedded_server(OUT / "data")
    url = replace_database(base, DATABASE)
    conn = await connect(url)
    try:
        hx, hy, cx, cy, cutoffs = await monthly_rows(conn, as_of, args.months)
        holdout = await purchase_snapshot(conn, as_of, horizon, max_customers=10**8, seed=0)
        before = await purchase_snapshot(conn, as_of - timedelta(days=90), timedelta(days=90),
                                         max_customers=10**8, seed=0)  # fmt: skip
    finally:
        await conn.close()
    # Months per cutoff: the oldest cutoff j months back contributes j monthly rows.
    per_cutoff = [round((as_of - c).total_seconds() / 86400 / STEP) for c in cutoffs]
    print(f"machine: {machine()}")
    print(f"cutoffs: {[f'{c:%Y-%m-%d}' for c in cutoffs]}; hazard rows "
          f"{sum(map(len, hy)):,}, count rows {sum(map(len, cy)):,}")  # fmt: skip
    hazard = boosting.fit(
        {"objective": "binary", "metric": "binary_logloss"},
        *by_cutoff(hx, hy, per_cutoff), feature_names=NAMES, seed=42,
    )  # fmt: skip
    rate = boosting.fit(
        {"objective": "poisson", "metric": "poisson"},
        *by_cutoff(cx, cy, per_cutoff), feature_names=NAMES, seed=42,
    )  # fmt: skip
    x = holdout.features.matrix
    rule = baselines.RecencyTable(
        feature_column(before.features.matrix, "days_since_last_purchase"), before.churned
    )
    models = {
        "hazard_lightgbm": outlook(hazard, rate, x, h),
        "bg_nbd": baselines.bgnbd_predictions(x, h),
        "recency_rule_90d": {"p_none": rule.predict(feature_column(x, "days_since_last_purchase"))},
    }
    pareto = getattr(baselines, "paretonbd_predictions", None)
    if pareto is not None:
        models["pareto_nbd"] = pareto(x, h)
    for p in models.values():
        for key in [k for k, v in p.items() if not isinstance(v, np.ndarray)]:
            p.pop(key)
    table = judge(holdout, models, args.resamples)
    print_table(args.horizon, table)
    outcomes = {
        "customers": len(holdout),
        "churn_rate": float(holdout.churned.mean()),
        "mean_predicted_churn": float(models["hazard_lightgbm"]["p_none"].mean()),
        "orders": float(holdout.orders.sum()),
        "predicted_orders": float(models["hazard_lightgbm"]["count"].sum()),
    }
    print(f"\noutcomes: {outcomes}")
    report = {"machine": machine(), "as_of": as_of.isoformat(), "horizon": args.horizon,
              "cutoffs": [c.isoformat() for c in cutoffs], "outcomes": outcomes,
              "metrics": table}  # fmt: skip
    (OUT / "horizon_hazard.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
