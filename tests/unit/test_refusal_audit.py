"""Refusals in the audit log: bounded per caller and overall, never silently dropped."""

from __future__ import annotations

import base64

import orjson

from api.audit import RefusalLimiter, credential_hint


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_beyond_its_burst_is_counted_and_summarised_once_per_interval():
    clock = Clock()
    limiter = RefusalLimiter(burst=3, per_minute=6, summary_seconds=60, clock=clock)
    admitted = [limiter.admit("client:10.0.0.1") for _ in range(10)]
    assert admitted == [True] * 3 + [False] * 7
    assert limiter.admit("key:other")  # another caller has its own budget
    assert limiter.summary() is None  # not due before the interval ends
    clock.now = 60.0  # six refills a minute, at most a burst saved up
    assert [limiter.admit("client:10.0.0.1") for _ in range(8)] == [True] * 3 + [False] * 5
    assert limiter.summary() == {
        "message": "12 more refusals suppressed", "suppressed": 12,
        "callers": {"client:10.0.0.1": 12}, "otherCallers": 0,
    }  # fmt: skip
    assert limiter.summary(now=True) is None  # counted once: nothing new since


def test_rotating_addresses_cannot_flood_the_log():
    clock = Clock()
    limiter = RefusalLimiter(burst=2, per_minute=6, clock=clock, max_named=5)
    written = sum(limiter.admit(f"client:10.0.{n // 256}.{n % 256}") for n in range(5000))
    assert written == 20  # every caller together: ten callers' burst
    summary = limiter.summary(now=True)
    assert summary is not None
    assert summary["suppressed"] == 4980
    assert len(summary["callers"]) == 5
    assert summary["otherCallers"] == 4980 - 5


def _jwt(claims: dict) -> str:
    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    return f"{part(b'{}')}.{part(orjson.dumps(claims))}.sig"


def test_the_hint_names_a_key_prefix_or_claimed_subject_never_a_secret():
    key = "cdm_0123456789_" + "A" * 43
    assert credential_hint(f"Bearer {key}") == {"keyPrefix": "0123456789"}
    token = _jwt({"sub": "ada\x00\u2603" + "x" * 200, "iss": "https://idp.example"})
    hint = credential_hint(f"Bearer {token}")
    assert hint["tokenSubject"] == "ada??" + "x" * 95  # printable, bounded: safe to store
    assert hint["tokenIssuer"] == "https://idp.example"
    for header in (None, "", "Basic dXNlcjpwYXNz", "Bearer not-a-key", "Bearer a.b.c"):
        assert credential_hint(header) == {}
