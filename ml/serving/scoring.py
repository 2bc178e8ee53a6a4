"""Scores for many customers at once: one feature query, one prediction call per model.

:class:`Scorer` turns a :class:`ml.features.FeatureFrame` (computed by the same code that
built the training sets) into domain predictions, each with its provenance, the customer's
percentile in the base and, for churn, the factors behind it (LightGBM's per-prediction
contributions, exact TreeSHAP). Recommendations build candidates with
:mod:`ml.recommendations` and order them with the ranker. Predictions run in a worker thread,
so the event loop keeps serving other requests while a large batch is scored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import numpy as np

from domain.commerce import Product
from domain.predictions import (
    ChurnRisk,
    Explanation,
    FeatureVector,
    ModelUnavailable,
    NextPurchase,
    Provenance,
    Recommendation,
    RecommendationReason,
    Recommendations,
    RiskBands,
    percentile_of,
)
from ml.features import FEATURE_DESCRIPTIONS, FEATURES, FeatureFrame, compute_features
from ml.recommendations import (
    Candidates,
    Catalogue,
    History,
    MarketBasket,
    build_candidates,
    customer_history,
    load_catalogue,
    market_basket,
)
from ml.serving.models import ModelStore, ServedModel
from sql.repositories import all_products

HORIZON_DAYS = 90.0  # the horizon the next-purchase counts and waits are trained on
RECOMMENDATIONS_KEPT = 20
# Candidates per source when serving. Training proposes 20 per source (more negatives to
# learn from); a candidate's features do not depend on how many are proposed, so serving
# the top 10 of each source scores the likeliest products identically, for half the work.
SERVING_PER_SOURCE = 10


@dataclass(frozen=True)
class MarketView:
    catalogue: Catalogue
    basket: MarketBasket
    day: datetime
    products: dict[int, Product]  # full rows, so recommendations need no product lookups


class Scorer:
    """Predictions from the store's current models (a request keeps the set it started with)."""

    def __init__(self, store: ModelStore, bands: RiskBands) -> None:
        self.store = store
        self.bands = bands
        self._basket: MarketView | None = None
        self._basket_lock = asyncio.Lock()

    def model(self, task: str) -> ServedModel:
        """The served model of ``task``, or :class:`ModelUnavailable` saying why there is none."""
        served = self.store.models.get(task)
        if served is None:
            status = self.store.status.get(task)
            reason = status.reason if status else f"run `cdm train {task.replace('_', '-')}`"
            raise ModelUnavailable(f"no {task.replace('_', ' ')} model is available: {reason}")
        return served

    async def features(
        self, conn: asyncpg.Connection, customer_ids: Sequence[int], as_of: datetime
    ) -> FeatureFrame:
        """The customers' features as of ``as_of`` (one statement)."""
        return await compute_features(conn, as_of, customer_ids)

    async def churn(self, frame: FeatureFrame, *, explain: bool = False) -> dict[int, ChurnRisk]:
        """Churn risk per customer of ``frame``; with ``explain``, every feature's contribution
        (LightGBM's exact TreeSHAP: costlier, so only when asked for)."""
        model = self.model("churn")
        if not len(frame):
            return {}

        def predict() -> tuple[np.ndarray, np.ndarray | None]:
            x = frame.matrix
            contributions = model.heads["churn"].predict(x, pred_contrib=True) if explain else None
            return churn_probabilities(model, x), contributions

        probabilities, raw = await asyncio.to_thread(predict)
        provenance = _provenance(model, frame.as_of)
        percentiles = model.percentiles("churn")
        descriptions = tuple(FEATURE_DESCRIPTIONS[f] for f in FEATURES)
        result = {}
        for i, (customer_id, p) in enumerate(
            zip(frame.customer_ids.tolist(), probabilities.tolist(), strict=True)
        ):
            explanation = None
            if raw is not None:
                row = raw[i].tolist()
                explanation = Explanation(row[-1], tuple(row[:-1]), descriptions)
            result[customer_id] = ChurnRisk(
                probability=p,
                band=self.bands.band(p),
                percentile=percentile_of(p, percentiles),
                provenance=provenance,
                inputs=_inputs(frame.matrix[i]),
                explanation=explanation,
            )
        return result

    async def next_purchase(self, frame: FeatureFrame) -> dict[int, NextPurchase]:
        """Purchase probability within 30 days, expected purchases and wait, per customer."""
        model = self.model("next_purchase")
        if not len(frame):
            return {}

        p30, count, days = await asyncio.to_thread(next_purchase_arrays, model, frame.matrix)
        provenance = _provenance(model, frame.as_of)
        percentiles = model.percentiles("p30")
        return {
            customer_id: NextPurchase(
                probability_30d=p,
                percentile=percentile_of(p, percentiles),
                expected_purchases=n,
                expected_days=d,
                horizon_days=HORIZON_DAYS,
                provenance=provenance,
                inputs=_inputs(frame.matrix[i]),
            )
            for i, (customer_id, p, n, d) in enumerate(
                zip(frame.customer_ids.tolist(), p30.tolist(), count.tolist(), days.tolist(),
                    strict=True)
            )
        }  # fmt: skip

    async def recommendations(
        self, conn: asyncpg.Connection, customer_ids: Sequence[int], as_of: datetime
    ) -> dict[int, Recommendations]:
        """Each customer's best unbought products, ranked, with a reason for each."""
        model = self.model("upsell")
        shared = await self.market(conn, as_of)
        history = await customer_history(conn, shared.catalogue, as_of, customer_ids)

        def rank() -> dict[int, Recommendations]:
            candidates = build_candidates(
                shared.catalogue, shared.basket, history, per_source=SERVING_PER_SOURCE
            )
            scores = model.heads["ranker"].predict(candidates.matrix) if len(candidates) else []
            return _ranked(shared, history, candidates, np.asarray(scores), model, as_of)

        return await asyncio.to_thread(rank)

    async def market(self, conn: asyncpg.Connection, as_of: datetime) -> MarketView:
        """The catalogue and the item statistics as of ``as_of``'s day (cached per day: they
        cover everyone's last year and change slowly)."""
        day = as_of.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        cached = self._basket
        if cached is not None and cached.day == day:
            return cached
        async with self._basket_lock:
            if self._basket is None or self._basket.day != day:
                catalogue = await load_catalogue(conn)
                basket = await market_basket(conn, catalogue, day)
                products = await all_products(conn)
                self._basket = MarketView(catalogue, basket, day, products)
            return self._basket


