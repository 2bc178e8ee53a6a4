"""Train tasks end to end: check the data can support the plan, build the point-in-time
snapshots once, fit and evaluate each task. Recording in MLflow is the caller's next step
(:meth:`ml.registry.ModelRegistry.record`), so this module can be tested and timed alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg
import numpy as np

from ml.recommendations import load_catalogue
from ml.training import churn, next_purchase, upsell
from ml.training.datasets import PurchaseSnapshot, purchase_snapshot
from ml.training.errors import InsufficientData
from ml.training.outcome import TrainedTask
from ml.training.plan import TrainingPlan
from sql.queries import query

TASKS: tuple[str, ...] = ("churn", "next_purchase", "upsell")
MIN_CUSTOMERS = 50  # per cutoff: fewer cannot support a model or a meaningful metric

Progress = Callable[[str], None]


async def check_history(conn: asyncpg.Connection, plan: TrainingPlan) -> None:
    """Raise :class:`InsufficientData` when the data cannot cover the plan's windows."""
    now = datetime.now(UTC)
    if plan.as_of > now:
        raise InsufficientData(
            f"--as-of {plan.as_of:%Y-%m-%d} is in the future: the labels up to it are not "
            "known yet. Use a date no later than today"
        )
    first, last = await conn.fetchrow(query("purchase_history_span"))
    if first is None:
        raise InsufficientData("there are no purchases yet: import or record some first")
    earliest = plan.cutoffs[0]
    if first >= earliest:
        raise InsufficientData(
            f"purchase history starts on {first:%Y-%m-%d}, but the oldest training cutoff is "
            f"{earliest:%Y-%m-%d} (as-of - 2 x horizon - {plan.training_cutoffs - 1} x step) "
            "and it needs purchases before it; choose a later --as-of, a shorter --horizon "
            "or fewer --cutoffs"
        )
    if last < plan.evaluation_cutoff:
        raise InsufficientData(
            f"the latest purchase is on {last:%Y-%m-%d}, before the evaluation window "
            f"[{plan.evaluation_cutoff:%Y-%m-%d}, {plan.as_of:%Y-%m-%d}) starts: nothing "
            "there to evaluate on; choose an --as-of closer to the data"
        )


def _check_snapshot(snapshot: PurchaseSnapshot) -> None:
    day = f"{snapshot.cutoff:%Y-%m-%d}"
    if len(snapshot) < MIN_CUSTOMERS:
        raise InsufficientData(
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
            raise InsufficientData(
                f"at the cutoff {day}, {every} customer has the {name} label: a model needs "
                "both outcomes to learn; choose another --as-of or --horizon"
            )


async def train(
    conn: asyncpg.Connection,
    tasks: Sequence[str],
    plan: TrainingPlan,
    progress: Progress | None = None,
) -> list[TrainedTask]:
    """Train ``tasks`` (names from :data:`TASKS`) under ``plan``; results in ``tasks`` order."""
    say = progress or (lambda _message: None)
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; expected {', '.join(TASKS)}")
    await check_history(conn, plan)
    description = plan.describe()
    results: dict[str, TrainedTask] = {}

    if {"churn", "next_purchase"} & set(tasks):
        snapshots = []
        for cutoff in [*plan.cutoffs, plan.evaluation_cutoff]:
            say(f"features and outcomes as of {cutoff:%Y-%m-%d}")
            snapshot = await purchase_snapshot(
                conn, cutoff, plan.horizon, max_customers=plan.max_customers, seed=plan.seed
            )
            _check_snapshot(snapshot)
            snapshots.append(snapshot)
        training, evaluation = snapshots[:-1], snapshots[-1]
        data = {
            **description,
            "training": [s.describe() for s in training],
            "evaluation": evaluation.describe(),
        }
        for task, module in (("churn", churn), ("next_purchase", next_purchase)):
            if task in tasks:
                say(f"training {task}")
                trained = module.train(training, evaluation, seed=plan.seed)
                trained.data = data
                results[task] = trained

    if "upsell" in tasks:
        catalogue = await load_catalogue(conn)
        if len(catalogue) < 2:
            raise InsufficientData("the catalogue holds fewer than two products: nothing to rank")
        upsell_snapshots = []
        for cutoff in [*plan.cutoffs, plan.evaluation_cutoff]:
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
            upsell_snapshots.append(snapshot)
        say("training upsell")
        trained = upsell.train(upsell_snapshots[:-1], upsell_snapshots[-1], seed=plan.seed)
        trained.data = {
            **description,
            "training": [s.describe() for s in upsell_snapshots[:-1]],
            "evaluation": upsell_snapshots[-1].describe(),
        }
        results["upsell"] = trained
    return [results[task] for task in tasks]
