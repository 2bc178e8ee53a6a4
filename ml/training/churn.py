"""Churn risk: the probability that a customer places no order within the horizon."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from ml.features import FEATURES, feature_definition_hash
from ml.training import boosting, plots
from ml.training.baselines import RecencyTable, bgnbd_predictions
from ml.training.datasets import PurchaseSnapshot, feature_column
from ml.training.metrics import binary_metrics
from ml.training.outcome import TrainedTask

PARAMS: dict[str, object] = {"objective": "binary", "metric": "binary_logloss"}


def train(
    training: list[PurchaseSnapshot], evaluation: PurchaseSnapshot, *, seed: int
) -> TrainedTask:
    """Fit the churn classifier on the training cutoffs and compare it on the evaluation one."""
    booster = boosting.fit(
        PARAMS,
        [s.features.matrix for s in training],
        [s.churned for s in training],
        seed=seed,
    )
    x, y = evaluation.features.matrix, evaluation.churned
    recency = RecencyTable(
        np.concatenate(
            [feature_column(s.features.matrix, "days_since_last_purchase") for s in training]
        ),
        np.concatenate([s.churned for s in training]),
    )
    probabilities = {
        "lightgbm": booster.predict(x),
        "rfm_recency": recency.predict(feature_column(x, "days_since_last_purchase")),
        "bg_nbd": bgnbd_predictions(x, evaluation.horizon_days)["p_none"],
    }
    comparison = {name: binary_metrics(y, p) for name, p in probabilities.items()}

    def score(other: lgb.Booster) -> float:
        return binary_metrics(y, other.predict(x))["roc_auc"]

    sample = _sample_rows(len(x), 1000, seed)
    return TrainedTask(
        task="churn",
        heads={"churn": booster},
        feature_names=FEATURES,
        feature_hash=feature_definition_hash(),
        comparison=comparison,
        primary_metric="roc_auc",
        greater_is_better=True,
        score=score,
        input_example=x[:5],
        percentiles={"churn": TrainedTask.percentiles_of(probabilities["lightgbm"])},
        data={},
        params=PARAMS,
        figures={
            "roc.png": plots.roc_curves(y, probabilities, "Churn: ROC on the evaluation cutoff"),
            "calibration.png": plots.calibration_curves(
                y, probabilities, "Churn: calibration on the evaluation cutoff"
            ),
            "importance.png": plots.importance(booster, "Churn: feature importance"),
            "shap_summary.png": plots.shap_summary(
                booster, x[sample], FEATURES, "Churn: SHAP summary"
            ),
        },
    )


def _sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
