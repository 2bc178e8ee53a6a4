"""Upsell / cross-sell candidates and their features, as of a point in time.

Shared by training and serving, like :mod:`ml.features`: the ranker learns on the candidates
built here at past cutoffs and scores the ones built here now.

Three sources propose products a customer has **not** bought before:

* co-purchase: products bought by the customers who bought what this customer bought, in the
  year before the as-of time (``P(product | item)`` summed over the customer's items);
* category affinity: popular products of the categories the customer buys most;
* popularity: what most customers bought in the last 90 days;
* collaborative (implicit ALS, :mod:`ml.factors`): product factors fitted on everyone's
  orders of the year before the as-of time, a customer's factors solved from their own history
  (so the score needs no stored per-customer state); the product factors are market statistics
  like the co-purchase shares, recomputed from the market before each as-of time.

Each source's top ``per_source`` products are merged into one candidate list per customer,
described by :data:`CANDIDATE_FEATURES` for the LightGBM ranker. The statistics over all
customers (:class:`MarketBasket`) and a customer's own history (:class:`History`) are read
through named statements in ``sql/queries/training.sql``; the rest is sparse matrix
arithmetic, a chunk of customers at a time (see :func:`build_candidates`): no array is
(customer x product) or (product x product) dense, so memory stays bounded at any number of
customers and products.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import numpy as np

from ml import factors
from ml.row_ranks import cell_keys, lookup, rank_rows, sorted_unique
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
    "als_score",
    "rank_als",
)

_RECENT_DAYS = 90.0
# Work per chunk of customers, in candidate cells (a customer's co-purchase and category
# scores before the top of each source is taken): ~4 M cells keep a chunk's arrays to a few
# hundred MB whatever the number of customers and products.
_CELLS = 4_000_000


# Bump whenever the arithmetic below changes what a candidate or one of its features means
# (a test pins the candidates of a fixed history, so such a change cannot pass unnoticed).
CANDIDATE_DEFINITION_VERSION = 2
# A candidate's rank by ALS score is counted among the customer's first ALS_RANKED unbought
# products (a partial sort of each row, linear in the catalogue); beyond them it reads
# ALS_RANKED + 1.
ALS_RANKED = 100


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
    conditional: sparse.csr_matrix  # [j, p]: share of j's buyers who also bought p (diagonal 0)
    popularity_90d: np.ndarray  # share of the year's buyers who bought p in the last 90 days
    popularity_365d: np.ndarray  # share of the year's buyers who bought p in the year
    within_category: np.ndarray  # p's share of its category's buyers in the year
    item_factors: np.ndarray  # products x factors.FACTORS: implicit ALS on the year's orders


async def market_basket(
    conn: asyncpg.Connection, catalogue: Catalogue, as_of: datetime
) -> MarketBasket:
    """Co-purchase and popularity statistics from everyone's purchases in the prior year."""
    customers, rows = await fetch_matrix(
        conn, "product_history", (as_of, as_of - timedelta(days=365), None), 3
    )
    size = len(catalogue)
    from scipy import sparse  # here: only recommendations need it, not a server's start

    if len(customers) == 0:
        zeros = np.zeros(size)
        return MarketBasket(
            as_of,
            sparse.csr_matrix((size, size)),
            zeros,
            zeros,
            zeros,
            np.zeros((size, factors.FACTORS)),
        )
    _, user = np.unique(customers, return_inverse=True)
    item = catalogue.positions(rows[:, 0].astype(np.int64))
    bought = sparse.csr_matrix(
        (np.ones(len(user)), (user, item)), shape=(int(user.max()) + 1, size)
    )
    # Sparse throughout: a dense products x products matrix is 20 GB at 50k products, while
    # the pairs actually bought together are a small share of it.
    together = (bought.T @ bought).tocoo()
    diagonal = together.row == together.col
    buyers = np.zeros(size)
    buyers[together.row[diagonal]] = together.data[diagonal]
    pairs = ~diagonal & (together.data != 0)
    # Each row divided by the buyers of its product (a product bought with another has buyers).
    conditional = sparse.csr_matrix(
        (
            together.data[pairs] / buyers[together.row[pairs]],
            (together.row[pairs], together.col[pairs]),
        ),
        shape=(size, size),
    )
    conditional.sort_indices()
    del together, diagonal, pairs
    # The year's orders per (customer, product): ALS confidence grows with them.
    orders = sparse.csr_matrix((rows[:, 1], (user, item)), shape=bought.shape)
    item_factors = factors.fit_item_factors(orders, cells=_CELLS)
    del orders
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
        item_factors=item_factors,
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
    catalogue: Catalogue,
    basket: MarketBasket,
    history: History,
    *,
    per_source: int = 20,
    cells: int = _CELLS,
) -> Candidates:
    """Each customer's unbought products proposed by any source, with their features.

    Customers are taken a chunk at a time, each chunk holding about ``cells`` scored cells
    (see :func:`customer_chunks`), so memory depends on neither the number of customers nor
    the size of the catalogue; a customer's candidates do not depend on the chunking."""
    parts = [
        _chunk_candidates(catalogue, basket, history, span, per_source, cells)
        for span in customer_chunks(catalogue, basket, history, per_source=per_source, cells=cells)
    ]
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return Candidates(
            empty, empty, np.empty((0, len(CANDIDATE_FEATURES)), dtype=np.float32), empty
        )
    customer_ids = np.concatenate([p[0] for p in parts])
    product_ids = np.concatenate([p[1] for p in parts])
    matrix = np.concatenate([p[2] for p in parts])
    _, groups = np.unique(customer_ids, return_counts=True)
    return Candidates(customer_ids, product_ids, matrix, groups)


