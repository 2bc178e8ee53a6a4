"""Train tasks end to end: check the data can support the plan, build the point-in-time
snapshots once, fit and evaluate each task. Recording in MLflow is the caller's next step
(:meth:`ml.registry.ModelRegistry.record`), so this module can be tested and timed alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from ml.recommendations import load_catalogue
from ml.survival import HAZARD, STEP_DAYS
from ml.training import churn, hazard, next_purchase, upsell
from ml.training.baselines import customer_base_predictions
from ml.training.datasets import PurchaseSnapshot, purchase_snapshot
from ml.training.errors import InsufficientData
from ml.training.outcome import TrainedTask
from ml.training.plan import TrainingPlan
from sql.queries import query

TASKS: tuple[str, ...] = ("churn", "next_purchase", "upsell")
MIN_CUSTOMERS = 50  # per cutoff: fewer cannot support a model or a meaningful metric
# With fewer whole windows than this before the evaluation one, `auto` learns the hazard
# form: a single training cutoff holds only the customers of the history's first weeks
# (CDNOW as of 1997-09-30, 134 days: 30-day ROC-AUC 0.64 direct; bench/RESULTS.md).
MIN_DIRECT_CUTOFFS = 2

Progress = Callable[[str], None]
_STEP = timedelta(days=STEP_DAYS)


@dataclass
class TrainingRun:
    """What :func:`train` made: the plan as the data allowed it, each trained task, and the
    tasks it could not train with the reason (``skipped``)."""

    plan: TrainingPlan
    trained: list[TrainedTask]
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # how the plan was adapted to the data


@dataclass(frozen=True)
class History:
    """What the purchase history allows: the plan (its method decided, its training cutoffs
    those the history reaches) and when enough customers had bought to learn from."""

    plan: TrainingPlan
    ready: datetime


async def check_history(conn: asyncpg.Connection, plan: TrainingPlan) -> History:
    """The plan as the purchase history supports it, or :class:`InsufficientData` saying why
    it cannot. With method ``auto``, a history too short for two whole horizons before the
    evaluation one is learnt in the hazard form; with ``direct`` it is refused, naming the
    longest horizon that would train."""
    now = datetime.now(UTC)
    if plan.as_of > now:
        raise InsufficientData(
            f"--as-of {plan.as_of:%Y-%m-%d} is in the future: the labels up to it are not "
            "known yet. Use a date no later than today"
        )
    first, last = await conn.fetchrow(query("purchase_history_span"))
    if first is None:
        raise InsufficientData("there are no purchases yet: import or record some first")
    ready = await conn.fetchval(query("population_reached_at"), MIN_CUSTOMERS)
    if ready is None:
        raise InsufficientData(
            f"fewer than {MIN_CUSTOMERS} customers have bought anything (that may be "
            "profiled): too few to learn from"
        )
    if plan.method == HAZARD:
        return History(plan, ready)
    reached = sum(1 for cutoff in plan.cutoffs if cutoff > ready)
    if reached < MIN_DIRECT_CUTOFFS and plan.method == "auto" and last >= plan.as_of - 2 * _STEP:
        return History(replace(plan, method=HAZARD), ready)
    if reached == 0:
        # The newest training cutoff, as-of - 2 x horizon, must come after `ready`.
        longest = math.ceil((plan.as_of - ready).total_seconds() / 86400 / 2) - 1
        supported = (
            f"the longest this history supports as of {plan.as_of:%Y-%m-%d} is {longest} days"
            if longest >= 1
            else "choose a later --as-of"
        )
        raise InsufficientData(
            f"purchase history starts on {first:%Y-%m-%d} and {MIN_CUSTOMERS} customers had "
            f"bought by {ready:%Y-%m-%d}, but the newest training cutoff is "
            f"{plan.cutoffs[-1]:%Y-%m-%d} (as-of - 2 x horizon) and it needs them before it; "
            f"choose a later --as-of or a shorter --horizon ({supported}), or --method hazard"
        )
    if last < plan.evaluation_cutoff:
        raise InsufficientData(
            f"the latest purchase is on {last:%Y-%m-%d}, before the evaluation window "
            f"[{plan.evaluation_cutoff:%Y-%m-%d}, {plan.as_of:%Y-%m-%d}) starts: nothing "
            "there to evaluate on; choose an --as-of closer to the data"
        )
    return History(replace(plan, training_cutoffs=reached, method="direct"), ready)


def _snapshot_problem(snapshot: PurchaseSnapshot) -> str | None:
    """Why ``snapshot`` cannot train or judge a model, or None."""
    day = f"{snapshot.cutoff:%Y-%m-%d}"
    if len(snapshot) < MIN_CUSTOMERS:
        return (
            f"only {len(snapshot)} customers had bought before the cutoff {day} (at least "
            f"{MIN_CUSTOMERS} are needed); choose a later --as-of or fewer --cutoffs"
        )
    for name, labels in (
        ("churn", snapshot.churned),
        ("30-day purchase", snapshot.purchased_within(30)),
    ):
        rate = float(np.mean(labels))
        if rate in (0.0, 1.0):
            every = "every" if rate == 1.0 else "no"
            return (
                f"at the cutoff {day}, {every} customer has the {name} label: a model needs "
                "both outcomes to learn; choose another --as-of or --horizon"
            )
    return None


async def train(
    conn: asyncpg.Connection,
    tasks: Sequence[str],
    plan: TrainingPlan,
    progress: Progress | None = None,
) -> TrainingRun:
    """Train ``tasks`` (names from :data:`TASKS`) under ``plan``, as far as the data allows.

    Training cutoffs the history does not reach, or too thin to learn from, are dropped (the
    oldest first) and said in ``notes``; a task the data cannot support is ``skipped`` with
    why, the others are trained. :class:`InsufficientData` when no task can be trained.
    """
    say = progress or (lambda _message: None)
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; expected {', '.join(TASKS)}")
    history = await check_history(conn, plan)
    usable = history.plan
    notes = []
    if usable.method == HAZARD and plan.method == "auto":
        notes.append(
            f"the history holds fewer than {MIN_DIRECT_CUTOFFS} whole {plan.horizon_days:g}-day "
            "windows before the evaluation one: churn and next purchase learn 30-day steps "
            "(method hazard)"
        )
    if usable.method == "direct" and usable.training_cutoffs < plan.training_cutoffs:
        notes.append(
            f"the purchase history reaches back to {usable.training_cutoffs} of the "
            f"{plan.training_cutoffs} training cutoffs asked for; training on those"
        )
    results: dict[str, TrainedTask] = {}
    skipped: dict[str, str] = {}

    if {"churn", "next_purchase"} & set(tasks):
        try:
            if usable.method == HAZARD:
                results.update(await _train_hazard_models(conn, tasks, history, notes, say))
            else:
                usable, trained = await _train_purchase_models(conn, tasks, usable, notes, say)
                results.update(trained)
        except InsufficientData as exc:
            skipped.update({t: str(exc) for t in ("churn", "next_purchase") if t in tasks})

    if "upsell" in tasks and usable.method == HAZARD:
        skipped["upsell"] = (
            "the recommendation ranker learns whole horizons only, and the history holds "
            f"no whole {plan.horizon_days:g}-day window before the evaluation one; train it "
            "with a shorter --horizon"
        )
    elif "upsell" in tasks:
        try:
            results["upsell"] = await _train_upsell(conn, usable, say)
        except InsufficientData as exc:
            skipped["upsell"] = str(exc)

    if not results:
        reasons = {str(reason) for reason in skipped.values()}
        raise InsufficientData("; ".join(sorted(reasons)))
    return TrainingRun(
        plan=usable,
        trained=[results[task] for task in tasks if task in results],
        skipped=skipped,
        notes=notes,
    )


async def _train_purchase_models(
    conn: asyncpg.Connection,
    tasks: Sequence[str],
    plan: TrainingPlan,
    notes: list[str],
    say: Progress,
) -> tuple[TrainingPlan, dict[str, TrainedTask]]:
    """Churn and next purchase, which share their snapshots; the plan, less the oldest
    training cutoffs too thin to learn from."""
    snapshots = []
    for cutoff in [*plan.cutoffs, plan.evaluation_cutoff]:
        say(f"features and outcomes as of {cutoff:%Y-%m-%d}")
        try:
            snapshot = await purchase_snapshot(
                conn, cutoff, plan.horizon, max_customers=plan.max_customers, seed=plan.seed
            )
            problem = _snapshot_problem(snapshot)
        except InsufficientData as exc:
            problem = str(exc)
        if problem is None:
            snapshots.append(snapshot)
            continue
        newer = [c for c in plan.cutoffs if c > cutoff]
        if cutoff == plan.evaluation_cutoff or not newer:
            raise InsufficientData(problem)
        # Older cutoffs hold fewer customers still: drop this one and every one before it.
        notes.append(f"dropped the training cutoff {cutoff:%Y-%m-%d}: {problem.split(';')[0]}")
        snapshots.clear()
        plan = replace(plan, training_cutoffs=len(newer))
    training, evaluation = snapshots[:-1], snapshots[-1]
    data = {
        **plan.describe(),
        "training": [s.describe() for s in training],
        "evaluation": evaluation.describe(),
    }
    results = {}
    say("training the BG/NBD and Pareto/NBD baselines")
    # Both tasks compare with them on the same rows: fitted once.
    customer_base = customer_base_predictions(evaluation.features.matrix, plan.horizon_days)
    for task, module in (("churn", churn), ("next_purchase", next_purchase)):
        if task in tasks:
            say(f"training {task}")
            trained = module.train(
                training, evaluation, seed=plan.seed, customer_base=customer_base
            )
            trained.data = data
            results[task] = trained
    return plan, results


async def _train_hazard_models(
    conn: asyncpg.Connection,
    tasks: Sequence[str],
    history: History,
    notes: list[str],
    say: Progress,
) -> dict[str, TrainedTask]:
    """Churn and next purchase in the hazard form, from one shared fit."""
    fit = await hazard.fit(conn, history.plan, history.ready, say, rates="next_purchase" in tasks)
    notes.extend(fit.notes)
    say("training the BG/NBD and Pareto/NBD baselines")
    customer_base = hazard.customer_base(fit)
    results = {}
    if "churn" in tasks:
        results["churn"] = hazard.churn_task(fit, customer_base)
    if "next_purchase" in tasks:
        results["next_purchase"] = hazard.next_purchase_task(fit, customer_base)
    return results


async def _train_upsell(conn: asyncpg.Connection, plan: TrainingPlan, say: Progress) -> TrainedTask:
    catalogue = await load_catalogue(conn)
    if len(catalogue) < 2:
        raise InsufficientData("the catalogue holds fewer than two products: nothing to rank")
    # A training cutoff keeps only its compact ranking rows: its market statistics and
    # candidates are let go before the next cutoff's are built.
    training: list[upsell.RankingRows] = []
    cutoffs = [*plan.cutoffs, plan.evaluation_cutoff]
    for k, cutoff in enumerate(cutoffs):
        say(f"recommendation candidates as of {cutoff:%Y-%m-%d}")
        snapshot = await upsell.upsell_snapshot(
            conn,
            catalogue,
            cutoff,
            plan.horizon,
            max_customers=plan.max_customers,
            seed=plan.seed,
        )
        if not snapshot.labels.any():
            raise InsufficientData(
                f"no customer bought a recommended (new) product in the window after "
                f"{cutoff:%Y-%m-%d}: nothing to learn or evaluate a ranking on; choose "
                "another --as-of or a longer --horizon"
            )
        if k < len(cutoffs) - 1:
            training.append(upsell.ranking_rows(snapshot))
        else:
            evaluation = snapshot
        del snapshot
    say("training upsell")
    trained = upsell.train(training, evaluation, seed=plan.seed)
    trained.data = {
        **plan.describe(),
        "training": [rows.description for rows in training],
        "evaluation": evaluation.describe(),
    }
    return trained
