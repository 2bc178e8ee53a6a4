"""`cdm demo`: everything on a fresh machine, in one command, reusing what exists.

Embedded PostgreSQL (unless CDM_DATABASE_URL is set), migrations, synthetic customers when
the database is empty, the three models trained and registered in MLflow when no champion
exists, every customer scored when no scores are stored, then the API with GraphiQL.
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import asyncpg
import typer

import sql.rfm
from cdm.cli.common import OneLineErrors, console, migrated_database, settings_from_env
from cdm.cli.errors import CliError, fail, run
from cdm.settings import Settings
from domain.access import Role
from domain.api_keys import key_prefix, matches, new_key
from sql.api_keys import insert_key, key_by_prefix
from sql.database import connect
from sql.queries import query

EXAMPLES = """\
# 1. A customer 360 view with scores
{ customer(id: "1") { fullName email purchaseSummary { orderCount totalSpend }
    churnRisk { probability band percentile factors { description value contribution } }
    nextPurchase { probability30d expectedPurchases expectedAt }
    recommendations(first: 5) { explanation product { name category price } } } }

# 2. A targeting list: customers most at risk of churning (stored scores)
{ storedScoresSummary { customers asOf }
  customers(first: 20, filter: {minChurnRisk: 0.7},
            orderBy: {field: CHURN_RISK, direction: DESC}) {
    totalCount nodes { id fullName email storedScores { churnProbability } } } }

# 3. A batch score fetch for a personalization engine (up to 1,000 ids)
{ scores(customerIds: ["1", "2", "3"]) { id churnRisk { probability band }
    nextPurchase { probability30d } recommendations(first: 3) { product { sku } } } }

# 4. A saved segment: loyal or champion customers at high churn risk who take e-mail
mutation { createSegment(name: "save-the-best", definition: {
    rfmSegmentIn: [CHAMPIONS, LOYAL], churnBandIn: [HIGH], consentedTo: "email_marketing"}) {
  ... on Segment { id size stats { totalSpend averageChurnProbability } } } }
