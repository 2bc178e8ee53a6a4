"""The Pareto/NBD customer-base model (Schmittlein, Morrison & Colombo, 1987).

While alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); their
lifetime is exponential with rate mu ~ Gamma(s, beta), independent of lambda. Unlike BG/NBD,
a customer can die at any time, not only just after a purchase. The likelihood and P(alive)
follow Fader & Hardie, "A Note on Deriving the Pareto/NBD Model and Related Expressions"
(2005): both rest on the integral over the moment of death between the last purchase and now,

    I(t_1, t_2) = integral from t_1 to t_2 of (alpha + u)^-(r + x) (beta + u)^-(s + 1) du,

a difference of two Gauss hypergeometric tails (their A_0). It is fitted and checked exactly
like BG/NBD (:func:`ml.training.bgnbd.fit_log_params`: bounded log-parameters, a weak ridge,
several starts, a :class:`~ml.training.bgnbd.FitReport`), and written out for the same
reasons (see :mod:`ml.training.bgnbd`: btyd does not install here, and lifetimes, which it
forked, fits Pareto/NBD by unbounded Nelder-Mead on the raw parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, gammaln, hyp2f1

from ml.training.bgnbd import (
    FitReport,
    Histories,
    fit_log_params,
    scaled_sample,
    unusable,
    usable_parameters,
    valid,
)

# Forward differences in the log-parameters: the loss is a mean of terms accurate to ~1e-13,
# so a step of 1e-6 keeps both the truncation and the rounding error of the gradient near
# 1e-7, far below the tolerance the fit is judged by.
_STEP = 1e-6
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(48)
_NODES, _WEIGHTS = (_NODES + 1) / 2, _WEIGHTS / 2  # on [0, 1]
_TAIL_NODES, _TAIL_WEIGHTS = np.polynomial.legendre.leggauss(20)
_TAIL_NODES, _TAIL_WEIGHTS = (_TAIL_NODES + 1) / 2, _TAIL_WEIGHTS / 2
_BEND_OFFSETS = np.array([-24.0, -4.0, 0.0, 4.0])
_CHUNK = 20_000  # customers per quadrature block: bounds the (customers x nodes) arrays


@dataclass(frozen=True)
class ParetoNbd:
    """Fitted Pareto/NBD parameters (time unit: days)."""

    r: float
    alpha: float
    s: float
    beta: float

    @property
    def usable(self) -> bool:
        """Whether the parameters are numbers at all (a degenerate fit leaves them NaN)."""
        return usable_parameters(self.r, self.alpha, self.s, self.beta)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        t_x: np.ndarray,
        age: np.ndarray,
        *,
        max_rows: int = 100_000,
        seed: int = 0,
    ) -> tuple[ParetoNbd, FitReport]:
        """Maximum-likelihood fit on a seeded sample of at most ``max_rows`` customers.

        Always returns the best parameters found; use them only if ``report.converged``.
        """
        scaled, scale, rate = scaled_sample(x, t_x, age, max_rows=max_rows, seed=seed)
        starts = [
            np.log([1.0, 1.0 / rate, 1.0, 1.0]),
            np.log([0.5, 0.5 / rate, 0.5, 0.3]),
            np.log([3.0, 3.0 / rate, 3.0, 3.0]),
        ]
        (r, alpha, s, beta), report = fit_log_params(
            _negative_log_likelihood, scaled, starts, ("r", "alpha", "s", "beta")
        )
        model = cls(r=float(r), alpha=float(alpha / scale), s=float(s), beta=float(beta / scale))
        return model, report

    def log_likelihood(self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Each customer's log-likelihood of their history (time unit: days)."""
        return _log_likelihood(
            np.array([self.r, self.alpha, self.s, self.beta]), Histories(x, t_x, age)
        )

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Probability that each customer is still alive now.

        The odds of having died since the last purchase against being alive are
        s (alpha + T)^(r + x) (beta + T)^s I(t_x, T) (Fader & Hardie 2005, eq. 19).
        """
        if not self.usable:
            return unusable(x)
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        log_odds = (
            np.log(s)
            + (r + x) * np.log(alpha + age)
            + s * np.log(beta + age)
            + _log_integral(r + x, s + 1, alpha, beta, t_x, age)
        )
        return valid(expit(-log_odds), 0.0, 1.0)

    def p_no_purchase(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, days: float
    ) -> np.ndarray:
        """Probability of no purchase in the next ``days``.

        Given alive now, lambda ~ Gamma(r + x, alpha + T) and mu ~ Gamma(s, beta + T),
        independent. No purchase in t means either none while surviving t, or death at some
        u < t before the first purchase:
        P = (1 - P(alive)) + P(alive) [G(t) H(t) + s (alpha + T)^(r + x) (beta + T)^s I(T, T + t)]
        with G(u) = ((alpha + T) / (alpha + T + u))^(r + x), H(u) = ((beta + T) / (beta + T + u))^s.
        """
        if not self.usable:
            return unusable(x)
        r, alpha, s, beta = self.r, self.alpha, self.s, self.beta
        shape = r + x
        quiet = -shape * np.log1p(days / (alpha + age)) - s * np.log1p(days / (beta + age))
        died_first = (
            np.log(s)
            + shape * np.log(alpha + age)
            + s * np.log(beta + age)
            + _log_integral(shape, s + 1, alpha, beta, age, age + days)
        )
        none_if_alive = np.minimum(np.exp(np.logaddexp(quiet, died_first)), 1.0)
        alive = self.p_alive(x, t_x, age)
        return valid((1.0 - alive) + alive * none_if_alive, 0.0, 1.0)

    def expected_purchases(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, days: float
    ) -> np.ndarray:
        """Expected number of purchases in the next ``days`` (Fader & Hardie 2005, eq. 41).

        E = P(alive) (r + x) / (alpha + T) * integral over [0, t] of H(u) du: the mean rate
        times the expected time alive within the window.
        """
        if not self.usable:
            return unusable(x)
        alive = self.p_alive(x, t_x, age)
        rate = (self.r + x) / (self.alpha + age)
        return valid(alive * rate * _time_alive(self.s, self.beta + age, days), 0.0, np.inf)

    def expected_wait(
        self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, horizon: float
    ) -> np.ndarray:
        """Expected days to the next purchase, capped at ``horizon`` (restricted mean).

        The integral over [0, H] of P(no purchase by u). For a customer alive now, swapping the
        order of integration in the death-before-purchase term leaves one integral,
        over [0, H] of G(v) H(v) [1 + (H - v) s / (beta + T + v)] dv, computed by Gauss-Legendre
        quadrature on a geometric grid (fine near 0, where G and H fall fastest).
        """
        if not self.usable:
            return unusable(x)
        alive = self.p_alive(x, t_x, age)
        x, age = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(age, dtype=float))
        waited = np.empty(len(x))
        for start in range(0, len(x), _CHUNK):
            part = slice(start, start + _CHUNK)
            waited[part] = _waited_if_alive(
                self.r + x[part], self.alpha + age[part], self.s, self.beta + age[part], horizon
            )
        waited = (1 - alive) * horizon + alive * np.minimum(waited, horizon)
        return valid(waited, 0.0, horizon)


def _log_tail(p: np.ndarray, q: float, alpha: float, beta: float, t: np.ndarray) -> np.ndarray:
    """log of the integral over [t, inf) of (alpha + u)^-p (beta + u)^-q du (p + q > 1).

    With m = p + q - 1 and, for alpha >= beta, z = (alpha - beta) / (alpha + t), the integral is
    (alpha + t)^-m / m * 2F1(m, q; m + 1; z) (Fader & Hardie's A_0 terms; alpha < beta swaps
    the roles). Euler's transformation turns it into (1 - z)^(1 - q) 2F1(1, p; m + 1; z),
    whose series has positive terms below those of 1 / (1 - z): it cannot overflow, which
    the untransformed one does near z = 1 for large s (lifetimes guards that with retries).
    SciPy evaluates it fast and to ~1e-13 for z <= 0.9 whatever the parameters, and up to
    z = 0.99 for parameters up to 100; beyond, it can take ~0.5 ms per value, lose digits or
    return NaN, so there the integral is computed by quadrature instead
    (:func:`_log_tail_by_quadrature`, ~30 times slower than a fast hyp2f1, exact to ~1e-13).
    """
    p, t = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(t, dtype=float))
    if alpha < beta:
        p, q, alpha, beta = np.full_like(p, q), p, beta, alpha
    q = np.broadcast_to(np.asarray(q, dtype=float), p.shape)
    m = p + q - 1
    high, low = alpha + t, beta + t
    z = (alpha - beta) / high
    # Where SciPy is slow (~0.5 ms) or returns NaN: z near 1 with large parameters, or very
    # near 1 at all (there it also loses digits).
    near_one = (z > 0.99) | ((z > 0.9) & (np.maximum(p, q) > 100))
    result = np.empty(p.shape)
    safe = ~near_one
    with np.errstate(divide="ignore", invalid="ignore"):
        result[safe] = (
            -m[safe] * np.log(high[safe])
            - np.log(m[safe])
            + (1 - q[safe]) * (np.log(low[safe]) - np.log(high[safe]))
            + np.log(hyp2f1(1.0, p[safe], m[safe] + 1, z[safe]))
        )
    if near_one.any():
        # Here alpha >= beta: (beta + u) has the lower base and the exponent q.
        result[near_one] = _log_tail_by_quadrature(
            q[near_one], p[near_one], beta, alpha, t[near_one]
        )
    return result


def _log_tail_by_quadrature(
    e_low: np.ndarray, e_high: np.ndarray, low: float, high: float, t: np.ndarray
) -> np.ndarray:
    """log of the integral over [t, inf) of (low + u)^-e_low (high + u)^-e_high du, low < high.

    With y = (low + t) / (low + u) and l = log y it is (low + t)^-m times the integral over
    l < 0 of exp(phi(l)), phi(l) = m l - e_high log(1 + k e^l), k = (high - low) / (low + t):
    phi is concave, with its maximum in closed form; Gauss-Legendre panels from where phi has
    fallen 36 below its top (e^-36 ~ 2e-16) to l = 0 see all of the mass.
    """
    m = e_low + e_high - 1
    log_k = np.log(high - low) - np.log(low + t)
    rho = m / e_high  # the slope of phi is m - e_high * sigmoid(l + log k)

    def phi(at: np.ndarray) -> np.ndarray:
        return m * at - e_high * np.logaddexp(0.0, at + log_k)

    def slope(at: np.ndarray) -> np.ndarray:
        return m - e_high * expit(at + log_k)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        clipped = np.clip(rho, 1e-300, 1 - 1e-16)
        interior = rho < expit(log_k)  # phi falls before l = 0: its top is inside
        top = np.where(interior, np.log(clipped) - np.log1p(-clipped) - log_k, 0.0)
        # Left of the top phi's slope rises towards m; past where it reaches m / 2 (at most
        # `half` further left) 72 / m more certainly takes it 36 down. Newton's method on the
        # convex, increasing drop then walks back, from above, to where it is 36.
        half_rho = np.clip(rho / 2, 1e-300, 1 - 1e-16)
        sigma_top = expit(top + log_k)
        half = np.maximum(
            0.0, np.log(sigma_top) - np.log1p(-sigma_top) - np.log(half_rho) + np.log1p(-half_rho)
        )
        reach = half + 72.0 / m
        peak = phi(top)
        for _ in range(8):
            drop = peak - phi(top - reach) - 36.0
            reach = np.maximum(reach - drop / np.maximum(slope(top - reach), 1e-300), 1e-12)
    # Panels split where phi bends, at its top and at l = -log k where the slope turns from
    # m to m - e_high, with wider panels further away: each panel then sees phi either close
    # to linear or bending on the scale of the panel (exact to ~1e-13 against adaptive quad).
    bends = np.stack([top, -log_k], axis=1)[:, :, None] + _BEND_OFFSETS
    breaks = np.concatenate([(top - reach)[:, None], bends.reshape(len(top), -1)], axis=1)
    breaks = np.sort(np.clip(breaks, (top - reach)[:, None], 0.0), axis=1)
    breaks = np.concatenate([breaks, np.zeros((len(top), 1))], axis=1)
    start, width = breaks[:, :-1], np.diff(breaks, axis=1)
    points = start[:, :, None] + width[:, :, None] * _TAIL_NODES  # customer x panel x node
    with np.errstate(divide="ignore"):
        log_weights = np.log(width[:, :, None] * _TAIL_WEIGHTS)
    terms = _phi_rows(m, e_high, log_k, points.reshape(len(top), -1))
    terms = terms + log_weights.reshape(len(top), -1)
    largest = terms.max(axis=1)
    total = largest + np.log(np.exp(terms - largest[:, None]).sum(axis=1))
    return -m * np.log(low + t) + total


def _phi_rows(m: np.ndarray, e_high: np.ndarray, log_k: np.ndarray, at: np.ndarray) -> np.ndarray:
    """phi of :func:`_log_tail_by_quadrature` at a row of points per customer."""
    return m[:, None] * at - e_high[:, None] * np.logaddexp(0.0, at + log_k[:, None])


def _log_integral(
    p: np.ndarray, q: float, alpha: float, beta: float, t_1: np.ndarray, t_2: np.ndarray
) -> np.ndarray:
    """log I(t_1, t_2): the tail from t_1 minus the tail from t_2, in log space."""
    p = np.asarray(p, dtype=float)
    return _log_difference(
        _log_tail(p, q, alpha, beta, np.asarray(t_1, dtype=float)),
        _log_tail(p, q, alpha, beta, np.asarray(t_2, dtype=float)),
    )


def _log_difference(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """log(exp(first) - exp(second)), or -inf when that is not positive.

    -inf also when rounding leaves nothing of the difference: the term is then negligible
    beside the one it is added to (a few ulps of a tail of the same order as that term).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = second - first
        result = first + np.log(-np.expm1(np.minimum(gap, 0.0)))
    return np.where(np.isfinite(result) & (gap < 0), result, -np.inf)


