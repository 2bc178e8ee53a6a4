"""The BG/NBD customer-base model (Fader, Hardie & Lee, 2005), as a benchmark for ours.

While alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after
each purchase they drop out with probability p ~ Beta(a, b). Fitted by maximum likelihood on
each customer's repeat purchases ``x``, the time of the last one ``t_x`` and the age ``T``
(days since the first purchase), it predicts from transaction history alone: the standard a
data scientist holds a churn or purchase-count model to.

Why our own code rather than a package: ``btyd`` 0.1b3 (2022, archived, development moved to
pymc-marketing) requires Python < 3.10 and does not install here, and ``lifetimes`` 0.11.3
(2020, unmaintained, pulling in autograd and dill) is the code ``btyd`` forked: it fits without
bounds, raises rather than reporting when the optimiser fails, and evaluates predictions
through the untransformed 2F1 closed forms, which give NaN or overflow exactly where a flat
likelihood lets the parameters run (b = 1.9e204 on CDNOW became a count error of 1.9e39). The
few hundred lines here bound and check the fit, say when it did not converge
(:class:`FitReport`) and predict from forms that stay finite; lifetimes remains the reference,
as an opt-in test reproduces the published CDNOW estimates from the summary data it ships.

The fitting machinery (time scaling, bounded multi-start L-BFGS-B, the convergence checks) is
shared with the Pareto/NBD model in :mod:`ml.training.paretonbd`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.linalg import eigh_tridiagonal
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln

# Every parameter is fitted as its logarithm within [1e-4, 1e4], in a time unit where the
# longest history is 1. Why these bounds: a shape (r, a, b, s) of 1e4 is a Gamma or Beta
# with a coefficient of variation of 1% (no heterogeneity left to model), and 1e-4 puts
# nearly all mass at zero (nobody buys / nobody drops out); a scale (alpha, beta) of 1e4
# means mean purchase or death rates of shape / 1e4 per longest history (nothing to see in
# the data), 1e-4 a thousand times more than one per day over a year-long history. Outside,
# the likelihood is flat to many digits, which is exactly
# where an unbounded optimiser wanders off (b = 1.9e204 on CDNOW) and the closed-form
# predictions stop being computable. A fit that ends on a bound is reported as not converged.
BOUNDS = (1e-4, 1e4)
_LOG_BOUNDS = (float(np.log(BOUNDS[0])), float(np.log(BOUNDS[1])))
# A weak ridge on the log-parameters (added to the mean negative log-likelihood per
# customer), like lifetimes' penalizer_coef: on CDNOW it moves the BG/NBD estimates by under
# 0.3% and Pareto/NBD's weakly identified s and beta by 1-2% (the log-likelihood by < 0.01
# in 9,600), but it gives a flat direction a unique minimum inside the bounds.
PENALTY = 1e-5
# The starts run on a seeded sample of this many customers; the best is refined on all.
PILOT_ROWS = 10_000
# A fit stopped by a failed line search still counts when the projected gradient of the
# mean loss is this small (the last digits of the loss are noise at that point).
GRADIENT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class FitReport:
    """Whether a maximum-likelihood fit can be trusted, and why not when it cannot."""

    converged: bool
    reason: str
    log_likelihood: float  # mean per customer, in the fit's time unit (the longest history)
    customers: int

    @property
    def status(self) -> str:
        """``converged`` or ``diverged: <why>``, as a comparison table should show it."""
        return "converged" if self.converged else f"diverged: {self.reason}"


@dataclass(frozen=True)
class Histories:
    """Repeat purchases ``x``, time of the last ``t_x`` and age ``T``, one row per customer."""

    x: np.ndarray
    t_x: np.ndarray
    age: np.ndarray

    @classmethod
    def of(
        cls, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, *, max_rows: int, seed: int = 0
    ) -> Histories:
        """Checked float arrays, shuffled with ``seed`` and cut to ``max_rows`` customers.

        The shuffle lets the pilot fits take a prefix as their random sample.
        """
        x, t_x, age = (np.asarray(v, dtype=float) for v in (x, t_x, age))
        if not (len(x) == len(t_x) == len(age)):
            raise ValueError("x, t_x and age must have the same length")
        if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(age).all()):
            raise ValueError("histories must be finite (see history_inputs)")
        if (x < 0).any() or (age < 0).any():
            raise ValueError("repeat purchases and ages cannot be negative")
        order = np.random.default_rng(seed).permutation(len(x))[:max_rows]
        age = age[order]
        t_x = np.clip(t_x[order], 0.0, age)
        return cls(x=x[order], t_x=t_x, age=age)

    def __len__(self) -> int:
        return len(self.x)

    def head(self, n: int) -> Histories:
        return Histories(self.x[:n], self.t_x[:n], self.age[:n])

    def scaled(self, factor: float) -> Histories:
        return Histories(self.x, self.t_x * factor, self.age * factor)


Objective = Callable[[np.ndarray, Histories], tuple[float, np.ndarray]]


def fit_log_params(
    objective: Objective,
    histories: Histories,
    starts: Sequence[Sequence[float]],
    names: Sequence[str],
) -> tuple[np.ndarray, FitReport]:
    """Bounded, ridge-penalised maximum likelihood in log-parameter space, with checks.

    ``objective(log_params, histories)`` is the mean negative log-likelihood per customer and
    its gradient; ``histories`` are in the fit's time unit. Every start runs on a pilot sample
    of :data:`PILOT_ROWS` customers, the best is refined on all of them. Returns the fitted
    parameters (not their logarithms) and the report.
    """
    unusable = _degenerate(histories)
    if unusable:
        nothing = np.full(len(names), np.nan)
        return nothing, FitReport(False, unusable, float("nan"), len(histories))
    low, high = _LOG_BOUNDS
    bounds = [(low, high)] * len(names)

    def penalised(theta: np.ndarray, data: Histories) -> tuple[float, np.ndarray]:
        value, gradient = objective(theta, data)
        if not (np.isfinite(value) and np.isfinite(gradient).all()):
            # Far from anything plausible; a large finite value makes the line search back off.
            return 1e10, np.zeros_like(theta)
        return value + PENALTY * float(theta @ theta), gradient + 2 * PENALTY * theta

    def run(start: np.ndarray, data: Histories):  # noqa: ANN202 (scipy's OptimizeResult)
        return minimize(
            penalised,
            np.clip(start, low, high),
            args=(data,),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 1000},
        )

    pilot = histories.head(PILOT_ROWS)
    results = [run(np.asarray(start, dtype=float), pilot) for start in starts]
    best = min(results, key=lambda result: result.fun if np.isfinite(result.fun) else np.inf)
    if len(histories) > len(pilot):
        best = run(best.x, histories)
    theta = np.asarray(best.x, dtype=float)
    loss, gradient = objective(theta, histories)
    report = FitReport(
        converged=True,
        reason="",
        log_likelihood=-float(loss),
        customers=len(histories),
    )
    reason = _divergence(theta, loss, gradient, best, names)
    if reason:
        report = FitReport(False, reason, report.log_likelihood, report.customers)
    return np.exp(theta), report


def _degenerate(histories: Histories) -> str:
    """Why no fit can mean anything on ``histories``, or ``""``.

    Without a single repeat purchase the likelihood only grows as the purchase rate goes
    to zero: the ridge, not the data, would decide where the fit stops.
    """
    if len(histories) == 0:
        return "no customers to fit on"
    if not (histories.age > 0).any():
        return "no customer has any history (every age is 0)"
    if not (histories.x > 0).any():
        return "no customer has a repeat purchase"
    return ""


def _divergence(
    theta: np.ndarray,
    loss: float,
    gradient: np.ndarray,
    result: object,
    names: Sequence[str],
) -> str:
    """Why the fit at ``theta`` cannot be used, or ``""`` when it can."""
    if not (np.isfinite(loss) and np.isfinite(theta).all()):
        return "the log-likelihood is not finite at the optimum"
    low, high = _LOG_BOUNDS
    pinned = []
    for name, value in zip(names, theta, strict=True):
        if value <= low + 1e-3:
            pinned.append(f"{name} at its lower bound {BOUNDS[0]:g}")
        elif value >= high - 1e-3:
            pinned.append(f"{name} at its upper bound {BOUNDS[1]:g}")
    if pinned:
        # The likelihood still improves towards a limit the model cannot represent (e.g.
        # purchase counts less dispersed than Poisson): the estimate, and so every
        # prediction, would be our bound's rather than the data's.
        return ", ".join(pinned) + ": the likelihood still improves beyond it"
    if not getattr(result, "success", False):
        total = gradient + 2 * PENALTY * theta
        if np.max(np.abs(total)) > GRADIENT_TOLERANCE:
            message = str(getattr(result, "message", "stopped"))
            return f"optimizer stopped ({message}) with gradient {np.max(np.abs(total)):.2g}"
    return ""


def time_scale(age: np.ndarray) -> float:
    """Factor turning days into the fit's unit, in which the longest history is 1."""
    longest = float(np.max(age)) if len(age) else 0.0
    return 1.0 / longest if longest > 0 else 1.0


