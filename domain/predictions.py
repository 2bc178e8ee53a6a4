"""What the models say about a customer, with where it came from: pure values and rules.

Every prediction carries its :class:`Provenance` (model, version, MLflow run, as-of time),
enough to find the model and replay the score from the features it was computed from.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.commerce import Product
from domain.errors import UserError


class ModelUnavailable(UserError):
    """No usable model for a task (never trained, or failed to load): scores answer null."""

    code = "MODEL_NOT_TRAINED"


class ModelNotServing(ModelUnavailable):
    """A model exists but this server does not serve it (refused, unreadable, or the registry
    unreachable with nothing cached): the message says why."""

    code = "MODEL_UNAVAILABLE"


class RiskBand(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class RiskBands:
    """Churn probability thresholds: below ``medium`` is low, from ``high`` on is high."""

    medium: float = 0.4
    high: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 < self.medium < self.high < 1.0:
            raise ValueError("risk bands need 0 < medium < high < 1")

    def band(self, probability: float) -> RiskBand:
        if probability >= self.high:
            return RiskBand.HIGH
        if probability >= self.medium:
            return RiskBand.MEDIUM
        return RiskBand.LOW


@dataclass(frozen=True, slots=True)
class Provenance:
    """Which model produced a score, and as of when."""

    model: str
    version: int
    run_id: str
    as_of: datetime


@dataclass(frozen=True, slots=True)
class Factor:
    """One feature's share in a score: positive contributions push the score up."""

    feature: str
    description: str
    value: float | None  # None where the feature is undefined (e.g. no purchase yet)
    contribution: float  # in the model's raw (log-odds) units


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """The model inputs a score was computed from, in the model's order (None: undefined)."""

    names: tuple[str, ...]
    values: tuple[float | None, ...]

    def as_dict(self) -> dict[str, float | None]:
        return dict(zip(self.names, self.values, strict=True))


@dataclass(frozen=True, slots=True)
class Explanation:
    """Per-feature contributions to a raw (log-odds) score: base + sum = raw score."""

    base_value: float
    contributions: tuple[float, ...]  # in the feature vector's order
    descriptions: tuple[str, ...]

    def factors(self, inputs: FeatureVector, first: int) -> list[Factor]:
        """The ``first`` strongest contributions, by absolute value."""
        order = sorted(range(len(self.contributions)), key=lambda j: -abs(self.contributions[j]))[
            : max(first, 0)
        ]
        return [
            Factor(
                feature=inputs.names[j],
                description=self.descriptions[j],
                value=inputs.values[j],
                contribution=self.contributions[j],
            )
            for j in order
        ]


@dataclass(frozen=True, slots=True)
class ChurnRisk:
    probability: float  # of no order within horizon_days (calibrated)
    band: RiskBand
    percentile: float | None  # share of the customer base (0-100) with a lower risk
    provenance: Provenance
    inputs: FeatureVector
    explanation: Explanation | None  # computed only when asked for (it costs more)
    horizon_days: float = 90.0  # the window the model was trained to look ahead


@dataclass(frozen=True, slots=True)
class NextPurchase:
    probability_30d: float
    percentile: float | None
    expected_purchases: float  # within the horizon
    expected_days: float  # to the next purchase, capped at the horizon
    horizon_days: float
    provenance: Provenance
    inputs: FeatureVector

    @property
    def expected_at(self) -> datetime:
        """The expected date of the next purchase (at most the horizon away)."""
        return self.provenance.as_of + timedelta(days=self.expected_days)


class RecommendationReason(StrEnum):
    BOUGHT_TOGETHER = "bought_together"
    FAVOURITE_CATEGORY = "favourite_category"
    POPULAR = "popular"


@dataclass(frozen=True, slots=True)
class Recommendation:
    product: Product
    score: float
    reason: RecommendationReason
    explanation: str
    because_of: Product | None  # the product it is often bought with, for BOUGHT_TOGETHER


@dataclass(frozen=True, slots=True)
class Recommendations:
    items: Sequence[Recommendation]  # best first (may be made as they are read)
    provenance: Provenance

    def top(self, first: int, category: str | None = None) -> list[Recommendation]:
        """The best ``first``, optionally of one category only."""
        chosen: list[Recommendation] = []
        for item in self.items:
            if len(chosen) == first:
                break
            if category is None or item.product.category == category:
                chosen.append(item)
        return chosen


@dataclass(frozen=True, slots=True)
class BuyAgainItem:
    """A product the customer bought before, likely in their next order (ml/buy_again.py)."""

    product_id: int
    score: float  # higher is likelier; comparable within one customer's list
    orders: int  # the customer's orders containing it
    days_since_last: float
    cycle_days: float  # the expected days between two orders of it, for this customer
    as_of: datetime

    @property
    def days_until_due(self) -> float:
        """Days until the cycle since the last order ends (negative: overdue)."""
        return self.cycle_days - self.days_since_last

    @property
    def due_at(self) -> datetime:
        """When it is due: the last order plus the cycle."""
        return self.as_of + timedelta(days=self.days_until_due)


@dataclass(frozen=True, slots=True)
class StoredScores:
    """A customer's scores as materialised by the latest `cdm score --all`."""

    customer_id: int
    as_of: datetime
    scored_at: datetime
    churn_probability: float | None
    churn_model_version: int | None
    purchase_30d_probability: float | None
    expected_purchases: float | None
    expected_days_to_next: float | None
    next_purchase_model_version: int | None
    recommended_product_ids: tuple[int, ...]
    upsell_model_version: int | None


@dataclass(frozen=True, slots=True)
class StoredScoresSummary:
    """How fresh the stored scores are."""

    customers: int
    as_of: datetime | None
    scored_at: datetime | None
    churn_model_version: int | None
    next_purchase_model_version: int | None
    upsell_model_version: int | None


def percentile_of(value: float, percentiles: Sequence[float] | None) -> float | None:
    """Where ``value`` stands among the reference distribution (0-100), by its percentiles."""
    if not percentiles:
        return None
    position = bisect.bisect_left(list(percentiles), value)
    return float(min(max(position, 0), 100))
