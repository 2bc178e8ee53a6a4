"""The figures logged with every run: ROC and calibration curves, importance, SHAP summary.

Matplotlib's object API on the Agg canvas only (no pyplot global state, no display needed).
SHAP values come from LightGBM itself (``pred_contrib``: exact TreeSHAP), so no extra
package is needed for the explanations a data scientist expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightgbm as lgb
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from ml.training.metrics import calibration_bins


def _figure(width: float = 6.0, height: float = 4.5) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def roc_curves(y: np.ndarray, scores: Mapping[str, np.ndarray], title: str) -> Figure:
    """ROC curve of each model's scores against the same labels."""
    fig, ax = _figure()
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    return fig


def calibration_curves(
    y: np.ndarray, probabilities: Mapping[str, np.ndarray], title: str
) -> Figure:
    """Reliability diagram: predicted probability against the observed rate, per decile bin."""
    fig, ax = _figure()
    for name, p in probabilities.items():
        predicted, observed, _ = calibration_bins(y, p)
        ax.plot(predicted, observed, marker="o", label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=title)
    ax.legend(loc="upper left")
    return fig


def importance(booster: lgb.Booster, title: str, top: int = 20) -> Figure:
    """Total gain of the ``top`` most useful features."""
    gain = booster.feature_importance(importance_type="gain")
    names = np.array(booster.feature_name())
    order = np.argsort(gain)[::-1][:top][::-1]
    fig, ax = _figure(7.0, 0.3 * len(order) + 1.2)
    ax.barh(names[order], gain[order])
    ax.set(xlabel="total gain", title=title)
    return fig


def shap_summary(
    booster: lgb.Booster, x: np.ndarray, names: Sequence[str], title: str, top: int = 15
) -> Figure:
    """Beeswarm-style SHAP summary: each dot a customer, colour the feature's value."""
    contributions = booster.predict(x, pred_contrib=True, num_threads=1)[
        :, :-1
    ]  # last column: the bias
    order = np.argsort(np.abs(contributions).mean(axis=0))[::-1][:top]
    fig, ax = _figure(7.5, 0.35 * len(order) + 1.5)
    rng = np.random.default_rng(0)
    for row, j in enumerate(order[::-1]):
        values = x[:, j]
        finite = np.isfinite(values)
        colour = np.full(len(values), 0.5)
        if finite.any():
            low, high = np.nanpercentile(values[finite], [5, 95])
            colour[finite] = np.clip((values[finite] - low) / max(high - low, 1e-12), 0, 1)
        jitter = rng.uniform(-0.3, 0.3, len(values))
        ax.scatter(contributions[:, j], row + jitter, c=colour, cmap="coolwarm", s=4, alpha=0.6)
    ax.set_yticks(range(len(order)), [names[j] for j in order[::-1]])
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="SHAP value (impact on the model's raw output)", title=title)
    return fig
