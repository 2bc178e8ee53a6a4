"""Probabilities that mean what they say: a monotone map from a booster's output to the rate
observed among customers given that output.

A booster trained on earlier cutoffs is judged on a later one; where its probabilities drift
from the rates observed there (behaviour changed, the base rate moved), a calibration map fitted
on that held-out cutoff corrects them. Three maps compete, each judged on the half of the
held-out customers it was *not* fitted on (two folds, swapped): none, Platt scaling (a logistic
curve on the log-odds) and isotonic regression. The one with the lowest cross-fitted Brier score
is fitted again on every held-out customer and served; none wins unless another is better, so a
model that is already calibrated is left alone.

Expected counts get one more map, ``scale``: a single factor that brings the booster's total
on the held-out cutoff to the orders observed there (calibration in the large). A Poisson
booster trained on earlier cutoffs carries their level; when ordering picks up or slows, the
newest cutoff says by how much, and its total is what a planner sums.

A map is a handful of numbers, stored beside the model version and applied with NumPy alone:
serving needs neither scikit-learn nor SciPy for it. An isotonic map is kept as at most
:data:`KNOTS` points and applied by linear interpolation between them, in training (for the
cross-fitted judgement) exactly as in serving.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

KINDS = ("none", "platt", "isotonic")  # maps of probabilities, competing in choose()
SCALE = "scale"  # the map of expected counts
KNOTS = 64
_EPS = 1e-6
_SCALE_BOUNDS = (0.2, 5.0)  # a cutoff that moves the level more says more about itself


@dataclass(frozen=True)
class Calibration:
    """A fitted map: ``none``, ``platt`` (``params`` = slope, intercept on the log-odds),
    ``isotonic`` (``params`` = knots' x values then their y values) or, for counts, ``scale``
    (``params`` = the factor)."""

    kind: str = "none"
    params: tuple[float, ...] = ()

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (or counts) for raw ones ``p``."""
        import numpy as np

        if self.kind == "none":
            return p
        if self.kind == SCALE:
            return p * self.params[0]
        if self.kind == "platt":
            slope, intercept = self.params
            return 1.0 / (1.0 + np.exp(-(slope * _logit(p) + intercept)))
        half = len(self.params) // 2
        return np.interp(p, self.params[:half], self.params[half:])

    def to_json(self) -> str:
        """The map as stored beside a model version."""
        return json.dumps({"kind": self.kind, "params": [round(v, 7) for v in self.params]})

    @classmethod
    def from_json(cls, text: str | None) -> Calibration:
        """The stored map (``none`` for a version recorded before calibration existed)."""
        if not text:
            return cls()
        raw = json.loads(text)
        if raw.get("kind") not in (*KINDS, SCALE):
            raise ValueError(f"unknown calibration {raw.get('kind')!r}")
        return cls(raw["kind"], tuple(float(v) for v in raw["params"]))


@dataclass(frozen=True)
class CalibrationChoice:
    """The served map and the cross-fitted evidence it was chosen on."""

    calibration: Calibration
    cross_fitted: np.ndarray  # each held-out customer's probability under the chosen map
    brier: dict[str, float]  # cross-fitted Brier score of each kind


def fit(kind: str, p: np.ndarray, y: np.ndarray) -> Calibration:
    """Fit a map of ``kind`` to raw probabilities ``p`` and outcomes ``y`` (0/1)."""
    import numpy as np

    if kind == "none" or len(np.unique(y)) < 2:
        return Calibration()
    if kind == "platt":
        slope, intercept = _platt(_logit(p), y)
        # A map must keep the model's order; a model worse than chance is not ours to invert.
        return Calibration("platt", (slope, intercept)) if slope > 0 else Calibration()
    if kind == "isotonic":
        return Calibration("isotonic", _isotonic_knots(p, y))
    raise ValueError(f"unknown calibration {kind!r}; expected one of {', '.join(KINDS)}")


def choose(p: np.ndarray, y: np.ndarray, *, seed: int) -> CalibrationChoice:
    """The map with the lowest Brier score on customers it was not fitted on (2 folds)."""
    import numpy as np

    fold = np.random.default_rng(seed).permutation(len(p)) % 2 == 0
    brier: dict[str, float] = {}
    crossed: dict[str, np.ndarray] = {}
    for kind in KINDS:
        out = np.empty(len(p))
        for part in (fold, ~fold):
            out[~part] = fit(kind, p[part], y[part]).apply(p[~part])
        crossed[kind] = out
        brier[kind] = float(np.mean((out - y) ** 2))
    best = min(KINDS, key=lambda k: (brier[k], KINDS.index(k)))  # ties: the simpler map
    return CalibrationChoice(fit(best, p, y), crossed[best], brier)


def fit_scale(predicted: np.ndarray, observed: np.ndarray) -> Calibration:
    """The factor that makes the total of ``predicted`` counts that of ``observed`` (bounded;
    ``none`` when nothing was predicted or observed)."""
    import numpy as np

    expected, seen = float(np.sum(predicted)), float(np.sum(observed))
    if expected <= 0 or seen <= 0:
        return Calibration()
    return Calibration(SCALE, (float(np.clip(seen / expected, *_SCALE_BOUNDS)),))


def choose_scale(
    predicted: np.ndarray, observed: np.ndarray, *, seed: int, groups: np.ndarray | None = None
) -> tuple[Calibration, np.ndarray]:
    """The scale fitted on every row, and each row's count under the scale fitted on the
    other half (two folds, by ``groups`` when rows of one customer must stay together)."""
    import numpy as np

    keys = np.arange(len(predicted)) if groups is None else groups
    unique, at = np.unique(keys, return_inverse=True)
    fold = (np.random.default_rng(seed).permutation(len(unique)) % 2 == 0)[at]
    crossed = np.empty(len(predicted))
    for part in (fold, ~fold):
        crossed[~part] = fit_scale(predicted[part], observed[part]).apply(predicted[~part])
    return fit_scale(predicted, observed), crossed


def _logit(p: np.ndarray) -> np.ndarray:
    import numpy as np

    clipped = np.clip(p, _EPS, 1 - _EPS)
    return np.log(clipped) - np.log1p(-clipped)


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of a logistic regression of ``y`` on the log-odds ``z``."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4).fit(z.reshape(-1, 1), y)  # barely regularised
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        return 1.0, 0.0
    return slope, intercept


def _isotonic_knots(p: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    """The isotonic fit, read at up to :data:`KNOTS` quantiles of ``p`` (and its ends)."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    xs = np.unique(np.quantile(p, np.linspace(0.0, 1.0, KNOTS)))
    # A probability of exactly 0 or 1 claims certainty no held-out sample can give.
    ys = np.clip(model.predict(xs), _EPS, 1 - _EPS)
    return (*xs.tolist(), *ys.tolist())
