"""Migrations: in order, once, checksummed, safe to run concurrently."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from sql import migrate
from sql.database import connect
from sql.embedded import replace_database


@pytest.fixture
async def empty_database(server_url):
    name = f"cdm_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield replace_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrate_applies_all_then_nothing(empty_database):
    conn = await connect(empty_database)
    try:
        applied = await migrate.migrate(conn)
        assert [m.version for m in applied] == [m.version for m in migrate.available_migrations()]
        assert await migrate.migrate(conn) == []
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["checksum"]) for r in rows] == [
            (m.version, m.checksum) for m in migrate.available_migrations()
        ]
        assert all(s.applied_at is not None for s in await migrate.status(conn))
    finally:
        await conn.close()


async def test_concurrent_starts_apply_each_migration_once(empty_database):
    conns = [await connect(empty_database) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate.migrate(c) for c in conns))
        applied = sorted(m.version for r in results for m in r)
        assert applied == [m.version for m in migrate.available_migrations()]
    finally:
        for c in conns:
            await c.close()


async def test_changed_applied_migration_is_refused(empty_database):
    conn = await connect(empty_database)
    try:
        await migrate.migrate(conn)
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
            await migrate.migrate(conn)
    finally:
        await conn.close()


async def test_unknown_applied_migration_is_refused(empty_database):
    conn = await connect(empty_database)
    try:
        await migrate.migrate(conn)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
        )
        with pytest.raises(migrate.MigrationError, match="does not know"):
            await migrate.status(conn)
    finally:
        await conn.close()


async def test_failing_migration_leaves_nothing_behind(empty_database, monkeypatch):
    good = migrate.available_migrations()
    bad = migrate.Migration(good[-1].version + 1, "broken", "CREATE TABLE t1 (x int); SELECT 1/0;")
    monkeypatch.setattr(migrate, "available_migrations", lambda: [*good, bad])
    conn = await connect(empty_database)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate.migrate(conn)
        assert await conn.fetchval("SELECT to_regclass('t1')") is None
        assert [m.version for m in await migrate.pending(conn)] == [bad.version]
    finally:
        await conn.close()
