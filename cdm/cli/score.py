"""`cdm score --all`: materialise every customer's scores (and optionally write a file)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cdm.cli.common import OneLineErrors, console, migrated_database, settings_from_env
from cdm.cli.errors import CliError, fail, run
from cdm.scoring import build_scorer
from ml.serving.scoring import RECOMMENDATIONS_KEPT
from sql.database import connect

if TYPE_CHECKING:
    from ml.serving.batch import FileLabels


def score(
    all_customers: Annotated[
        bool, typer.Option("--all", help="Score every customer (required: the only mode).")
    ] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Score as of this time, from data before it (UTC if no zone)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Also write the scores to a .csv or .parquet file.")
    ] = None,
    recommendations: Annotated[
        bool, typer.Option(help="Include the top recommendations of each customer (--top).")
    ] = True,
    top: Annotated[
        int,
        typer.Option(
            help=f"Recommendations per customer (1 to {RECOMMENDATIONS_KEPT}), best first, "
            "stored and written."
        ),
    ] = 5,  # batch.TOP_RECOMMENDATIONS (not imported here: that module loads NumPy and Arrow)
    id_source: Annotated[
        str | None,
        typer.Option(
            help="Write each customer's external id of this source (default: the earliest "
            "recorded external id, of any source)."
        ),
    ] = None,
) -> None:
    """Score every customer with the champion models into the customer_scores table."""
    from ml.serving.batch import file_labels, score_everyone, store, write_file

    if not all_customers:
        fail("say --all to score every customer (see --help)", 2)
    if output is not None and output.suffix.lower() not in (".csv", ".parquet"):
        fail(f"--output must end in .csv or .parquet, not {output.suffix or 'nothing'!r}", 2)
    if not 1 <= top <= RECOMMENDATIONS_KEPT:
        # No more than serving keeps per customer: a stored list of N then equals the online
        # `recommendations(first: N)` of the same customer, model version and as-of time.
        fail(f"--top must be 1 to {RECOMMENDATIONS_KEPT} recommendations, not {top}", 2)
    if id_source is not None and output is None:
        fail("--id-source chooses the external ids of the --output file: give --output too", 2)
    moment = as_of.replace(tzinfo=as_of.tzinfo or UTC) if as_of else datetime.now(UTC)
    if moment > datetime.now(UTC):
        fail("--as-of must not be in the future", 2)
    settings = settings_from_env()
    scorer = build_scorer(settings)

    async def go():  # noqa: ANN202 (ScoreTable, stored rows, seconds)
        url, _ = await migrated_database(settings)
        await scorer.store.refresh(settings.model_load_timeout_seconds)
        await scorer.store.compile()  # a million rows: worth waiting for native code
        if not scorer.store.models:
            reasons = "; ".join(f"{t}: {s.reason}" for t, s in scorer.store.status.items())
            raise CliError(f"no model to score with ({reasons})")
        started = time.perf_counter()

        def say(message: str) -> None:
            console.print(f"[dim]{time.perf_counter() - started:6.1f} s  {message} ...")

        table = await score_everyone(
            url, scorer, moment, recommend=recommendations, top=top, progress=say
        )
        say(f"storing {len(table):,} customers' scores")
        conn = await connect(url)
        try:
            table = await store(conn, table)  # without anyone erased or objecting meanwhile
            labels: FileLabels | None = None
            if output is not None:  # only a file needs them
                say(f"external ids and SKUs for {output.name}")
                labels = await file_labels(conn, table, source=id_source)
        finally:
            await conn.close()
        return table, labels, time.perf_counter() - started

    table, labels, seconds = run(go)
    stored = len(table)
    if output is not None and labels is not None:
        write_file(table, output, labels)  # from what store() kept: nobody erased or objecting
    summary = Table("model", "version", title=f"Scored {stored:,} customers in {seconds:.1f} s")
    for task in ("churn", "next_purchase", "upsell"):
        version = table.versions.get(task)
        summary.add_row(
            task,
            str(version) if version else f"[yellow]skipped: {table.skipped.get(task, 'not asked')}",
        )
    console.print(summary)
    written = ""
    if output is not None and labels is not None:
        named = sum(x is not None for x in labels.external_ids)
        of = f" of source {id_source!r}" if id_source else ""
        written = f"; written to {output} ({named:,} of {stored:,} with an external id{of})"
    console.print(f"as of {table.as_of:%Y-%m-%d %H:%M} UTC{written}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `cdm` app."""
    app.command("score", cls=OneLineErrors)(score)
