"""Churn and next purchase in the hazard form (:mod:`ml.survival`): any horizon, from the
history there is.

Cutoffs lie one 30-day step apart, back from as-of to the day the 50th customer had bought.
From each, every whole step that ended by the end of what a model may see is a row: the
customers' features as of the cutoff plus the step index, labelled by whether the first
order fell in that step (customers leave the ``hazard`` rows once they ordered) and by the
orders placed in it (``rate`` rows). Steps beyond the horizon asked for are not learnt.

Judging needs outcomes no model saw. The evaluation window is the horizon when the history
allows it, else the longest whole number of steps that leaves as much history before it
(half of it): boosters judged on ``[as_of - window, as_of)`` learn only from the steps that
ended before it. The hazard is calibrated on that window's rows (:mod:`ml.calibration`; the
map then holds for every step, so for every horizon), and the rate scaled to the orders placed
in it. The served boosters are refitted with
the judged rounds on every row up to as-of, and answer the horizon asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import lightgbm as lgb
import numpy as np
from matplotlib.figure import Figure

from ml import calibration
from ml.calibration import Calibration
from ml.features import FEATURES, compute_features, feature_definition_hash
from ml.survival import HAZARD, STEP_DAYS, STEP_FEATURE, Outlook, outlook, with_step
from ml.training import boosting, plots
from ml.training.baselines import (
    BaselineFit,
    RecencyTable,
    customer_base_predictions,
    order_rate,
    rate_predictions,
)
from ml.training.datasets import (
    PurchaseSnapshot,
    buyers_before,
    feature_column,
    purchase_snapshot,
    sample_ids,
)
from ml.training.errors import InsufficientData
from ml.training.metrics import binary_metrics, calibrated_metrics
from ml.training.next_purchase import purchase_metrics
from ml.training.outcome import TrainedTask
from ml.training.plan import TrainingPlan
from sql.matrix import fetch_matrix

NAMES: tuple[str, ...] = (*FEATURES, STEP_FEATURE)
PARAMS: dict[str, dict[str, object]] = {
    "hazard": {"objective": "binary", "metric": "binary_logloss"},
    "rate": {"objective": "poisson", "metric": "poisson"},
}
MAX_CUTOFFS = 24  # two years of monthly cutoffs: older ones add little and cost time
MIN_CUSTOMERS = 50
_STEP = timedelta(days=STEP_DAYS)


@dataclass(frozen=True)
class StepOutcomes:
    """Customers' features at ``cutoff`` and their orders in each whole step after it."""

    cutoff: datetime
    customer_ids: np.ndarray
    x: np.ndarray  # features as of the cutoff (ml.features.FEATURES)
    orders: np.ndarray  # customers x steps

    def rows(self, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Hazard inputs and labels, rate inputs and labels over the first ``steps`` steps."""
        x, orders = self.x, self.orders[:, :steps]
        bought = orders > 0
        first = np.where(bought.any(axis=1), bought.argmax(axis=1), steps)
        hx, hy, rx, ry = [], [], [], []
        for k in range(steps):
            at_risk = first >= k
            hx.append(with_step(x[at_risk], k))
            hy.append((first[at_risk] == k).astype(np.float64))
            rx.append(with_step(x, k))
            ry.append(orders[:, k])
        return np.vstack(hx), np.concatenate(hy), np.vstack(rx), np.concatenate(ry)


@dataclass
class HazardFit:
    """Both boosters, judged and served, the hazard's calibration, and the evaluation."""

    plan: TrainingPlan
    evaluation: PurchaseSnapshot  # outcomes over the evaluation window (its horizon_days)
    judged: dict[str, lgb.Booster]
    served: dict[str, lgb.Booster]
    calibration: calibration.CalibrationChoice
    rate_scale: Calibration  # the rate's total brought to the evaluation window's orders
    judged_outlook: Outlook  # cross-fitted calibration, over the evaluation window
    raw_outlook: Outlook  # uncalibrated, over the evaluation window
    judged_steps: int
    served_steps: int
    recency: RecencyTable | None
    data: dict[str, object]
    notes: list[str]

    @property
    def window_days(self) -> float:
        return self.evaluation.horizon_days

    def served_outlook(self, x: np.ndarray) -> Outlook:
        """What the served boosters answer over the horizon asked for."""
        return _outlook(self.served, self.maps, x, self.plan.horizon_days, self.served_steps)

    @property
    def maps(self) -> dict[str, Calibration]:
        """The served maps of the hazard and the rate."""
        return {"hazard": self.calibration.calibration, "rate": self.rate_scale}

    def tags(self) -> dict[str, str]:
        """What serving reads off the version besides the boosters."""
        return {
            "method": HAZARD,
            "step_days": repr(STEP_DAYS),
            "steps_seen": str(self.served_steps),
            "evaluation_days": repr(self.window_days),
        }


def _outlook(
    boosters: dict[str, lgb.Booster],
    maps: dict[str, Calibration],
    x: np.ndarray,
    horizon_days: float,
    steps: int,
) -> Outlook:
    none = Calibration()
    hazard, rate = boosters["hazard"], boosters.get("rate")
    return outlook(
        lambda rows: maps.get("hazard", none).apply(hazard.predict(rows)),
        x,
        horizon_days,
        steps_seen=steps,
        rate=None
        if rate is None
        else lambda rows: maps.get("rate", none).apply(rate.predict(rows)),
    )


async def fit(
    conn: asyncpg.Connection,
    plan: TrainingPlan,
    ready: datetime,
    say: Callable[[str], None],
    *,
    rates: bool = True,
) -> HazardFit:
    """Judge, calibrate and refit the hazard (and, with ``rates``, the rate) booster for
    ``plan``, from monthly cutoffs after ``ready`` (when enough customers had bought)."""
    span = (plan.as_of - ready).total_seconds() / 86400
    if span < 2 * STEP_DAYS:
        raise InsufficientData(
            f"{MIN_CUSTOMERS} customers had bought by {ready:%Y-%m-%d}, only {span:.0f} days "
            f"before as-of: at least {2 * STEP_DAYS:.0f} are needed (one step to learn from, "
            "one to judge on); choose a later --as-of"
        )
    horizon_steps = math.ceil(plan.horizon_days / STEP_DAYS - 1e-9)
    window_steps = max(1, min(horizon_steps, int(span / 2 // STEP_DAYS)))
    notes = []
    if window_steps * STEP_DAYS < plan.horizon_days:
        notes.append(
            f"judged on the {window_steps * STEP_DAYS:.0f} days before as-of (the history "
            f"since {ready:%Y-%m-%d} is too short to hold out {plan.horizon_days:g}); the "
            f"served model answers {plan.horizon_days:g} days from 30-day steps"
        )
    count = min(MAX_CUTOFFS, int(span // STEP_DAYS))
    outcomes = []
    for j in range(count, 0, -1):  # oldest first: boosting.fit early-stops on the newest
        cutoff = plan.as_of - j * _STEP
        say(f"features and monthly outcomes as of {cutoff:%Y-%m-%d}")
        found = await step_outcomes(conn, cutoff, j, plan)
        if len(found.x) >= MIN_CUSTOMERS:
            outcomes.append(found)
    # outcomes[i] has len(orders[0]) steps before as-of; judged rows end at the evaluation
    # cutoff, window_steps earlier.
    judged_parts = [(o, o.orders.shape[1] - window_steps) for o in outcomes]
    judged_parts = [(o, min(s, horizon_steps)) for o, s in judged_parts if s > 0]
    if not judged_parts:
        raise InsufficientData("no monthly cutoff has outcomes before the evaluation window")
    served_parts = [(o, min(o.orders.shape[1], horizon_steps)) for o in outcomes]
    heads = ["hazard", "rate"] if rates else ["hazard"]

    def parts(which: list[tuple[StepOutcomes, int]], head: str):  # noqa: ANN202
        rows = [o.rows(s) for o, s in which]
        at = 0 if head == "hazard" else 2
        return [r[at] for r in rows], [r[at + 1] for r in rows]

    say("training the hazard" + (" and rate boosters" if rates else " booster"))
    judged = {}
    for head in heads:
        xs, ys = parts(judged_parts, head)
        judged[head] = boosting.fit(PARAMS[head], xs, ys, feature_names=NAMES, seed=plan.seed)
    served, rows = {}, {}
    for head in heads:
        xs, ys = parts(served_parts, head)
        rows[f"{head}_rows"] = sum(len(y) for y in ys)
        served[head] = boosting.refit(
            PARAMS[head],
            xs,
            ys,
            rounds=judged[head].current_iteration(),
            feature_names=NAMES,
            seed=plan.seed,
        )
    judged_steps = max(s for _, s in judged_parts)
    served_steps = max(s for _, s in served_parts)

    # Calibrate the hazard on the evaluation window's rows, judged cross-fitted by customer.
    window = timedelta(days=window_steps * STEP_DAYS)
    evaluation = await purchase_snapshot(
        conn,
        plan.as_of - window,
        window,
        max_customers=plan.max_customers,
        seed=plan.seed,
    )
    held = await step_outcomes(conn, evaluation.cutoff, window_steps, plan)
    # The same sample at the same cutoff: one row per evaluation customer, in the same order.
    assert np.array_equal(held.customer_ids, evaluation.features.customer_ids)
    hx, hy, rx, ry = held.rows(window_steps)
    choice = calibration.choose(judged["hazard"].predict(hx), hy, seed=plan.seed)
    rate_scale = calibration.fit_scale(judged["rate"].predict(rx), ry) if rates else Calibration()
    x = evaluation.features.matrix
    raw_outlook = _outlook(judged, {}, x, evaluation.horizon_days, judged_steps)
    crossed = _cross_fitted(judged, choice.calibration.kind, held, evaluation, judged_steps, plan)

    recency = _recency_rule(outcomes, window_steps)
    data = {
        **plan.describe(),
        "method": HAZARD,
        "step_days": STEP_DAYS,
        "monthly_cutoffs": [o.cutoff.isoformat() for o in outcomes],
        "evaluation_days": evaluation.horizon_days,
        "evaluation": evaluation.describe(),
        **rows,
    }
    return HazardFit(
        plan=plan,
        evaluation=evaluation,
        judged=judged,
        served=served,
        calibration=choice,
        rate_scale=rate_scale,
        judged_outlook=crossed,
        raw_outlook=raw_outlook,
        judged_steps=judged_steps,
        served_steps=served_steps,
        recency=recency,
        data=data,
        notes=notes,
    )


async def step_outcomes(
    conn: asyncpg.Connection, cutoff: datetime, steps: int, plan: TrainingPlan
) -> StepOutcomes:
    """Features at ``cutoff`` of (a sample of) its buyers, and their orders per step."""
    ids = sample_ids(
        await buyers_before(conn, cutoff), plan.max_customers, seed=plan.seed, cutoff=cutoff
    )
    frame = await compute_features(conn, cutoff, ids.tolist())
    keys, rows = await fetch_matrix(
        conn,
        "orders_by_step",
        (cutoff, cutoff + steps * _STEP, STEP_DAYS, frame.customer_ids.tolist()),
        2,
    )
    orders = np.zeros((len(frame), steps))
    orders[np.searchsorted(frame.customer_ids, keys), rows[:, 0].astype(np.int64)] = rows[:, 1]
    return StepOutcomes(cutoff, frame.customer_ids, frame.matrix, orders)


def _cross_fitted(
    judged: dict[str, lgb.Booster],
    kind: str,
    held: StepOutcomes,
    evaluation: PurchaseSnapshot,
    steps: int,
    plan: TrainingPlan,
) -> Outlook:
    """The evaluation customers' outlook, each under a hazard map of ``kind`` and a rate scale
    fitted on the other half of the customers' rows (two folds by customer, swapped)."""
    n = len(evaluation)
    fold = np.random.default_rng(plan.seed).permutation(n) % 2 == 0
    window_steps = held.orders.shape[1]
    parts: list[Outlook] = []
    for part in (fold, ~fold):
        half = StepOutcomes(held.cutoff, held.customer_ids[part], held.x[part], held.orders[part])
        hx, hy, rx, ry = half.rows(window_steps)
        maps = {"hazard": calibration.fit(kind, judged["hazard"].predict(hx), hy)}
        if "rate" in judged:
            maps["rate"] = calibration.fit_scale(judged["rate"].predict(rx), ry)
        x = evaluation.features.matrix[~part]
        parts.append(_outlook(judged, maps, x, evaluation.horizon_days, steps))
    result = {}
    for name in ("p_none", "p30", "count", "wait"):
        values = np.empty(n)
        values[~fold] = getattr(parts[0], name)
        values[fold] = getattr(parts[1], name)
        result[name] = values
    return Outlook(**result)


def _recency_rule(outcomes: list[StepOutcomes], window_steps: int) -> RecencyTable | None:
    """Churn over the evaluation window by days since the last order, learnt on the cutoffs
    whose whole window ended before the evaluation one (None if none did)."""
    recency, churned = [], []
    for o in outcomes:
        if o.orders.shape[1] >= 2 * window_steps:
            recency.append(feature_column(o.x, "days_since_last_purchase"))
            churned.append((o.orders[:, :window_steps].sum(axis=1) == 0).astype(np.float64))
    if not recency:
        return None
    return RecencyTable(np.concatenate(recency), np.concatenate(churned))


def churn_task(fit: HazardFit, customer_base: dict[str, BaselineFit]) -> TrainedTask:
    """The churn task of a hazard fit: P(no order within the horizon), judged over the
    evaluation window against the baselines."""
    evaluation = fit.evaluation
    x, y = evaluation.features.matrix, evaluation.churned
    probabilities = {"lightgbm": fit.judged_outlook.p_none}
    if fit.recency is not None:
        days = feature_column(x, "days_since_last_purchase")
        probabilities["rfm_recency"] = fit.recency.predict(days)
    probabilities.update({n: f["p_none"] for n, f in customer_base.items() if f.converged})
    comparison = {name: binary_metrics(y, p) for name, p in probabilities.items()}
    comparison["lightgbm"] = calibrated_metrics(
        y, fit.raw_outlook.p_none, fit.judged_outlook.p_none
    )
    for name, base in customer_base.items():
        if not base.converged:
            comparison[name] = dict.fromkeys(comparison["lightgbm"], math.nan)
            comparison[name].pop("brier_uncalibrated", None)
            comparison[name].pop("ece_uncalibrated", None)

    def score(other: lgb.Booster) -> float:
        p = outlook(other.predict, x, evaluation.horizon_days, steps_seen=fit.judged_steps)
        return binary_metrics(y, p.p_none)["roc_auc"]

    served = fit.served_outlook(x)
    return TrainedTask(
        task="churn",
        heads={"hazard": fit.served["hazard"]},
        evaluated_heads={"hazard": fit.judged["hazard"]},
        calibrations={"hazard": fit.calibration.calibration},
        comparison=comparison,
        primary_metric="roc_auc",
        score=score,
        params=PARAMS["hazard"],
        **_shared(fit, customer_base),
        percentiles={"churn": TrainedTask.percentiles_of(served.p_none)},
        figures=_figures(fit, "Churn", {"churn": (y, fit.raw_outlook.p_none, probabilities)}),
    )


def next_purchase_task(fit: HazardFit, customer_base: dict[str, BaselineFit]) -> TrainedTask:
    """The next-purchase task of a hazard fit: an order within 30 days, expected orders and
    wait, judged over the evaluation window against the baselines."""
    evaluation = fit.evaluation
    x, window = evaluation.features.matrix, evaluation.horizon_days
    bought_30d = evaluation.purchased_within(STEP_DAYS)
    judged = fit.judged_outlook
    raw = {"p30": fit.raw_outlook.p30, "count": fit.raw_outlook.count}
    predictions = {
        "lightgbm": {"p30": judged.p30, "count": judged.count, "wait": judged.wait},
        "rate": rate_predictions(order_rate(x), window),
        **{n: f for n, f in customer_base.items() if f.converged},
    }
    comparison = {
        name: purchase_metrics(evaluation, p, raw if name == "lightgbm" else None)
        for name, p in predictions.items()
    }
    for name, base in customer_base.items():
        if not base.converged:
            comparison[name] = dict.fromkeys(comparison["rate"], math.nan)

    def score(other: lgb.Booster) -> float:
        return binary_metrics(bought_30d, other.predict(with_step(x, 0)))["roc_auc"]

    served = fit.served_outlook(x)
    p30 = {name: p["p30"] for name, p in predictions.items()}
    return TrainedTask(
        task="next_purchase",
        heads={"hazard": fit.served["hazard"], "rate": fit.served["rate"]},
        evaluated_heads={"hazard": fit.judged["hazard"], "rate": fit.judged["rate"]},
        calibrations=fit.maps,
        comparison=comparison,
        primary_metric="p30_roc_auc",
        score=score,
        params=PARAMS,
        **_shared(fit, customer_base),
        percentiles={"p30": TrainedTask.percentiles_of(served.p30)},
        figures=_figures(
            fit, "Order within 30 days", {"p30": (bought_30d, fit.raw_outlook.p30, p30)}
        ),
    )


def _shared(fit: HazardFit, customer_base: dict[str, BaselineFit]) -> dict[str, Any]:
    """What the churn and next-purchase tasks of one fit record alike."""
    return {
        "baseline_status": {n: f.status for n, f in customer_base.items() if not f.converged},
        "horizon_days": fit.plan.horizon_days,
        "feature_names": NAMES,
        "feature_hash": feature_definition_hash(),
        "greater_is_better": True,
        "input_example": with_step(fit.evaluation.features.matrix[:5], 0),
        "data": fit.data,
        "tags": fit.tags(),
    }


def _figures(
    fit: HazardFit,
    title: str,
    curves: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]],
) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    for name, (y, raw, probabilities) in curves.items():
        figures[f"roc_{name}.png"] = plots.roc_curves(
            y, {**probabilities, "lightgbm": raw}, f"{title}: ROC over the evaluation window"
        )
        figures[f"calibration_{name}.png"] = plots.calibration_curves(
            y,
            {"lightgbm (uncalibrated)": raw, **probabilities},
            f"{title}: calibration (lightgbm: cross-fitted hazard map)",
        )
    for head, booster in fit.served.items():
        figures[f"importance_{head}.png"] = plots.importance(booster, f"{head}: importance")
    return figures


def customer_base(fit: HazardFit) -> dict[str, BaselineFit]:
    """BG/NBD and Pareto/NBD over the evaluation window, fitted once for both tasks."""
    return customer_base_predictions(fit.evaluation.features.matrix, fit.window_days)
