"""Who is calling: the bearer API key of a request, checked against the stored hashes, or,
with ``CDM_OIDC_ISSUER`` set, a JWT from that OpenID Connect provider (``api/oidc.py``).

Keys are looked up by their public prefix and cached for a few seconds, so a busy client
costs one indexed read per key every few seconds, and a revoked key stops working within
that time. A bearer value is treated as a JWT only when it is not shaped like a CDM key, so
both kinds of caller can use the same deployment.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from cdm.settings import Settings
from domain.access import Caller
from domain.api_keys import ApiKey, key_prefix, matches
from domain.oidc import looks_like_jwt
from sql.api_keys import key_by_prefix

if TYPE_CHECKING:
    from api.oidc import OidcVerifier

_HOW = "create one with `cdm keys create --role <role> --name <who>`"


class Authenticator:
    """Checks ``Authorization: Bearer <key or JWT>`` headers."""

    def __init__(
        self, settings: Settings | None = None, ttl_seconds: float = 5.0, max_cached: int = 10_000
    ) -> None:
        """Raises ValueError for OIDC settings that cannot work (e.g. a malformed
        CDM_OIDC_ROLE_MAP), so a misconfigured server fails at start-up."""
        self._settings = settings
        self._oidc: OidcVerifier | None = None
        if settings is not None and settings.oidc_issuer:
            # Late: PyJWT and cryptography cost a worker's start-up ~0.1-0.3 s, for OIDC only.
            from api.oidc import OidcVerifier

            self._oidc = OidcVerifier(settings)
        self._accepted = f"a CDM API key ({_HOW})" + (
            f" or a JWT from {self._oidc.issuer}" if self._oidc is not None else ""
        )
        self._ttl = ttl_seconds
        self._max = max_cached
        self._cache: dict[str, tuple[float, tuple[ApiKey, bytes] | None]] = {}

    async def authenticate(self, pool: asyncpg.Pool, header: str | None) -> Caller | str:
        """The caller's key, or why the request is not authenticated (for a 401)."""
        if not header:
            if self._oidc is not None:
                return f"missing API key or token: send `Authorization: Bearer` {self._accepted}"
            return f"missing API key: send `Authorization: Bearer <key>` ({_HOW})"
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return "the Authorization header must read `Bearer <key>`"
        prefix = key_prefix(key)
        if prefix is None:
            if self._oidc is None:
                return f"that is not a CDM API key ({_HOW})"
            if looks_like_jwt(key):
                return await self._oidc.verify(key)
            return f"that is neither a CDM API key nor a JWT: send {self._accepted}"
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
