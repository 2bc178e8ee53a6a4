"""Scores for many customers at once: one feature query, one prediction call per model.

:class:`Scorer` turns a :class:`ml.features.FeatureFrame` (computed by the same code that
built the training sets) into domain predictions, each with its provenance, the customer's
percentile in the base and, for churn, the factors behind it (LightGBM's per-prediction
contributions, exact TreeSHAP). Recommendations build candidates with
:mod:`ml.recommendations` and order them with the ranker. Predictions run in a worker thread,
so the event loop keeps serving other requests while a large batch is scored.

NumPy and the candidate code (:mod:`ml.recommendations`) are imported by the code that
computes, not with this module: a server builds its scorer at start-up and answers before it
loads a model or computes a score (``tests/api/test_lazy_imports.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, overload

import asyncpg

from domain.commerce import Product
from domain.predictions import (
    BuyAgainItem,
    ChurnRisk,
    Explanation,
    FeatureVector,
    ModelNotServing,
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
from ml.serving.models import ModelStore, ServedModel
from ml.survival import HAZARD
from sql.matrix import fetch_matrix
from sql.repositories import all_products

if TYPE_CHECKING:
    import numpy as np

    from ml.buy_again import ProductCycles
    from ml.recommendations import Candidates, Catalogue, History, MarketBasket

RECOMMENDATIONS_KEPT = 20
# Candidates per source when serving. Training proposes 20 per source (more negatives to
# learn from); a candidate's features do not depend on how many are proposed, so serving
# the top 10 of each source scores the likeliest products identically, for half the work.
SERVING_PER_SOURCE = 10
BUY_AGAIN_KEPT = 20  # per customer: the most a `buyAgain(first:)` asks for


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
        self._cycles: tuple[datetime, ProductCycles] | None = None
        self._cycles_lock = asyncio.Lock()

    def model(self, task: str) -> ServedModel:
        """The served model of ``task``, or :class:`ModelUnavailable` saying why there is none."""
        served = self.store.models.get(task)
        if served is None:
            status = self.store.status.get(task)
            reason = status.reason if status else f"run `cdm train {task.replace('_', '-')}`"
            # Never trained, or there is one this server cannot serve: say which.
            error = (
                ModelUnavailable if status is None or status.state == "missing" else ModelNotServing
            )
            raise error(f"no {task.replace('_', ' ')} model is available: {reason}")
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
            contributions = churn_contributions(model, x) if explain else None
            return churn_probabilities(model, x), contributions

        probabilities, raw = await asyncio.to_thread(predict)
        provenance = _provenance(model, frame.as_of)
        percentiles = model.percentiles("churn")
        descriptions = tuple(FEATURE_DESCRIPTIONS[f] for f in FEATURES)
        inputs = _inputs(frame)
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
                inputs=inputs[i],
                explanation=explanation,
                horizon_days=model.horizon_days,
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
        inputs = _inputs(frame)
        return {
            customer_id: NextPurchase(
                probability_30d=p,
                percentile=percentile_of(p, percentiles),
                expected_purchases=n,
                expected_days=d,
                horizon_days=model.horizon_days,
                provenance=provenance,
                inputs=inputs[i],
            )
            for i, (customer_id, p, n, d) in enumerate(
                zip(frame.customer_ids.tolist(), p30.tolist(), count.tolist(), days.tolist(),
                    strict=True)
            )
        }  # fmt: skip

    async def recommendations(
        self, conn: asyncpg.Connection, customer_ids: Sequence[int], as_of: datetime
    ) -> dict[int, Recommendations]:
        """Each customer's best unbought products, ranked, with a reason for each; nothing
        (as for an unknown id) for customers not yet created at ``as_of``, erased, or
        objecting to profiling (the population features.sql scores)."""
        import numpy as np

        from ml.recommendations import build_candidates, customer_history

        model = self.model("upsell")
        shared = await self.market(conn, as_of)
        asked = np.unique(np.asarray(customer_ids, dtype=np.int64)).tolist()
        modelled, _ = await fetch_matrix(conn, "customers_scored_as_of", (as_of, asked), 0)
        history = await customer_history(conn, shared.catalogue, as_of, modelled)

        def rank() -> dict[int, Recommendations]:
            candidates = build_candidates(
                shared.catalogue, shared.basket, history, per_source=SERVING_PER_SOURCE
            )
            scores = model.heads["ranker"].predict(candidates.matrix) if len(candidates) else []
            return _ranked(shared, history, candidates, np.asarray(scores), model, as_of)

        return await asyncio.to_thread(rank)

    async def buy_again(
        self, conn: asyncpg.Connection, customer_ids: Sequence[int], as_of: datetime
    ) -> dict[int, list[BuyAgainItem]]:
        """Each customer's products bought before ``as_of`` that they will likely buy again,
        best first (:mod:`ml.buy_again`: no trained model, so never unavailable). Customers not
        yet created at ``as_of``, erased or objecting to profiling get nothing, as for
        recommendations; a customer who bought nothing gets an empty list."""
        import numpy as np

        from ml.buy_again import repurchase_log, score

        asked = np.unique(np.asarray(customer_ids, dtype=np.int64)).tolist()
        modelled, _ = await fetch_matrix(conn, "customers_scored_as_of", (as_of, asked), 0)
        cycles = await self.cycles(conn, as_of)
        log = await repurchase_log(conn, as_of, modelled.tolist())

        def rank() -> dict[int, list[BuyAgainItem]]:
            scored = score(log, cycles)
            found: dict[int, list[BuyAgainItem]] = {int(c): [] for c in modelled.tolist()}
            for customer, rows in scored.top(BUY_AGAIN_KEPT).items():
                found[customer] = [
                    BuyAgainItem(
                        product_id=p, score=s, orders=int(n), days_since_last=d, cycle_days=c,
                        as_of=as_of,
                    )
                    for p, s, n, d, c in zip(
                        log.product_ids[rows].tolist(), scored.scores[rows].tolist(),
                        log.orders[rows].tolist(), log.days_since[rows].tolist(),
                        scored.cycle_days[rows].tolist(), strict=True,
                    )
                ]  # fmt: skip
            return found

        return await asyncio.to_thread(rank)

    async def cycles(self, conn: asyncpg.Connection, as_of: datetime) -> ProductCycles:
        """Every product's repeat rate and repurchase cycle as of ``as_of``'s day (cached per
        day, like :meth:`market`: they cover everyone's last year)."""
        day = as_of.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        cached = self._cycles
        if cached is not None and cached[0] == day:
            return cached[1]
        async with self._cycles_lock:
            if self._cycles is None or self._cycles[0] != day:
                from ml.buy_again import load_product_cycles

                self._cycles = (day, await load_product_cycles(conn, day))
            return self._cycles[1]

    async def market(self, conn: asyncpg.Connection, as_of: datetime) -> MarketView:
        """The catalogue and the item statistics as of ``as_of``'s day (cached per day: they
        cover everyone's last year and change slowly)."""
        day = as_of.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        cached = self._basket
        if cached is not None and cached.day == day:
            return cached
        async with self._basket_lock:
            if self._basket is None or self._basket.day != day:
                from ml.recommendations import load_catalogue, market_basket

                catalogue = await load_catalogue(conn)
                basket = await market_basket(conn, catalogue, day)
                products = await all_products(conn)
                self._basket = MarketView(catalogue, basket, day, products)
            return self._basket


def churn_probabilities(model: ServedModel, x: np.ndarray) -> np.ndarray:
    """Churn probability per row of ``x``, calibrated (online and batch scoring share this)."""
    if model.method == HAZARD:
        return model.outlook(x).p_none
    return model.calibrated("churn", model.heads["churn"].predict(x))


def churn_contributions(model: ServedModel, x: np.ndarray) -> np.ndarray:
    """Per row of ``x``: each feature's SHAP contribution to the churn log-odds, then the
    base value (LightGBM's layout).

    A hazard-form version explains its first step: the contributions to the log-odds of *no*
    order within the next 30 days, which is the hazard's negated (the step index, the same
    for every customer, is folded into the base value)."""
    if model.method != HAZARD:
        return model.heads["churn"].contributions(x)
    import numpy as np

    from ml.survival import with_step

    raw = -model.heads["hazard"].contributions(with_step(x, 0))
    raw[:, -1] += raw[:, -2]  # the step column, constant here, joins the base value
    return np.delete(raw, -2, axis=1)


def next_purchase_arrays(
    model: ServedModel, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """30-day purchase probability and expected purchases (both calibrated), and the wait
    (capped at the model's horizon) per row of ``x``."""
    import numpy as np

    if model.method == HAZARD:
        seen = model.outlook(x)
        return seen.p30, seen.count, seen.wait
    return (
        model.calibrated("p30", model.heads["p30"].predict(x)),
        model.calibrated("count", model.heads["count"].predict(x)),
        np.clip(model.heads["days"].predict(x), 0.0, model.horizon_days),
    )


def _provenance(model: ServedModel, as_of: datetime) -> Provenance:
    return Provenance(model=model.name, version=model.version, run_id=model.run_id, as_of=as_of)


def _inputs(frame: FeatureFrame) -> list[FeatureVector]:
    """Each row's feature vector (NaN, undefined, becomes None), without per-value Python."""
    import numpy as np

    values = frame.matrix.astype(object)
    values[np.isnan(frame.matrix)] = None
    return [FeatureVector(FEATURES, tuple(row)) for row in values.tolist()]


def _ranked(
    shared: MarketView,
    history: History,
    candidates: Candidates,
    scores: np.ndarray,
    model: ServedModel,
    as_of: datetime,
) -> dict[int, Recommendations]:
    import numpy as np

    provenance = _provenance(model, as_of)
    if len(scores) == 0:
        return {int(c): Recommendations((), provenance) for c in history.customer_ids}
    order = rank_order(candidates, scores)
    customers = candidates.customer_ids[order]
    starts = np.searchsorted(customers, history.customer_ids)
    ends = np.searchsorted(customers, history.customer_ids, side="right")
    # Keep each customer's best RECOMMENDATIONS_KEPT rows, then work on those arrays only.
    offset = np.arange(len(order)) - np.repeat(starts, ends - starts)
    kept = order[offset < RECOMMENDATIONS_KEPT]
    kept = kept[np.fromiter(  # products removed since the day's catalogue was read
        (p in shared.products for p in candidates.product_ids[kept].tolist()), bool, len(kept)
    )]  # fmt: skip
    block = _RankedBlock(shared, history, candidates, scores, kept)
    bounds = np.searchsorted(block.customers, history.customer_ids).tolist()
    bounds.append(len(kept))
    return {
        customer: Recommendations(_LazyItems(block, bounds[i], bounds[i + 1]), provenance)
        for i, customer in enumerate(history.customer_ids.tolist())
    }


class _RankedBlock:
    """The kept recommendations of a batch of customers, as arrays (grouped by customer, best
    first). :class:`Recommendation` objects are made only when read: a response usually reads
    five of each customer's twenty, and a thousand customers' objects cost more than ranking."""

    def __init__(
        self,
        shared: MarketView,
        history: History,
        candidates: Candidates,
        scores: np.ndarray,
        kept: np.ndarray,
    ) -> None:
        import numpy as np

        catalogue = shared.catalogue
        self.shared = shared
        self.customers = candidates.customer_ids[kept]
        self.positions = catalogue.positions(candidates.product_ids[kept])
        self.scores = scores[kept]
        cooc = candidates.column("cooc_score")[kept]
        rows = np.searchsorted(history.customer_ids, self.customers)
        self.partner, strength = _strongest_partner(
            history, shared.basket, rows, self.positions, cooc > 0
        )
        self.together = (cooc > 0) & (strength >= 0.05)
        self.favourite = ~self.together & (candidates.column("category_share")[kept] >= 0.25)

    def item(self, k: int) -> Recommendation:
        catalogue, products = self.shared.catalogue, self.shared.products
        position = int(self.positions[k])
        product = products[int(catalogue.product_ids[position])]
        if self.together[k]:
            partner = int(self.partner[k])
            return Recommendation(
                product=product,
                score=float(self.scores[k]),
                reason=RecommendationReason.BOUGHT_TOGETHER,
                explanation=f"often bought with {catalogue.names[partner]}",
                because_of=products.get(int(catalogue.product_ids[partner])),
            )
        if self.favourite[k]:
            category = catalogue.category_names[catalogue.categories[position]]
            reason = RecommendationReason.FAVOURITE_CATEGORY
            explanation = f"from {category}, one of this customer's favourite categories"
        else:
            reason = RecommendationReason.POPULAR
            explanation = "popular with customers right now"
        return Recommendation(
            product=product,
            score=float(self.scores[k]),
            reason=reason,
            explanation=explanation,
            because_of=None,
        )


class _LazyItems(Sequence[Recommendation]):
    """One customer's recommendations in a :class:`_RankedBlock`, made on first read."""

    __slots__ = ("_block", "_made", "_start", "_stop")

    def __init__(self, block: _RankedBlock, start: int, stop: int) -> None:
        self._block, self._start, self._stop = block, start, stop
        self._made: dict[int, Recommendation] = {}

    def __len__(self) -> int:
        return self._stop - self._start

    def __iter__(self) -> Iterator[Recommendation]:
        for index in range(len(self)):  # Sequence's own __iter__ pays a try per item
            yield self[index]

    @overload
    def __getitem__(self, index: int) -> Recommendation: ...
    @overload
    def __getitem__(self, index: slice) -> list[Recommendation]: ...
    def __getitem__(self, index: int | slice) -> Recommendation | list[Recommendation]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        made = self._made.get(index)
        if made is None:
            made = self._made[index] = self._block.item(self._start + index)
        return made


def _strongest_partner(
    history: History,
    basket: MarketBasket,
    rows: np.ndarray,
    positions: np.ndarray,
    wanted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate (customer at ``rows``, product at ``positions``) that is ``wanted``,
    the customer's bought product it is most often bought with, and that co-purchase share
    (-1 and 0 elsewhere). One gather over every (candidate, bought product) pair."""
    import numpy as np

    partner = np.full(len(rows), -1)
    strength = np.zeros(len(rows))
    asked = np.flatnonzero(wanted)
    indptr, bought = history.orders.indptr, history.orders.indices
    counts = indptr[rows[asked] + 1] - indptr[rows[asked]]
    asked, counts = asked[counts > 0], counts[counts > 0]
    if not len(asked):
        return partner, strength
    # Pair p of candidate k: the k-th candidate's customer's i-th bought product.
    firsts = np.cumsum(counts) - counts
    within = np.arange(counts.sum()) - np.repeat(firsts, counts)
    items = bought[np.repeat(indptr[rows[asked]], counts) + within]
    # One gather from the sparse matrix (a matrix row comes back: flatten it).
    shares = np.asarray(basket.conditional[items, np.repeat(positions[asked], counts)]).ravel()
    best = np.maximum.reduceat(shares, firsts)
    # The first pair reaching its candidate's best share (ties: the first bought, as argmax).
    reaching = np.flatnonzero(shares == np.repeat(best, counts))
    owner = np.searchsorted(firsts, reaching, side="right") - 1
    first_reaching = reaching[np.r_[True, owner[1:] != owner[:-1]]]
    partner[asked] = items[first_reaching]
    strength[asked] = best
    return partner, strength


def rank_order(candidates: Candidates, scores: np.ndarray) -> np.ndarray:
    """Candidate rows grouped by customer, best score first within each."""
    import numpy as np

    return np.lexsort((-scores, candidates.customer_ids))
