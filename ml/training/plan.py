"""When the models learn and when they are judged: rolling cutoffs that never look ahead.

``as_of`` is the end of everything training may see, labels included. The evaluation cutoff
is ``as_of - horizon``, so its label window ends exactly at ``as_of``. Training cutoffs lie a
further horizon earlier, one ``step`` apart, so that every training label window ends by the
evaluation cutoff: the model never learns from the period it is judged on.

    train[n-1] ... train[1]  train[0]        evaluation            as_of
        |----------|-----------|--horizon--|        |--horizon--|
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

METHODS = ("auto", "direct", "hazard")
_DURATION = re.compile(r"^\s*(\d+)\s*([dw])\s*$", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """``"90d"`` or ``"12w"`` -> timedelta; ValueError with a readable message otherwise."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 90d or 12w (days or weeks, > 0)")
    amount = int(match.group(1))
    return timedelta(days=amount * (7 if match.group(2).lower() == "w" else 1))


@dataclass(frozen=True)
class TrainingPlan:
    """Cutoffs, horizon and sampling of one training run (everything that makes it repeatable)."""

    as_of: datetime
    horizon: timedelta = timedelta(days=90)
    training_cutoffs: int = 6  # 60 days apart: a year of seasons
    step: timedelta = timedelta(days=60)
    max_customers: int = 100_000  # sampled per cutoff: bounds time and memory at any size
    seed: int = 42
    # How churn and next purchase learn the horizon: "direct" (one label window per cutoff),
    # "hazard" (30-day steps, ml/survival.py: any horizon from a short history) or "auto"
    # (direct where the history holds a whole horizon before the evaluation one, else hazard).
    method: str = "auto"

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None or self.as_of.utcoffset() is None:
            raise ValueError("as_of must be timezone-aware")
        if self.horizon < timedelta(days=1) or self.step < timedelta(days=1):
            raise ValueError("horizon and step must be at least one day")
        if not 1 <= self.training_cutoffs <= 24:
            raise ValueError("training cutoffs must be between 1 and 24")
        if self.max_customers < 100:
            raise ValueError("max customers per cutoff must be at least 100")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")

    @property
    def evaluation_cutoff(self) -> datetime:
        """The held-out cutoff: features before it, labels in [it, as_of)."""
        return self.as_of - self.horizon

    @property
    def cutoffs(self) -> list[datetime]:
        """Training cutoffs, oldest first; each label window ends by the evaluation cutoff."""
        latest = self.evaluation_cutoff - self.horizon
        return [latest - k * self.step for k in reversed(range(self.training_cutoffs))]

    @property
    def horizon_days(self) -> float:
        return self.horizon.total_seconds() / 86400

    def describe(self) -> dict[str, object]:
        """The plan as loggable parameters."""
        return {
            "as_of": self.as_of.isoformat(),
            "horizon_days": self.horizon_days,
            "training_cutoffs": [c.isoformat() for c in self.cutoffs],
            "evaluation_cutoff": self.evaluation_cutoff.isoformat(),
            "step_days": self.step.total_seconds() / 86400,
            "max_customers_per_cutoff": self.max_customers,
            "seed": self.seed,
            "method": self.method,
        }
