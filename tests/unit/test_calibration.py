"""Calibration maps: chosen on customers they were not fitted on, stored as a few numbers."""

from __future__ import annotations

import numpy as np
import pytest

from ml import calibration
from ml.calibration import Calibration
from ml.training.metrics import expected_calibration_error


def outcomes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities and the outcomes drawn from them."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(2, 3, n)
    return truth, (rng.random(n) < truth).astype(float)


def test_an_overconfident_model_is_corrected_on_held_out_customers():
    truth, y = outcomes(20_000, 1)
    logit = np.log(truth / (1 - truth))
    overconfident = 1 / (1 + np.exp(-(2.5 * logit - 0.4)))  # too sure, and biased
    choice = calibration.choose(overconfident, y, seed=0)
    assert choice.calibration.kind in ("platt", "isotonic")
    assert choice.brier[choice.calibration.kind] < choice.brier["none"] - 0.005
    # Judged on fresh customers, the served map is close to the truth.
    fresh_truth, fresh_y = outcomes(20_000, 2)
    fresh_logit = np.log(fresh_truth / (1 - fresh_truth))
    served = choice.calibration.apply(1 / (1 + np.exp(-(2.5 * fresh_logit - 0.4))))
    assert expected_calibration_error(fresh_y, served) < 0.02
    assert np.abs(served - fresh_truth).mean() < 0.03


def test_a_calibrated_model_is_left_as_it_is_or_barely_moved():
    truth, y = outcomes(20_000, 3)
    choice = calibration.choose(truth, y, seed=0)
    assert choice.brier[choice.calibration.kind] <= choice.brier["none"]
    assert np.abs(choice.calibration.apply(truth) - truth).mean() < 0.02


def test_maps_are_monotone_bounded_and_survive_storage():
    truth, y = outcomes(5_000, 4)
    order = np.argsort(truth)
    p, y = np.clip(truth[order] + 0.2, 0, 1), y[order]
    for kind in calibration.KINDS:
        fitted = calibration.fit(kind, p, y)
        again = Calibration.from_json(fitted.to_json())
        assert again.kind == kind
        out = again.apply(p)
        assert np.all(np.diff(out) >= -1e-12), kind
        assert np.all((out >= 0) & (out <= 1)), kind
        assert out == pytest.approx(fitted.apply(p), abs=1e-6)
    isotonic = calibration.fit("isotonic", p, y)
    assert len(isotonic.params) <= 2 * calibration.KNOTS
    assert len(isotonic.to_json()) < 4000  # fits in a model-version tag


def test_unknown_or_missing_maps():
    assert Calibration.from_json(None) == Calibration()  # versions recorded before calibration
    assert calibration.fit("platt", np.array([0.2, 0.3]), np.array([1.0, 1.0])).kind == "none"
    inverted = calibration.fit("platt", np.linspace(0.1, 0.9, 100), np.repeat([1.0, 0.0], 50))
    assert inverted.kind == "none"  # a map never reverses the model's order
    with pytest.raises(ValueError, match="unknown calibration"):
        Calibration.from_json('{"kind": "magic", "params": []}')


def test_a_count_scale_brings_the_total_to_what_was_ordered():
    rng = np.random.default_rng(5)
    rate = rng.gamma(1.0, 1.5, 20_000)
    orders = rng.poisson(rate).astype(float)
    low = 0.6 * rate  # a booster that learnt a slower period
    scale, crossed = calibration.choose_scale(low, orders, seed=0)
    assert scale.kind == calibration.SCALE
    assert scale.params[0] == pytest.approx(orders.sum() / low.sum())
    assert crossed.sum() / orders.sum() == pytest.approx(1.0, abs=0.03)  # cross-fitted
    assert Calibration.from_json(scale.to_json()).apply(low) == pytest.approx(scale.apply(low))
    # Rows of one customer stay in one fold.
    groups = np.repeat(np.arange(10_000), 2)
    _, grouped = calibration.choose_scale(low, orders, seed=0, groups=groups)
    assert grouped.sum() / orders.sum() == pytest.approx(1.0, abs=0.03)
    # Nothing predicted or nothing ordered: no scale; an absurd ratio is bounded.
    assert calibration.fit_scale(np.zeros(3), np.ones(3)).kind == "none"
    assert calibration.fit_scale(np.ones(3), np.zeros(3)).kind == "none"
    assert calibration.fit_scale(np.full(3, 0.01), np.full(3, 9.0)).params == (5.0,)