def churn_probabilities(model: ServedModel, x: np.ndarray) -> np.ndarray:
    """Churn probability per row of ``x`` (online and batch scoring share this)."""
    return model.heads["churn"].predict(x)


def next_purchase_arrays(
    model: ServedModel, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """30-day purchase probability, expected purchases and capped wait per row of ``x``."""
    return (
        model.heads["p30"].predict(x),
        model.heads["count"].predict(x),
        np.clip(model.heads["days"].predict(x), 0.0, HORIZON_DAYS),
    )


def _provenance(model: ServedModel, as_of: datetime) -> Provenance:
    return Provenance(model=model.name, version=model.version, run_id=model.run_id, as_of=as_of)


def _inputs(values: np.ndarray) -> FeatureVector:
    return FeatureVector(FEATURES, tuple(None if v != v else v for v in values.tolist()))


def _ranked(
    shared: MarketView,
    history: History,
    candidates: Candidates,
    scores: np.ndarray,
    model: ServedModel,
    as_of: datetime,
) -> dict[int, Recommendations]:
    catalogue, basket = shared.catalogue, shared.basket
    provenance = _provenance(model, as_of)
    result: dict[int, Recommendations] = {}
    if len(scores) == 0:
        return {int(c): Recommendations((), provenance) for c in history.customer_ids}
    order = rank_order(candidates, scores)
    customers = candidates.customer_ids[order]
    starts = np.searchsorted(customers, history.customer_ids)
    ends = np.searchsorted(customers, history.customer_ids, side="right")
    # Keep each customer's best RECOMMENDATIONS_KEPT rows, then work on those arrays only.
    offset = np.arange(len(order)) - np.repeat(starts, ends - starts)
    kept = order[offset < RECOMMENDATIONS_KEPT]
    customers = candidates.customer_ids[kept]
    positions = catalogue.positions(candidates.product_ids[kept])
    cooc = candidates.column("cooc_score")[kept]
    share = candidates.column("category_share")[kept]
    rows = np.searchsorted(history.customer_ids, customers)
    # The bought product each candidate is most often bought with (co-purchase share).
    partner = np.full(len(kept), -1)
    strength = np.zeros(len(kept))
    for row in np.unique(rows[cooc > 0]):
        bought = history.orders[row].indices
        if not len(bought):
            continue
        mine = np.flatnonzero(rows == row)
        block = basket.conditional[np.ix_(bought, positions[mine])]
        best = block.argmax(axis=0)
        partner[mine] = bought[best]
        strength[mine] = block[best, np.arange(len(mine))]
    together = (cooc > 0) & (strength >= 0.05)
    favourite = ~together & (share >= 0.25)
    category_names = [catalogue.category_names[c] for c in catalogue.categories[positions]]
    product_ids = catalogue.product_ids[positions].tolist()
    products = shared.products
    items: dict[int, list[Recommendation]] = {}
    for k, customer in enumerate(customers.tolist()):
        category = category_names[k]
        product = products.get(product_ids[k])
        if product is None:  # removed since the day's catalogue was read
            continue
        if together[k]:
            reason = RecommendationReason.BOUGHT_TOGETHER
            explanation = f"often bought with {catalogue.names[partner[k]]}"
            because = products.get(int(catalogue.product_ids[partner[k]]))
        elif favourite[k]:
            reason = RecommendationReason.FAVOURITE_CATEGORY
            explanation = f"from {category}, one of this customer's favourite categories"
            because = None
        else:
            reason = RecommendationReason.POPULAR
            explanation = "popular with customers right now"
            because = None
        items.setdefault(customer, []).append(
            Recommendation(
                product=product,
                score=float(scores[kept[k]]),
                reason=reason,
                explanation=explanation,
                because_of=because,
            )
        )
    for customer in history.customer_ids.tolist():
        result[customer] = Recommendations(tuple(items.get(customer, ())), provenance)
    return result


def rank_order(candidates: Candidates, scores: np.ndarray) -> np.ndarray:
    """Candidate rows grouped by customer, best score first within each."""
    return np.lexsort((-scores, candidates.customer_ids))
