"""What a training run produces, whatever the task: models, the comparison, the evidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
from matplotlib.figure import Figure

from ml.calibration import Calibration


@dataclass
class TrainedTask:
    """One task's trained models and how they compare with the baselines on held-out data.

    ``evaluated_heads`` are the boosters judged on the held-out evaluation cutoff, trained on
    the cutoffs before it; ``heads`` the ones served: the same settings and rounds refitted on
    every cutoff up to as-of (:func:`ml.training.boosting.refit`), so no later data exists to
    judge them on. The first head is the primary one (what the registry version points at).
    ``comparison`` maps each model (``lightgbm`` first, then the baselines) to its metrics on
    the evaluation cutoff. ``score`` computes the primary metric for another primary head (the
    current champion's judged one) on exactly the same evaluation rows. ``calibrations`` map
    a probability head's raw output to the probability served (:mod:`ml.calibration`).
    """

    task: str
    heads: dict[str, lgb.Booster]
    feature_names: tuple[str, ...]
    feature_hash: str
    comparison: dict[str, dict[str, float]]
    primary_metric: str
    greater_is_better: bool
    score: Callable[[lgb.Booster], float]
    input_example: np.ndarray
    data: dict[str, object]
    horizon_days: float
    evaluated_heads: dict[str, lgb.Booster] = field(default_factory=dict)
    calibrations: dict[str, Calibration] = field(default_factory=dict)
    # Per baseline whose fit did not converge: why (its comparison row is all NaN).
    baseline_status: dict[str, str] = field(default_factory=dict)
    params: dict[str, object] = field(default_factory=dict)
    # Version tags serving reads besides the boosters (the hazard form's method and steps).
    tags: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    # Per head: the 0th..100th percentiles of its served predictions over the evaluation
    # customers, so serving can tell a customer where their score stands in the customer base.
    percentiles: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def percentiles_of(predictions: np.ndarray) -> list[float]:
        """The 0th to 100th percentiles of ``predictions``."""
        return [float(v) for v in np.percentile(predictions, np.arange(101))]

    @property
    def primary_head(self) -> str:
        return next(iter(self.heads))

    @property
    def metric(self) -> float:
        """The model's own primary metric on the evaluation cutoff."""
        return self.comparison["lightgbm"][self.primary_metric]

    def better(self, mine: float, theirs: float) -> bool:
        """Whether ``mine`` strictly beats ``theirs`` on the primary metric."""
        return mine > theirs if self.greater_is_better else mine < theirs

    def best_baseline(self) -> tuple[str, float]:
        """The strongest baseline on the primary metric."""
        values = {
            name: row[self.primary_metric]
            for name, row in self.comparison.items()
            if name != "lightgbm" and np.isfinite(row.get(self.primary_metric, np.nan))
        }
        pick = max if self.greater_is_better else min
        name = pick(values, key=values.__getitem__)
        return name, values[name]
