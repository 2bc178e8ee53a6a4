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
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
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
from ml.serving.models import ServedModel
from ml.serving.scoring import (
    RECOMMENDATIONS_KEPT,
    SERVING_PER_SOURCE,
    Scorer,
    churn_probabilities,
    next_purchase_arrays,
    rank_order,
)
from sql.database import connect
from sql.matrix import fetch_matrix
from sql.queries import query

TOP_RECOMMENDATIONS = 5  # per customer, unless `cdm score --all --top N` says otherwise
# At most what the online path keeps per customer: a stored list of N then equals the online
# `recommendations(first: N)` of the same customer, model version and as-of time.
MAX_RECOMMENDATIONS = RECOMMENDATIONS_KEPT
_CHUNK = 20_000
_REPORT_EVERY = 10  # chunks
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")
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

    def without(self, customer_ids: Sequence[int]) -> ScoreTable:
        """A copy of this table without the rows of ``customer_ids``."""
        keep = ~np.isin(self.customer_ids, np.asarray(customer_ids, dtype=np.int64))

        def rows(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[keep]

        recommendations = None
        if self.recommendations is not None:
            recommendations = [r for r, k in zip(self.recommendations, keep, strict=True) if k]
        return ScoreTable(
            as_of=self.as_of, customer_ids=self.customer_ids[keep], churn=rows(self.churn),
            p30=rows(self.p30), expected_purchases=rows(self.expected_purchases),
            expected_days=rows(self.expected_days), recommendations=recommendations,
            versions=dict(self.versions), skipped=dict(self.skipped),
        )  # fmt: skip

    def recommended_lists(self) -> list[list[int] | None]:
        """Each customer's recommended product ids (None per row when not ranked)."""
        if self.recommendations is None:
            return [None] * len(self)
        return [r.tolist() for r in self.recommendations]

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run() formats its result when it restores the SIGINT
        # handler, and a million rows printed in full took 45 s.
        return f"ScoreTable({len(self):,} customers as of {self.as_of:%Y-%m-%d %H:%M})"


async def score_everyone(
    url: str,
    scorer: Scorer,
    as_of: datetime,
    *,
    recommend: bool = True,
    top: int = TOP_RECOMMENDATIONS,
    progress: Progress | None = None,
) -> ScoreTable:
    """Scores of every customer created before ``as_of``, from data before it: every
    customer the models may process (not erased, no objection to profiling; see
    :mod:`ml.features`), the others have no row. Each customer's ``top`` best recommendations
    (1 to :data:`MAX_RECOMMENDATIONS`) are kept, best first.

    Two connections read one snapshot of the database: while PostgreSQL computes everyone's
    features on the first (one long statement, one core), this process ranks everyone's
    recommendations from the second (the other core), then predicts churn and next purchase.
    """
    if not 1 <= top <= MAX_RECOMMENDATIONS:
        raise ValueError(f"top must be 1 to {MAX_RECOMMENDATIONS}, not {top}")
    say = progress or (lambda _m: None)
    ranker = None
    skipped: dict[str, str] = {}
    if recommend:
        try:
            ranker = scorer.model("upsell")
        except ModelUnavailable as exc:
            skipped["upsell"] = exc.message
    async with _one_snapshot(url, 2 if ranker else 1) as connections:
        say("features of every customer (in the database)")
        features = asyncio.create_task(compute_features(connections[0], as_of))
        try:
            lists = None
            if ranker is not None:
                customer_ids, _ = await fetch_matrix(
                    connections[1], "customers_scored_as_of", (as_of, None), 0
                )
                lists = await _recommend_everyone(
                    connections[1], scorer, ranker, as_of, customer_ids, top, say
                )
            frame = await features
        finally:
            features.cancel()
    table = ScoreTable(as_of=as_of, customer_ids=frame.customer_ids, skipped=skipped)
    if lists is not None and ranker is not None:
        table.recommendations = lists
        table.versions["upsell"] = ranker.version
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
    return table


@asynccontextmanager
async def _one_snapshot(url: str, count: int) -> AsyncIterator[list[asyncpg.Connection]]:
    """``count`` connections in read-only transactions that all see the same snapshot, so
    statements spread over them read one consistent state of the database."""
    connections = [await connect(url) for _ in range(count)]
    try:
        first = connections[0]
        await first.execute(query("begin_snapshot"))
        snapshot = await first.fetchval(query("export_snapshot"))
        # A snapshot id cannot be a bind parameter; this one comes from the server itself.
        if not _SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"unexpected snapshot id {snapshot!r}")
        for other in connections[1:]:
            await other.execute(query("begin_snapshot"))
            await other.execute(query("import_snapshot").replace("$1", f"'{snapshot}'"))
        yield connections
    finally:
        for conn in connections:
            await conn.close()  # read-only: closing ends the transactions


