"""Simple models every LightGBM model must beat, fitted on the same cutoffs it learns from.

* RFM recency: the churn rate of customers with a similar number of days since their last
  order, learned from the training cutoffs (a recency-decile lookup table).
* Rate: the customer's own order rate over the last year (or their tenure if shorter), read
  as a Poisson process: P(order within t) = 1 - exp(-rate t), E[orders] = rate H.
* BG/NBD (:mod:`ml.training.bgnbd`) and Pareto/NBD (:mod:`ml.training.paretonbd`): fitted
  on the transaction histories before the evaluation cutoff; the classic probabilistic
  customer-base models. Their fit can fail to converge: then they predict nothing (NaN) and
  say why, rather than hand a metric a number from parameters that mean nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from ml.training.bgnbd import BgNbd, history_inputs
from ml.training.datasets import feature_column
from ml.training.paretonbd import ParetoNbd


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


@dataclass(frozen=True, eq=False)
class BaselineFit(Mapping[str, np.ndarray]):
    """A customer-base model's predictions for every row, or NaN and the reason why not.

    Reads as the mapping of predictions it wraps: ``p30`` (an order within 30 days),
    ``p_none`` (no order within the horizon), ``count`` (expected orders within it) and
    ``wait`` (days to the next order, capped at the horizon), each within its valid range.
    When ``converged`` is false every value is NaN and ``status`` reads ``diverged: <why>``:
    a metric of it is NaN or an error, never a number.
    """

    predictions: dict[str, np.ndarray]
    status: str

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def __getitem__(self, key: str) -> np.ndarray:
        return self.predictions[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.predictions)

    def __len__(self) -> int:
        return len(self.predictions)


def bgnbd_predictions(matrix: np.ndarray, horizon: float) -> BaselineFit:
    """Fit BG/NBD on the histories in ``matrix`` and predict the rate baseline's quantities."""
    return _customer_base_predictions(BgNbd, matrix, horizon)


def paretonbd_predictions(matrix: np.ndarray, horizon: float) -> BaselineFit:
    """Fit Pareto/NBD on the histories in ``matrix`` and predict the same quantities."""
    return _customer_base_predictions(ParetoNbd, matrix, horizon)


def customer_base_predictions(matrix: np.ndarray, horizon: float) -> dict[str, BaselineFit]:
    """Both customer-base baselines (``bg_nbd``, ``pareto_nbd``), fitted on ``matrix``."""
    return {
        "bg_nbd": bgnbd_predictions(matrix, horizon),
        "pareto_nbd": paretonbd_predictions(matrix, horizon),
    }


def _customer_base_predictions(
    model: type[BgNbd] | type[ParetoNbd], matrix: np.ndarray, horizon: float
) -> BaselineFit:
    x, t_x, age = history_inputs(
        feature_column(matrix, "orders_lifetime"),
        feature_column(matrix, "days_since_first_purchase"),
        feature_column(matrix, "days_since_last_purchase"),
    )
    fitted, report = model.fit(x, t_x, age)
    if not report.converged:
        return _diverged(len(x), report.status)
    predictions = {
        "p30": 1 - fitted.p_no_purchase(x, t_x, age, 30.0),
        "p_none": fitted.p_no_purchase(x, t_x, age, horizon),
        "count": fitted.expected_purchases(x, t_x, age, horizon),
        "wait": fitted.expected_wait(x, t_x, age, horizon),
    }
    # The models clip to the valid ranges and give NaN where a value cannot be computed;
    # one NaN would make every metric undefined, so the baseline as a whole is unusable.
    missing = sum(int((~np.isfinite(p)).sum()) for p in predictions.values())
    if missing:
        return _diverged(len(x), f"diverged: {missing} predictions could not be computed")
    return BaselineFit(predictions, report.status)


def _diverged(rows: int, status: str) -> BaselineFit:
    nothing = np.full(rows, np.nan)
    return BaselineFit({k: nothing.copy() for k in ("p30", "p_none", "count", "wait")}, status)
