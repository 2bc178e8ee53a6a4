"""Churn risk: the probability that a customer places no order within the horizon.

The booster judged on the evaluation cutoff learns from the training cutoffs; its output is
calibrated on the evaluation cutoff (:mod:`ml.calibration`), and the booster served is refitted
on every cutoff, the evaluation one included (:func:`ml.training.boosting.refit`).
"""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np

from ml import calibration
from ml.features import FEATURES, feature_definition_hash
from ml.training import boosting, plots
from ml.training.baselines import BaselineFit, RecencyTable, customer_base_predictions
from ml.training.datasets import PurchaseSnapshot, feature_column
from ml.training.metrics import binary_metrics, calibrated_metrics
from ml.training.outcome import TrainedTask

PARAMS: dict[str, object] = {"objective": "binary", "metric": "binary_logloss"}


def train(
    training: list[PurchaseSnapshot],
    evaluation: PurchaseSnapshot,
    *,
    seed: int,
    customer_base: dict[str, BaselineFit] | None = None,
) -> TrainedTask:
    """Fit the churn classifier on the training cutoffs, compare and calibrate it on the
    evaluation one, refit it on all of them."""
    booster = boosting.fit(
        PARAMS,
        [s.features.matrix for s in training],
        [s.churned for s in training],
        seed=seed,
    )
    x, y = evaluation.features.matrix, evaluation.churned
    raw = booster.predict(x)
    calibrated = calibration.choose(raw, y, seed=seed)
    served = boosting.refit(
        PARAMS,
        [s.features.matrix for s in [*training, evaluation]],
        [s.churned for s in [*training, evaluation]],
        rounds=booster.current_iteration(),
        seed=seed,
    )
    recency = RecencyTable(
        np.concatenate(
            [feature_column(s.features.matrix, "days_since_last_purchase") for s in training]
        ),
        np.concatenate([s.churned for s in training]),
    )
    if customer_base is None:  # fitted once per run by the pipeline, which shares it
        customer_base = customer_base_predictions(x, evaluation.horizon_days)
    probabilities = {
        "lightgbm": calibrated.cross_fitted,
        "rfm_recency": recency.predict(feature_column(x, "days_since_last_purchase")),
        **{name: fit["p_none"] for name, fit in customer_base.items() if fit.converged},
    }
    comparison = {name: binary_metrics(y, p) for name, p in probabilities.items()}
    for name, fit in customer_base.items():
        if not fit.converged:  # a row of NaN: shown as "-", never a number
            comparison[name] = dict.fromkeys(comparison["rfm_recency"], math.nan)
    comparison["lightgbm"] = calibrated_metrics(y, raw, calibrated.cross_fitted)
    comparison["lightgbm"].update(
        {f"calibration_brier_{kind}": value for kind, value in calibrated.brier.items()}
    )

    def score(other: lgb.Booster) -> float:
        return binary_metrics(y, other.predict(x))["roc_auc"]

    sample = _sample_rows(len(x), 1000, seed)
    return TrainedTask(
        task="churn",
        heads={"churn": served},
        evaluated_heads={"churn": booster},
        calibrations={"churn": calibrated.calibration},
        baseline_status={n: f.status for n, f in customer_base.items() if not f.converged},
        horizon_days=evaluation.horizon_days,
        feature_names=FEATURES,
        feature_hash=feature_definition_hash(),
        comparison=comparison,
        primary_metric="roc_auc",
        greater_is_better=True,
        score=score,
        input_example=x[:5],
        percentiles={
            "churn": TrainedTask.percentiles_of(calibrated.calibration.apply(served.predict(x)))
        },
        data={},
        params=PARAMS,
        figures={
            "roc.png": plots.roc_curves(
                y, {**probabilities, "lightgbm": raw}, "Churn: ROC on the evaluation cutoff"
            ),
            "calibration.png": plots.calibration_curves(
                y,
                {"lightgbm (uncalibrated)": raw, **probabilities},
                "Churn: calibration on the evaluation cutoff (lightgbm: cross-fitted)",
            ),
            "importance.png": plots.importance(served, "Churn: feature importance"),
            "shap_summary.png": plots.shap_summary(
                served, x[sample], FEATURES, "Churn: SHAP summary"
            ),
        },
    )


def _sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