def customer_chunks(
    catalogue: Catalogue,
    basket: MarketBasket,
    history: History,
    *,
    per_source: int = 20,
    cells: int = _CELLS,
) -> list[slice]:
    """Consecutive spans of ``history``'s customers, each scoring about ``cells`` cells: a
    customer costs the co-purchase cells of the products they bought (three scores), the
    products of the categories they bought in, and their bought and popular products."""
    users = len(history.customer_ids)
    if not users or not len(catalogue):  # no products (all removed): nothing to propose
        return []
    orders = history.orders.tocsr()
    user = np.repeat(np.arange(users), np.diff(orders.indptr))
    item = orders.indices
    co_purchases = np.diff(basket.conditional.indptr)[item]
    members = np.bincount(
        catalogue.categories[basket.within_category > 0],
        minlength=len(catalogue.category_names),
    )
    pairs = sorted_unique(
        cell_keys(user, catalogue.categories[item], len(catalogue.category_names))
    )
    cost = (
        3.0 * np.bincount(user, weights=co_purchases, minlength=users)
        + np.bincount(
            pairs // len(catalogue.category_names),
            weights=members[pairs % len(catalogue.category_names)],
            minlength=users,
        )
        + 2.0 * np.bincount(user, minlength=users)
        + per_source
        + 1.0
    )
    start = np.cumsum(cost) - cost
    chunk = (start // max(cells, 1)).astype(np.int64)
    bounds = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1], True])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def first_unbought(
    order: np.ndarray, bought: np.ndarray, users: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, positions) of each of ``users`` rows' first ``n`` products in ``order`` (all
    catalogue positions) that are not ``bought`` (keys ``row * len(order) + position``,
    ascending); row by row, in ``order``.

    A row's first ``n`` unbought products lie within its first ``n`` + (products bought)
    places of the order: only those are looked at (a ragged array, not users x products)."""
    size = len(order)
    owned = np.bincount(bought // size, minlength=users) if len(bought) else np.zeros(users, int)
    widths = np.minimum(size, n + owned)
    first_place = np.cumsum(widths) - widths
    row_of = np.repeat(np.arange(users), widths)
    places = np.arange(int(widths.sum())) - np.repeat(first_place, widths)
    positions = order[places]
    taken = lookup(bought, np.ones(len(bought)), cell_keys(row_of, positions, size), 0.0) > 0
    unbought = np.cumsum(~taken)
    unbought -= np.r_[0, unbought][np.repeat(first_place, widths)]
    keep = ~taken & (unbought <= n)
    return row_of[keep], positions[keep]


def csr_keys(matrix: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(keys ascending, values) of a CSR matrix's stored cells (indices sorted first)."""
    matrix.sum_duplicates()  # also sorts the indices
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return cell_keys(rows, matrix.indices, matrix.shape[1]), matrix.data