"""


async def _demo_key(conn: asyncpg.Connection, settings: Settings) -> str:
    """The demo's admin key, kept in the data directory (owner-only) and reused while it is
    valid, so a second run prints the same key instead of piling up new ones."""
    saved = settings.data_dir / "demo-admin-key"
    if saved.is_file():
        key = saved.read_text().strip()
        prefix = key_prefix(key)
        found = await key_by_prefix(conn, prefix) if prefix else None
        if found and matches(key, found[1]) and found[0].refusal(datetime.now(UTC)) is None:
            return key
    key, prefix, secret_hash = new_key()
    await insert_key(conn, "cdm demo", Role.ADMIN, prefix, secret_hash, None)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    saved.touch(mode=0o600)
    saved.write_text(key + "\n")
    return key


async def _prepare(settings: Settings, customers: int) -> str:
    from cdm.scoring import build_scorer, registry_for
    from ingestion.seed import default_now, seed_database
    from ml.serving.batch import score_everyone, store
    from ml.training import pipeline
    from ml.training.plan import TrainingPlan

    url, _ = await migrated_database(settings, creates=True)
    conn = await connect(url)
    try:
        existing = await conn.fetchval(query("customer_count"))
        if existing:
            console.print(f"The database holds {existing:,} customers: reusing them.")
        else:
            console.print(f"Seeding {customers:,} synthetic customers ...")
            started = time.perf_counter()
            await seed_database(conn, customers=customers, seed=42, now=default_now())
            console.print(f"seeded in {time.perf_counter() - started:.0f} s")

        registry = registry_for(settings)
        missing = [t for t in pipeline.TASKS if registry.alias_version(t) is None]
        if missing:
            _, latest = await conn.fetchrow(query("purchase_history_span"))
            as_of = min(datetime.now(UTC), latest) if latest else datetime.now(UTC)
            plan = TrainingPlan(as_of=as_of)
            console.print(f"Training {', '.join(missing)} as of {as_of:%Y-%m-%d} ...")
            run = await pipeline.train(
                conn, missing, plan, progress=lambda m: console.print(f"[dim]{m} ...")
            )
            for trained in run.trained:
                decision = registry.record(trained, run.plan.describe()).decision
                console.print(f"{trained.task}: version {decision.version}, {decision.reason}")
            for task, reason in run.skipped.items():
                console.print(f"[yellow]{task}: skipped: {reason}")
        else:
            console.print("Champion models exist in MLflow: reusing them.")

        if not (await conn.fetchrow(query("stored_scores_summary")))["customers"]:
            scorer = build_scorer(settings)
            await scorer.store.refresh(settings.model_load_timeout_seconds)
            await scorer.store.compile()
            console.print("Scoring every customer ...")
            stored = len(await store(conn, await score_everyone(url, scorer, datetime.now(UTC))))
            console.print(f"stored the scores of {stored:,} customers")
        if not await conn.fetchval(query("rfm_count")):
            _, latest = await conn.fetchrow(query("purchase_history_span"))
            count = await sql.rfm.refresh(conn, min(datetime.now(UTC), latest or datetime.now(UTC)))
            console.print(f"computed the RFM segments of {count:,} customers")
        return await _demo_key(conn, settings)
    finally:
        await conn.close()


def demo(
    customers: Annotated[
        int, typer.Option(min=100, help="Synthetic customers to seed into an empty database.")
    ] = 20_000,
    port: Annotated[int | None, typer.Option(help="Port [env CDM_PORT].")] = None,
) -> None:
    """Seed, train, score and serve: the whole of CDM on this machine, in one command."""
    from cdm.cli.main import check_port_free, serve

    settings = settings_from_env()
    try:  # before minutes of preparing, and before the key is printed for a server that fails
        check_port_free(settings.host, port or settings.port)
    except CliError as exc:
        fail(str(exc))
    key = run(_prepare, settings, customers)
    data_dir = settings.data_dir
    console.print(
        "\n[bold]MLflow UI[/] (runs, metrics, plots, registered models), from its own "
        "environment (see README):",
    )
    command = (
        f"pipx run --spec mlflow mlflow ui --backend-store-uri sqlite:///{data_dir / 'mlflow.db'}"
    )
    console.print("  " + command, soft_wrap=True, markup=False, highlight=False)
    console.print(
        "\n[bold]Admin API key[/] (every request needs one; the addresses below carry it; "
        "`cdm keys create` makes keys for other roles):"
    )
    console.print(f'  {{"Authorization": "Bearer {key}"}}', soft_wrap=True, markup=False)
    wildcard = settings.host in ("0.0.0.0", "::")  # noqa: S104 (naming it, not binding it)
    host = "127.0.0.1" if wildcard else settings.host
    console.print("\n[bold]Dashboard[/] (the key rides in the address's #fragment, never sent):")
    console.print(
        f"  http://{host}:{port or settings.port}/dashboard#key={key}",
        soft_wrap=True, markup=False, highlight=False,
    )  # fmt: skip
    console.print("\n[bold]GraphiQL[/] (works offline; the key fills in its Authorization header):")
    console.print(
        f"  http://{host}:{port or settings.port}/graphql#key={key}",
        soft_wrap=True, markup=False, highlight=False,
    )  # fmt: skip
    command = Path(sys.executable).parent / "cdm"  # the virtualenv's, not resolved
    if command.exists() and shutil.which("cdm") != str(command):
        console.print(
            f"\n[bold]The cdm command[/] is {command} (`source {command.parent}/activate` puts "
            "it on your PATH); run it in this folder or below."
        )
    console.print("\n[bold]Try these in GraphiQL[/]:")
    console.print(EXAMPLES, soft_wrap=True, markup=False, highlight=False)
    serve(host=None, port=port, workers=None)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `cdm` app."""
    app.command("demo", cls=OneLineErrors)(demo)
