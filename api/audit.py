"""Audit entries for reads of personal data, written in batches off the requests' path.

Reads of unmasked personal data must not slow the request that makes them: the endpoint
hands their entries to the :class:`AuditWriter`, which appends them in one batch per interval
and writes what is left when the server shuts down cleanly. (Mutations are recorded in
their own transaction instead: see ``api.schema.audited``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import sql.audit
from domain.audit import AuditEntry

_log = logging.getLogger("cdm.audit")


class AuditWriter:
    """Appends entries in batches, off the requests' path; flushes what is left on close."""

    def __init__(self, pool: Any, every_seconds: float, max_pending: int = 100_000) -> None:
        self._pool = pool
        self._every = every_seconds
        self._max = max_pending
        self._pending: list[AuditEntry] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    def add(self, entry: AuditEntry) -> None:
        """Queue ``entry``; it is written within the flush interval."""
        self._pending.append(entry)
        if len(self._pending) >= self._max:
            self._full.set()  # write now rather than grow without bound

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Write everything queued; on failure keep it queued for the next attempt."""
        entries, self._pending = self._pending, []
        self._full.clear()
        if not entries:
            return
        try:
            await sql.audit.record_many(self._pool, entries)
        except Exception:
            self._pending[:0] = entries
            _log.exception("could not write %d audit entries; will retry", len(entries))
            raise

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._every)
            try:
                await self.flush()
            except Exception:  # logged by flush; the entries stay queued
                await asyncio.sleep(self._every)

    async def close(self) -> None:
        """Stop the background loop and write what is queued (at shutdown, before the pool)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            _log.error("%d audit entries could not be written at shutdown", self.pending)
