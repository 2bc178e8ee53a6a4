"""`cdm dedupe`: list likely duplicate customers; merge (dry run by default) or undo a merge.

Scoring and blocking rules: `domain.matching`; merge rules: `domain.merging`.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from cdm.cli.common import OneLineErrors, actor, console, migrated_database, settings_from_env
from cdm.cli.errors import CliError, run
from cdm.settings import Settings
from domain.customers import Customer
from domain.matching import Candidate
from domain.merging import (
    Conflicted,
    Merged,
    MergePlan,
    Refused,
    Unmerged,
    comparison_json,
    parse_request,
)
from sql import identity
from sql.database import connect


def _customer_json(c: Customer) -> dict[str, Any]:
    return {
        "id": c.id, "firstName": c.first_name, "lastName": c.last_name, "email": c.email,
        "phone": c.phone, "country": c.country,
        "birthDate": c.birth_date.isoformat() if c.birth_date else None,
    }  # fmt: skip


def candidate_json(c: Candidate) -> dict[str, Any]:
    """A candidate pair as `--json` prints it."""
    compared = comparison_json(c.comparison)
    return {
        "a": _customer_json(c.a), "b": _customer_json(c.b), "score": c.comparison.score,
        "evidence": compared["evidence"], "blockingKeys": list(c.keys),
    }  # fmt: skip


def _echo_json(value: object) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _who(c: Customer) -> str:
    contact = " ".join(x for x in (c.email, c.phone) if x)
    return escape(f"{c.id} {c.full_name or '-'}" + (f"\n{contact}" if contact else ""))


def _print_candidates(found: list[Candidate], min_score: float) -> None:
    if not found:
        console.print(f"No duplicate candidates scoring {min_score} or more.")
        return
    table = Table("score", "a", "b", "evidence", title="Duplicate candidates")
    for c in found:
        evidence = ", ".join(
            f"{e.field} {e.kind.value}" if e.kind.value == "exact" else f"{e.field} {e.similarity}"
            for e in c.comparison.evidence
        )
        table.add_row(f"{c.comparison.score:.2f}", _who(c.a), _who(c.b), escape(evidence))
    console.print(table)


def _print_plan(plan: MergePlan) -> None:
    fields = Table("field", "value", "from", "source", "changed", "why", title="Profile")
    for f in plan.fields:
        source = f"{f.origin.source} {f.origin.at:%Y-%m-%d}" if f.origin else "-"
        fields.add_row(
            f.field, escape(str(f.value) if f.value is not None else "-"),
            str(f.customer_id or "-"), escape(source), "yes" if f.changed else "",
            escape(f.reason),
        )  # fmt: skip
    console.print(fields)
    moves = Table("customer", "purchases", "interactions", "identities", "consents", "aliases",
                  title="Rows moving to the survivor (dropped duplicates)")  # fmt: skip
    for m in plan.moves:
        moves.add_row(
            str(m.customer_id),
            *(f"{getattr(m.moved, t)} ({getattr(m.dropped, t)})"
              for t in ("purchases", "interactions", "identities", "consents")),
            str(m.aliases),
        )  # fmt: skip
    console.print(moves)
    for d in plan.duplicates:
        console.print(
            f"kept once: {d.table} {escape(d.key)} of customer {d.kept_customer_id}; "
            f"the copy of customer {d.dropped_customer_id} is dropped"
        )
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")


async def _candidates(
    settings: Settings, first: int, min_score: float, customer: int | None
) -> list[Candidate]:
    url, _ = await migrated_database(settings)
    conn = await connect(url)
    try:
        return await identity.duplicate_candidates(
            conn, first=first, min_score=min_score, customer_id=customer
        )
    finally:
        await conn.close()


async def _merge(
    settings: Settings, survivor: str, merged: list[str], apply: bool
) -> MergePlan | Merged:
    request, errors = parse_request(survivor, merged)
    if request is None:
        raise CliError("; ".join(str(e) for e in errors))
    url, _ = await migrated_database(settings)
    conn = await connect(url)
    try:
        outcome = await identity.merge_customers(
            conn, request, settings.survivorship, actor(), dry_run=not apply
        )
    finally:
        await conn.close()
    if isinstance(outcome, Refused):
        raise CliError("; ".join(str(e) for e in outcome.errors))
    return outcome


async def _unmerge(settings: Settings, merge_id: int) -> Unmerged:
    url, _ = await migrated_database(settings)
    conn = await connect(url)
    try:
        outcome = await identity.unmerge_customers(conn, merge_id, actor())
    finally:
        await conn.close()
    if isinstance(outcome, Refused):
        raise CliError("; ".join(str(e) for e in outcome.errors))
    if isinstance(outcome, Conflicted):
        raise CliError(f"cannot undo: {outcome.message}")
    return outcome


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `cdm` app."""

    @app.command(cls=OneLineErrors)
    def dedupe(
        ids: Annotated[
            list[str] | None,
            typer.Argument(
                help="With --merge: SURVIVOR MERGED...; with --unmerge: MERGE_ID.",
                show_default=False,
            ),
        ] = None,
        min_score: Annotated[
            float, typer.Option(min=0.0, max=1.0, help="Lowest score to list (0 to 1).")
        ] = 0.8,
        first: Annotated[int, typer.Option(min=1, max=10_000, help="Most pairs to list.")] = 50,
        customer: Annotated[
            int | None, typer.Option(min=1, help="Only candidates for this customer id.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        merge: Annotated[
            bool, typer.Option("--merge", help="Merge MERGED... into SURVIVOR (a dry run).")
        ] = False,
        apply: Annotated[
            bool, typer.Option("--apply", help="With --merge: carry the merge out.")
        ] = False,
        unmerge: Annotated[
            bool, typer.Option("--unmerge", help="Undo the merge MERGE_ID exactly.")
        ] = False,
    ) -> None:
        """List likely duplicate customers, best first; merge them, or undo a merge."""
        settings = settings_from_env()
        if merge and unmerge:
            raise typer.BadParameter("give --merge or --unmerge, not both")
        if apply and not merge:
            raise typer.BadParameter("--apply goes with --merge")
        if merge:
            if not ids or len(ids) < 2:
                raise typer.BadParameter("--merge needs SURVIVOR and at least one MERGED id")
            outcome = run(_merge, settings, ids[0], ids[1:], apply)
            plan = outcome.plan if isinstance(outcome, Merged) else outcome
            if as_json:
                merge_id = outcome.merge_id if isinstance(outcome, Merged) else None
                _echo_json({"mergeId": merge_id, "dryRun": not apply, "plan": plan.to_json()})
                return
            _print_plan(plan)
            if isinstance(outcome, Merged):
                console.print(
                    f"Merged {', '.join(map(str, plan.merged_ids))} into {plan.survivor_id} "
                    f"(merge {outcome.merge_id}; undo with cdm dedupe --unmerge "
                    f"{outcome.merge_id})."
                )
            else:
                console.print("Dry run: nothing was written. Add --apply to merge.")
            return
        if unmerge:
            if not ids or len(ids) != 1 or not ids[0].isdigit():
                raise typer.BadParameter("--unmerge needs exactly one MERGE_ID")
            done = run(_unmerge, settings, int(ids[0]))
            restored = ", ".join(map(str, done.restored_ids))
            if as_json:
                _echo_json({"mergeId": done.merge_id, "survivorId": done.survivor_id,
                            "restoredIds": list(done.restored_ids)})  # fmt: skip
                return
            console.print(f"Undid merge {done.merge_id}: customers {restored} are back.")
            return
        if ids:
            raise typer.BadParameter("ids are only taken with --merge or --unmerge")
        found = run(_candidates, settings, first, min_score, customer)
        if as_json:
            _echo_json([candidate_json(c) for c in found])
        else:
            _print_candidates(found, min_score)
