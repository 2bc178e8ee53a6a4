"""`cdm keys`: create, list and revoke the API keys callers authenticate with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import asyncpg
import typer
from rich.table import Table

from cdm.cli.common import OneLineGroupErrors, console, with_connection
from cdm.cli.errors import fail, run
from domain.access import Role
from domain.api_keys import ApiKey, new_key
from sql.api_keys import insert_key, list_keys, revoke_key

T = TypeVar("T")

keys_app = typer.Typer(
    help="API keys: every GraphQL request carries one (Authorization: Bearer <key>).",
    no_args_is_help=True,
    cls=OneLineGroupErrors,
)


async def _create(
    conn: asyncpg.Connection, name: str, role: Role, expires_at: datetime | None
) -> tuple[str, ApiKey]:
    key, prefix, secret_hash = new_key()
    return key, await insert_key(conn, name, role, prefix, secret_hash, expires_at)


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="What the key may do (see README: roles).")],
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. 'web-frontend'.")],
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Expire after this many days (default: never).")
    ] = None,
) -> None:
    """Create a key and print it: this is the only time it is shown."""
    if not name.strip() or len(name) > 200:
        fail("--name must be 1 to 200 characters", 2)
    expires_at = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    key, stored = run(with_connection, _create, name.strip(), role, expires_at)
    console.print(f"Created key {stored.prefix} ({stored.role.value}) for {stored.name}.")
    console.print("Keep it now; it is not stored and cannot be shown again:")
    print(key)  # plain stdout, so scripts can capture it


@keys_app.command("list")
def list_() -> None:
    """Every key: prefix, name, role, and whether it is usable."""
    keys: list[ApiKey] = run(with_connection, list_keys)
    now = datetime.now(UTC)
    table = Table("id", "prefix", "name", "role", "created", "expires", "state")
    for k in keys:
        refusal = k.refusal(now)
        state = "usable" if refusal is None else ("revoked" if k.revoked_at else "expired")
        expires = f"{k.expires_at:%Y-%m-%d}" if k.expires_at else "never"
        table.add_row(str(k.id), k.prefix, k.name, k.role.value, f"{k.created_at:%Y-%m-%d}",
                      expires, state)  # fmt: skip
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key's id or prefix (see `cdm keys list`).")],
) -> None:
    """Revoke a key: requests with it are refused within seconds."""
    revoked = run(with_connection, revoke_key, key.strip())
    if revoked is None:
        fail(f"no key with id or prefix {key!r} (see `cdm keys list`)")
    console.print(f"Revoked key {revoked.prefix} ({revoked.role.value}) of {revoked.name}.")


def register(app: typer.Typer) -> None:
    """Add `cdm keys` to the `cdm` app."""
    app.add_typer(keys_app, name="keys")
