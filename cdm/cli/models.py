"""`cdm train` and `cdm models`: train, compare, register and promote the predictive models."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from cdm.cli.common import (
    OneLineErrors,
    OneLineGroupErrors,
    console,
    migrated_database,
    settings_from_env,
)
from cdm.cli.errors import fail, run
from cdm.settings import Settings
from ml.training.plan import TrainingPlan, parse_duration
from sql.database import connect

models_app = typer.Typer(
    help="Registered models: list versions and aliases, promote a version to champion.",
    no_args_is_help=True,
    cls=OneLineGroupErrors,
)


class TaskChoice(StrEnum):
    CHURN = "churn"
    NEXT_PURCHASE = "next-purchase"
    UPSELL = "upsell"
    ALL = "all"

    @property
    def tasks(self) -> list[str]:
        if self is TaskChoice.ALL:
            return ["churn", "next_purchase", "upsell"]
        return [self.value.replace("-", "_")]


class Method(StrEnum):
    auto = "auto"
    direct = "direct"
    hazard = "hazard"


class ModelTask(StrEnum):
    CHURN = "churn"
    NEXT_PURCHASE = "next-purchase"
    UPSELL = "upsell"

    @property
    def task(self) -> str:
        return self.value.replace("-", "_")


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _registry(settings: Settings):  # noqa: ANN202 (ml.registry.ModelRegistry, imported late)
    from cdm.scoring import registry_for  # late: it brings in the model libraries

    return registry_for(settings)


def train(
    task: Annotated[TaskChoice, typer.Argument(help="Which model to train.")],
    as_of: Annotated[
        datetime | None,
        typer.Option(
            help="End of what training may see, labels included (UTC if no zone). "
            "Default: now. Score customers as of this date to backtest."
        ),
    ] = None,
    horizon: Annotated[
        str, typer.Option(help="Label window after each cutoff, e.g. 90d or 12w.")
    ] = "90d",
    cutoffs: Annotated[
        int, typer.Option(min=1, max=24, help="How many rolling training cutoffs.")
    ] = 6,
    step: Annotated[str, typer.Option(help="Time between training cutoffs, e.g. 60d.")] = "60d",
    max_customers: Annotated[
        int, typer.Option(min=100, help="Customers sampled per cutoff (bounds time and memory).")
    ] = 100_000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed: same seed, same models.")] = 42,
    method: Annotated[
        Method,
        typer.Option(
            help="How churn and next purchase learn the horizon: direct (a whole horizon of "
            "outcomes per cutoff), hazard (30-day steps: any horizon from a short history) "
            "or auto (direct where the history allows, else hazard)."
        ),
    ] = Method.auto,
) -> None:
    """Train, evaluate against baselines on a later cutoff, log to MLflow, gate the champion."""
    settings = settings_from_env()
    reference = as_of.replace(tzinfo=as_of.tzinfo or UTC) if as_of else datetime.now(UTC)
    try:
        plan = TrainingPlan(
            as_of=reference,
            horizon=_duration(horizon),
            training_cutoffs=cutoffs,
            step=_duration(step),
            max_customers=max_customers,
            seed=seed,
            method=method.value,
        )
    except (ValueError, typer.BadParameter) as exc:
        fail(str(exc), 2)

    async def go():  # noqa: ANN202 (ml.training.pipeline.TrainingRun, imported late)
        from ml.training import pipeline

        url, _ = await migrated_database(settings)
        conn = await connect(url)
        try:
            return await pipeline.train(
                conn, task.tasks, plan, progress=lambda m: console.print(f"[dim]{m} ...")
            )
        finally:
            await conn.close()

    console.print(
        f"Training {', '.join(task.tasks)} as of {plan.as_of:%Y-%m-%d %H:%M} UTC: "
        f"cutoffs {', '.join(f'{c:%Y-%m-%d}' for c in plan.cutoffs)}, "
        f"evaluated on {plan.evaluation_cutoff:%Y-%m-%d}, horizon {plan.horizon_days:g} days"
    )
    outcome = run(go)
    for note in outcome.notes:
        console.print(f"[yellow]{note}")
    if outcome.plan.method == "hazard" and outcome.trained:
        data = outcome.trained[0].data
        monthly = [str(c)[:10] for c in data["monthly_cutoffs"]]  # type: ignore[union-attr]
        console.print(
            f"Hazard form (30-day steps): monthly cutoffs {monthly[0]} .. {monthly[-1]} "
            f"({len(monthly)}), judged on the {data['evaluation_days']:g} days before as-of, "
            f"served for {plan.horizon_days:g} days"
        )
    elif outcome.plan != replace(plan, method=outcome.plan.method):
        used = outcome.plan
        console.print(
            f"Trained on cutoffs {', '.join(f'{c:%Y-%m-%d}' for c in used.cutoffs)}, "
            f"evaluated on {used.evaluation_cutoff:%Y-%m-%d}"
        )
    registry = _registry(settings)
    for trained in outcome.trained:
        recorded = run(_record, registry, trained, outcome.plan)
        _print_comparison(trained)
        decision = recorded.decision
        verdict = "[green]champion" if decision.promoted else "[yellow]challenger"
        console.print(
            f"{trained.task}: registered version {decision.version} as {verdict}[/]: "
            f"{decision.reason}.  MLflow run {recorded.run_id}"
        )
    for skipped, reason in outcome.skipped.items():
        console.print(f"[yellow]{skipped}: skipped, not trained: {reason}")


async def _record(registry, trained, plan: TrainingPlan):  # noqa: ANN001, ANN202
    # Recording is synchronous MLflow I/O; run() gives it the same one-line error handling.
    return registry.record(trained, plan.describe())


def _print_comparison(trained) -> None:  # noqa: ANN001 (ml.training.outcome.TrainedTask)
    models = list(trained.comparison)
    table = Table("metric", *models, title=f"{trained.task}: held-out cutoff, side by side")
    for metric in next(iter(trained.comparison.values())):
        cells = [_number(trained.comparison[m].get(metric, math.nan)) for m in models]
        label = f"[bold]{metric}" if metric == trained.primary_metric else metric
        table.add_row(label, *cells)
    console.print(table)
    for baseline, why in trained.baseline_status.items():
        console.print(f"[yellow]{baseline}: {why}; no metrics")


def _number(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.4f}"


@models_app.command("list", cls=OneLineErrors)
def list_models(
    task: Annotated[ModelTask | None, typer.Argument(help="Only this task's model.")] = None,
) -> None:
    """Registered versions of each model, their aliases and key metrics."""
    settings = settings_from_env()
    tasks = [task.task] if task else ["churn", "next_purchase", "upsell"]

    async def go() -> list:
        registry = _registry(settings)
        return [v for t in tasks for v in registry.versions(t)]

    versions = run(go)
    if not versions:
        console.print("No registered models yet; train one with `cdm train all`.")
        return
    table = Table("task", "version", "aliases", "created (UTC)", "as of", "key metric")
    for v in versions:
        metric = v.primary_metric
        table.add_row(
            v.task,
            str(v.version),
            ", ".join(v.aliases) or "-",
            f"{v.created:%Y-%m-%d %H:%M}",
            v.tags.get("as_of", "")[:10],
            f"{metric[0]} {metric[1]:.4f}" if metric else "-",
        )
    console.print(table)


@models_app.command("promote", cls=OneLineErrors)
def promote(
    task: Annotated[ModelTask, typer.Argument(help="Whose model.")],
    version: Annotated[int, typer.Argument(min=1, help="The version to make champion.")],
) -> None:
    """Make a version the champion by hand (skips the automatic gate)."""
    settings = settings_from_env()

    async def go() -> None:
        _registry(settings).promote(task.task, version)

    run(go)
    console.print(f"{task.value} version {version} is now the champion.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `cdm` app."""
    app.command("train", cls=OneLineErrors)(train)
    app.add_typer(models_app, name="models")
