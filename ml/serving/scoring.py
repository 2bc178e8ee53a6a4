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
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import numpy as np

from domain.predictions import (
    ChurnRisk,
    Factor,
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

HORIZON_DAYS = 90.0  # the horizon the next-purchase counts and waits are trained on
RECOMMENDATIONS_KEPT = 20


@dataclass(frozen=True)
class MarketView:
    catalogue: Catalogue
    basket: MarketBasket
    day: datetime


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

    async def churn(self, frame: FeatureFrame) -> dict[int, ChurnRisk]:
        """Churn risk per customer of ``frame``, with its top factors."""
        model = self.model("churn")
        booster = model.heads["churn"]
        if not len(frame):
            return {}

        def predict() -> tuple[np.ndarray, np.ndarray]:
            x = frame.matrix
            return churn_probabilities(model, x), booster.predict(x, pred_contrib=True)

        probabilities, raw = await asyncio.to_thread(predict)
        contributions = raw[:, :-1]
        provenance = _provenance(model, frame.as_of)
        percentiles = model.percentiles("churn")
        result = {}
        for i, customer_id in enumerate(frame.customer_ids.tolist()):
            p = float(probabilities[i])
            values = frame.matrix[i]
            result[customer_id] = ChurnRisk(
                probability=p,
                band=self.bands.band(p),
                percentile=percentile_of(p, percentiles),
                factors=_factors(values, contributions[i]),
                base_value=float(raw[i, -1]),
                provenance=provenance,
                features=_named(values),
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
                probability_30d=float(p30[i]),
                percentile=percentile_of(float(p30[i]), percentiles),
                expected_purchases=float(count[i]),
                expected_days=float(days[i]),
                horizon_days=HORIZON_DAYS,
                provenance=provenance,
                features=_named(frame.matrix[i]),
            )
            for i, customer_id in enumerate(frame.customer_ids.tolist())
        }

    async def recommendations(
        self, conn: asyncpg.Connection, customer_ids: Sequence[int], as_of: datetime
    ) -> dict[int, Recommendations]:
        """Each customer's best unbought products, ranked, with a reason for each."""
        model = self.model("upsell")
        shared = await self.market(conn, as_of)
        history = await customer_history(conn, shared.catalogue, as_of, customer_ids)

        def rank() -> dict[int, Recommendations]:
            candidates = build_candidates(shared.catalogue, shared.basket, history)
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
                self._basket = MarketView(catalogue, basket, day)
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


def _factors(values: np.ndarray, contributions: np.ndarray) -> tuple[Factor, ...]:
    """Every feature's contribution, strongest (by absolute value) first."""
    return tuple(
        Factor(
            feature=FEATURES[j],
            description=FEATURE_DESCRIPTIONS[FEATURES[j]],
            value=None if math.isnan(values[j]) else float(values[j]),
            contribution=float(contributions[j]),
        )
        for j in np.argsort(-np.abs(contributions), kind="stable")
    )


def _named(values: np.ndarray) -> dict[str, float | None]:
    return {
        name: (None if math.isnan(v) else float(v))
        for name, v in zip(FEATURES, values.tolist(), strict=True)
    }


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
    products = candidates.product_ids[order]
    ranked_scores = scores[order]
    cooc = candidates.column("cooc_score")[order]
    share = candidates.column("category_share")[order]
    bounds = np.searchsorted(customers, history.customer_ids)
    ends = np.searchsorted(customers, history.customer_ids, side="right")
    for row, (start, end) in enumerate(zip(bounds, ends, strict=True)):
        stop = min(end, start + RECOMMENDATIONS_KEPT)
        bought = history.orders[row].indices  # catalogue positions the customer bought
        items = []
        for k in range(start, stop):
            position = int(catalogue.positions(products[k : k + 1])[0])
            category = catalogue.category_names[catalogue.categories[position]]
            reason, explanation, because = _reason(
                catalogue, basket, bought, position, cooc[k], share[k], category
            )
            items.append(
                Recommendation(
                    product_id=int(products[k]),
                    category=category,
                    score=float(ranked_scores[k]),
                    reason=reason,
                    explanation=explanation,
                    because_of=because,
                )
            )
        result[int(history.customer_ids[row])] = Recommendations(tuple(items), provenance)
    return result


def rank_order(candidates: Candidates, scores: np.ndarray) -> np.ndarray:
    """Candidate rows grouped by customer, best score first within each."""
    return np.lexsort((-scores, candidates.customer_ids))


def _reason(
    catalogue: Catalogue,
    basket: MarketBasket,
    bought: np.ndarray,
    position: int,
    cooc: float,
    share: float,
    category: str,
) -> tuple[RecommendationReason, str, int | None]:
    if cooc > 0 and len(bought):
        partner = int(bought[np.argmax(basket.conditional[bought, position])])
        if basket.conditional[partner, position] >= 0.05:
            name = catalogue.names[partner]
            return (
                RecommendationReason.BOUGHT_TOGETHER,
                f"often bought with {name}",
                int(catalogue.product_ids[partner]),
            )
    if share >= 0.25:
        return (
            RecommendationReason.FAVOURITE_CATEGORY,
            f"from {category}, one of this customer's favourite categories",
            None,
        )
    return RecommendationReason.POPULAR, "popular with customers right now", None
