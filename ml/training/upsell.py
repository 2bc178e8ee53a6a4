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

from ml.recommendations import (
    CANDIDATE_FEATURES,
    Candidates,
    Catalogue,
    History,
    MarketBasket,
    build_candidates,
    candidate_definition_hash,
    customer_history,
    market_basket,
)
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


def train(training: list[UpsellSnapshot], evaluation: UpsellSnapshot, *, seed: int) -> TrainedTask:
    """Fit the ranker on the training cutoffs, compare it with the baselines on the evaluation
    one, refit it on all of them."""
    inputs, labels, groups = [], [], []
    for snapshot in [*training, evaluation]:
        keep = _groups_with_a_purchase(snapshot.candidates, snapshot.labels)
        inputs.append(snapshot.candidates.matrix[keep.rows])
        labels.append(snapshot.labels[keep.rows])
        groups.append(keep.groups)
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
    """Top-``TOP`` lists of popularity, co-occurrence and own most-bought, per customer."""
    catalogue, basket = snapshot.catalogue, snapshot.basket
    orders = snapshot.history.orders.toarray()
    recency = snapshot.history.recency.toarray()
    bought = orders > 0
    tie = basket.popularity_90d * 1e-6  # ties go to the more popular product
    scores = {
        "popularity": np.broadcast_to(basket.popularity_90d, orders.shape),
        "co_occurrence": bought.astype(float) @ basket.conditional + tie,
    }
    lists: dict[str, list[np.ndarray]] = {}
    for name, score in scores.items():
        masked = np.where(bought, -np.inf, score)
        top = np.argsort(-masked, axis=1, kind="stable")[:, :TOP]
        lists[name] = list(catalogue.product_ids[top])
    # Most orders first, then the most recently bought.
    own = np.where(bought, orders - 1e-6 * recency, -np.inf)
    top = np.argsort(-own, axis=1, kind="stable")[:, :TOP]
    lists["own_most_bought"] = [
        catalogue.product_ids[row[bought[u, row]]] for u, row in enumerate(top)
    ]
    return lists
