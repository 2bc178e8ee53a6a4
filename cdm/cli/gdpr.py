"""`cdm gdpr`: data-subject rights from the command line (export, erase), audited."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import orjson
import typer

import sql.audit
import sql.gdpr
from cdm.cli.common import (
    OneLineGroupErrors,
    actor,
    command_entry,
    console,
    settings_from_env,
    with_connection,
)
from cdm.cli.errors import fail, run
from cdm.scoring import build_scorer
from domain.erasure import Erased
from ml.serving.explain import current_scores

gdpr_app = typer.Typer(
    help="Data-subject rights: export everything about a person, or erase them.",
    no_args_is_help=True,
    cls=OneLineGroupErrors,
)


async def _export(conn: asyncpg.Connection, customer_id: int) -> dict[str, Any] | None:
    settings = settings_from_env()
    document = await sql.gdpr.export_customer(conn, customer_id, settings.risk_bands)
    if document is not None:
        document["currentScores"] = None
        if not document["erasure"]:
            scorer = build_scorer(settings)
            await scorer.store.refresh(settings.model_load_timeout_seconds)
            document["currentScores"] = await current_scores(
                scorer, conn, document["customerId"], datetime.now(UTC)
            )
            scorer.store.close()
        await sql.audit.record(conn, command_entry("gdpr export", [document["customerId"]]))
    return document


async def _erase(conn: asyncpg.Connection, customer_id: int) -> Erased | str:
    async with conn.transaction():  # the erasure and its audit entry commit together
        outcome = await sql.gdpr.erase_customer(conn, customer_id, actor(), None)
        if isinstance(outcome, Erased):
            details = {"alreadyErased": True} if outcome.already else {"removed": outcome.removed}
            entry = command_entry("gdpr erase", [outcome.customer_id], details)
            await sql.audit.record(conn, entry)
        return outcome


@gdpr_app.command("export")
def export(
    customer_id: Annotated[int, typer.Argument(min=1, help="The customer's id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
) -> None:
    """Everything held about a person, as one JSON document."""
    document = run(with_connection, _export, customer_id)
    if document is None:
        fail(f"no customer with id {customer_id}")
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2)
    if output is None:
        sys.stdout.buffer.write(text + b"\n")
    else:
        output.write_bytes(text + b"\n")
        console.print(f"Wrote the data of customer {document['customerId']} to {output}.")


@gdpr_app.command("erase")
def erase(
    customer_id: Annotated[int, typer.Argument(min=1, help="The customer's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: erasure cannot be undone.")] = False,
) -> None:
    """Erase a person irreversibly (purchases stay, de-identified); again is a no-op."""
    if not yes:
        fail("erasure cannot be undone: add --yes to confirm", 2)
    outcome = run(with_connection, _erase, customer_id)
    if isinstance(outcome, str):
        fail(outcome)
    if outcome.already:  # idempotent: the person is erased, as asked
        console.print(
            f"Customer {outcome.customer_id} was already erased at "
            f"{outcome.erased_at:%Y-%m-%d %H:%M} UTC; nothing more to do."
        )
        return
    removed = ", ".join(f"{n} {table}" for table, n in outcome.removed.items() if n)
    console.print(
        f"Erased customer {outcome.customer_id} at {outcome.erased_at:%Y-%m-%d %H:%M} UTC"
        f" (removed: {removed or 'nothing beyond the profile'})."
    )


def register(app: typer.Typer) -> None:
    """Add `cdm gdpr` to the `cdm` app."""
    app.add_typer(gdpr_app, name="gdpr")
