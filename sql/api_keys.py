"""API keys in the database (named statements in ``sql/queries/keys.sql``)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from domain.access import Role
from domain.api_keys import ApiKey
from sql.database import Target
from sql.queries import query


def _key(r: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=r["id"], name=r["name"], role=Role(r["role"]), prefix=r["prefix"],
        created_at=r["created_at"], expires_at=r["expires_at"], revoked_at=r["revoked_at"],
    )  # fmt: skip


async def insert_key(
    conn: Target,
    name: str,
    role: Role,
    prefix: str,
    secret_hash: bytes,
    expires_at: datetime | None,
) -> ApiKey:
    """Store a new key's hash; the stored key."""
    row = await conn.fetchrow(
        query("insert_api_key"), name, role.value, prefix, secret_hash, expires_at
    )
    return _key(row)


async def key_by_prefix(conn: Target, prefix: str) -> tuple[ApiKey, bytes] | None:
    """The key with ``prefix`` and its stored hash."""
    row = await conn.fetchrow(query("api_key_by_prefix"), prefix)
    return (_key(row), bytes(row["secret_hash"])) if row else None


async def list_keys(conn: Target) -> list[ApiKey]:
    return [_key(r) for r in await conn.fetch(query("list_api_keys"))]


async def revoke_key(conn: Target, id_or_prefix: str) -> ApiKey | None:
    """Revoke the key with this id or prefix; the key, or None if there is none."""
    row = await conn.fetchrow(query("revoke_api_key"), id_or_prefix)
    return _key(row) if row else None
