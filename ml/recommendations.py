"""Upsell / cross-sell candidates and their features, as of a point in time.

Shared by training and serving, like :mod:`ml.features`: the ranker learns on the candidates
built here at past cutoffs and scores the ones built here now.

Three sources propose products a customer has **not** bought before:

* co-purchase: products bought by the customers who bought what this customer bought, in the
  year before the as-of time (``P(product | item)`` summed over the customer's items);
* category affinity: popular products of the categories the customer buys most;
* popularity: what most customers bought in the last 90 days.

Each source's top ``per_source`` products are merged into one candidate list per customer,
described by :data:`CANDIDATE_FEATURES` for the LightGBM ranker. The statistics over all
customers (:class:`MarketBasket`) and a customer's own history (:class:`History`) are read
through named statements in ``sql/queries/training.sql``; the rest is matrix arithmetic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import numpy as np

from sql.matrix import fetch_matrix
from sql.queries import query

if TYPE_CHECKING:
    from scipy import sparse

CANDIDATE_FEATURES: tuple[str, ...] = (
    "cooc_score",
    "cooc_recent_score",
    "cooc_last_order_score",
    "share_of_category",
    "category_share",
    "affinity_score",
    "cooc_lift",
    "category_orders",
    "days_since_category_purchase",
    "popularity_90d",
    "popularity_365d",
    "popularity_trend",
    "price",
    "price_vs_usual",
    "customer_products",
    "customer_purchases",
    "days_since_last_purchase",
    "rank_cooc",
    "rank_category",
    "rank_popularity",
)

_RECENT_DAYS = 90.0
_CHUNK = 4096


# Bump whenever the arithmetic below changes what a candidate or one of its features means
# (a test pins the candidates of a fixed history, so such a change cannot pass unnoticed).
CANDIDATE_DEFINITION_VERSION = 1


def candidate_definition_hash() -> str:
    """SHA-256 of what defines the candidates: the statements, the feature names and
    :data:`CANDIDATE_DEFINITION_VERSION`. A ranker is only served candidates built by the
    definition it was trained on."""
    digest = hashlib.sha256()
    for name in ("product_history", "product_catalogue"):
        digest.update(query(name).encode())
        digest.update(b"\0")
    digest.update("\n".join(CANDIDATE_FEATURES).encode())
    digest.update(f"\0v{CANDIDATE_DEFINITION_VERSION}".encode())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Every product: ids ascending, name, category index, list price."""

    product_ids: np.ndarray
    names: tuple[str, ...]
    categories: np.ndarray
    category_names: tuple[str, ...]
    prices: np.ndarray

    def __len__(self) -> int:
        return len(self.product_ids)

    def positions(self, product_ids: np.ndarray) -> np.ndarray:
        """Index of each product id in the catalogue (ids must be known)."""
        return np.searchsorted(self.product_ids, product_ids)


async def load_catalogue(conn: asyncpg.Connection) -> Catalogue:
    """The product catalogue, as it is now."""
    rows = await conn.fetch(query("product_catalogue"))
    names = sorted({r["category"] for r in rows})
    index = {name: i for i, name in enumerate(names)}
    return Catalogue(
        product_ids=np.array([r["id"] for r in rows], dtype=np.int64),
        names=tuple(r["name"] for r in rows),
        categories=np.array([index[r["category"]] for r in rows], dtype=np.int64),
        category_names=tuple(names),
        prices=np.array([r["price"] for r in rows], dtype=np.float64),
    )


@dataclass(frozen=True, eq=False)
class MarketBasket:
    """What all customers bought in the year before ``as_of``: item-to-item statistics."""

    as_of: datetime
    conditional: np.ndarray  # [j, p]: share of j's buyers who also bought p (diagonal 0)
    popularity_90d: np.ndarray  # share of the year's buyers who bought p in the last 90 days
    popularity_365d: np.ndarray  # share of the year's buyers who bought p in the year
    within_category: np.ndarray  # p's share of its category's buyers in the year


