"""BG/NBD: recovers the parameters of data simulated from it, and predicts the simulated future."""

from __future__ import annotations

import numpy as np
import pytest

from ml.training.bgnbd import BgNbd, history_inputs

TRUE = BgNbd(r=0.5, alpha=30.0, a=1.5, b=4.0)
HORIZON = 90.0


def simulate(model: BgNbd, n: int, seed: int = 1):
    """Purchase histories over [0, T) and the horizon after T, drawn from the model itself."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(model.r, 1 / model.alpha, n)
    dropout = rng.beta(model.a, model.b, n)
    age = rng.uniform(100, 700, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    future = np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / rate[i])
            if t > age[i] + HORIZON:
                break
            if t > age[i]:
                future[i] += 1
            else:
                x[i] += 1
                t_x[i] = t
            if rng.random() < dropout[i]:
                break
    return x, t_x, age, future


@pytest.fixture(scope="module")
def simulated():
    return simulate(TRUE, 8000)


def test_fit_recovers_the_generating_parameters(simulated):
    x, t_x, age, _ = simulated
    fitted = BgNbd.fit(x, t_x, age)
    assert fitted.r == pytest.approx(TRUE.r, rel=0.15)
    assert fitted.alpha == pytest.approx(TRUE.alpha, rel=0.25)
    assert fitted.a == pytest.approx(TRUE.a, rel=0.35)
    assert fitted.b == pytest.approx(TRUE.b, rel=0.35)


def test_predictions_match_the_simulated_future(simulated):
    x, t_x, age, future = simulated
    expected = TRUE.expected_purchases(x, t_x, age, HORIZON)
    none = TRUE.p_no_purchase(x, t_x, age, HORIZON)
    assert expected.mean() == pytest.approx(future.mean(), rel=0.06)
    assert none.mean() == pytest.approx((future == 0).mean(), abs=0.015)
    # Customers the model calls likelier to be alive do buy more.
    alive = TRUE.p_alive(x, t_x, age)
    high = alive > np.median(alive)
    assert future[high].mean() > future[~high].mean()


def test_no_repeat_purchase_means_alive_and_capped_wait_is_within_the_horizon():
    x = np.array([0.0, 3.0])
    t_x = np.array([0.0, 10.0])
    age = np.array([200.0, 200.0])
    assert TRUE.p_alive(x, t_x, age)[0] == 1.0  # dropout only follows a purchase
    wait = TRUE.expected_wait(x, t_x, age, HORIZON)
    assert ((wait > 0) & (wait <= HORIZON)).all()


def test_inputs_from_features():
    x, t_x, age = history_inputs(
        np.array([1.0, 4.0, 0.0]), np.array([100.0, 300.0, np.nan]), np.array([100.0, 20.0, np.nan])
    )
    assert x.tolist() == [0.0, 3.0, 0.0]
    assert t_x.tolist() == [0.0, 280.0, 0.0]
    assert age.tolist() == [100.0, 300.0, 0.0]
