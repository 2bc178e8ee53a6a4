"""Pareto/NBD: its hypergeometric closed forms agree with direct numerical integration, it
recovers the parameters of data simulated from it and predicts the simulated future, and a
fit that cannot be trusted says so."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import gammaln

from bench.datasets import cdnow_summary
from ml.training.bgnbd import BOUNDS
from ml.training.paretonbd import ParetoNbd, _log_tail
from tests.unit.customer_base_simulation import (
    assert_predictions_in_range_and_monotone,
    simulate_pareto,
)

TRUE = ParetoNbd(r=0.5, alpha=30.0, s=0.7, beta=200.0)
HORIZON = 90.0
# Both branches of the hypergeometric form (alpha >= beta and alpha < beta), and equality.
MODELS = [
    TRUE,
    ParetoNbd(r=0.55, alpha=74.0, s=0.61, beta=82.0),
    ParetoNbd(r=2.0, alpha=400.0, s=3.0, beta=40.0),
    ParetoNbd(r=0.3, alpha=50.0, s=1.0, beta=50.0),
]
HISTORIES = [(0.0, 0.0, 250.0), (1.0, 30.0, 60.0), (3.0, 100.0, 400.0), (25.0, 390.0, 400.0)]


@pytest.fixture(scope="module")
def simulated():
    return simulate_pareto(TRUE.r, TRUE.alpha, TRUE.s, TRUE.beta, 10_000, HORIZON)


@pytest.fixture(scope="module")
def fit(simulated):
    return ParetoNbd.fit(*simulated.inputs)


def death_and_purchase_integral(model: ParetoNbd, x: float, start: float, end: float) -> float:
    """The integral over [start, end] of (alpha + u)^-(r + x) (beta + u)^-(s + 1), by quad."""
    value, _ = quad(
        lambda u: (model.alpha + u) ** -(model.r + x) * (model.beta + u) ** -(model.s + 1),
        start,
        end,
        epsabs=0,
        epsrel=1e-12,
    )
    return value


@pytest.mark.parametrize("model", MODELS)
def test_likelihood_and_p_alive_match_direct_integration(model):
    r, alpha, s, beta = model.r, model.alpha, model.s, model.beta
    for x, t_x, age in HISTORIES:
        alive = (alpha + age) ** -(r + x) * (beta + age) ** -s
        died = s * death_and_purchase_integral(model, x, t_x, age)
        expected = (
            gammaln(r + x)
            - gammaln(r)
            + r * np.log(alpha)
            + s * np.log(beta)
            + np.log(alive + died)
        )
        args = (np.array([x]), np.array([t_x]), np.array([age]))
        assert model.log_likelihood(*args)[0] == pytest.approx(expected, rel=1e-10)
        assert model.p_alive(*args)[0] == pytest.approx(alive / (alive + died), rel=1e-9)


@pytest.mark.parametrize("model", MODELS)
def test_no_purchase_and_wait_match_direct_integration(model):
    r, alpha, s, beta = model.r, model.alpha, model.s, model.beta
    for x, t_x, age in HISTORIES:
        args = (np.array([x]), np.array([t_x]), np.array([age]))
        alive = model.p_alive(*args)[0]

        def none(days: float, x=x, age=age, alive=alive) -> float:
            # Alive now: no purchase while alive through `days`, or death before the first.
            quiet = ((alpha + age) / (alpha + age + days)) ** (r + x) * (
                (beta + age) / (beta + age + days)
            ) ** s
            scale = s * (alpha + age) ** (r + x) * (beta + age) ** s
            died_first = scale * death_and_purchase_integral(model, x, age, age + days)
            return 1 - alive + alive * (quiet + died_first)

        for days in (30.0, HORIZON):
            assert model.p_no_purchase(*args, days)[0] == pytest.approx(none(days), rel=1e-9)
        restricted_mean, _ = quad(none, 0, HORIZON, epsabs=0, epsrel=1e-11)
        assert model.expected_wait(*args, HORIZON)[0] == pytest.approx(restricted_mean, rel=1e-7)


def tail_by_adaptive_quadrature(p: float, q: float, alpha: float, beta: float, t: float) -> float:
    """log of the integral over [t, inf) of (alpha + u)^-p (beta + u)^-q du, by scipy's quad.

    In l = log((low + t) / (low + u)) the integrand is exp(m l - e log(1 + k e^l)); quad is
    given the points where it bends, so it finds the mass wherever the parameters put it.
    """
    if alpha < beta:
        p, q, alpha, beta = q, p, beta, alpha
    m, k = p + q - 1, (alpha - beta) / (beta + t)
    if k == 0:
        return -m * np.log(beta + t) - np.log(m)
    log_k = np.log(k)
    top = min(np.log(m / (p - m)) - log_k, 0.0) if m < p / (1 + 1 / k) else 0.0
    peak = m * top - p * np.logaddexp(0, top + log_k)
    edges = [-np.inf, *sorted({top, min(-log_k, 0.0)}), 0.0]
    total = sum(
        quad(
            lambda at: np.exp(m * at - p * np.logaddexp(0, at + log_k) - peak),
            a,
            b,
            epsabs=0,
            epsrel=1e-13,
            limit=2000,
        )[0]
        for a, b in itertools.pairwise(edges)
        if b > a
    )
    return -m * np.log(beta + t) + np.log(total) + peak


def test_the_hypergeometric_tail_is_exact_across_the_parameter_box():
    # Every corner of the fit's box (in its unit, the longest history = 1): SciPy's hyp2f1
    # where it is reliable, the quadrature where it is not (z near 1, large parameters).
    rng = np.random.default_rng(5)
    low, high = np.log(BOUNDS[0]), np.log(BOUNDS[1])
    for _ in range(150):
        p, q_minus_1, alpha, beta = np.exp(rng.uniform(low, high, 4))
        t = float(rng.choice([0.0, rng.uniform(0, 1)]))
        ours = _log_tail(np.array([p]), 1 + q_minus_1, alpha, beta, np.array([t]))[0]
        reference = tail_by_adaptive_quadrature(p, 1 + q_minus_1, alpha, beta, t)
        case = (p, q_minus_1, alpha, beta, t)
        assert ours == pytest.approx(reference, rel=1e-10, abs=1e-10), case


def test_fit_recovers_the_generating_parameters(fit):
    fitted, report = fit
    assert report.converged, report.reason
    assert report.customers == 10_000
    assert fitted.r == pytest.approx(TRUE.r, rel=0.1)
    assert fitted.alpha == pytest.approx(TRUE.alpha, rel=0.1)
    # s and beta trade off along a ridge; the mean death rate s / beta is what the data fix.
    assert fitted.s / fitted.beta == pytest.approx(TRUE.s / TRUE.beta, rel=0.15)
    assert fitted.s == pytest.approx(TRUE.s, rel=0.4)


def test_predictions_match_the_simulated_future(simulated, fit):
    inputs = simulated.inputs
    fitted, _ = fit
    for model in (TRUE, fitted):
        expected = model.expected_purchases(*inputs, HORIZON)
        none = model.p_no_purchase(*inputs, HORIZON)
        wait = model.expected_wait(*inputs, HORIZON)
        assert expected.mean() == pytest.approx(simulated.future.mean(), rel=0.05)
        assert none.mean() == pytest.approx((simulated.future == 0).mean(), abs=0.015)
        assert wait.mean() == pytest.approx(simulated.wait.mean(), rel=0.02)
    alive = TRUE.p_alive(*inputs)
    high = alive > np.median(alive)
    assert simulated.future[high].mean() > simulated.future[~high].mean()


def test_predictions_stay_in_range_and_move_the_right_way_with_time(simulated):
    assert_predictions_in_range_and_monotone(TRUE, simulated.inputs)


def test_predictions_stay_finite_at_the_corners_of_the_parameter_box(simulated):
    inputs = simulated.inputs
    low, high = BOUNDS
    for model in (
        ParetoNbd(r=low, alpha=high * 700, s=high, beta=low * 700),
        ParetoNbd(r=high, alpha=low * 700, s=low, beta=high * 700),
        ParetoNbd(r=high, alpha=high * 700, s=high, beta=high * 700),
        ParetoNbd(r=low, alpha=low * 700, s=low, beta=low * 700),
    ):
        assert np.isfinite(model.log_likelihood(*inputs)).all()
        for p in (model.p_alive(*inputs), model.p_no_purchase(*inputs, HORIZON)):
            assert ((p >= 0) & (p <= 1)).all()
        assert (model.expected_purchases(*inputs, HORIZON) >= 0).all()
        wait = model.expected_wait(*inputs, HORIZON)
        assert ((wait >= 0) & (wait <= HORIZON)).all()


def test_a_few_heavy_buyers_among_non_buyers_fit_within_bounds():
    rng = np.random.default_rng(0)
    age = rng.uniform(30, 700, 3000)
    x = np.zeros(3000)
    t_x = np.zeros(3000)
    x[:15], t_x[:15] = 60.0, age[:15] * 0.999
    fitted, report = ParetoNbd.fit(x, t_x, age)
    assert report.converged, report.reason
    for value in (fitted.r, fitted.s):
        assert BOUNDS[0] < value < BOUNDS[1]
    expected = fitted.expected_purchases(x, t_x, age, HORIZON)
    assert np.isfinite(expected).all()
    assert expected[:15] == pytest.approx(x[:15] / age[:15] * HORIZON, rel=0.1)
    assert expected[15:].max() < 0.01


def test_counts_less_dispersed_than_poisson_pin_a_bound_and_are_reported():
    age = np.random.default_rng(0).uniform(100, 700, 500)
    _, report = ParetoNbd.fit(np.round(0.05 * age), age.copy(), age)
    assert not report.converged
    assert report.status.startswith("diverged: r at its upper bound")


def test_no_repeat_purchase_at_all_is_reported_and_predicts_nothing():
    age = np.linspace(10, 500, 100)
    zeros = np.zeros(100)
    fitted, report = ParetoNbd.fit(zeros, zeros, age)
    assert report.status == "diverged: no customer has a repeat purchase"
    assert np.isnan(fitted.expected_purchases(zeros, zeros, age, HORIZON)).all()
    assert np.isnan(fitted.expected_wait(zeros, zeros, age, HORIZON)).all()
    assert np.isnan(fitted.p_no_purchase(zeros, zeros, age, HORIZON)).all()


def test_cdnow_reproduces_the_published_estimates(tmp_path):
    # Fader & Hardie on the CDNOW cohort (2,357 customers, weeks):
    # r = 0.553, alpha = 10.578, s = 0.606, beta = 11.669, log-likelihood -9595.0.
    data = np.loadtxt(io.StringIO(cdnow_summary(tmp_path)), delimiter=",", skiprows=1)
    x, t_x, age = data[:, 1], data[:, 2], data[:, 3]
    fitted, report = ParetoNbd.fit(x, t_x, age)
    assert report.converged
    assert fitted.r == pytest.approx(0.553, rel=0.02)
    assert fitted.alpha == pytest.approx(10.578, rel=0.02)
    # The ridge moves the weakly identified s and beta by 1-2%.
    assert fitted.s == pytest.approx(0.606, rel=0.03)
    assert fitted.beta == pytest.approx(11.669, rel=0.03)
    assert fitted.log_likelihood(x, t_x, age).sum() == pytest.approx(-9595.0, abs=0.1)