async def market_basket(
    conn: asyncpg.Connection, catalogue: Catalogue, as_of: datetime
) -> MarketBasket:
    """Co-purchase and popularity statistics from everyone's purchases in the prior year."""
    customers, rows = await fetch_matrix(
        conn, "product_history", (as_of, as_of - timedelta(days=365), None), 3
    )
    size = len(catalogue)
    if len(customers) == 0:
        zeros = np.zeros(size)
        return MarketBasket(as_of, np.zeros((size, size)), zeros, zeros, zeros)
    from scipy import sparse  # here: only recommendations need it, not a server's start

    _, user = np.unique(customers, return_inverse=True)
    item = catalogue.positions(rows[:, 0].astype(np.int64))
    bought = sparse.csr_matrix(
        (np.ones(len(user)), (user, item)), shape=(int(user.max()) + 1, size)
    )
    together = (bought.T @ bought).toarray()
    buyers = np.diag(together).copy()
    np.fill_diagonal(together, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        conditional = np.nan_to_num(together / buyers[:, None])
    recent = rows[:, 2] < _RECENT_DAYS
    recent_buyers = np.bincount(item[recent], minlength=size).astype(float)
    category_buyers = np.bincount(catalogue.categories, weights=buyers, minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.nan_to_num(buyers / category_buyers[catalogue.categories])
    everyone = float(bought.shape[0])
    return MarketBasket(
        as_of=as_of,
        conditional=conditional,
        popularity_90d=recent_buyers / everyone,
        popularity_365d=buyers / everyone,
        within_category=within,
    )


@dataclass(frozen=True, eq=False)
class History:
    """Customers' own purchases before ``as_of``: orders and recency per (customer, product)."""

    customer_ids: np.ndarray  # ascending
    orders: sparse.csr_matrix  # [customer, product] orders containing the product
    recency: sparse.csr_matrix  # [customer, product] 1 + days since bought (0 = never)


async def customer_history(
    conn: asyncpg.Connection,
    catalogue: Catalogue,
    as_of: datetime,
    customer_ids: Sequence[int],
) -> History:
    """What each of ``customer_ids`` bought before ``as_of`` (customers may have bought nothing)."""
    from scipy import sparse  # here: only recommendations need it, not a server's start

    ids = np.unique(np.asarray(customer_ids, dtype=np.int64))
    # For very many customers one scan of everyone beats a giant id list; keep the asked ones.
    scope = None if len(ids) > 50_000 else ids.tolist()
    keys, rows = await fetch_matrix(conn, "product_history", (as_of, None, scope), 3)
    if scope is None:
        wanted = np.isin(keys, ids)
        keys, rows = keys[wanted], rows[wanted]
    user = np.searchsorted(ids, keys)
    item = catalogue.positions(rows[:, 0].astype(np.int64))
    shape = (len(ids), len(catalogue))
    return History(
        customer_ids=ids,
        orders=sparse.csr_matrix((rows[:, 1], (user, item)), shape=shape),
        recency=sparse.csr_matrix((rows[:, 2] + 1.0, (user, item)), shape=shape),
    )


def history_rows(history: History, rows: np.ndarray) -> History:
    """The part of ``history`` about the customers at ``rows`` (positions, ascending)."""
    return History(
        customer_ids=history.customer_ids[rows],
        orders=history.orders[rows],
        recency=history.recency[rows],
    )


@dataclass(frozen=True, eq=False)
class Candidates:
    """Candidate (customer, product) pairs, grouped by customer in ``customer_ids`` order.

    ``groups[i]`` rows belong to the i-th customer that has candidates; ``matrix`` columns
    are :data:`CANDIDATE_FEATURES`.
    """

    customer_ids: np.ndarray  # one per row
    product_ids: np.ndarray  # one per row
    matrix: np.ndarray
    groups: np.ndarray  # rows per customer, in row order

    def __len__(self) -> int:
        return len(self.customer_ids)

    def column(self, name: str) -> np.ndarray:
        return self.matrix[:, CANDIDATE_FEATURES.index(name)]


def build_candidates(
    catalogue: Catalogue, basket: MarketBasket, history: History, *, per_source: int = 20
) -> Candidates:
    """Each customer's unbought products proposed by any source, with their features."""
    parts = [
        _chunk_candidates(catalogue, basket, history, rows, per_source)
        for rows in np.array_split(
            np.arange(len(history.customer_ids)), max(1, -(-len(history.customer_ids) // _CHUNK))
        )
        if len(rows) and len(catalogue)  # no products (all removed): nothing to propose
    ]
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return Candidates(empty, empty, np.empty((0, len(CANDIDATE_FEATURES))), empty)
    customer_ids = np.concatenate([p[0] for p in parts])
    product_ids = np.concatenate([p[1] for p in parts])
    matrix = np.vstack([p[2] for p in parts])
    _, groups = np.unique(customer_ids, return_counts=True)
    return Candidates(customer_ids, product_ids, matrix, groups)


def _chunk_candidates(
    catalogue: Catalogue,
    basket: MarketBasket,
    history: History,
    rows: np.ndarray,
    per_source: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    span = slice(int(rows[0]), int(rows[-1]) + 1)  # rows are consecutive: slice, not gather
    orders = history.orders[span].toarray()
    recency = history.recency[span].toarray()  # 1 + days, 0 = never
    bought = orders > 0
    recent = bought & (recency - 1 < _RECENT_DAYS)
    users, size = orders.shape

    cooc = bought.astype(float) @ basket.conditional
    cooc_recent = recent.astype(float) @ basket.conditional
    # The latest order's products: what a customer buys next often complements them.
    latest = np.where(bought, recency, np.inf).min(axis=1, keepdims=True)
    cooc_last = (bought & (recency == latest)).astype(float) @ basket.conditional
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
        trend = basket.popularity_90d * (365 / _RECENT_DAYS) / basket.popularity_365d
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
        }
    matrix = np.column_stack([columns[name] for name in CANDIDATE_FEATURES])
    matrix[~np.isfinite(matrix)] = np.nan
    return history.customer_ids[rows][user], catalogue.product_ids[item], matrix
