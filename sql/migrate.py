"""Forward-only SQL migrations, applied in order, each in its own transaction.

Every applied file is recorded in ``schema_migrations`` with its SHA-256. Re-running is a
no-op; a file that changed after it was applied is refused, because the database no longer
matches what the file says. A session-level advisory lock serialises concurrent starts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

# Arbitrary, fixed key for pg_advisory_lock: "CDM" in ASCII, shifted into a bigint.
_LOCK_KEY = 0x43444D_0001
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(RuntimeError):
    """The database and the migration files disagree in a way a person must resolve."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrationState:
    """A migration file and, if applied, when."""

    migration: Migration
    applied_at: datetime | None


def available_migrations() -> list[Migration]:
    """The migration files shipped in ``sql/migrations``, in version order."""
    found = []
    for entry in resources.files("sql").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
    return {row["version"]: row for row in rows}


def _check_unchanged(migrations: list[Migration], applied: dict[int, asyncpg.Record]) -> None:
    known = {m.version for m in migrations}
    for migration in migrations:
        row = applied.get(migration.version)
        if row is not None and row["checksum"] != migration.checksum:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name}.sql was changed after it "
                "was applied; restore the original file and put the change in a new migration"
            )
    unknown = sorted(set(applied) - known)
    if unknown:
        raise MigrationError(
            f"the database has migrations this version of CDM does not know: {unknown}; "
            "upgrade CDM or point it at another database"
        )


async def status(conn: asyncpg.Connection) -> list[MigrationState]:
    """Every known migration with the time it was applied (None when pending)."""
    migrations = available_migrations()
    applied = await _applied(conn)
    _check_unchanged(migrations, applied)
    return [
        MigrationState(m, applied[m.version]["applied_at"] if m.version in applied else None)
        for m in migrations
    ]


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    """Migrations not yet applied (raises MigrationError if the applied ones changed)."""
    return [state.migration for state in await status(conn) if state.applied_at is None]


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every pending migration; return the ones applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        # Read the state only once we hold the lock: another process may just have migrated.
        todo = await pending(conn)
        for migration in todo:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        return todo
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