def _log_likelihood(params: np.ndarray, data: Histories) -> np.ndarray:
    """Fader & Hardie (2005), eq. 18: alive all along, or died between t_x and T."""
    r, alpha, s, beta = params
    x, t_x, age = data.x, data.t_x, data.age
    alive = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
    # The hypergeometric function is most of the cost: customers without a repeat purchase
    # (t_x = 0, x = 0) all share the tail from t_x, so it is computed once for them.
    bought = x > 0
    from_last = np.empty(len(x))
    from_last[~bought] = _log_tail(np.array([r]), s + 1, alpha, beta, np.zeros(1))[0]
    from_last[bought] = _log_tail(r + x[bought], s + 1, alpha, beta, t_x[bought])
    died = np.log(s) + _log_difference(from_last, _log_tail(r + x, s + 1, alpha, beta, age))
    return (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + s * np.log(beta)
        + np.logaddexp(alive, died)
    )


def _negative_log_likelihood(theta: np.ndarray, data: Histories) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood and its gradient by forward differences."""

    def loss(t: np.ndarray) -> float:
        return -float(np.mean(_log_likelihood(np.exp(t), data)))

    value = loss(theta)
    gradient = np.array(
        [(loss(theta + _STEP * unit) - value) / _STEP for unit in np.eye(len(theta))]
    )
    return value, gradient


def _time_alive(s: float, scale: np.ndarray, days: float) -> np.ndarray:
    """Expected time alive within the next ``days`` for mu ~ Gamma(s, scale):
    the integral over [0, t] of (scale / (scale + u))^s du, in closed form."""
    span = np.log1p(days / scale)
    if abs(s - 1) < 1e-8:
        return scale * span
    return scale * -np.expm1(-(s - 1) * span) / (s - 1)


def _waited_if_alive(
    shape: np.ndarray, alpha: np.ndarray, s: float, beta: np.ndarray, horizon: float
) -> np.ndarray:
    """Restricted mean wait of customers alive now (see ``ParetoNbd.expected_wait``)."""
    # The grid's scale is the shortest of the two decay lengths (and the horizon).
    scale = np.minimum(np.minimum(alpha / np.maximum(shape, 1e-12), beta / max(s, 1e-12)), horizon)
    scale = np.maximum(scale, 1e-12)[:, None]
    span = np.log1p(horizon / scale)
    v = scale * np.expm1(span * _NODES)
    dv = scale * span * np.exp(span * _NODES)
    log_g = -shape[:, None] * np.log1p(v / alpha[:, None])
    log_h = -s * np.log1p(v / beta[:, None])
    integrand = np.exp(log_g + log_h) * (1 + (horizon - v) * s / (beta[:, None] + v))
    return np.sum(_WEIGHTS * integrand * dv, axis=1)
