"""Candidate ranks and "bought together" partners against brute-force references."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import sparse

from ml import factors
from ml.buy_again import _als_step
from ml.recommendations import (
    ALS_RANKED,
    CANDIDATE_FEATURES,
    Catalogue,
    History,
    MarketBasket,
    build_candidates,
    customer_chunks,
)
from ml.serving.scoring import _strongest_partner

SIZE, USERS = 40, 300


def _market(rng: np.random.Generator) -> tuple[Catalogue, MarketBasket, History]:
    categories = rng.integers(0, 4, SIZE)
    catalogue = Catalogue(
        product_ids=np.arange(100, 100 + SIZE, dtype=np.int64),
        names=tuple(f"p{i}" for i in range(SIZE)),
        categories=categories,
        category_names=("a", "b", "c", "d"),
        prices=rng.uniform(1, 50, SIZE),
    )
    conditional = rng.choice([0.0, 0.1, 0.2, 0.5], (SIZE, SIZE))  # many ties
    np.fill_diagonal(conditional, 0.0)
    conditional = sparse.csr_matrix(conditional)
    popularity = rng.choice([0.0, 0.05, 0.1, 0.3], SIZE)  # ties across products
    basket = MarketBasket(
        as_of=datetime(2026, 1, 1, tzinfo=UTC),
        conditional=conditional,
        popularity_90d=popularity,
        popularity_365d=popularity + 0.1,
        within_category=rng.choice([0.1, 0.2, 0.4], SIZE),
        item_factors=np.zeros((SIZE, factors.FACTORS)),
    )
    bought = rng.random((USERS, SIZE)) < 0.08
    orders = np.where(bought, rng.integers(1, 4, (USERS, SIZE)), 0).astype(float)
    recency = np.where(bought, rng.integers(1, 400, (USERS, SIZE)), 0).astype(float)
    history = History(
        customer_ids=np.arange(1, USERS + 1, dtype=np.int64),
        orders=sparse.csr_matrix(orders),
        recency=sparse.csr_matrix(recency),
    )
    # Product factors of either sign: a customer's ALS scores are positive and negative.
    item_factors = rng.normal(size=(SIZE, factors.FACTORS))
    item_factors[rng.random(SIZE) < 0.1] = 0.0  # nobody bought them: no factors
    basket = MarketBasket(**{**basket.__dict__, "item_factors": item_factors})
    return catalogue, basket, history


def _stable_rank(scores: np.ndarray, bought: np.ndarray) -> np.ndarray:
    """1-based rank per row, best first, ties in catalogue order, bought products last."""
    masked = np.where(bought, -np.inf, scores)
    ranks = np.empty_like(masked)
    for u, row in enumerate(masked):
        order = sorted(range(len(row)), key=lambda p: (-row[p], p))
        ranks[u, order] = np.arange(1, len(row) + 1)
    return ranks


def test_popularity_and_cooc_ranks_match_a_stable_sort_per_customer():
    catalogue, basket, history = _market(np.random.default_rng(5))
    candidates = build_candidates(catalogue, basket, history, per_source=5)
    orders = history.orders.toarray()
    bought = orders > 0
    cooc = (sparse.csr_matrix(bought.astype(float)) @ basket.conditional).toarray()
    popularity = np.broadcast_to(basket.popularity_90d, bought.shape)
    expected = {
        "rank_popularity": _stable_rank(popularity, bought),
        "rank_cooc": _stable_rank(cooc, bought),
    }
    users = np.searchsorted(history.customer_ids, candidates.customer_ids)
    items = catalogue.positions(candidates.product_ids)
    assert not bought[users, items].any()  # only unbought products are candidates
    for name, ranks in expected.items():
        got = candidates.matrix[:, CANDIDATE_FEATURES.index(name)]
        assert np.array_equal(got, ranks[users, items]), name
    # Every product a source ranks in its top 5 (with a positive score) is a candidate.
    top_popular = (expected["rank_popularity"] <= 5) & (basket.popularity_90d > 0) & ~bought
    proposed = np.zeros_like(bought)
    proposed[users, items] = True
    assert (proposed | ~top_popular).all()


def test_the_partner_is_the_bought_product_most_often_bought_with_the_candidate():
    _, basket, history = _market(np.random.default_rng(11))
    rng = np.random.default_rng(2)
    rows = np.sort(rng.integers(0, USERS, 500))
    positions = rng.integers(0, SIZE, 500)
    wanted = rng.random(500) < 0.7
    partner, strength = _strongest_partner(history, basket, rows, positions, wanted)
    for k in range(500):
        bought = history.orders[rows[k]].indices
        if not wanted[k] or not len(bought):
            assert (partner[k], strength[k]) == (-1, 0.0)
            continue
        shares = basket.conditional.toarray()[bought, positions[k]]
        assert strength[k] == shares.max()
        assert partner[k] == bought[int(np.argmax(shares))]  # ties: the first bought


def test_an_empty_catalogue_proposes_nothing_rather_than_failing():
    # Every product removed (or none imported yet) while a champion serves: a customer's
    # export and recommendations must still answer (they crashed on an empty reduction).
    catalogue = Catalogue(
        product_ids=np.empty(0, dtype=np.int64), names=(), categories=np.empty(0, dtype=np.int64),
        category_names=(), prices=np.empty(0),
    )  # fmt: skip
    basket = MarketBasket(
        as_of=datetime(2026, 1, 1, tzinfo=UTC), conditional=sparse.csr_matrix((0, 0)),
        popularity_90d=np.zeros(0), popularity_365d=np.zeros(0), within_category=np.zeros(0),
        item_factors=np.zeros((0, factors.FACTORS)),
    )  # fmt: skip
    history = History(
        customer_ids=np.array([7, 8], dtype=np.int64),
        orders=sparse.csr_matrix((2, 0)), recency=sparse.csr_matrix((2, 0)),
    )  # fmt: skip
    candidates = build_candidates(catalogue, basket, history)
    assert len(candidates) == 0
    assert candidates.matrix.shape == (0, len(CANDIDATE_FEATURES))


# The dense arithmetic the candidates were first built with (a customer x product array per
# score), kept as the reference the sparse, chunked code must reproduce.
def _times(rows: np.ndarray, conditional: sparse.csr_matrix) -> np.ndarray:
    return (sparse.csr_matrix(rows.astype(float)) @ conditional).toarray()


def _dense_candidates(catalogue, basket, history, per_source):
    parts = [
        _dense_chunk(catalogue, basket, history, rows, per_source)
        for rows in np.array_split(np.arange(len(history.customer_ids)), 3)
    ]
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.vstack([p[2] for p in parts]),
    )


def _dense_chunk(
    catalogue: Catalogue,
    basket: MarketBasket,
    history: History,
    rows: np.ndarray,
    per_source: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    span = slice(int(rows[0]), int(rows[-1]) + 1)
    conditional = basket.conditional  # sparse: products the same way as the code under test
    orders = history.orders[span].toarray()
    recency = history.recency[span].toarray()  # 1 + days, 0 = never
    bought = orders > 0
    recent = bought & (recency - 1 < 90.0)
    users, size = orders.shape

    cooc = _times(bought, conditional)
    cooc_recent = _times(recent, conditional)
    # The latest order's products: what a customer buys next often complements them.
    latest = np.where(bought, recency, np.inf).min(axis=1, keepdims=True)
    cooc_last = _times(bought & (recency == latest), conditional)
    onehot = np.zeros((size, len(catalogue.category_names)))
    onehot[np.arange(size), catalogue.categories] = 1.0
    category_orders = orders @ onehot  # [user, category]
    total_orders = category_orders.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        category_share = np.nan_to_num(category_orders / total_orders)
    share = category_share[:, catalogue.categories]  # [user, product]
    affinity = share * basket.within_category
    popularity = np.broadcast_to(basket.popularity_90d, (users, size))

    # Each source's rank of every unbought product (1 = best; ties by catalogue order). Only
    # unbought products become candidates, so only their ranks are defined.
    selected = np.zeros((users, size), dtype=bool)
    ranks = []
    positions = np.broadcast_to(np.arange(1.0, size + 1.0), (users, size))
    for score in (cooc, affinity):
        masked = np.where(bought, -np.inf, score)
        order = np.argsort(-masked, axis=1, kind="stable")
        rank = np.empty((users, size))
        np.put_along_axis(rank, order, positions, axis=1)  # the inverse permutation, 1-based
        selected |= (rank <= per_source) & ~bought & (masked > 0)
        ranks.append(rank)
    # Popularity is the same for everyone: one global order, and an unbought product's rank
    # is the number of unbought products up to it in that order (no sort per customer).
    everyone = np.argsort(-basket.popularity_90d, kind="stable")
    rank = np.empty((users, size))
    rank[:, everyone] = np.cumsum(~bought[:, everyone], axis=1)
    selected |= (rank <= per_source) & ~bought & (popularity > 0)
    ranks.append(rank)
    # ALS: each customer's factors solved row by row (the unchunked reference solve).
    user_factors = _als_step(
        factors.confidence(sparse.csr_matrix(orders)), basket.item_factors, factors.REGULARIZATION
    )
    als = user_factors @ basket.item_factors.T
    masked = np.where(bought, -np.inf, als)
    order = np.argsort(-masked, axis=1, kind="stable")
    als_rank = np.empty((users, size))
    np.put_along_axis(als_rank, order, positions, axis=1)
    als_rank = np.where((masked > 0) & (als_rank <= ALS_RANKED), als_rank, ALS_RANKED + 1.0)
    selected |= (als_rank <= per_source) & ~bought
    selected &= ~bought
    user, item = np.nonzero(selected)

    since_category = np.full((users, len(catalogue.category_names)), np.nan)
    for c in range(len(catalogue.category_names)):
        in_category = catalogue.categories == c
        days = np.where(bought[:, in_category], recency[:, in_category] - 1, np.inf)
        closest = days.min(axis=1) if days.shape[1] else np.full(users, np.inf)
        since_category[:, c] = np.where(np.isfinite(closest), closest, np.nan)
    units = orders.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        usual_price = (orders @ catalogue.prices) / units
        trend = basket.popularity_90d * (365 / 90.0) / basket.popularity_365d
    last_purchase = latest[:, 0] - 1
    category = catalogue.categories[item]
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            "cooc_score": cooc[user, item],
            "cooc_recent_score": cooc_recent[user, item],
            "cooc_last_order_score": cooc_last[user, item],
            "share_of_category": basket.within_category[item],
            "category_share": share[user, item],
            "affinity_score": affinity[user, item],
            "cooc_lift": cooc[user, item] / basket.popularity_365d[item],
            "category_orders": category_orders[user, category],
            "days_since_category_purchase": since_category[user, category],
            "popularity_90d": basket.popularity_90d[item],
            "popularity_365d": basket.popularity_365d[item],
            "popularity_trend": np.nan_to_num(trend, nan=np.nan)[item],
            "price": catalogue.prices[item],
            "price_vs_usual": catalogue.prices[item] / usual_price[user],
            "customer_products": bought.sum(axis=1)[user].astype(float),
            "customer_purchases": units[user],
            "days_since_last_purchase": np.where(np.isfinite(last_purchase), last_purchase, np.nan)[
                user
            ],
            "rank_cooc": ranks[0][user, item],
            "rank_category": ranks[1][user, item],
            "rank_popularity": ranks[2][user, item],
            "als_score": als[user, item],
            "rank_als": als_rank[user, item],
        }
    matrix = np.column_stack([columns[name] for name in CANDIDATE_FEATURES])
    matrix[~np.isfinite(matrix)] = np.nan
    return history.customer_ids[rows][user], catalogue.product_ids[item], matrix


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("per_source", [3, 20])
def test_sparse_chunked_candidates_equal_the_dense_arithmetic(seed, per_source):
    catalogue, basket, history = _market(np.random.default_rng(seed))
    customers, products, matrix = _dense_candidates(catalogue, basket, history, per_source)
    for cells in (10**9, 500, 1):  # one chunk; a few; one customer per chunk
        got = build_candidates(catalogue, basket, history, per_source=per_source, cells=cells)
        assert np.array_equal(got.customer_ids, customers)
        assert np.array_equal(got.product_ids, products)
        assert got.matrix.dtype == np.float32
        np.testing.assert_allclose(got.matrix, matrix.astype(np.float32), rtol=1e-6, equal_nan=True)
    assert len(customer_chunks(catalogue, basket, history, per_source=per_source, cells=500)) > 3


def test_a_customer_who_bought_nothing_gets_the_popular_products():
    catalogue, basket, history = _market(np.random.default_rng(4))
    orders = history.orders.tolil()
    recency = history.recency.tolil()
    orders[0, :] = 0
    recency[0, :] = 0
    empty = History(history.customer_ids, orders.tocsr(), recency.tocsr())
    empty.orders.eliminate_zeros()
    empty.recency.eliminate_zeros()
    got = build_candidates(catalogue, basket, empty, per_source=4)
    mine = got.customer_ids == history.customer_ids[0]
    popular = np.argsort(-basket.popularity_90d, kind="stable")
    popular = popular[basket.popularity_90d[popular] > 0][:4]
    assert sorted(got.product_ids[mine].tolist()) == sorted(catalogue.product_ids[popular].tolist())
    assert np.isnan(got.column("days_since_last_purchase")[mine]).all()
    assert (got.column("cooc_score")[mine] == 0).all()


def _dense_baselines(catalogue, basket, history, top):
    """The dense baseline lists (a sort of every customer's row of every product)."""
    orders = history.orders.toarray()
    recency = history.recency.toarray()
    bought = orders > 0
    tie = basket.popularity_90d * 1e-6
    scores = {
        "popularity": np.broadcast_to(basket.popularity_90d, orders.shape),
        "co_occurrence": _times(bought, basket.conditional) + tie,
    }
    lists = {}
    for name, score in scores.items():
        masked = np.where(bought, -np.inf, score)
        best = np.argsort(-masked, axis=1, kind="stable")[:, :top]
        lists[name] = list(catalogue.product_ids[best])
    own = np.where(bought, orders - 1e-6 * recency, -np.inf)
    best = np.argsort(-own, axis=1, kind="stable")[:, :top]
    lists["own_most_bought"] = [
        catalogue.product_ids[row[bought[u, row]]] for u, row in enumerate(best)
    ]
    return lists


@pytest.mark.parametrize("seed", [6, 7])
def test_chunked_baseline_lists_equal_the_dense_sort(seed, monkeypatch):
    from ml import recommendations
    from ml.training import upsell

    catalogue, basket, history = _market(np.random.default_rng(seed))
    # A few customers bought almost everything: their lists end with bought products.
    orders, recency = history.orders.tolil(), history.recency.tolil()
    for u in (0, 1):
        orders[u, 3:] = 1.0
        recency[u, 3:] = 10.0
    history = History(history.customer_ids, orders.tocsr(), recency.tocsr())
    snapshot = upsell.UpsellSnapshot(
        cutoff=basket.as_of, window_end=basket.as_of, catalogue=catalogue, basket=basket,
        history=history, candidates=None, labels=np.empty(0), bought_any=[], bought_new=[],
    )  # fmt: skip
    expected = _dense_baselines(catalogue, basket, history, upsell.TOP)
    assert len(recommendations.customer_chunks(catalogue, basket, history, cells=300)) > 3
    for cells in (10**9, 300):

        def chunks(*args, cells=cells, **kwargs):
            return recommendations.customer_chunks(*args, **{**kwargs, "cells": cells})

        monkeypatch.setattr(upsell, "customer_chunks", chunks)
        got = upsell.baseline_lists(snapshot)
        assert set(got) == set(expected)
        for name in expected:
            assert len(got[name]) == len(history.customer_ids), name
            for u, (mine, theirs) in enumerate(zip(got[name], expected[name], strict=True)):
                assert mine.tolist() == theirs.tolist(), (name, u)
