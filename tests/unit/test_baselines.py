"""The customer-base baselines from a feature matrix: valid predictions when the fit converged,
NaN and the reason when it did not, so no comparison can show a number for a failed fit."""

from __future__ import annotations

import numpy as np
import pytest

from ml.features import FEATURES
from ml.training.baselines import BaselineFit, bgnbd_predictions, paretonbd_predictions
from ml.training.metrics import count_metrics
from tests.unit.customer_base_simulation import simulate_pareto

HORIZON = 90.0


def feature_matrix(x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """The three history features the baselines read; NaN recency for never-buyers."""
    matrix = np.zeros((len(x), len(FEATURES)))
    bought = age > 0
    matrix[:, FEATURES.index("orders_lifetime")] = np.where(bought, x + 1, 0)
    matrix[:, FEATURES.index("days_since_first_purchase")] = np.where(bought, age, np.nan)
    matrix[:, FEATURES.index("days_since_last_purchase")] = np.where(bought, age - t_x, np.nan)
    return matrix


@pytest.fixture(scope="module")
def matrix():
    simulated = simulate_pareto(0.5, 30.0, 0.7, 200.0, 4000, HORIZON)
    x, t_x, age = (v.copy() for v in simulated.inputs)
    age[:50] = 0.0  # customers without any order yet
    return feature_matrix(x, t_x, age)


@pytest.mark.parametrize("baseline", [bgnbd_predictions, paretonbd_predictions])
def test_a_converged_fit_predicts_every_customer_within_range(baseline, matrix):
    fit = baseline(matrix, HORIZON)
    assert isinstance(fit, BaselineFit)
    assert fit.converged
    assert fit.status == "converged"
    assert set(fit) == {"p30", "p_none", "count", "wait"}
    assert fit["p_none"] is fit.predictions["p_none"]  # reads as the mapping it wraps
    for values in fit.values():
        assert values.shape == (len(matrix),)
        assert np.isfinite(values).all()
    assert ((fit["p30"] >= 0) & (fit["p30"] <= 1)).all()
    assert ((fit["p_none"] >= 0) & (fit["p_none"] <= 1)).all()
    # Buying within 30 days implies buying within the 90-day horizon.
    assert (fit["p30"] <= 1 - fit["p_none"] + 1e-12).all()
    assert (fit["count"] >= 0).all()
    assert ((fit["wait"] >= 0) & (fit["wait"] <= HORIZON)).all()


@pytest.mark.parametrize("baseline", [bgnbd_predictions, paretonbd_predictions])
def test_a_fit_without_data_to_learn_from_is_nan_with_its_reason(baseline):
    age = np.linspace(10.0, 400.0, 200)
    matrix = feature_matrix(np.zeros(200), np.zeros(200), age)  # nobody bought twice
    fit = baseline(matrix, HORIZON)
    assert not fit.converged
    assert fit.status == "diverged: no customer has a repeat purchase"
    for values in fit.values():
        assert values.shape == (200,)
        assert np.isnan(values).all()
    # Whatever a caller forgets to check, the metric cannot come out as a number.
    assert np.isnan(count_metrics(np.zeros(200), fit["count"])["mae"])
