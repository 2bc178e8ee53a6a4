"""Buy again: which of the products a customer bought before they will buy in their next order,
and when each is due. The `discover` intent (products never bought) is the upsell ranker's
(:mod:`ml.recommendations`); this is the other half of a grocery basket, usually the larger.

Everything here is NumPy over one aggregate per (customer, product) read by the named
statement ``repurchase_history``: orders containing the product, days since the latest and the
first of them, and the orders weighted by their age (``exp(-age / TAU_DAYS)``). No model is
trained: the statistics are the model, so a score needs no registry and no refit.

The score of a product the customer bought before::

    recent_orders(customer, product)            how often, recent orders counting more
      x repeat_rate(product)                    how habitual the product is, over everyone
      / (1 + OVERDUE_PENALTY x max(0, days_since / cycle - 1))   long overdue: likely dropped

``cycle`` is the customer's own mean interval between orders of the product, shrunk towards
the product's median interval over everyone (or, for a product nobody re-bought, the
customer's median interval over their products), so one repeat does not set the rhythm.
``days_until_due = cycle - days_since`` is served with each product (negative: overdue).

Measured on The Complete Journey (bench/grocery.py, bench/RESULTS.md): the recency weighting
and the product's repeat rate carry the gain over ranking by one's own most-bought products;
the overdue term is a small correction. The baselines the benchmark compares it with live here
too: own most-bought, popularity, item co-occurrence and an implicit-feedback ALS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from sql.matrix import fetch_matrix

if TYPE_CHECKING:
    import asyncpg
    from scipy import sparse

TAU_DAYS = 120.0  # age at which an order weighs 1/e: tuned on earlier cutoffs than reported
OVERDUE_PENALTY = 0.05
REPEAT_PRIOR_WEIGHT = 5.0  # buyers' worth of the catalogue-wide repeat rate in each product's
CYCLE_PRIOR_WEIGHT = 1.0  # intervals' worth of the product's cycle in a customer's own
DEFAULT_CYCLE_DAYS = 30.0  # when nothing at all was re-bought
MARKET_DAYS = 365  # product statistics read everyone's purchases of the year before as-of


@dataclass(frozen=True, eq=False)
class RepurchaseLog:
    """One row per (customer, product) bought before ``as_of``, sorted by customer then
    product."""

    as_of: datetime
    customer_ids: np.ndarray
    product_ids: np.ndarray
    orders: np.ndarray  # orders containing the product
    days_since: np.ndarray  # since the latest of them
    days_first: np.ndarray  # since the first of them
    recent_orders: np.ndarray  # sum of exp(-age / TAU_DAYS) over those orders

    def __len__(self) -> int:
        return len(self.customer_ids)

    @classmethod
    def from_rows(cls, as_of: datetime, keys: np.ndarray, rows: np.ndarray) -> RepurchaseLog:
        """From ``repurchase_history``'s keys and columns (any order)."""
        products = rows[:, 0].astype(np.int64) if len(rows) else np.empty(0, np.int64)
        order = np.lexsort((products, keys))
        rows = rows[order] if len(rows) else np.empty((0, 5))
        return cls(
            as_of=as_of,
            customer_ids=np.asarray(keys, dtype=np.int64)[order],
            product_ids=products[order],
            orders=rows[:, 1],
            days_since=rows[:, 2],
            days_first=rows[:, 3],
            recent_orders=rows[:, 4],
        )


async def repurchase_log(
    conn: asyncpg.Connection,
    as_of: datetime,
    customer_ids: Sequence[int] | None,
    *,
    since: datetime | None = None,
    tau_days: float = TAU_DAYS,
) -> RepurchaseLog:
    """What ``customer_ids`` (None: every modelled customer) bought before ``as_of`` (and from
    ``since``), one row per (customer, product)."""
    ids = None if customer_ids is None else sorted({int(i) for i in customer_ids})
    keys, rows = await fetch_matrix(conn, "repurchase_history", (as_of, since, ids, tau_days), 5)
    return RepurchaseLog.from_rows(as_of, keys, rows)


async def market_log(conn: asyncpg.Connection, as_of: datetime) -> RepurchaseLog:
    """Everyone's purchases of the year before ``as_of``: the input of :func:`product_cycles`."""
    return await repurchase_log(conn, as_of, None, since=as_of - timedelta(days=MARKET_DAYS))


