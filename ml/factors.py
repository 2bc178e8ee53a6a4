"""Implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008), memory-bounded.

The collaborative signal of :mod:`ml.recommendations`: product factors fitted by alternating
least squares on everyone's orders of the year before the as-of time, and a customer's
factors solved from their own history with the product factors fixed (one least-squares
solve, so a customer the fit never saw is scored too). Confidence of a bought cell is
``1 + ALPHA * log(1 + orders)``, preference 1 where bought, 0 elsewhere.

Each solve works on a chunk of rows at a time whose stored cells, times ``k x k``, stay under a
cell budget: no (customer x product) array, and at most one (cells x k x k) block, is made.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy import sparse

FACTORS = 32
ALPHA = 10.0
REGULARIZATION = 0.1
ITERATIONS = 10
CG_STEPS = 3


def confidence(orders: sparse.csr_matrix) -> sparse.csr_matrix:
    """``ALPHA * log(1 + orders)`` on the stored cells with orders (the C - 1 of the paper)."""
    out = orders.tocsr().astype(np.float64)
    out.data = ALPHA * np.log1p(np.maximum(out.data, 0.0))
    out.eliminate_zeros()
    return out


def fit_item_factors(orders: sparse.csr_matrix, *, cells: int, seed: int = 0) -> np.ndarray:
    """Product factors (products x FACTORS) fitted on ``orders`` (customers x products);
    products nobody bought keep factors 0 (they score 0 for everyone)."""
    rng = np.random.default_rng(seed)
    by_user = confidence(orders)
    by_item = by_user.T.tocsr()
    items = rng.normal(scale=0.01, size=(orders.shape[1], FACTORS))
    users = np.zeros((orders.shape[0], FACTORS))
    # Each sweep improves the factors by CG_STEPS conjugate-gradient steps from the last
    # sweep's (Takács, Pilászy & Tikk 2011, as the `implicit` package does): products of the
    # system with a vector cost (cells x k), where forming each row's k x k system costs
    # (cells x k x k); the exact solve is kept for a single customer's factors.
    for _ in range(ITERATIONS):
        users = _conjugate_gradient(by_user, items, users, cells=cells)
        items = _conjugate_gradient(by_item, users, items, cells=cells)
    return items


def _conjugate_gradient(
    weights: sparse.csr_matrix, fixed: np.ndarray, start: np.ndarray, *, cells: int
) -> np.ndarray:
    """:func:`solve_rows`' systems, approximately: CG_STEPS conjugate-gradient steps from
    ``start`` (rows with no cell get 0)."""
    k = fixed.shape[1]
    gram = fixed.T @ fixed + REGULARIZATION * np.eye(k)
    solved = np.zeros_like(start)
    per_row = np.diff(weights.indptr)
    for filled, y, c, starts in _row_chunks(weights, fixed, max(cells // k, 1)):
        owner = np.repeat(np.arange(len(filled)), per_row[filled])

        def times(x: np.ndarray) -> np.ndarray:
            return _system_times(x, gram, y, c, starts, owner)  # noqa: B023 (used at once)

        x = start[filled].copy()
        residual = np.add.reduceat(y * (1.0 + c)[:, None], starts) - times(x)
        direction = residual.copy()
        before = np.einsum("rk,rk->r", residual, residual)
        for _ in range(CG_STEPS):
            if not (before > 1e-20).any():
                break
            product = times(direction)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(
                    before > 1e-20, before / np.einsum("rk,rk->r", direction, product), 0.0
                )
            x += step[:, None] * direction
            residual -= step[:, None] * product
            after = np.einsum("rk,rk->r", residual, residual)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(before > 1e-20, after / before, 0.0)
            direction = residual + ratio[:, None] * direction
            before = after
        solved[filled] = x
    return solved


def solve_rows(weights: sparse.csr_matrix, fixed: np.ndarray, *, cells: int) -> np.ndarray:
    """Each row's factors with the other side ``fixed``: ``(F'F + λI + F' W F) x = F' (1 + W) 1``
    over the row's stored cells ``W`` (confidence - 1); rows with no cell get 0."""
    k = fixed.shape[1]
    gram = fixed.T @ fixed + REGULARIZATION * np.eye(k)
    solved = np.zeros((weights.shape[0], k))
    for filled, y, c, starts in _row_chunks(weights, fixed, max(cells // (k * k), 1)):
        lhs = np.add.reduceat(np.einsum("ni,nj->nij", y * c[:, None], y), starts) + gram
        rhs = np.add.reduceat(y * (1.0 + c)[:, None], starts)
        solved[filled] = np.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]
    return solved


def _row_chunks(
    weights: sparse.csr_matrix, fixed: np.ndarray, budget: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Chunks of consecutive rows holding about ``budget`` stored cells (at least one row):
    the rows with a cell, the fixed side's factors and the weight of each of their cells,
    and where each row's cells start."""
    indptr = weights.indptr
    per_row = np.diff(indptr)
    chunk = (np.cumsum(per_row) - per_row) // budget
    bounds = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1], True])
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        filled = np.flatnonzero(per_row[a:b]) + a
        if not len(filled):
            continue
        lo, hi = indptr[a], indptr[b]
        yield filled, fixed[weights.indices[lo:hi]], weights.data[lo:hi], indptr[filled] - lo


def _system_times(
    x: np.ndarray,
    gram: np.ndarray,
    y: np.ndarray,
    c: np.ndarray,
    starts: np.ndarray,
    owner: np.ndarray,
) -> np.ndarray:
    """Each row's system times its vector: ``x (F'F + λI) + sum over its cells of
    c (y . x) y`` (cells of row r: ``starts[r]`` on, ``owner`` giving each cell's row)."""
    along = c * np.einsum("nk,nk->n", y, x[owner])
    return x @ gram + np.add.reduceat(y * along[:, None], starts)
