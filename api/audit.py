"""Audit entries for reads of personal data and for refusals, written in batches off the
requests' path.

Reads of unmasked personal data must not slow the request that makes them: the endpoint
hands their entries to the :class:`AuditWriter`, which appends them in one batch per interval
and writes what is left when the server shuts down cleanly. (Mutations are recorded in
their own transaction instead: see ``api.schema.audited``.)

Refused requests (401, 403) go the same way, through a :class:`RefusalLimiter`: anyone can
send refused requests as fast as the network allows, so each caller (a client address before
authentication, the key or subject after) has a token bucket, all callers together a larger
one, and what is beyond them is only counted, in one summary entry per interval ("N more
refusals suppressed", with the callers who sent most). The log stays bounded and still says
how many there were.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import orjson

import sql.audit
from api.rate_limit import RateLimiter
from domain.access import Caller
from domain.api_keys import key_prefix
from domain.audit import AuditEntry, AuditKind
from domain.oidc import looks_like_jwt

_log = logging.getLogger("cdm.audit")

UNAUTHENTICATED = "unauthenticated"  # the actor of a 401: nobody proven
SUPPRESSED = "refusals suppressed"  # the operation of a summary entry
_UNSAFE = re.compile(r"[^\x20-\x7e]")  # claims are the client's: printable ASCII only


class RefusalLimiter:
    """Which refusals are written one by one, and a count of the rest (see the module
    docstring). In memory, per process; ``clock`` is injectable for tests."""

    def __init__(
        self, *, burst: int = 20, per_minute: float = 12.0, summary_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic, max_named: int = 20,
    ) -> None:  # fmt: skip
        self._callers = RateLimiter(per_minute / 60, burst, clock, max_clients=10_000)
        # Every caller together: ten callers' worth, so address rotation cannot flood either.
        self._all = RateLimiter(per_minute / 6, burst * 10, clock)
        self._clock = clock
        self._every = summary_seconds
        self._max_named = max_named
        self._since = clock()
        self._suppressed: Counter[str] = Counter()
        self._others = 0  # suppressed refusals of callers beyond the named ones

    def admit(self, caller: str) -> bool:
        """Whether a refusal of ``caller`` is written; if not, it is counted for the summary."""
        if self._callers.retry_after(caller) is None and self._all.retry_after("*") is None:
            return True
        if caller in self._suppressed or len(self._suppressed) < 10_000:
            self._suppressed[caller] += 1
        else:
            self._others += 1
        return False

    def summary(self, *, now: bool = False) -> dict[str, Any] | None:
        """The details of a summary entry when one is due (an interval has passed since the
        last, or ``now``) and refusals were suppressed since; the count starts again."""
        total = sum(self._suppressed.values()) + self._others
        if not total or (not now and self._clock() - self._since < self._every):
            return None
        named = dict(self._suppressed.most_common(self._max_named))
        unnamed = len(self._suppressed) - len(named) + (1 if self._others else 0)
        details = {
            "message": f"{total} more refusals suppressed", "suppressed": total,
            "callers": named, "otherCallers": unnamed,
        }  # fmt: skip
        self._suppressed.clear()
        self._others = 0
        self._since = self._clock()
        return details


def _clean(value: object, limit: int = 100) -> str | None:
    return _UNSAFE.sub("?", value)[:limit] if isinstance(value, str) and value else None


def credential_hint(header: str | None) -> dict[str, str]:
    """What a refused ``Authorization`` header says about its sender, none of it proven: a
    CDM key's public prefix, or a JWT's claimed subject and issuer (never the secret)."""
    _, _, value = (header or "").partition(" ")
    value = value.strip()
    prefix = key_prefix(value)
    if prefix is not None:
        return {"keyPrefix": prefix}
    if len(value) > 8192 or not looks_like_jwt(value):
        return {}
    try:
        payload = value.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    if not isinstance(claims, dict):
        return {}
    hint = {"tokenSubject": _clean(claims.get("sub")), "tokenIssuer": _clean(claims.get("iss"))}
    return {k: v for k, v in hint.items() if v is not None}


def refusal_entry(
    caller: Caller | None, request_id: str | None, operation: str, details: Mapping[str, object]
) -> AuditEntry:
    """The audit entry of a refused request: ``caller`` when authenticated (a 403), else
    nobody proven (a 401, whose ``details`` say what the credential claimed)."""
    return AuditEntry(
        actor=caller.actor if caller else UNAUTHENTICATED,
        role=caller.role.value if caller else "none", kind=AuditKind.REFUSAL,
        operation=operation, request_id=request_id, details=details,
    )  # fmt: skip


class AuditWriter:
    """Appends entries in batches, off the requests' path; flushes what is left on close."""

    def __init__(
        self, pool: Any, every_seconds: float, max_pending: int = 100_000,
        refusals: RefusalLimiter | None = None,
    ) -> None:  # fmt: skip
        self._pool = pool
        self._every = every_seconds
        self._max = max_pending
        self._pending: list[AuditEntry] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._refusals = refusals or RefusalLimiter()
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    def add(self, entry: AuditEntry) -> None:
        """Queue ``entry``; it is written within the flush interval."""
        self._pending.append(entry)
        if len(self._pending) >= self._max:
            self._full.set()  # write now rather than grow without bound

    def refused(self, entry: AuditEntry, caller: str) -> None:
        """Queue the entry of a refused request by ``caller``, unless the caller (or everyone)
        is over the refusal budget: then it is only counted, for the next summary entry."""
        if self._refusals.admit(caller):
            self.add(entry)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Write everything queued (and a summary of suppressed refusals, when due); on
        failure keep it queued for the next attempt."""
        summary = self._refusals.summary(now=self._closing)
        if summary is not None:
            self._pending.append(
                AuditEntry("api", "none", AuditKind.REFUSAL, SUPPRESSED, details=summary)
            )
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
        self._closing = True  # the count of suppressed refusals is written now, not lost
        try:
            await self.flush()
        except Exception:
            _log.error("%d audit entries could not be written at shutdown", self.pending)