@dataclass(frozen=True, eq=False)
class ProductCycles:
    """Per product bought by anyone: how habitual it is and its usual repurchase interval."""

    product_ids: np.ndarray  # ascending
    buyers: np.ndarray
    repeat_rate: np.ndarray  # smoothed share of buyers who bought it in two orders or more
    median_interval: np.ndarray  # days, median over re-buyers of their mean interval (NaN: none)
    prior_repeat_rate: float  # over every (customer, product): a never-seen product's rate

    def lookup(self, product_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Repeat rate and median interval of each product (unknown: prior, NaN)."""
        at, known = _positions(self.product_ids, product_ids)
        rate = np.full(len(product_ids), self.prior_repeat_rate)
        interval = np.full(len(product_ids), np.nan)
        rate[known] = self.repeat_rate[at[known]]
        interval[known] = self.median_interval[at[known]]
        return rate, interval


def product_cycles(market: RepurchaseLog) -> ProductCycles:
    """Repeat rate and median repurchase interval of every product in ``market``."""
    products, group = np.unique(market.product_ids, return_inverse=True)
    buyers = np.bincount(group, minlength=len(products)).astype(float)
    repeated = market.orders >= 2
    repeaters = np.bincount(group, weights=repeated, minlength=len(products))
    interval = _own_interval(market)
    median = _group_median(group[repeated], interval[repeated], len(products))
    return _cycles(products, buyers, repeaters, median)


async def load_product_cycles(conn: asyncpg.Connection, as_of: datetime) -> ProductCycles:
    """:func:`product_cycles` of :func:`market_log`, aggregated by PostgreSQL: one row per
    product reaches Python (what serving uses; the same values, a test checks)."""
    keys, rows = await fetch_matrix(
        conn, "product_repurchase_cycles", (as_of, as_of - timedelta(days=MARKET_DAYS)), 3
    )
    order = np.argsort(keys, kind="stable")
    rows = rows[order] if len(rows) else np.empty((0, 3))
    return _cycles(np.asarray(keys, dtype=np.int64)[order], rows[:, 0], rows[:, 1], rows[:, 2])


def _cycles(
    products: np.ndarray, buyers: np.ndarray, repeaters: np.ndarray, median: np.ndarray
) -> ProductCycles:
    """The smoothed repeat rates: each product's share pulled towards the share over every
    (customer, product) pair by REPEAT_PRIOR_WEIGHT buyers' worth."""
    total = float(buyers.sum())
    prior = float(repeaters.sum()) / total if total else 0.0
    rate = (repeaters + REPEAT_PRIOR_WEIGHT * prior) / (buyers + REPEAT_PRIOR_WEIGHT)
    return ProductCycles(products, buyers, rate, median, prior)


@dataclass(frozen=True, eq=False)
class BuyAgainScores:
    """Every (customer, product) of a :class:`RepurchaseLog`, scored; rows in the log's order."""

    log: RepurchaseLog
    scores: np.ndarray
    cycle_days: np.ndarray  # the expected interval between two orders of the product
    days_until_due: np.ndarray  # cycle - days since the latest order (negative: overdue)

    def top(self, n: int) -> dict[int, np.ndarray]:
        """Each customer's ``n`` best rows (indices into the log), best first; ties go to the
        more recently bought product."""
        log = self.log
        if len(log) == 0:  # nobody asked has bought anything
            return {}
        order = np.lexsort((log.days_since, -self.scores, log.customer_ids))
        customers = log.customer_ids[order]
        starts = np.flatnonzero(np.r_[True, customers[1:] != customers[:-1]])
        ends = np.r_[starts[1:], len(order)]
        return {
            int(customers[s]): order[s : min(e, s + n)]
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        }


def score(
    log: RepurchaseLog,
    cycles: ProductCycles,
    *,
    overdue_penalty: float = OVERDUE_PENALTY,
) -> BuyAgainScores:
    """The buy-again score of every (customer, product) in ``log`` (see the module's doc)."""
    rate, product_interval = cycles.lookup(log.product_ids)
    own = _own_interval(log)
    repeats = np.maximum(log.orders - 1.0, 0.0)
    # The customer's rhythm: their median interval over the products they re-bought.
    customers, group = np.unique(log.customer_ids, return_inverse=True)
    rebought = log.orders >= 2
    customer_median = _group_median(group[rebought], own[rebought], len(customers))[group]
    known = cycles.median_interval[np.isfinite(cycles.median_interval)]
    fallback = float(np.median(known)) if len(known) else DEFAULT_CYCLE_DAYS
    prior = np.where(
        np.isfinite(product_interval),
        product_interval,
        np.where(np.isfinite(customer_median), customer_median, fallback),
    )
    cycle = (np.nan_to_num(own) * repeats + CYCLE_PRIOR_WEIGHT * prior) / (
        repeats + CYCLE_PRIOR_WEIGHT
    )
    cycle = np.maximum(cycle, 1.0)  # two orders the same day do not make a zero-day cycle
    overdue = np.maximum(log.days_since / cycle - 1.0, 0.0)
    scores = log.recent_orders * rate / (1.0 + overdue_penalty * overdue)
    return BuyAgainScores(log, scores, cycle, cycle - log.days_since)


def _own_interval(log: RepurchaseLog) -> np.ndarray:
    """Each row's mean days between its orders (NaN for a product bought in one order)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            log.orders >= 2, (log.days_first - log.days_since) / (log.orders - 1.0), np.nan
        )


def _group_median(group: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """Median of ``values`` per group index (NaN for a group without values)."""
    median = np.full(groups, np.nan)
    if not len(values):
        return median
    order = np.lexsort((values, group))
    group, values = group[order], values[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    counts = np.diff(np.r_[starts, len(group)])
    low = values[starts + (counts - 1) // 2]
    high = values[starts + counts // 2]
    median[group[starts]] = (low + high) / 2.0
    return median


# Baselines (bench/grocery.py): each returns top-n product ids per customer of ``customers``.


def interaction_matrix(
    log: RepurchaseLog, customers: np.ndarray, products: np.ndarray
) -> sparse.csr_matrix:
    """Orders per (customer, product) as a sparse matrix over the sorted ``customers`` and
    ``products`` (rows of the log outside them are left out)."""
    from scipy import sparse

    user, user_ok = _positions(customers, log.customer_ids)
    item, item_ok = _positions(products, log.product_ids)
    keep = user_ok & item_ok
    return sparse.csr_matrix(
        (log.orders[keep], (user[keep], item[keep])), shape=(len(customers), len(products))
    )


def _positions(ordered: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each value in the sorted ``ordered``, and whether it is there at all."""
    at = np.minimum(np.searchsorted(ordered, values), max(len(ordered) - 1, 0))
    found = ordered[at] == values if len(ordered) else np.zeros(len(values), bool)
    return at, found


def top_lists(
    scores: np.ndarray, products: np.ndarray, n: int, *, allowed: np.ndarray | None = None
) -> list[np.ndarray]:
    """The ``n`` best products per row of a dense ``scores`` matrix (only ``allowed`` cells
    when given; fewer when fewer are allowed)."""
    masked = scores if allowed is None else np.where(allowed, scores, -np.inf)
    top = np.argsort(-masked, axis=1, kind="stable")[:, :n]
    picked = np.take_along_axis(masked, top, axis=1)
    return [products[row[np.isfinite(vals)]] for row, vals in zip(top, picked, strict=True)]


def own_most_bought(bought: sparse.csr_matrix, recency: sparse.csr_matrix) -> np.ndarray:
    """Scores of "buy again" as most shops do it: the customer's own most-ordered products,
    ties to the more recent (``recency``: 1 + days since, as ml.recommendations' History)."""
    orders = bought.toarray()
    days = recency.toarray()
    return np.where(orders > 0, orders - 1e-6 * days, -np.inf)


def popularity(bought: sparse.csr_matrix) -> np.ndarray:
    """Per product: the share of customers who bought it (the same list for everyone)."""
    return np.asarray((bought > 0).mean(axis=0)).ravel()


def co_occurrence(bought: sparse.csr_matrix, market: sparse.csr_matrix) -> np.ndarray:
    """Item-to-item co-purchase: per customer and product, the sum over the customer's
    products j of P(product | j) among ``market``'s customers (diagonal excluded)."""
    seen = (market > 0).astype(float)
    together = (seen.T @ seen).toarray()
    buyers = np.diag(together).copy()
    np.fill_diagonal(together, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        conditional = np.nan_to_num(together / buyers[:, None])
    return (bought > 0).astype(float) @ conditional


def als(
    market: sparse.csr_matrix,
    *,
    factors: int = 32,
    regularization: float = 0.1,
    alpha: float = 10.0,
    iterations: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) on ``market`` (orders per customer
    and product): confidence 1 + alpha x log(1 + orders), preference 1 where bought. Returns
    (customer factors, product factors); a customer's scores are their row @ products.T."""
    rng = np.random.default_rng(seed)
    confidence = market.tocsr().astype(float)
    confidence.data = alpha * np.log1p(confidence.data)
    users = rng.normal(scale=0.01, size=(market.shape[0], factors))
    items = rng.normal(scale=0.01, size=(market.shape[1], factors))
    by_user, by_item = confidence, confidence.T.tocsr()
    for _ in range(iterations):
        users = _als_step(by_user, items, regularization)
        items = _als_step(by_item, users, regularization)
    return users, items


def _als_step(
    confidence: sparse.csr_matrix, fixed: np.ndarray, regularization: float
) -> np.ndarray:
    """Solve each row's factors with the other side ``fixed`` (the conjugate-free exact form)."""
    k = fixed.shape[1]
    gram = fixed.T @ fixed + regularization * np.eye(k)
    solved = np.zeros((confidence.shape[0], k))
    indptr, indices, data = confidence.indptr, confidence.indices, confidence.data
    for row in range(confidence.shape[0]):
        lo, hi = indptr[row], indptr[row + 1]
        if lo == hi:
            continue
        y = fixed[indices[lo:hi]]
        c = data[lo:hi]
        a = gram + (y.T * c) @ y  # YtY + Yt (C - I) Y, with C - I = alpha x ... on bought cells
        b = (y.T * (1.0 + c)).sum(axis=1)  # Yt C p, p = 1 on bought cells
        solved[row] = np.linalg.solve(a, b)
    return solved
