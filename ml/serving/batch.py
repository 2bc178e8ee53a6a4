"""Score every customer at once (`cdm score --all`): materialised into `customer_scores`, and
optionally a CSV or Parquet file for tools outside CDM.

The arithmetic is the online path's (:func:`ml.serving.scoring.churn_probabilities`,
:func:`next_purchase_arrays`, the same candidates and ranking order), over one feature frame
of everyone, so a stored score equals the online score of the same customer, model version
and as-of time. Recommendations are ranked a chunk of customers at a time to bound memory.
The table is replaced in one transaction: readers see the previous run or this one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from domain.predictions import ModelUnavailable
from ml.features import compute_features
from ml.recommendations import build_candidates, customer_history, history_rows
from ml.serving.scoring import (
    SERVING_PER_SOURCE,
    Scorer,
    churn_probabilities,
    next_purchase_arrays,
    rank_order,
)
from sql.queries import query

TOP_RECOMMENDATIONS = 5
_CHUNK = 20_000
_COLUMNS = (
    "customer_id", "as_of", "churn_probability", "churn_model_version",
    "purchase_30d_probability", "expected_purchases", "expected_days_to_next",
    "next_purchase_model_version", "recommended_product_ids", "upsell_model_version",
)  # fmt: skip

Progress = Callable[[str], None]


@dataclass
class ScoreTable:
    """Every customer's scores as of one time; a column is None when its model is missing."""

    as_of: datetime
    customer_ids: np.ndarray
    churn: np.ndarray | None = None
    p30: np.ndarray | None = None
    expected_purchases: np.ndarray | None = None
    expected_days: np.ndarray | None = None
    recommendations: list[np.ndarray] | None = None
    versions: dict[str, int | None] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # task -> why it has no scores

    def __len__(self) -> int:
        return len(self.customer_ids)


async def score_everyone(
    conn: asyncpg.Connection,
    scorer: Scorer,
    as_of: datetime,
    *,
    recommend: bool = True,
    progress: Progress | None = None,
) -> ScoreTable:
    """Scores of every customer created before ``as_of``, from data before it."""
    say = progress or (lambda _m: None)
    say("features of every customer")
    frame = await compute_features(conn, as_of)
    table = ScoreTable(as_of=as_of, customer_ids=frame.customer_ids)
    x = frame.matrix

    try:
        churn = scorer.model("churn")
        say("churn risk")
        table.churn = await asyncio.to_thread(churn_probabilities, churn, x)
        table.versions["churn"] = churn.version
    except ModelUnavailable as exc:
        table.skipped["churn"] = exc.message
    try:
        nxt = scorer.model("next_purchase")
        say("next purchase")
        p30, count, days = await asyncio.to_thread(next_purchase_arrays, nxt, x)
        table.p30, table.expected_purchases, table.expected_days = p30, count, days
        table.versions["next_purchase"] = nxt.version
    except ModelUnavailable as exc:
        table.skipped["next_purchase"] = exc.message
    if recommend:
        try:
            ranker = scorer.model("upsell")
        except ModelUnavailable as exc:
            table.skipped["upsell"] = exc.message
        else:
            say("recommendations")
            market = await scorer.market(conn, as_of)
            history = await customer_history(conn, market.catalogue, as_of, frame.customer_ids)

            def rank() -> list[np.ndarray]:
                lists: list[np.ndarray] = []
                for start in range(0, len(history.customer_ids), _CHUNK):
                    rows = np.arange(start, min(start + _CHUNK, len(history.customer_ids)))
                    part = history_rows(history, rows)
                    candidates = build_candidates(
                        market.catalogue, market.basket, part, per_source=SERVING_PER_SOURCE
                    )
                    if not len(candidates):
                        lists.extend(np.empty(0, np.int64) for _ in rows)
                        continue
                    scores = ranker.heads["ranker"].predict(candidates.matrix)
                    order = rank_order(candidates, scores)
                    customers = candidates.customer_ids[order]
                    products = candidates.product_ids[order]
                    starts = np.searchsorted(customers, part.customer_ids)
                    ends = np.searchsorted(customers, part.customer_ids, side="right")
                    lists.extend(
                        products[s : min(e, s + TOP_RECOMMENDATIONS)]
                        for s, e in zip(starts, ends, strict=True)
                    )
                return lists

            table.recommendations = await asyncio.to_thread(rank)
            table.versions["upsell"] = ranker.version
    return table


def _records(table: ScoreTable) -> list[tuple[object, ...]]:
    n = len(table)

    def column(values: np.ndarray | None) -> list[float | None]:
        return values.tolist() if values is not None else [None] * n

    recs = (
        [r.tolist() for r in table.recommendations]
        if table.recommendations is not None
        else [None] * n
    )
    churn_v = table.versions.get("churn")
    next_v = table.versions.get("next_purchase")
    upsell_v = table.versions.get("upsell")
    return list(
        zip(
            table.customer_ids.tolist(),
            [table.as_of] * n,
            column(table.churn),
            [churn_v] * n,
            column(table.p30),
            column(table.expected_purchases),
            column(table.expected_days),
            [next_v] * n,
            recs,
            [upsell_v] * n,
            strict=True,
        )
    )


async def store(conn: asyncpg.Connection, table: ScoreTable) -> int:
    """Replace the stored scores with ``table`` in one transaction; rows stored."""
    async with conn.transaction():
        await conn.execute(query("create_score_staging"))
        await conn.copy_records_to_table("score_staging", records=_records(table), columns=_COLUMNS)
        await conn.execute(query("clear_stored_scores"))
        status = await conn.execute(query("insert_staged_scores"))
    return int(status.split()[-1])


def write_file(table: ScoreTable, path: Path) -> None:
    """One row per customer, as CSV or Parquet (by the file's suffix)."""
    n = len(table)

    def column(values: np.ndarray | None) -> pa.Array:
        return pa.array(values if values is not None else [None] * n, type=pa.float64())

    recommended = (
        [r.tolist() for r in table.recommendations]
        if table.recommendations is not None
        else [None] * n
    )
    data = pa.table(
        {
            "customer_id": pa.array(table.customer_ids, type=pa.int64()),
            "as_of": pa.array([table.as_of] * n, type=pa.timestamp("us", tz="UTC")),
            "churn_probability": column(table.churn),
            "purchase_30d_probability": column(table.p30),
            "expected_purchases": column(table.expected_purchases),
            "expected_days_to_next": column(table.expected_days),
            "recommended_product_ids": pa.array(recommended, type=pa.list_(pa.int64())),
        }
    )
    if path.suffix.lower() == ".parquet":
        pq.write_table(data, path)
        return
    # CSV has no lists: recommended products become "12;34;56".
    joined = pa.array([";".join(map(str, r)) if r else "" for r in recommended], type=pa.string())
    data = data.set_column(data.schema.get_field_index("recommended_product_ids"),
                           "recommended_product_ids", joined)  # fmt: skip
    pa_csv.write_csv(data, path)
