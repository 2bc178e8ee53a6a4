"""Who is calling: the bearer API key of a request, checked against the stored hashes.

Keys are looked up by their public prefix and cached for a few seconds, so a busy client
costs one indexed read per key every few seconds, and a revoked key stops working within
that time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import asyncpg

from cdm.settings import Settings
from domain.access import Caller
from domain.api_keys import ApiKey, key_prefix, matches
from sql.api_keys import key_by_prefix

_HOW = "create one with `cdm keys create --role <role> --name <who>`"


class Authenticator:
    """Checks ``Authorization: Bearer <key>`` headers."""

    def __init__(
        self, settings: Settings | None = None, ttl_seconds: float = 5.0, max_cached: int = 10_000
    ) -> None:
        self._settings = settings
        self._ttl = ttl_seconds
        self._max = max_cached
        self._cache: dict[str, tuple[float, tuple[ApiKey, bytes] | None]] = {}

    async def authenticate(self, pool: asyncpg.Pool, header: str | None) -> Caller | str:
        """The caller's key, or why the request is not authenticated (for a 401)."""
        if not header:
            return f"missing API key: send `Authorization: Bearer <key>` ({_HOW})"
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return "the Authorization header must read `Bearer <key>`"
        prefix = key_prefix(key)
        if prefix is None:
            return f"that is not a CDM API key ({_HOW})"
        now = time.monotonic()
        cached = self._cache.get(prefix)
        if cached is None or cached[0] < now:
            if len(self._cache) >= self._max:
                self._cache.clear()
            cached = (now + self._ttl, await key_by_prefix(pool, prefix))
            self._cache[prefix] = cached
        found = cached[1]
        if found is None or not matches(key, found[1]):
            return "unknown API key"
        refusal = found[0].refusal(datetime.now(UTC))
        return refusal or Caller(found[0].name, found[0].role)
