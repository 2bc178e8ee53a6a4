"""Upsell / cross-sell: rank the products a customer has not bought yet by how likely they
are to buy them within the horizon.

Candidates and their features come from :mod:`ml.recommendations` (the code serving uses);
a LightGBM ``lambdarank`` model orders each customer's candidates. It is judged on the
evaluation cutoff by precision, recall and NDCG at 10 over the customers who bought a new
product in the window, against three baselines: global popularity, item co-occurrence, and
the customer's own most-bought items. The last one only ever recommends products already
bought, so it cannot score on *new* products; it is judged, with every other model, on a
second target too (any product bought in the window, repeats included), where it is the
strong baseline of repeat-purchase businesses. The gate uses NDCG@10 on new products.
The ranker served is refitted with the same rounds on every cutoff, the evaluation one too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import lightgbm as lgb
import numpy as np
from scipy import sparse

from ml.recommendations import (
    CANDIDATE_FEATURES,
    Candidates,
    Catalogue,
    History,
    MarketBasket,
    build_candidates,
    candidate_definition_hash,
    csr_keys,
    customer_chunks,
    customer_history,
    first_unbought,
    market_basket,
)
from ml.row_ranks import cell_keys, lookup, sorted_unique
from ml.training import boosting, plots
from ml.training.datasets import buyers_before, sample_ids
from ml.training.metrics import ranking_metrics
from ml.training.outcome import TrainedTask
from sql.matrix import fetch_matrix

MAX_CUSTOMERS = 20_000  # per cutoff: ~60 candidates each keeps a cutoff near a million rows
TOP = 10
PARAMS: dict[str, object] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [TOP],
    "lambdarank_truncation_level": 4 * TOP,
    "learning_rate": 0.06,
    "min_data_in_leaf": 50,
}


@dataclass(frozen=True, eq=False)
class UpsellSnapshot:
    """Candidates at a cutoff, and what each sampled customer bought in the window after it."""

    cutoff: datetime
    window_end: datetime
    catalogue: Catalogue
    basket: MarketBasket
    history: History
    candidates: Candidates
    labels: np.ndarray  # per candidate row: 1.0 if bought in the window
    bought_any: list[set[int]]  # per history customer: products bought in the window
    bought_new: list[set[int]]  # ... of which never bought before the cutoff

    def describe(self) -> dict[str, object]:
        customers = len(self.history.customer_ids)
        return {
            "cutoff": self.cutoff.isoformat(),
            "customers": customers,
            "candidates": len(self.candidates),
            "candidate_hit_rate": round(float(self.labels.mean()), 5) if len(self.labels) else None,
            "customers_buying_new": sum(1 for s in self.bought_new if s),
        }


@dataclass(frozen=True, eq=False)
class RankingRows:
    """A training cutoff's rows, compact: the candidates of the customers who bought one of
    theirs (the only informative ranking groups), as float32 / int32 arrays."""

    matrix: np.ndarray  # float32, columns CANDIDATE_FEATURES
    labels: np.ndarray  # float32
    groups: np.ndarray  # int32: rows per customer, in row order
    description: dict[str, object]


def ranking_rows(snapshot: UpsellSnapshot) -> RankingRows:
    """The rows ``snapshot`` contributes to training; the snapshot itself (market statistics,
    histories, every candidate) can then be let go."""
    keep = _groups_with_a_purchase(snapshot.candidates, snapshot.labels)
    return RankingRows(
        matrix=np.ascontiguousarray(snapshot.candidates.matrix[keep.rows], dtype=np.float32),
        labels=snapshot.labels[keep.rows].astype(np.float32),
        groups=keep.groups.astype(np.int32),
        description=snapshot.describe(),
    )


async def upsell_snapshot(
    conn: asyncpg.Connection,
    catalogue: Catalogue,
    cutoff: datetime,
    horizon: timedelta,
    *,
    max_customers: int,
    seed: int,
) -> UpsellSnapshot:
    """Candidates for a sample of the customers who had bought before ``cutoff``, labelled."""
    ids = sample_ids(
        await buyers_before(conn, cutoff),
        min(max_customers, MAX_CUSTOMERS),
        seed=seed,
        cutoff=cutoff,
    )
    basket = await market_basket(conn, catalogue, cutoff)
    history = await customer_history(conn, catalogue, cutoff, ids.tolist())
    candidates = build_candidates(catalogue, basket, history)
    keys, rows = await fetch_matrix(
        conn, "products_bought_between", (cutoff, cutoff + horizon, ids.tolist()), 1
    )
    width = len(catalogue) + 1
    bought_keys = keys * width + catalogue.positions(rows[:, 0].astype(np.int64))
    candidate_keys = candidates.customer_ids * width + catalogue.positions(candidates.product_ids)
    labels = np.isin(candidate_keys, bought_keys).astype(np.float64)

    bought_any: list[set[int]] = [set() for _ in history.customer_ids]
    for customer, product in zip(
        np.searchsorted(history.customer_ids, keys), rows[:, 0].astype(np.int64), strict=True
    ):
        bought_any[customer].add(int(product))
    before = history.orders.tolil().rows
    bought_new = [
        after - set(catalogue.product_ids[before[u]].tolist()) for u, after in enumerate(bought_any)
    ]
    return UpsellSnapshot(
        cutoff=cutoff,
        window_end=cutoff + horizon,
        catalogue=catalogue,
        basket=basket,
        history=history,
        candidates=candidates,
        labels=labels,
        bought_any=bought_any,
        bought_new=bought_new,
    )


def train(training: list[RankingRows], evaluation: UpsellSnapshot, *, seed: int) -> TrainedTask:
    """Fit the ranker on the training cutoffs' rows, compare it with the baselines on the
    evaluation cutoff, refit it on all of them."""
    rows = [*training, ranking_rows(evaluation)]
    inputs = [r.matrix for r in rows]
    labels = [r.labels for r in rows]
    groups = [r.groups for r in rows]
    booster = boosting.fit(
        PARAMS,
        inputs[:-1],
        labels[:-1],
        groups=groups[:-1],
        feature_names=CANDIDATE_FEATURES,
        seed=seed,
    )
    served = boosting.refit(
        PARAMS,
        inputs,
        labels,
        rounds=booster.current_iteration(),
        groups=groups,
        feature_names=CANDIDATE_FEATURES,
        seed=seed,
    )
    lists = {
        "lightgbm": ranked_lists(evaluation, booster.predict(evaluation.candidates.matrix)),
        **baseline_lists(evaluation),
    }
    comparison = {}
    for name, recommended in lists.items():
        new = ranking_metrics(recommended, evaluation.bought_new, TOP)
        every = ranking_metrics(recommended, evaluation.bought_any, TOP)
        comparison[name] = {
            **{k: v for k, v in new.items() if k != "users"},
            **{f"any_{k}": v for k, v in every.items() if k != "users"},
        }

    def score(other: lgb.Booster) -> float:
        recommended = ranked_lists(evaluation, other.predict(evaluation.candidates.matrix))
        return ranking_metrics(recommended, evaluation.bought_new, TOP)[f"ndcg_at_{TOP}"]

    sample = np.random.default_rng(seed).permutation(len(evaluation.candidates))[:1000]
    return TrainedTask(
        task="upsell",
        heads={"ranker": served},
        evaluated_heads={"ranker": booster},
        horizon_days=(evaluation.window_end - evaluation.cutoff).total_seconds() / 86400,
        feature_names=CANDIDATE_FEATURES,
        feature_hash=candidate_definition_hash(),
        comparison=comparison,
        primary_metric=f"ndcg_at_{TOP}",
        greater_is_better=True,
        score=score,
        input_example=evaluation.candidates.matrix[:5],
        data={},
        params=PARAMS,
        figures={
            "importance.png": plots.importance(served, "Upsell ranker: feature importance"),
            "shap_summary.png": plots.shap_summary(
                served,
                evaluation.candidates.matrix[np.sort(sample)],
                CANDIDATE_FEATURES,
                "Upsell ranker: SHAP summary",
            ),
        },
    )


@dataclass(frozen=True)
class _Selection:
    rows: np.ndarray
    groups: np.ndarray


def _groups_with_a_purchase(candidates: Candidates, labels: np.ndarray) -> _Selection:
    """Customers whose candidates include something they bought: the only informative groups."""
    starts = np.concatenate([[0], np.cumsum(candidates.groups)[:-1]])
    hits = np.add.reduceat(labels, starts) if len(labels) else np.empty(0)
    keep = hits > 0
    rows = np.repeat(keep, candidates.groups)
    return _Selection(rows=rows, groups=candidates.groups[keep])


def ranked_lists(snapshot: UpsellSnapshot, scores: np.ndarray) -> list[np.ndarray]:
    """Each history customer's candidates, best score first (top ``TOP``, topped up by
    popularity when a customer has fewer candidates)."""
    candidates = snapshot.candidates
    order = np.lexsort((-scores, candidates.customer_ids))
    products = candidates.product_ids[order]
    customers = candidates.customer_ids[order]
    bounds = np.searchsorted(customers, snapshot.history.customer_ids)
    ends = np.searchsorted(customers, snapshot.history.customer_ids, side="right")
    popular = snapshot.catalogue.product_ids[np.argsort(-snapshot.basket.popularity_90d)]
    lists = []
    for start, end in zip(bounds, ends, strict=True):
        top = products[start : min(end, start + TOP)]
        if len(top) < TOP:
            top = np.concatenate([top, popular[~np.isin(popular, top)][: TOP - len(top)]])
        lists.append(top)
    return lists


def baseline_lists(snapshot: UpsellSnapshot) -> dict[str, list[np.ndarray]]:
    """Top-``TOP`` lists of popularity, co-occurrence and own most-bought, per customer.

    Worked out a chunk of customers at a time from sparse rows, the lists a dense
    (customer x product) sort would give: best score first, ties in catalogue order, and
    (when fewer than ``TOP`` products are left unbought) the bought ones after, in
    catalogue order."""
    catalogue, basket, history = snapshot.catalogue, snapshot.basket, snapshot.history
    size = len(catalogue)
    everyone = np.argsort(-basket.popularity_90d, kind="stable")
    tie = basket.popularity_90d * 1e-6  # ties go to the more popular product
    lists: dict[str, list[np.ndarray]] = {
        "popularity": [], "co_occurrence": [], "own_most_bought": []
    }  # fmt: skip
    spans = customer_chunks(catalogue, basket, history, per_source=TOP)
    if not spans:
        empty = catalogue.product_ids[:0]
        return {name: [empty for _ in history.customer_ids] for name in lists}
    for span in spans:
        orders = history.orders[span].tocsr()
        users = orders.shape[0]
        bought, counts = csr_keys(orders)
        bought, counts = bought[counts > 0], counts[counts > 0]
        recency = lookup(*csr_keys(history.recency[span].tocsr()), bought, np.nan)
        rows, first = first_unbought(everyone, bought, users, TOP)
        popular_keys = cell_keys(rows, first, size)
        # Co-occurrence: the best unbought products are among the ones co-bought with the
        # customer's and their first TOP unbought by popularity (the rest score the tie only).
        buyer, product = bought // size, bought % size
        indicator = sparse.csr_matrix((np.ones(len(bought)), (buyer, product)), shape=(users, size))
        cooc_keys, cooc_values = csr_keys(indicator @ basket.conditional)
        unbought = lookup(bought, np.ones(len(bought)), cooc_keys, 0.0) == 0
        cooc_keys, cooc_values = cooc_keys[unbought], cooc_values[unbought]
        pool = sorted_unique(np.concatenate([cooc_keys, popular_keys]))
        score = lookup(cooc_keys, cooc_values, pool, 0.0) + tie[pool % size]
        by_score = {
            "popularity": (popular_keys, basket.popularity_90d[first]),
            "co_occurrence": (pool, score),
            # Most orders first, then the most recently bought.
            "own_most_bought": (bought, counts - 1e-6 * recency),
        }
        for name, (keys, values) in by_score.items():
            tops = _top_per_row(keys, values, users, size)
            if name != "own_most_bought":
                tops = _bought_last(tops, bought, size)
            lists[name].extend(catalogue.product_ids[top] for top in tops)
    return lists


def _top_per_row(keys: np.ndarray, values: np.ndarray, users: int, size: int) -> list[np.ndarray]:
    """Each row's ``TOP`` best cells' positions: highest value first, ties by position."""
    rows = keys // size
    order = np.lexsort((keys, -values, rows))
    rows = rows[order]
    first = np.searchsorted(rows, np.arange(users))
    rank = np.arange(len(rows)) - first[rows]
    kept = order[rank < TOP]
    positions = keys[kept] % size
    bounds = np.searchsorted(keys[kept] // size, np.arange(users + 1))
    return [positions[bounds[u] : bounds[u + 1]] for u in range(users)]


def _bought_last(tops: list[np.ndarray], bought: np.ndarray, size: int) -> list[np.ndarray]:
    """Lists shorter than ``TOP`` (too few products left unbought) ended with the bought
    products in catalogue order, as a dense sort with bought scores of -inf would."""
    short = [u for u, top in enumerate(tops) if len(top) < TOP]
    if not short:
        return tops
    rows = bought // size
    for u in short:
        mine = bought[np.searchsorted(rows, u) : np.searchsorted(rows, u, side="right")] % size
        tops[u] = np.concatenate([tops[u], mine[: TOP - len(tops[u])]])
    return tops