def _chunk_candidates(
    catalogue: Catalogue,
    basket: MarketBasket,
    history: History,
    span: slice,
    per_source: int,
    cells: int = _CELLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of the customers in ``span``. Every score is sparse (a customer's row of a
    source holds only its positive cells); ranks count the zero cells instead of sorting
    them, as :mod:`ml.row_ranks` explains, so no (customer x product) array is made."""
    from scipy import sparse

    size, n_categories = len(catalogue), len(catalogue.category_names)
    orders = history.orders[span].tocsr()
    users = orders.shape[0]
    bought, counts = csr_keys(orders)
    keep = counts > 0
    bought, counts = bought[keep], counts[keep]
    rec_keys, rec_values = csr_keys(history.recency[span].tocsr())
    recency = lookup(rec_keys, rec_values, bought, np.nan)  # 1 + days since bought
    buyer, product = bought // size, bought % size
    owned = np.bincount(buyer, minlength=users)
    starts = np.cumsum(owned) - owned
    latest = np.full(users, np.inf)
    has = owned > 0
    if len(bought):
        latest[has] = np.minimum.reduceat(recency, starts[has])

    def indicator(rows: np.ndarray) -> sparse.csr_matrix:
        return sparse.csr_matrix(
            (np.ones(int(rows.sum())), (buyer[rows], product[rows])), shape=(users, size)
        )

    everything = np.ones(len(bought), dtype=bool)
    recent = recency - 1 < _RECENT_DAYS
    # The latest order's products: what a customer buys next often complements them.
    last = recency == latest[buyer]
    cooc_keys, cooc_values = csr_keys(indicator(everything) @ basket.conditional)
    cooc = rank_rows(cooc_keys, cooc_values, bought, users, size)
    del cooc_keys, cooc_values

    # Category affinity: a customer's share of orders in a category times the product's
    # share of its category's buyers, over the products of the categories they bought in.
    category_keys = cell_keys(buyer, catalogue.categories[product], n_categories)
    category_keys, inverse = np.unique(category_keys, return_inverse=True)
    category_orders = np.bincount(inverse, weights=counts, minlength=len(category_keys))
    since_category = np.full(len(category_keys), np.inf)
    np.minimum.at(since_category, inverse, recency - 1)
    total_orders = np.bincount(buyer, weights=counts, minlength=users)
    category_user = category_keys // n_categories
    category_share = category_orders / total_orders[category_user]
    eligible = np.flatnonzero(basket.within_category > 0)
    by_category = eligible[np.argsort(catalogue.categories[eligible], kind="stable")]
    in_category = np.bincount(catalogue.categories[eligible], minlength=n_categories)
    first_member = np.cumsum(in_category) - in_category
    category_of_pair = category_keys % n_categories
    repeat = in_category[category_of_pair]
    offsets = np.arange(int(repeat.sum())) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    members = by_category[np.repeat(first_member[category_of_pair], repeat) + offsets]
    affinity = rank_rows(
        cell_keys(np.repeat(category_user, repeat), members, size),
        np.repeat(category_share, repeat) * basket.within_category[members],
        bought,
        users,
        size,
    )
    del members, offsets

    # Popularity is the same for everyone: one global order, and an unbought product's rank
    # is the number of unbought products up to it in that order (no sort per customer).
    everyone = np.argsort(-basket.popularity_90d, kind="stable")
    place = np.empty(size, dtype=np.int64)
    place[everyone] = np.arange(size)
    bought_places = np.sort(cell_keys(buyer, place[product], size))
    rows, columns = first_unbought(everyone, bought, users, per_source)
    wanted = basket.popularity_90d[columns] > 0
    rows, columns = rows[wanted], columns[wanted]

    # Collaborative: each customer's factors solved from their own orders, then their best
    # unbought products by factor score (a block of customers x products at a time).
    user_factors = factors.solve_rows(
        factors.confidence(sparse.csr_matrix((counts, (buyer, product)), shape=(users, size))),
        basket.item_factors,
        cells=cells,
    )
    als_keys, als_ranks = _als_ranked(user_factors, basket.item_factors, bought, cells)

    keys = sorted_unique(
        np.concatenate(
            [
                cooc.top(per_source),
                affinity.top(per_source),
                cell_keys(rows, columns, size),
                als_keys[als_ranks <= per_source],
            ]
        )
    )
    user, item = keys // size, keys % size  # candidates now, row-major like np.nonzero
    category = catalogue.categories[item]
    pair = cell_keys(user, category, n_categories)

    def popularity_rank() -> np.ndarray:
        asked = cell_keys(user, place[item], size)
        before = np.searchsorted(bought_places, asked) - np.searchsorted(
            bought_places, user * np.int64(size)
        )
        return (place[item] + 1 - before).astype(np.float64)

    def cooc_from(rows: np.ndarray) -> np.ndarray:
        if not rows.any():
            return np.zeros(len(keys))
        partial_keys, partial_values = csr_keys(indicator(rows) @ basket.conditional)
        return lookup(partial_keys, partial_values, keys, 0.0)

    units = np.bincount(bought // size, weights=counts, minlength=users)
    with np.errstate(divide="ignore", invalid="ignore"):
        usual_price = (
            np.bincount(
                bought // size, weights=counts * catalogue.prices[bought % size], minlength=users
            )
            / units
        )
        trend = basket.popularity_90d * (365 / _RECENT_DAYS) / basket.popularity_365d
        cooc_score = lookup(cooc.keys, cooc.values, keys, 0.0)
        share = lookup(category_keys, category_share, pair, 0.0)
        last_purchase = latest - 1
        columns_by_name = {
            "cooc_score": cooc_score,
            "cooc_recent_score": cooc_from(recent),
            "cooc_last_order_score": cooc_from(last),
            "share_of_category": basket.within_category[item],
            "category_share": share,
            "affinity_score": share * basket.within_category[item],
            "cooc_lift": cooc_score / basket.popularity_365d[item],
            "category_orders": lookup(category_keys, category_orders, pair, 0.0),
            "days_since_category_purchase": lookup(category_keys, since_category, pair, np.nan),
            "popularity_90d": basket.popularity_90d[item],
            "popularity_365d": basket.popularity_365d[item],
            "popularity_trend": trend[item],
            "price": catalogue.prices[item],
            "price_vs_usual": catalogue.prices[item] / usual_price[user],
            "customer_products": owned[user].astype(float),
            "customer_purchases": units[user],
            "days_since_last_purchase": last_purchase[user],
            "rank_cooc": cooc.rank(user, item),
            "rank_category": affinity.rank(user, item),
            "rank_popularity": popularity_rank(),
            "als_score": np.einsum("ij,ij->i", user_factors[user], basket.item_factors[item]),
            "rank_als": lookup(als_keys, als_ranks, keys, ALS_RANKED + 1.0),
        }
    # float32: half the memory of the training rows; ranks and counts stay exact.
    matrix = np.empty((len(keys), len(CANDIDATE_FEATURES)), dtype=np.float32)
    for j, name in enumerate(CANDIDATE_FEATURES):
        matrix[:, j] = columns_by_name[name]
    matrix[~np.isfinite(matrix)] = np.nan
    return history.customer_ids[span][user], catalogue.product_ids[item], matrix


def _als_ranked(
    user_factors: np.ndarray, item_factors: np.ndarray, bought: np.ndarray, cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """(keys ascending, 1-based ranks) of each row's first :data:`ALS_RANKED` unbought
    products by ALS score (positive scores only; ties in catalogue order). Rows are scored a
    block at a time, a block holding about ``cells`` (customer, product) scores."""
    users, size = len(user_factors), len(item_factors)
    n = min(ALS_RANKED, size)
    if not users or not n:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    block = max(cells // size, 1)
    keys, ranks = [], []
    for a in range(0, users, block):
        b = min(a + block, users)
        scores = user_factors[a:b] @ item_factors.T
        lo, hi = np.searchsorted(bought, [a * np.int64(size), b * np.int64(size)])
        scores.ravel()[bought[lo:hi] - a * np.int64(size)] = -np.inf
        scores[~(scores > 0)] = -np.inf
        top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        picked = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -picked), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        picked = np.take_along_axis(picked, order, axis=1)
        ok = np.isfinite(picked)
        row = np.broadcast_to(np.arange(a, b)[:, None], top.shape)
        keys.append(cell_keys(row[ok], top[ok], size))
        ranks.append(np.broadcast_to(np.arange(1, n + 1), top.shape)[ok])
    all_keys, all_ranks = np.concatenate(keys), np.concatenate(ranks)
    order = np.argsort(all_keys)
    return all_keys[order], all_ranks[order]
