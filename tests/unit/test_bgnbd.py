"""BG/NBD: recovers the parameters of data simulated from it, predicts the simulated future,
and either fits within its bounds or says it did not converge, never a run-away number."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy.special import hyp2f1

from bench.datasets import cdnow_summary
from ml.training.bgnbd import (
    BOUNDS,
    BgNbd,
    Histories,
    _negative_log_likelihood,
    beta_quadrature,
    history_inputs,
)
from tests.unit.customer_base_simulation import (
    assert_predictions_in_range_and_monotone,
    simulate_bgnbd,
)

TRUE = BgNbd(r=0.5, alpha=30.0, a=1.5, b=4.0)
HORIZON = 90.0


@pytest.fixture(scope="module")
def simulated():
    return simulate_bgnbd(TRUE.r, TRUE.alpha, TRUE.a, TRUE.b, 20_000, HORIZON)


@pytest.fixture(scope="module")
def fit(simulated):
    return BgNbd.fit(*simulated.inputs)


def test_fit_recovers_the_generating_parameters(fit):
    fitted, report = fit
    assert report.converged, report.reason
    assert report.status == "converged"
    assert report.customers == 20_000
    assert fitted.r == pytest.approx(TRUE.r, rel=0.1)
    assert fitted.alpha == pytest.approx(TRUE.alpha, rel=0.1)
    assert fitted.a == pytest.approx(TRUE.a, rel=0.2)
    assert fitted.b == pytest.approx(TRUE.b, rel=0.25)


def test_predictions_match_the_simulated_future(simulated, fit):
    inputs = simulated.inputs
    fitted, _ = fit
    for model in (TRUE, fitted):
        expected = model.expected_purchases(*inputs, HORIZON)
        none = model.p_no_purchase(*inputs, HORIZON)
        wait = model.expected_wait(*inputs, HORIZON)
        assert expected.mean() == pytest.approx(simulated.future.mean(), rel=0.05)
        assert none.mean() == pytest.approx((simulated.future == 0).mean(), abs=0.01)
        assert wait.mean() == pytest.approx(simulated.wait.mean(), rel=0.02)
    # Customers the model calls likelier to be alive do buy more.
    alive = TRUE.p_alive(*inputs)
    high = alive > np.median(alive)
    assert simulated.future[high].mean() > simulated.future[~high].mean()


def test_predictions_stay_in_range_and_move_the_right_way_with_time(simulated):
    assert_predictions_in_range_and_monotone(TRUE, simulated.inputs)


def test_no_repeat_purchase_means_alive_and_capped_wait_is_within_the_horizon():
    x = np.array([0.0, 3.0])
    t_x = np.array([0.0, 10.0])
    age = np.array([200.0, 200.0])
    assert TRUE.p_alive(x, t_x, age)[0] == 1.0  # dropout only follows a purchase
    wait = TRUE.expected_wait(x, t_x, age, HORIZON)
    assert ((wait > 0) & (wait <= HORIZON)).all()


def test_the_likelihood_gradient_is_its_derivative(simulated):
    data = Histories.of(*simulated.inputs, max_rows=2000)
    theta = np.log([0.4, 25.0, 1.2, 3.0])
    _, gradient = _negative_log_likelihood(theta, data)
    step = 1e-6
    numeric = [
        (
            _negative_log_likelihood(theta + step * unit, data)[0]
            - _negative_log_likelihood(theta - step * unit, data)[0]
        )
        / (2 * step)
        for unit in np.eye(4)
    ]
    assert gradient == pytest.approx(numeric, abs=1e-7)


def test_expected_purchases_match_the_closed_form_where_that_is_reliable():
    # Fader, Hardie & Lee (2005), eq. 10: SciPy's hyp2f1 is accurate for moderate parameters.
    x = np.array([0.0, 1.0, 4.0, 12.0])
    t_x = np.array([0.0, 50.0, 250.0, 290.0])
    age = np.array([60.0, 100.0, 300.0, 300.0])
    for model in (TRUE, BgNbd(r=0.24, alpha=31.0, a=0.79, b=2.4)):
        r, alpha, a, b = model.r, model.alpha, model.a, model.b
        z = HORIZON / (alpha + age + HORIZON)
        closed = (
            (a + b + x - 1)
            / (a - 1)
            * (
                1
                - ((alpha + age) / (alpha + age + HORIZON)) ** (r + x)
                * hyp2f1(r + x, b + x, a + b + x - 1, z)
            )
            * model.p_alive(x, t_x, age)
        )
        assert model.expected_purchases(x, t_x, age, HORIZON) == pytest.approx(closed, rel=1e-9)


def test_expected_purchases_stay_finite_where_the_closed_form_breaks_down():
    x = np.array([0.0, 2.0, 60.0])
    t_x = np.array([0.0, 100.0, 399.0])
    age = np.array([10.0, 400.0, 400.0])
    # a = 1 divides by zero in the closed form; huge b makes its hyp2f1 overflow or NaN.
    for model in (
        BgNbd(r=0.4, alpha=70.0, a=1.0, b=3.0),
        BgNbd(r=0.4, alpha=70.0, a=0.1, b=1e4),
        BgNbd(r=200.0, alpha=30.0, a=5000.0, b=1e4),
    ):
        expected = model.expected_purchases(x, t_x, age, HORIZON)
        bound = model.p_alive(x, t_x, age) * (model.r + x) * HORIZON / (model.alpha + age)
        assert np.isfinite(expected).all()
        assert ((expected > 0) & (expected <= bound * (1 + 1e-12))).all()
    # With dropout almost impossible, BG/NBD is NBD: alive customers buy at their mean rate.
    nbd = BgNbd(r=0.4, alpha=70.0, a=0.1, b=1e4)
    assert nbd.expected_purchases(x, t_x, age, HORIZON) == pytest.approx(
        nbd.p_alive(x, t_x, age) * (nbd.r + x) * HORIZON / (nbd.alpha + age), rel=1e-3
    )


@pytest.mark.parametrize(("a", "b"), [(0.3, 0.7), (2.0, 5.0), (0.5, 1e4 + 60), (5000.0, 10.0)])
def test_beta_quadrature_has_the_beta_moments(a, b):
    nodes, weights = beta_quadrature(a, b)
    assert weights.sum() == pytest.approx(1.0, rel=1e-12)
    assert ((nodes > 0) & (nodes < 1)).all()
    mean = a / (a + b)
    assert weights @ nodes == pytest.approx(mean, rel=1e-9)
    assert weights @ nodes**2 == pytest.approx(mean * (a + 1) / (a + b + 1), rel=1e-9)


def test_a_data_set_that_made_the_old_fit_run_away_now_fits_within_bounds():
    # Nearly everyone without a repeat purchase, a few heavy buyers who bought just now: the
    # unbounded Nelder-Mead fit went to b = 2e246 and predicted counts of 3e232.
    rng = np.random.default_rng(0)
    age = rng.uniform(30, 700, 3000)
    x = np.zeros(3000)
    t_x = np.zeros(3000)
    x[:15], t_x[:15] = 60.0, age[:15] * 0.999
    fitted, report = BgNbd.fit(x, t_x, age)
    assert report.converged, report.reason
    for value in (fitted.r, fitted.a, fitted.b):
        assert BOUNDS[0] < value < BOUNDS[1]
    expected = fitted.expected_purchases(x, t_x, age, HORIZON)
    none = fitted.p_no_purchase(x, t_x, age, HORIZON)
    assert np.isfinite(expected).all()
    assert ((none >= 0) & (none <= 1)).all()
    # The heavy buyers keep buying at about their own rate; the others hardly at all.
    own_rate = x[:15] / age[:15] * HORIZON
    assert expected[:15] == pytest.approx(own_rate, rel=0.1)
    assert expected[15:].max() < 0.01


def test_counts_less_dispersed_than_poisson_pin_a_bound_and_are_reported():
    # Everyone buying at exactly the same rate: no Gamma mixture fits, r runs to its bound.
    age = np.random.default_rng(0).uniform(100, 700, 2000)
    _, report = BgNbd.fit(np.round(0.05 * age), age.copy(), age)
    assert not report.converged
    assert report.status.startswith("diverged: r at its upper bound")


def test_no_repeat_purchase_at_all_is_reported_and_predicts_nothing():
    age = np.linspace(10, 500, 100)
    fitted, report = BgNbd.fit(np.zeros(100), np.zeros(100), age)
    assert not report.converged
    assert report.reason == "no customer has a repeat purchase"
    assert np.isnan(fitted.r)
    for prediction in (
        fitted.p_alive(np.zeros(100), np.zeros(100), age),
        fitted.p_no_purchase(np.zeros(100), np.zeros(100), age, HORIZON),
        fitted.expected_purchases(np.zeros(100), np.zeros(100), age, HORIZON),
        fitted.expected_wait(np.zeros(100), np.zeros(100), age, HORIZON),
    ):
        assert np.isnan(prediction).all()


def test_inputs_from_features():
    x, t_x, age = history_inputs(
        np.array([1.0, 4.0, 0.0]), np.array([100.0, 300.0, np.nan]), np.array([100.0, 20.0, np.nan])
    )
    assert x.tolist() == [0.0, 3.0, 0.0]
    assert t_x.tolist() == [0.0, 280.0, 0.0]
    assert age.tolist() == [100.0, 300.0, 0.0]


def test_cdnow_reproduces_the_published_estimates(tmp_path):
    # Fader, Hardie & Lee (2005) on the CDNOW cohort (2,357 customers, weeks):
    # r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, log-likelihood -9582.4.
    data = np.loadtxt(io.StringIO(cdnow_summary(tmp_path)), delimiter=",", skiprows=1)
    x, t_x, age = data[:, 1], data[:, 2], data[:, 3]
    fitted, report = BgNbd.fit(x, t_x, age)
    assert report.converged
    assert fitted.r == pytest.approx(0.243, rel=0.02)
    assert fitted.alpha == pytest.approx(4.414, rel=0.02)
    assert fitted.a == pytest.approx(0.793, rel=0.02)
    assert fitted.b == pytest.approx(2.426, rel=0.02)
    assert fitted.log_likelihood(x, t_x, age).sum() == pytest.approx(-9582.4, abs=0.1)