def scaled_sample(
    x: np.ndarray, t_x: np.ndarray, age: np.ndarray, *, max_rows: int, seed: int
) -> tuple[Histories, float, float]:
    """What a customer-base fit starts from: a seeded sample of the histories in the fit's
    time unit, that unit's factor (:func:`time_scale`), and the repeat purchases per unit of
    age over everyone (where the rate parameters' starting points are put)."""
    histories = Histories.of(x, t_x, age, max_rows=max_rows, seed=seed)
    scale = time_scale(histories.age)
    scaled = histories.scaled(scale)
    rate = max(float(scaled.x.sum() / max(scaled.age.sum(), 1e-12)), 1e-3)
    return scaled, scale, rate


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters (time unit: days)."""

    r: float
    alpha: float
    a: float
    b: float

    @property
    def usable(self) -> bool:
        """Whether the parameters are numbers at all (a degenerate fit leaves them NaN)."""
        return usable_parameters(self.r, self.alpha, self.a, self.b)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        t_x: np.ndarray,
        age: np.ndarray,
        *,
        max_rows: int = 100_000,
        seed: int = 0,
    ) -> tuple[BgNbd, FitReport]:
        """Maximum-likelihood fit on a seeded sample of at most ``max_rows`` customers.

        Always returns the best parameters found; use them only if ``report.converged``.
        """
        scaled, scale, rate = scaled_sample(x, t_x, age, max_rows=max_rows, seed=seed)
        starts = [
            np.log([1.0, 1.0 / rate, 1.0, 1.0]),
            np.log([0.25, 0.25 / rate, 0.8, 2.5]),
            np.log([3.0, 3.0 / rate, 3.0, 10.0]),
        ]
        (r, alpha, a, b), report = fit_log_params(
            _negative_log_likelihood, scaled, starts, ("r", "alpha", "a", "b")
        )
        return cls(r=float(r), alpha=float(alpha / scale), a=float(a), b=float(b)), report

    def log_likelihood(self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Each customer's log-likelihood of their history (time unit: days)."""
        theta = np.log([self.r, self.alpha, self.a, self.b])
        return _log_likelihood_and_gradient(theta, Histories(x, t_x, age))[0]

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Probability that each customer has not dropped out by now."""
        if not self.usable:
            return unusable(x)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            log_odds = np.where(
                x > 0,
                np.log(a)
                - np.log(b + np.maximum(x, 1) - 1)
                + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x)),
                -np.inf,
            )
        return valid(expit(-log_odds), 0.0, 1.0)

    def p_no_purchase(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, days: float
    ) -> np.ndarray:
        """Probability of no purchase in the next ``days``.

        Dropout only follows a purchase, so a customer alive now who buys nothing stays alive:
        P = (1 - P(alive)) + P(alive) * ((alpha + T) / (alpha + T + t)) ** (r + x).
        """
        if not self.usable:
            return unusable(x)
        alive = self.p_alive(x, t_x, age)
        still = np.exp(-(self.r + x) * np.log1p(days / (self.alpha + age)))
        return valid((1.0 - alive) + alive * still, 0.0, 1.0)

    def expected_purchases(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, days: float
    ) -> np.ndarray:
        """Expected number of purchases in the next ``days`` (conditional expectation).

        Given alive now, lambda ~ Gamma(r + x, alpha + T) and p ~ Beta(a, b + x) independently,
        and a customer with (lambda, p) buys (1 - exp(-lambda p t)) / p times in t on average,
        so E = P(alive) * E_p[(1 - ((alpha + T) / (alpha + T + p t)) ** (r + x)) / p].
        The expectation over p is Gauss-Jacobi quadrature: unlike Fader, Hardie & Lee's
        closed form with 2F1(r + x, b + x; a + b + x - 1; z), which SciPy evaluates to NaN or
        nonsense for large b or a near 1, it is a positive weighted mean of a bounded
        function, so it stays finite and within [0, (r + x) t / (alpha + T)].
        """
        if not self.usable:
            return unusable(x)
        x = np.asarray(x, dtype=float)
        shape = self.r + x
        scale = self.alpha + np.asarray(age, dtype=float)
        values, index = np.unique(x, return_inverse=True)
        nodes = np.empty((len(values), _NODES))
        weights = np.empty((len(values), _NODES))
        for i, value in enumerate(values):
            nodes[i], weights[i] = beta_quadrature(self.a, self.b + float(value))
        p = nodes[index]
        bought = -np.expm1(-shape[:, None] * np.log1p(p * days / scale[:, None])) / p
        expected = np.sum(weights[index] * bought, axis=1)
        return valid(self.p_alive(x, t_x, age) * expected, 0.0, np.inf)

    def expected_wait(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, horizon: float
    ) -> np.ndarray:
        """Expected days to the next purchase, capped at ``horizon`` (restricted mean).

        A customer who dropped out waits the whole horizon; one alive waits min(W, H) with
        P(W > u) = ((alpha + T) / (alpha + T + u)) ** (r + x), integrated in closed form.
        """
        if not self.usable:
            return unusable(x)
        alive = self.p_alive(x, t_x, age)
        scale, shape = self.alpha + age, self.r + x
        span = np.log1p(horizon / scale)
        with np.errstate(all="ignore"):
            near_one = np.abs(shape - 1) < 1e-8
            integral = np.where(
                near_one, scale * span, scale * -np.expm1(-(shape - 1) * span) / (shape - 1)
            )
        waited = (1 - alive) * horizon + alive * np.minimum(integral, horizon)
        return valid(waited, 0.0, horizon)


def usable_parameters(*params: float) -> bool:
    """Whether every parameter is a positive number."""
    return all(np.isfinite(v) and v > 0 for v in params)


def unusable(x: np.ndarray) -> np.ndarray:
    """The prediction of a model without parameters: NaN for every customer."""
    return np.full(np.shape(x), np.nan)


def valid(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` clipped to [low, high]; NaN where they are not finite numbers at all."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values), np.clip(values, low, high), np.nan)


_NODES = 32


@lru_cache(maxsize=4096)
def beta_quadrature(a: float, b: float, n: int = _NODES) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Jacobi nodes in (0, 1) and weights summing to 1 for p ~ Beta(a, b).

    Golub-Welsch on the recurrence of the Jacobi polynomials for the weight
    (1 - u)^(b - 1) (1 + u)^(a - 1) on [-1, 1], with p = (1 + u) / 2. Written out because
    SciPy's ``roots_jacobi`` overflows its total weight (2^(a + b)) for b in the thousands;
    here the weights are the squared first components of the eigenvectors, already
    normalised.
    """
    alpha, beta = b - 1.0, a - 1.0
    k = np.arange(n, dtype=float)
    total = 2 * k + alpha + beta
    with np.errstate(divide="ignore", invalid="ignore"):
        diagonal = (beta**2 - alpha**2) / (total * (total + 2))
    diagonal[0] = (beta - alpha) / (alpha + beta + 2)
    m = k[1:]
    total = 2 * m + alpha + beta
    off = 4 * m * (m + alpha) * (m + beta) / (total**2 * (total + 1))
    # (m + alpha + beta) / (total - 1) is 1 at m = 1, where both may vanish.
    off *= np.where(m == 1, 1.0, (m + alpha + beta) / np.where(m == 1, 1.0, total - 1))
    roots, vectors = eigh_tridiagonal(diagonal, np.sqrt(off))
    nodes = np.clip((1 + roots) / 2, 1e-300, 1.0)
    weights = vectors[0] ** 2
    return nodes, weights / weights.sum()


