"""Point-in-time training examples: features before a cutoff, what happened after it.

A :class:`PurchaseSnapshot` holds, for a sample of the customers who had bought before a
cutoff, their features as of the cutoff (:func:`ml.features.compute_features`, the same code
that serves scores) and the outcome over the horizon that follows: how many orders and how
many days until the first. Nothing after the horizon end is read; a customer who did not buy
within it is *censored* there (we know only that the wait is longer than the horizon).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import numpy as np

from ml.features import FEATURES, FeatureFrame, compute_features
from ml.training.errors import InsufficientData
from sql.matrix import fetch_matrix


@dataclass(frozen=True, eq=False)
class PurchaseSnapshot:
    """Features at ``cutoff`` and purchase outcomes in ``[cutoff, cutoff + horizon)``."""

    cutoff: datetime
    horizon_days: float
    features: FeatureFrame
    orders: np.ndarray  # orders in the window (float64, >= 0)
    days_to_next: np.ndarray  # days from the cutoff to the first order; NaN if none (censored)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def churned(self) -> np.ndarray:
        """1.0 where the customer placed no order within the horizon."""
        return (self.orders == 0).astype(np.float64)

    def purchased_within(self, days: float) -> np.ndarray:
        """1.0 where the first order came within ``days`` of the cutoff."""
        return (np.nan_to_num(self.days_to_next, nan=np.inf) < days).astype(np.float64)

    @property
    def observed(self) -> np.ndarray:
        """True where the next order happened within the horizon (not censored)."""
        return ~np.isnan(self.days_to_next)

    @property
    def restricted_days(self) -> np.ndarray:
        """Days to the next order, capped at the horizon: always observed, never censored."""
        return np.nan_to_num(self.days_to_next, nan=self.horizon_days)

    def describe(self) -> dict[str, object]:
        """Size and label rates, for the run's data snapshot."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "customers": len(self),
            "churn_rate": round(float(self.churned.mean()), 4) if len(self) else None,
            "purchase_30d_rate": round(float(self.purchased_within(30).mean()), 4)
            if len(self)
            else None,
            "mean_orders": round(float(self.orders.mean()), 4) if len(self) else None,
        }


async def buyers_before(conn: asyncpg.Connection, cutoff: datetime) -> np.ndarray:
    """Ids of the customers who existed and had bought before ``cutoff`` (ascending)."""
    ids, _ = await fetch_matrix(conn, "customers_buying_before", (cutoff,), 1)
    return ids


def sample_ids(ids: np.ndarray, limit: int, *, seed: int, cutoff: datetime) -> np.ndarray:
    """At most ``limit`` of ``ids``, the same ones for the same seed and cutoff (ascending)."""
    if len(ids) <= limit:
        return ids
    rng = np.random.default_rng([seed, int(cutoff.timestamp())])
    return np.sort(rng.choice(ids, size=limit, replace=False))


async def purchase_snapshot(
    conn: asyncpg.Connection,
    cutoff: datetime,
    horizon: timedelta,
    *,
    max_customers: int,
    seed: int,
) -> PurchaseSnapshot:
    """Features and outcomes of (a sample of) the customers who had bought before ``cutoff``."""
    population = await buyers_before(conn, cutoff)
    if len(population) == 0:
        raise InsufficientData(
            f"no customer had bought anything before {cutoff:%Y-%m-%d %H:%M} UTC, so there is "
            "nothing to learn from at that cutoff; choose a later --as-of, a shorter --horizon "
            "or fewer --cutoffs"
        )
    ids = sample_ids(population, max_customers, seed=seed, cutoff=cutoff)
    frame = await compute_features(conn, cutoff, ids.tolist())
    end = cutoff + horizon
    keys, outcome = await fetch_matrix(
        conn, "purchase_outcomes", (cutoff, end, frame.customer_ids.tolist()), 2
    )
    orders = np.zeros(len(frame))
    days_to_next = np.full(len(frame), np.nan)
    at = np.searchsorted(frame.customer_ids, keys)
    orders[at] = outcome[:, 0]
    days_to_next[at] = outcome[:, 1]
    return PurchaseSnapshot(
        cutoff=cutoff,
        horizon_days=horizon.total_seconds() / 86400,
        features=frame,
        orders=orders,
        days_to_next=days_to_next,
    )


def feature_column(matrix: np.ndarray, name: str) -> np.ndarray:
    """One named feature from a matrix whose columns are :data:`ml.features.FEATURES`."""
    return matrix[:, FEATURES.index(name)]
