"""With no database URL, CDM runs its own PostgreSQL and reuses it."""

from __future__ import annotations

import asyncpg

from sql.database import resolve_database_url


async def test_embedded_server_is_started_and_reused(embedded_dir):
    url = await resolve_database_url(None, embedded_dir)
    assert "/cdm" in url
    again = await resolve_database_url(None, embedded_dir)
    assert again == url
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT current_database()") == "cdm"
        assert (embedded_dir / "postgres" / "PG_VERSION").exists()
    finally:
        await conn.close()


async def test_configured_url_wins(database_url, embedded_dir):
    assert await resolve_database_url(database_url, embedded_dir) == database_url


def test_processes_that_died_are_forgotten(tmp_path):
    import json
    import os

    from sql.embedded import _forget_dead_users

    (tmp_path / ".handle_pids.json").write_text(json.dumps([os.getpid(), 2**22 + 12345]))
    _forget_dead_users(tmp_path)
    assert json.loads((tmp_path / ".handle_pids.json").read_text()) == [os.getpid()]
