"""Candidate ranks and "bought together" partners against brute-force references."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from scipy import sparse

from ml.recommendations import (
    CANDIDATE_FEATURES,
    Catalogue,
    History,
    MarketBasket,
    build_candidates,
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
    popularity = rng.choice([0.0, 0.05, 0.1, 0.3], SIZE)  # ties across products
    basket = MarketBasket(
        as_of=datetime(2026, 1, 1, tzinfo=UTC),
        conditional=conditional,
        popularity_90d=popularity,
        popularity_365d=popularity + 0.1,
        within_category=rng.choice([0.1, 0.2, 0.4], SIZE),
    )
    bought = rng.random((USERS, SIZE)) < 0.08
    orders = np.where(bought, rng.integers(1, 4, (USERS, SIZE)), 0).astype(float)
    recency = np.where(bought, rng.integers(1, 400, (USERS, SIZE)), 0).astype(float)
    history = History(
        customer_ids=np.arange(1, USERS + 1, dtype=np.int64),
        orders=sparse.csr_matrix(orders),
        recency=sparse.csr_matrix(recency),
    )
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
    cooc = bought.astype(float) @ basket.conditional
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
        shares = basket.conditional[bought, positions[k]]
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
        as_of=datetime(2026, 1, 1, tzinfo=UTC), conditional=np.zeros((0, 0)),
        popularity_90d=np.zeros(0), popularity_365d=np.zeros(0), within_category=np.zeros(0),
    )  # fmt: skip
    history = History(
        customer_ids=np.array([7, 8], dtype=np.int64),
        orders=sparse.csr_matrix((2, 0)), recency=sparse.csr_matrix((2, 0)),
    )  # fmt: skip
    candidates = build_candidates(catalogue, basket, history)
    assert len(candidates) == 0
    assert candidates.matrix.shape == (0, len(CANDIDATE_FEATURES))
