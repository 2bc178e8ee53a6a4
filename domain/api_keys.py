"""API keys: their format, their hash and whether one may be used now. Pure: no I/O.

A key reads ``cdm_<prefix>_<secret>``: the prefix (10 hex characters) is its public handle,
shown in listings and used to find it; the whole key is hashed (SHA-256) for storage and
never kept in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from domain.access import Role

_FORMAT = re.compile(r"^cdm_([0-9a-f]{10})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (without its secret)."""

    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def refusal(self, now: datetime) -> str | None:
        """Why this key may not be used at ``now``, or None."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return f"this API key was revoked on {self.revoked_at:%Y-%m-%d %H:%M} UTC"
        if self.expires_at is not None and self.expires_at <= now:
            return f"this API key expired on {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return None


def new_key() -> tuple[str, str, bytes]:
    """A fresh random key: (the key, to show once; its prefix; its hash, to store)."""
    prefix = secrets.token_hex(5)
    key = f"cdm_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, key_hash(key)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, or None if ``key`` is not one."""
    found = _FORMAT.match(key)
    return found.group(1) if found else None


def matches(key: str, stored_hash: bytes) -> bool:
    """Whether ``key`` is the one whose hash is stored (constant time)."""
    return hmac.compare_digest(key_hash(key), stored_hash)