def _log_likelihood_and_gradient(
    theta: np.ndarray, data: Histories
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient in the log-parameters (shape (4, n)).

    L = B(a, b + x) / B(a, b) * Gamma(r + x) alpha^r / Gamma(r)
        * [(alpha + T)^-(r + x) + [x > 0] a / (b + x - 1) (alpha + t_x)^-(r + x)],
    the bracket summed in log space (the second term is a dropout after the last purchase).
    """
    r, alpha, a, b = np.exp(theta)
    x, t_x, age = data.x, data.t_x, data.age
    bought = x > 0
    survived = -(r + x) * np.log(alpha + age)
    with np.errstate(divide="ignore"):
        dropped = np.where(
            bought,
            np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    bracket = np.logaddexp(survived, dropped)
    log_l = (
        gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b) + bracket
    )
    share = np.exp(dropped - bracket)  # weight of the dropout term in the bracket
    d_r = (
        digamma(r + x)
        - digamma(r)
        + np.log(alpha)
        - (1 - share) * np.log(alpha + age)
        - share * np.log(alpha + t_x)
    )
    d_alpha = r / alpha - (r + x) * ((1 - share) / (alpha + age) + share / (alpha + t_x))
    d_a = digamma(a + b) - digamma(a + b + x) + share / a
    d_b = (
        digamma(b + x)
        - digamma(a + b + x)
        - digamma(b)
        + digamma(a + b)
        - share / (b + np.maximum(x, 1) - 1)
    )
    # Chain rule: d/d log(theta) = theta * d/d theta.
    gradient = np.stack([r * d_r, alpha * d_alpha, a * d_a, b * d_b])
    return log_l, gradient


def _negative_log_likelihood(theta: np.ndarray, data: Histories) -> tuple[float, np.ndarray]:
    log_l, gradient = _log_likelihood_and_gradient(theta, data)
    return -float(np.mean(log_l)), -gradient.mean(axis=1)


def history_inputs(
    orders_lifetime: np.ndarray, days_since_first: np.ndarray, days_since_last: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD inputs from the customer features: repeat purchases, t_x and T (days)."""
    x = np.maximum(orders_lifetime - 1, 0)
    age = np.nan_to_num(days_since_first, nan=0.0)
    t_x = np.maximum(age - np.nan_to_num(days_since_last, nan=0.0), 0.0)
    return x, t_x, age
