"""The BG/NBD customer-base model (Fader, Hardie & Lee, 2005), as a benchmark for ours.

While alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after
each purchase they drop out with probability p ~ Beta(a, b). Fitted by maximum likelihood on
each customer's repeat purchases ``x``, the time of the last one ``t_x`` and the age ``T``
(days since the first purchase), it predicts from transaction history alone: the standard a
data scientist holds a churn or purchase-count model to. Written out here (NumPy, SciPy)
rather than taken from a package, because the maintained ones pin old NumPy/pandas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters (time unit: days)."""

    r: float
    alpha: float
    a: float
    b: float

    @classmethod
    def fit(
        cls, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, *, max_rows: int = 100_000
    ) -> BgNbd:
        """Maximum-likelihood fit; a seeded sample of ``max_rows`` customers bounds the time."""
        if len(x) > max_rows:
            pick = np.random.default_rng(0).choice(len(x), size=max_rows, replace=False)
            x, t_x, age = x[pick], t_x[pick], age[pick]

        def loss(log_params: np.ndarray) -> float:
            return -float(np.mean(_log_likelihood(np.exp(log_params), x, t_x, age)))

        start = np.log([1.0, max(float(np.mean(age)), 1.0) / 10, 1.0, 3.0])
        result = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000})
        r, alpha, a, b = np.exp(result.x)
        return cls(r=float(r), alpha=float(alpha), a=float(a), b=float(b))

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Probability that each customer has not dropped out by now."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.exp((r + x) * (np.log(alpha + age) - np.log(alpha + t_x)))
            odds = np.where(x > 0, a / (b + x - 1) * ratio, 0.0)
        return 1.0 / (1.0 + odds)

    def p_no_purchase(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, days: float
    ) -> np.ndarray:
        """Probability of no purchase in the next ``days``.

        Dropout only follows a purchase, so a customer alive now who buys nothing stays alive:
        P = (1 - P(alive)) + P(alive) * ((alpha + T) / (alpha + T + t)) ** (r + x).
        """
        alive = self.p_alive(x, t_x, age)
        still = ((self.alpha + age) / (self.alpha + age + days)) ** (self.r + x)
        return (1.0 - alive) + alive * still

    def expected_purchases(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, days: float
    ) -> np.ndarray:
        """Expected number of purchases in the next ``days`` (conditional expectation)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        s = r + x
        with np.errstate(all="ignore"):
            z = days / (alpha + age + days)
            head = (a + b + x - 1) / (a - 1)
            tail = 1 - ((alpha + age) / (alpha + age + days)) ** s * hyp2f1(
                s, b + x, a + b + x - 1, z
            )
            odds = np.where(x > 0, a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** s, 0.0)
            expected = head * tail / (1 + odds)
        # Where the closed form is unusable (a <= 1, hypergeometric overflow), fall back to the
        # rate of a customer who stays alive through the window: P(alive) * E[lambda] * t.
        simple = self.p_alive(x, t_x, age) * s / (alpha + age) * days
        return np.where(np.isfinite(expected) & (expected >= 0), expected, simple)

    def expected_wait(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, horizon: float
    ) -> np.ndarray:
        """Expected days to the next purchase, capped at ``horizon`` (restricted mean)."""
        alive = self.p_alive(x, t_x, age)
        c, s = self.alpha + age, self.r + x
        with np.errstate(all="ignore"):
            integral = np.where(
                np.abs(s - 1) > 1e-9,
                c / (s - 1) * (1 - (c / (c + horizon)) ** (s - 1)),
                c * np.log1p(horizon / c),
            )
        return (1 - alive) * horizon + alive * np.minimum(integral, horizon)


def _log_likelihood(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, age: np.ndarray
) -> np.ndarray:
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    survived = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = np.where(
            x > 0,
            betaln(a + 1, np.maximum(b + x - 1, 1e-12))
            - betaln(a, b)
            - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return common + np.logaddexp(survived, dropped)


def history_inputs(
    orders_lifetime: np.ndarray, days_since_first: np.ndarray, days_since_last: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD inputs from the customer features: repeat purchases, t_x and T (days)."""
    x = np.maximum(orders_lifetime - 1, 0)
    age = np.nan_to_num(days_since_first, nan=0.0)
    t_x = np.maximum(age - np.nan_to_num(days_since_last, nan=0.0), 0.0)
    return x, t_x, age
