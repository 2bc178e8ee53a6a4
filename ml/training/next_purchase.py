"""Next purchase: will the customer order within 30 days, how often within the horizon, and
how long until the next order.

Three heads share the features:

* ``p30``   binary: an order within 30 days of the cutoff;
* ``count`` Poisson regression: orders within the horizon;
* ``days``  the expected wait until the next order, *capped at the horizon* (the restricted
  mean). Censoring is handled, not ignored: a customer who did not order within the horizon
  is known only to wait longer than it, and the capped wait ``min(T, H)`` is exactly what
  every training window observes, for buyers and non-buyers alike. (An uncapped mean would
  need assumptions about the time beyond any window we saw.) It is judged with Harrell's
  concordance index, which treats non-buyers as censored, and the MAE of the capped wait.

The heads judged on the evaluation cutoff learn from the training cutoffs; ``p30`` is
calibrated there (:mod:`ml.calibration`) and ``count`` scaled to the orders placed there (its
total error, judged cross-fitted, is logged before and after). Every head served is refitted
with the same rounds on all the cutoffs, the evaluation one included
(:func:`ml.training.boosting.refit`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import lightgbm as lgb
import numpy as np

from ml import calibration
from ml.features import FEATURES, feature_definition_hash
from ml.training import boosting, plots
from ml.training.baselines import (
    BaselineFit,
    customer_base_predictions,
    order_rate,
    rate_predictions,
)
from ml.training.datasets import PurchaseSnapshot
from ml.training.metrics import (
    binary_metrics,
    calibrated_metrics,
    concordance_index,
    count_metrics,
)
from ml.training.outcome import TrainedTask

WINDOW_DAYS = 30.0
HEADS: dict[str, dict[str, object]] = {
    "p30": {"objective": "binary", "metric": "binary_logloss"},
    "count": {"objective": "poisson", "metric": "poisson"},
    "days": {"objective": "regression", "metric": "l2"},
}


def labels(snapshot: PurchaseSnapshot, head: str) -> np.ndarray:
    """The label of ``head`` for every customer of ``snapshot``."""
    if head == "p30":
        return snapshot.purchased_within(WINDOW_DAYS)
    if head == "count":
        return snapshot.orders
    return snapshot.restricted_days


def purchase_metrics(
    evaluation: PurchaseSnapshot,
    p: Mapping[str, np.ndarray],
    raw: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """A model's next-purchase metrics on ``evaluation``, from its ``p30``, ``count`` and
    ``wait`` predictions (with ``raw``, the ``p30`` and ``count`` before calibration, the
    30-day metrics and the count's total error before it too)."""
    raw_p30 = None if raw is None else raw["p30"]
    bought_30d = evaluation.purchased_within(WINDOW_DAYS)
    if raw_p30 is None:
        p30 = binary_metrics(bought_30d, p["p30"])
    else:
        p30 = calibrated_metrics(bought_30d, raw_p30, p["p30"])
    count = count_metrics(evaluation.orders, p["count"])
    before = {}
    if raw is not None:
        uncalibrated = count_metrics(evaluation.orders, raw["count"])["total_error"]
        before["count_total_error_uncalibrated"] = uncalibrated
    return {
        "p30_roc_auc": p30["roc_auc"],
        "p30_pr_auc": p30["pr_auc"],
        "p30_brier": p30["brier"],
        "p30_ece": p30["ece"],
        **{f"p30_{k}": p30[k] for k in ("brier_uncalibrated", "ece_uncalibrated") if k in p30},
        "count_mae": count["mae"],
        "count_rmse": count["rmse"],
        "count_bias": count["bias"],
        "count_total_error": count["total_error"],
        **before,
        "days_c_index": concordance_index(
            evaluation.restricted_days, evaluation.observed, p["wait"]
        ),
        "days_mae": float(np.mean(np.abs(p["wait"] - evaluation.restricted_days))),
    }


def train(
    training: list[PurchaseSnapshot],
    evaluation: PurchaseSnapshot,
    *,
    seed: int,
    customer_base: dict[str, BaselineFit] | None = None,
) -> TrainedTask:
    """Fit the three heads on the training cutoffs, compare them (and calibrate ``p30``) on
    the evaluation one, refit them on all of them."""
    evaluated = {
        head: boosting.fit(
            params,
            [s.features.matrix for s in training],
            [labels(s, head) for s in training],
            seed=seed,
        )
        for head, params in HEADS.items()
    }
    x, horizon = evaluation.features.matrix, evaluation.horizon_days
    bought_30d = evaluation.purchased_within(WINDOW_DAYS)
    raw_p30 = evaluated["p30"].predict(x)
    calibrated = calibration.choose(raw_p30, bought_30d, seed=seed)
    raw_count = evaluated["count"].predict(x)
    scale, scaled_count = calibration.choose_scale(raw_count, evaluation.orders, seed=seed)
    everything = [*training, evaluation]
    heads = {
        head: boosting.refit(
            params,
            [s.features.matrix for s in everything],
            [labels(s, head) for s in everything],
            rounds=evaluated[head].current_iteration(),
            seed=seed,
        )
        for head, params in HEADS.items()
    }
    predictions = {
        "lightgbm": {
            "p30": calibrated.cross_fitted,
            "count": scaled_count,
            "wait": np.clip(evaluated["days"].predict(x), 0.0, horizon),
        },
        "rate": rate_predictions(order_rate(x), horizon),
    }
    if customer_base is None:  # fitted once per run by the pipeline, which shares it
        customer_base = customer_base_predictions(x, horizon)
    predictions.update({name: fit for name, fit in customer_base.items() if fit.converged})

    def score(other: lgb.Booster) -> float:
        return binary_metrics(bought_30d, other.predict(x))["roc_auc"]

    p30 = {name: p["p30"] for name, p in predictions.items()}
    comparison = {
        name: purchase_metrics(
            evaluation, p, {"p30": raw_p30, "count": raw_count} if name == "lightgbm" else None
        )
        for name, p in predictions.items()
    }
    for name, fit in customer_base.items():
        if not fit.converged:  # a row of NaN: shown as "-", never a number
            comparison[name] = dict.fromkeys(comparison["rate"], math.nan)
    sample = np.random.default_rng(seed).permutation(len(x))[:1000]
    figures = {
        "roc_p30.png": plots.roc_curves(
            bought_30d, {**p30, "lightgbm": raw_p30}, "Order within 30 days: ROC"
        ),
        "calibration_p30.png": plots.calibration_curves(
            bought_30d,
            {"lightgbm (uncalibrated)": raw_p30, **p30},
            "Order within 30 days: calibration (lightgbm: cross-fitted)",
        ),
        "shap_summary_p30.png": plots.shap_summary(
            heads["p30"], x[sample], FEATURES, "Order within 30 days: SHAP summary"
        ),
    }
    for head, booster in heads.items():
        figures[f"importance_{head}.png"] = plots.importance(booster, f"{head}: importance")
    return TrainedTask(
        task="next_purchase",
        heads=heads,
        evaluated_heads=evaluated,
        calibrations={"p30": calibrated.calibration, "count": scale},
        baseline_status={n: f.status for n, f in customer_base.items() if not f.converged},
        horizon_days=horizon,
        feature_names=FEATURES,
        feature_hash=feature_definition_hash(),
        comparison=comparison,
        primary_metric="p30_roc_auc",
        greater_is_better=True,
        score=score,
        input_example=x[:5],
        percentiles={
            "p30": TrainedTask.percentiles_of(calibrated.calibration.apply(heads["p30"].predict(x)))
        },
        data={},
        params={head: params for head, params in HEADS.items()},
        figures=figures,
    )
