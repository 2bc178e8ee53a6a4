"""Model features: one definition, computed as of a point in time, for training and serving.

The features are defined once, in SQL (``sql/queries/features.sql``, statement
``customer_features``): every value is computed from data strictly before the as-of time, for
many customers at once. Training asks for every customer at past as-of times; serving asks
for a few customers now. Both call :func:`compute_features`, so the vectors a model was
trained on and the ones it scores are built by the same code and cannot drift apart.

The result is a :class:`FeatureFrame`: customer ids (ascending) and a float64 matrix whose
columns are :data:`FEATURES`, in that order, with NaN where a value is undefined (no purchase
yet, fewer than two orders, a ratio over zero) and 0 for counts and sums of nothing.

Only customers the models may process have rows (SQL view ``modelled_customers``): erased
customers and those whose latest ``personalization`` or ``profiling`` decision is a refusal
are absent for training and serving alike, so they are neither learned from nor scored.
Consent is not a feature. Models record :func:`feature_definition_hash` so that a model
trained on one definition is not silently served another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from sql.matrix import fetch_matrix
from sql.queries import query

if TYPE_CHECKING:
    # Imported where frames are made or read: the definitions below need no NumPy, and a
    # server answers before it computes any feature.
    import numpy as np

_STATEMENT = "customer_features"

# The model's input columns, in the order the SQL returns them (a test checks both agree).
FEATURES: tuple[str, ...] = (
    # purchases: recency, frequency, monetary value
    "days_since_last_purchase",
    "days_since_first_purchase",
    "tenure_days",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "orders_lifetime",
    "spend_30d",
    "spend_90d",
    "spend_365d",
    "spend_lifetime",
    "spend_trend_90d",
    "orders_trend_90d",
    "avg_order_value",
    "avg_basket_lines",
    "avg_basket_quantity",
    # purchase rhythm and season
    "orders_next_30d_last_year",
    "orders_next_90d_last_year",
    "interpurchase_mean_days",
    "interpurchase_std_days",
    "overdue_ratio",
    # breadth
    "distinct_categories",
    "top_category_share",
    # support
    "complaints_30d",
    "complaints_90d",
    "tickets_30d",
    "tickets_90d",
    "days_since_last_complaint",
    "days_since_last_ticket",
    # engagement
    "email_opens_30d",
    "email_opens_90d",
    "email_clicks_30d",
    "email_clicks_90d",
    "email_click_rate_90d",
    "page_views_30d",
    "page_views_90d",
    "reviews_90d",
    "web_interactions_90d",
    "app_interactions_90d",
    "interactions_90d",
)  # no consent: see features.sql

# What each feature means, in words a user can read next to a score's explanation.
FEATURE_DESCRIPTIONS: dict[str, str] = {
    "days_since_last_purchase": "days since the last purchase",
    "days_since_first_purchase": "days since the first purchase",
    "tenure_days": "days as a customer",
    "orders_30d": "orders in the last 30 days",
    "orders_90d": "orders in the last 90 days",
    "orders_365d": "orders in the last 365 days",
    "orders_lifetime": "orders ever",
    "spend_30d": "amount spent in the last 30 days",
    "spend_90d": "amount spent in the last 90 days",
    "spend_365d": "amount spent in the last 365 days",
    "spend_lifetime": "amount spent ever",
    "spend_trend_90d": "spending in the last 90 days compared with the 90 days before",
    "orders_trend_90d": "orders in the last 90 days compared with the 90 days before",
    "avg_order_value": "average order value",
    "avg_basket_lines": "average number of different items per order",
    "avg_basket_quantity": "average number of units per order",
    "orders_next_30d_last_year": "orders in the coming 30 days' calendar window last year",
    "orders_next_90d_last_year": "orders in the coming 90 days' calendar window last year",
    "interpurchase_mean_days": "average days between orders",
    "interpurchase_std_days": "how irregular the time between orders is (days)",
    "overdue_ratio": "time since the last order relative to the usual gap between orders",
    "distinct_categories": "number of product categories bought",
    "top_category_share": "share of spending in the favourite category",
    "complaints_30d": "complaints in the last 30 days",
    "complaints_90d": "complaints in the last 90 days",
    "tickets_30d": "support tickets in the last 30 days",
    "tickets_90d": "support tickets in the last 90 days",
    "days_since_last_complaint": "days since the last complaint",
    "days_since_last_ticket": "days since the last support ticket",
    "email_opens_30d": "e-mails opened in the last 30 days",
    "email_opens_90d": "e-mails opened in the last 90 days",
    "email_clicks_30d": "e-mail links clicked in the last 30 days",
    "email_clicks_90d": "e-mail links clicked in the last 90 days",
    "email_click_rate_90d": "share of opened e-mails clicked in the last 90 days",
    "page_views_30d": "pages viewed in the last 30 days",
    "page_views_90d": "pages viewed in the last 90 days",
    "reviews_90d": "reviews written in the last 90 days",
    "web_interactions_90d": "website visits and actions in the last 90 days",
    "app_interactions_90d": "app visits and actions in the last 90 days",
    "interactions_90d": "interactions of any kind in the last 90 days",
}


def feature_definition_hash() -> str:
    """SHA-256 (hex) of the feature SQL and the ordered feature names.

    Logged with every model: a model is only served features computed by the definition it
    was trained on. Any change to the statement's text or to :data:`FEATURES` changes it.
    """
    digest = hashlib.sha256()
    digest.update(query(_STATEMENT).encode())
    digest.update(b"\0")
    digest.update("\n".join(FEATURES).encode())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)  # eq over arrays is ambiguous: compare matrices explicitly
class FeatureFrame:
    """Features of many customers as of one time: ``matrix[i]`` belongs to ``customer_ids[i]``.

    ``customer_ids`` is int64 and ascending; ``matrix`` is float64 of shape
    ``(len(customer_ids), len(FEATURES))`` with NaN for missing values. Both are read-only.
    """

    as_of: datetime
    customer_ids: np.ndarray
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.customer_ids)

    def row(self, customer_id: int) -> dict[str, float]:
        """One customer's features by name (for explanations and replays); KeyError if absent."""
        import numpy as np

        i = int(np.searchsorted(self.customer_ids, customer_id))
        if i == len(self.customer_ids) or self.customer_ids[i] != customer_id:
            raise KeyError(customer_id)
        return dict(zip(FEATURES, self.matrix[i].tolist(), strict=True))

    def column(self, name: str) -> np.ndarray:
        """One feature for every customer, in ``customer_ids`` order."""
        return self.matrix[:, FEATURES.index(name)]