async def _recommend_everyone(
    conn: asyncpg.Connection,
    scorer: Scorer,
    ranker: ServedModel,
    as_of: datetime,
    customer_ids: np.ndarray,
    top: int,
    say: Progress,
) -> list[np.ndarray]:
    """Every customer's ``top`` best product ids, ranked a chunk of customers at a time."""
    market = await scorer.market(conn, as_of)
    history = await customer_history(conn, market.catalogue, as_of, customer_ids)
    total = len(history.customer_ids)
    say(f"recommendations for {total:,} customers")

    def rank() -> list[np.ndarray]:
        lists: list[np.ndarray] = []
        for start in range(0, total, _CHUNK):
            rows = np.arange(start, min(start + _CHUNK, total))
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
            lists.extend(products[s : min(e, s + top)] for s, e in zip(starts, ends, strict=True))
            if (start // _CHUNK + 1) % _REPORT_EVERY == 0:
                say(f"recommendations: {len(lists):,} of {total:,} customers")
        return lists

    return await asyncio.to_thread(rank)


def _records(table: ScoreTable) -> list[tuple[object, ...]]:
    n = len(table)

    def column(values: np.ndarray | None) -> list[float | None]:
        return values.tolist() if values is not None else [None] * n

    recs = table.recommended_lists()
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


async def store(conn: asyncpg.Connection, table: ScoreTable) -> ScoreTable:
    """Replace the stored scores with ``table`` in one transaction; return what was stored.

    Customers erased or objecting to profiling since ``table`` was scored are left out
    (insert_staged_scores), and out of the returned table too, which is what a file export
    must write: no score outlives its consent, in the database or beside it.
    """
    async with conn.transaction():
        await conn.execute(query("create_score_staging"))
        await conn.copy_records_to_table("score_staging", records=_records(table), columns=_COLUMNS)
        await conn.execute(query("lock_stored_scores"))
        await conn.execute(query("clear_stored_scores"))
        status = await conn.execute(query("insert_staged_scores"))
        if int(status.split()[-1]) == len(table):
            return table
        # Rare (a refusal or an erasure during the run): find the few rows left out.
        left_out = [r["customer_id"] for r in await conn.fetch(query("staged_scores_left_out"))]
    return table.without(left_out)


@dataclass(frozen=True)
class FileLabels:
    """What a score file adds so that systems outside CDM can join it: each customer's
    external id with its source (None without one), each recommended product's SKU."""

    external_ids: list[str | None]
    external_id_sources: list[str | None]
    skus: dict[int, str]


async def file_labels(
    conn: asyncpg.Connection, table: ScoreTable, *, source: str | None = None
) -> FileLabels:
    """The external ids of ``table``'s customers (of ``source`` when given) and the SKUs of
    their recommended products: two set-based statements, whatever the number of customers.

    A customer with several external ids (several sources, or a merge) is written with the
    earliest recorded one (see ``score_file_external_ids``), so a file of the same data
    always names a customer the same way.
    """
    ids = table.customer_ids.tolist()
    found = {
        r["customer_id"]: (r["value"], r["source"])
        for r in await conn.fetch(query("score_file_external_ids"), ids, source)
    }
    missing: tuple[None, None] = (None, None)
    pairs = [found.get(i, missing) for i in ids]
    products: list[int] = []
    if table.recommendations:  # None (not ranked) or empty: no products to name
        products = np.unique(np.concatenate(table.recommendations)).tolist()
    skus = {r["id"]: r["sku"] for r in await conn.fetch(query("score_file_skus"), products)}
    if len(skus) != len(products):  # products are never deleted: a bug if this happens
        raise RuntimeError(f"{len(products) - len(skus)} recommended products have no SKU")
    return FileLabels(
        external_ids=[value for value, _ in pairs],
        external_id_sources=[src for _, src in pairs],
        skus=skus,
    )


def write_file(table: ScoreTable, path: Path, labels: FileLabels) -> None:
    """One row per customer, as CSV or Parquet (by the file's suffix), with the customer's
    external id and the recommended products' SKUs beside CDM's ids (``labels``)."""
    n = len(table)

    def column(values: np.ndarray | None) -> pa.Array:
        return pa.array(values if values is not None else [None] * n, type=pa.float64())

    recommended = table.recommended_lists()
    skus = [None if r is None else [labels.skus[p] for p in r] for r in recommended]
    data = pa.table(
        {
            "customer_id": pa.array(table.customer_ids, type=pa.int64()),
            "external_id": pa.array(labels.external_ids, type=pa.string()),
            "external_id_source": pa.array(labels.external_id_sources, type=pa.string()),
            "as_of": pa.array([table.as_of] * n, type=pa.timestamp("us", tz="UTC")),
            "churn_probability": column(table.churn),
            "purchase_30d_probability": column(table.p30),
            "expected_purchases": column(table.expected_purchases),
            "expected_days_to_next": column(table.expected_days),
            "recommended_product_ids": pa.array(recommended, type=pa.list_(pa.int64())),
            "recommended_skus": pa.array(skus, type=pa.list_(pa.string())),
        }
    )
    if path.suffix.lower() == ".parquet":
        pq.write_table(data, path)
        return
    # CSV has no lists: recommended products become "12;34;56" (SKUs alike).
    for name, lists in (("recommended_product_ids", recommended), ("recommended_skus", skus)):
        joined = pa.array([";".join(map(str, r)) if r else "" for r in lists], type=pa.string())
        data = data.set_column(data.schema.get_field_index(name), name, joined)
    pa_csv.write_csv(data, path)
