"""Implicit ALS (ml/factors.py): the chunked solves against the row-by-row reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from ml import factors
from ml.buy_again import _als_step


def _orders(seed: int) -> sparse.csr_matrix:
    rng = np.random.default_rng(seed)
    orders = sparse.random(120, 60, density=0.08, random_state=seed, format="csr")
    orders.data = rng.integers(1, 6, len(orders.data)).astype(float)
    return orders


@pytest.mark.parametrize("cells", [10**9, 5_000, 1])
def test_chunked_exact_solves_equal_the_row_by_row_solve(cells):
    weights = factors.confidence(_orders(1))
    fixed = np.random.default_rng(2).normal(size=(60, factors.FACTORS))
    expected = _als_step(weights, fixed, factors.REGULARIZATION)
    got = factors.solve_rows(weights, fixed, cells=cells)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert (got[np.diff(weights.indptr) == 0] == 0).all()  # no cell: no factors


def _exact_fit(orders: sparse.csr_matrix) -> np.ndarray:
    """ALS with every row's system solved exactly, from the fit's start."""
    by_user = factors.confidence(orders)
    by_item = by_user.T.tocsr()
    items = np.random.default_rng(0).normal(scale=0.01, size=(orders.shape[1], factors.FACTORS))
    for _ in range(factors.ITERATIONS):
        users = factors.solve_rows(by_user, items, cells=10**9)
        items = factors.solve_rows(by_item, users, cells=10**9)
    return items


def test_conjugate_gradient_steps_converge_to_the_exact_solve():
    orders = _orders(3)
    weights = factors.confidence(orders)
    fixed = _exact_fit(orders)  # a fitted side: the systems CG meets during a fit
    exact = factors.solve_rows(weights, fixed, cells=10**9)
    x = np.zeros_like(exact)
    errors = []
    for _ in range(4):
        x = factors._conjugate_gradient(weights, fixed, x, cells=2_000)
        errors.append(np.abs(x - exact).max() / np.abs(exact).max())
    assert errors[-1] < 0.01
    assert errors == sorted(errors, reverse=True)


def test_the_fit_scores_like_exact_als():
    orders = _orders(3)
    weights = factors.confidence(orders)
    got = factors.fit_item_factors(orders, cells=2_000)
    exact = _exact_fit(orders)
    scores = factors.solve_rows(weights, got, cells=10**9) @ got.T
    reference = factors.solve_rows(weights, exact, cells=10**9) @ exact.T
    assert np.corrcoef(scores.ravel(), reference.ravel())[0, 1] > 0.98


def test_a_new_customer_is_proposed_the_products_of_their_kind():
    # Two kinds of customers buying from two disjoint ranges of products (more products than
    # factors, so the fit must generalise): a customer the fit never saw, who bought five
    # products of the first range, scores that range's other products above the second's.
    rng = np.random.default_rng(5)
    orders = np.zeros((200, 120))
    orders[:100, :60] = rng.random((100, 60)) < 0.3
    orders[100:, 60:] = rng.random((100, 60)) < 0.3
    items = factors.fit_item_factors(sparse.csr_matrix(orders), cells=10**6)
    one = np.zeros((1, 120))
    one[0, :5] = 1.0
    user = factors.solve_rows(factors.confidence(sparse.csr_matrix(one)), items, cells=10**6)
    scores = (user @ items.T)[0]
    assert scores[5:60].mean() > 0.05 > scores[60:].mean()
    best = np.argsort(-scores[5:])[:10] + 5
    assert (best < 60).sum() >= 8