async def compute_features(
    conn: asyncpg.Connection, as_of: datetime, customer_ids: Sequence[int] | None = None
) -> FeatureFrame:
    """Compute :data:`FEATURES` as of ``as_of`` from data strictly before it.

    ``customer_ids=None`` means every modelled customer created before ``as_of``; otherwise
    those of the given customers that existed before ``as_of`` and are modelled (others,
    unknown, erased or objecting to profiling, are absent from the frame).
    Rows are ordered by customer id. ``as_of`` must be timezone-aware.

    One statement, read through binary COPY into numpy: a million customers take one scan of
    each table and no Python work per row. Large frames run for many seconds, so use a
    connection without a short statement timeout (``sql.database.connect``, not the API pool).
    """
    import numpy as np

    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    ids: list[int] | None = None
    if customer_ids is not None:
        ids = np.unique(np.asarray(customer_ids, dtype=np.int64)).tolist()
        if not ids:
            return _frame(as_of, np.empty(0, np.int64), np.empty((0, len(FEATURES))))

    # Through binary COPY (sql.matrix): the parameters are inlined, so each call is planned
    # for its own scope (see features.sql), and fixed-width rows become numpy without parsing.
    customer_column, matrix = await fetch_matrix(conn, _STATEMENT, (as_of, ids), len(FEATURES))
    return _frame(as_of, customer_column, matrix)


def _frame(as_of: datetime, customer_ids: np.ndarray, matrix: np.ndarray) -> FeatureFrame:
    customer_ids.setflags(write=False)
    matrix.setflags(write=False)
    return FeatureFrame(as_of=as_of, customer_ids=customer_ids, matrix=matrix)


def feature_list_hash(names: Sequence[str]) -> str:
    """SHA-256 (hex) of an ordered list of input names: recorded with a model at training
    and compared with the list the service computes before the model may serve."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()
