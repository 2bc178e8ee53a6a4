"""Simple models every LightGBM model must beat, fitted on the same cutoffs it learns from.

* RFM recency: the churn rate of customers with a similar number of days since their last
  order, learned from the training cutoffs (a recency-decile lookup table).
* Rate: the customer's own order rate over the last year (or their tenure if shorter), read
  as a Poisson process: P(order within t) = 1 - exp(-rate t), E[orders] = rate H.
* BG/NBD (:mod:`ml.training.bgnbd`): fitted on the transaction histories before the
  evaluation cutoff; the classic probabilistic customer-base model.
"""

from __future__ import annotations

import numpy as np

from ml.training.bgnbd import BgNbd, history_inputs
from ml.training.datasets import feature_column


class RecencyTable:
    """Churn rate by decile of days since the last order (RFM recency), from training data."""

    def __init__(self, recency: np.ndarray, churned: np.ndarray) -> None:
        self.edges = np.unique(np.nanquantile(recency, np.linspace(0.1, 0.9, 9)))
        bins = np.searchsorted(self.edges, recency, side="right")
        counts = np.bincount(bins, minlength=len(self.edges) + 1)
        churns = np.bincount(bins, weights=churned, minlength=len(self.edges) + 1)
        prior = float(churned.mean())
        # A few pseudo-observations at the overall rate keep sparse bins from reading 0 or 1.
        self.rates = (churns + 5 * prior) / (counts + 5)

    def predict(self, recency: np.ndarray) -> np.ndarray:
        return self.rates[np.searchsorted(self.edges, recency, side="right")]


def order_rate(matrix: np.ndarray) -> np.ndarray:
    """Orders per day over the last year, or over the time since the first order if shorter."""
    orders = feature_column(matrix, "orders_365d")
    since_first = np.nan_to_num(feature_column(matrix, "days_since_first_purchase"), nan=365.0)
    return orders / np.clip(since_first, 30.0, 365.0)


def rate_predictions(rate: np.ndarray, horizon: float) -> dict[str, np.ndarray]:
    """The rate baseline's 30-day probability, expected orders and capped wait."""
    with np.errstate(divide="ignore", invalid="ignore"):
        wait = np.where(rate > 0, -np.expm1(-rate * horizon) / rate, horizon)
    return {
        "p30": -np.expm1(-rate * 30.0),
        "p_none": np.exp(-rate * horizon),
        "count": rate * horizon,
        "wait": wait,
    }


def bgnbd_predictions(matrix: np.ndarray, horizon: float) -> dict[str, np.ndarray]:
    """Fit BG/NBD on the histories in ``matrix`` and predict the same quantities."""
    x, t_x, age = history_inputs(
        feature_column(matrix, "orders_lifetime"),
        feature_column(matrix, "days_since_first_purchase"),
        feature_column(matrix, "days_since_last_purchase"),
    )
    model = BgNbd.fit(x, t_x, age)
    return {
        "p30": 1 - model.p_no_purchase(x, t_x, age, 30.0),
        "p_none": model.p_no_purchase(x, t_x, age, horizon),
        "count": model.expected_purchases(x, t_x, age, horizon),
        "wait": model.expected_wait(x, t_x, age, horizon),
    }
