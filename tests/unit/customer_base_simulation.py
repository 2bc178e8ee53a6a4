"""Purchase histories drawn from the BG/NBD and Pareto/NBD processes themselves (seeded).

Each customer makes a first purchase at time 0 and is observed until their age T; the
simulators return the model inputs (x repeat purchases, t_x the last one, T) and what
happens in the ``horizon`` after T: the number of purchases and the wait until the first,
capped at the horizon. Vectorised: a customer's process is summarised by a few draws rather
than walked purchase by purchase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Simulated:
    x: np.ndarray
    t_x: np.ndarray
    age: np.ndarray
    future: np.ndarray  # purchases in (T, T + horizon]
    wait: np.ndarray  # days from T to the next purchase, capped at the horizon

    @property
    def inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x, self.t_x, self.age


def simulate_bgnbd(
    r: float, alpha: float, a: float, b: float, n: int, horizon: float, seed: int = 1
) -> Simulated:
    """BG/NBD: Poisson purchases at rate lambda; after each, dropout with probability p."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(r, 1 / alpha, n)
    dropout = rng.beta(a, b, n)
    age = rng.uniform(100, 700, n)
    last_purchase = rng.geometric(dropout)  # the repeat purchase after which they drop out
    arrivals = rng.poisson(rate * age)  # purchases in (0, T] had they never dropped out
    x = np.minimum(last_purchase, arrivals)
    # The x-th of `arrivals` uniform points on (0, T) is T times a Beta(x, arrivals - x + 1).
    t_x = np.where(x > 0, age * rng.beta(np.maximum(x, 1), np.maximum(arrivals - x + 1, 1)), 0.0)
    alive = last_purchase > arrivals
    # Memoryless: an alive customer's next purchases come at the same rate, and they stop
    # after the (last_purchase - arrivals)-th of them.
    future = np.where(alive, np.minimum(rng.poisson(rate * horizon), last_purchase - arrivals), 0)
    first = rng.exponential(1 / rate)
    wait = np.where(alive, np.minimum(first, horizon), horizon)
    return Simulated(x.astype(float), t_x, age, future.astype(float), wait)


def simulate_pareto(
    r: float, alpha: float, s: float, beta: float, n: int, horizon: float, seed: int = 1
) -> Simulated:
    """Pareto/NBD: Poisson purchases at rate lambda until an exponential lifetime ends."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(r, 1 / alpha, n)
    death = rng.gamma(s, 1 / beta, n)
    lifetime = rng.exponential(1 / death)
    age = rng.uniform(100, 700, n)
    active = np.minimum(lifetime, age)
    x = rng.poisson(rate * active)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1.0), 0.0)  # max of x uniforms
    remaining = np.clip(lifetime - age, 0.0, horizon)
    future = rng.poisson(rate * remaining)
    first = rng.exponential(1 / rate)
    wait = np.where(first < remaining, first, horizon)
    return Simulated(x.astype(float), t_x, age, future.astype(float), wait)


def assert_predictions_in_range_and_monotone(model, inputs) -> None:
    """BG/NBD or Pareto/NBD predictions over growing windows: valid ranges, P(none) down,
    expected orders and the capped wait up."""
    x, _, age = inputs
    days = [7.0, 30.0, 90.0, 365.0]
    none = [model.p_no_purchase(*inputs, d) for d in days]
    expected = [model.expected_purchases(*inputs, d) for d in days]
    wait = [model.expected_wait(*inputs, d) for d in days]
    for d, p, e, w in zip(days, none, expected, wait, strict=True):
        assert ((p >= 0) & (p <= 1)).all()
        # Never more than an alive customer at their posterior mean rate would buy.
        assert ((e >= 0) & (e <= (model.r + x) * d / (model.alpha + age) + 1e-12)).all()
        assert ((w >= 0) & (w <= d)).all()
    for i in range(len(days) - 1):
        assert (none[i + 1] <= none[i] + 1e-12).all()
        assert (expected[i + 1] >= expected[i] - 1e-12).all()
        assert (wait[i + 1] >= wait[i] - 1e-9).all()
    alive = model.p_alive(*inputs)
    assert ((alive >= 0) & (alive <= 1)).all()
