"""Bearer JWTs from an OpenID Connect identity provider, checked against its published keys.

Optional (``CDM_OIDC_ISSUER``): organisations that already sign people and services in
through an identity provider should not have to hand out CDM API keys as well. A token is
accepted when it is signed by one of the issuer's keys (its JWKS, discovered from
``<issuer>/.well-known/openid-configuration`` or set with ``CDM_OIDC_JWKS_URL``) with an
asymmetric algorithm, names the issuer as ``iss`` and ``CDM_OIDC_AUDIENCE`` among its
``aud``, is within ``nbf``..``exp`` (30 seconds of clock skew allowed) and carries a claim
that maps to exactly one role (see ``domain/oidc.py``). The caller is named by ``sub``.

Only asymmetric algorithms: the keys come from a public document, so an HMAC algorithm would
let anyone "sign" with the public key as the shared secret, and ``none`` signs nothing.

The keys are fetched in a worker thread (urllib), never on the event loop, and kept for ten
minutes. A token naming a key we do not have triggers one early refetch (the provider
rotated its keys), at most every 15 seconds, so a flood of made-up key ids cannot turn
CDM into a load generator against the provider. When the provider cannot be reached, keys
fetched less than an hour ago keep being used; with none, a token is refused (401: we
could not check it, so it does not authenticate anyone), and the fetch is retried at most
every 5 seconds so an outage does not make every request wait for a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt.types import Options

from cdm.settings import Settings
from domain.access import Caller, Role
from domain.oidc import parse_role_map, role_from_claim

_log = logging.getLogger("cdm.api")

# The signature algorithms accepted, and the key type (JWK `kty`) each needs.
ALGORITHMS: dict[str, str] = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
    "EdDSA": "OKP",
}  # fmt: skip
LEEWAY_SECONDS = 30  # clock skew between the provider and us
# A token without an expiry would be good forever; one without `sub` names nobody.
_CHECKS: Options = {"require": ["exp", "iss", "aud", "sub"], "enforce_minimum_key_length": True}
_MAX_DOCUMENT_BYTES = 1_000_000
_UNREACHABLE = "could not verify the token: the identity provider is unreachable; try again shortly"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class Unavailable(Exception):
    """The provider's keys could not be had; ``public`` says so to the client."""

    def __init__(self, detail: str, public: str = _UNREACHABLE) -> None:
        super().__init__(detail)
        self.public = public


def _get_json(url: str, timeout: float) -> dict[str, Any]:
    """GET a JSON object (blocking: run it in a thread)."""
    request = urllib.request.Request(  # noqa: S310 (http(s) only: checked at construction)
        url, headers={"Accept": "application/json", "User-Agent": "cdm-oidc"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(_MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response (and its socket) open
        raise Unavailable(f"GET {url}: HTTP {exc.code}") from exc
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad URLs
        raise Unavailable(f"GET {url}: {getattr(exc, 'reason', exc)}") from exc
    if len(body) > _MAX_DOCUMENT_BYTES:
        raise Unavailable(f"GET {url}: larger than {_MAX_DOCUMENT_BYTES:,} bytes")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise Unavailable(f"GET {url}: not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise Unavailable(f"GET {url}: not a JSON object")
    return document


class KeySet:
    """The issuer's public signing keys, fetched on demand and cached (see the module doc)."""

    def __init__(
        self, issuer: str, jwks_url: str | None, *, ttl_seconds: float = 600.0,
        refetch_after_seconds: float = 15.0, retry_after_failure_seconds: float = 5.0,
        max_stale_seconds: float = 3600.0, timeout_seconds: float = 5.0,
    ) -> None:  # fmt: skip
        self._issuer = issuer
        self._configured_jwks_url = jwks_url
        self._jwks_url = jwks_url  # discovered on first use when not configured
        self._ttl = ttl_seconds
        self._refetch_after = refetch_after_seconds
        self._retry_after = retry_after_failure_seconds
        self._max_stale = max_stale_seconds
        self._timeout = timeout_seconds
        self._keys: dict[str, dict[str, Any]] = {}  # by kid
        self._all: list[dict[str, Any]] = []  # every signing key, kid or not
        self._fetched_at: float | None = None  # monotonic time of the last successful fetch
        self._failed_at: float | None = None
        self._failure = _UNREACHABLE
        self._kid_refetch_at: float | None = None
        self._lock = asyncio.Lock()  # one fetch at a time; waiters use its result

    async def find(self, kid: str | None) -> dict[str, Any] | str:
        """The JWK for ``kid`` (or the only key, when the token names none), or why not."""
        started = time.monotonic()
        if self._fetched_at is None or started - self._fetched_at > self._ttl:
            failure = await self._refresh(started, unknown_kid=False)
            if failure is not None and (
                self._fetched_at is None or started - self._fetched_at > self._ttl + self._max_stale
            ):
                return failure
        if kid is None:
            if len(self._all) == 1:
                return self._all[0]
            return (
                "the token names no signing key (`kid`) and the identity provider publishes "
                f"{len(self._all)}; it must say which"
            )
        found = self._keys.get(kid)
        if found is None:  # rotated keys, perhaps: look again, within the rate limit
            failure = await self._refresh(started, unknown_kid=True)
            if failure is not None:
                return failure
            found = self._keys.get(kid)
        if found is None:
            return f"unknown signing key {kid!r}: the identity provider does not publish it"
        return found

    async def _refresh(self, started: float, *, unknown_kid: bool) -> str | None:
        """Fetch the keys again, unless a fetch finished since ``started`` (then its keys
        are current) or the limits say not yet; the client message on failure, else None."""
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= started:
                return None
            now = time.monotonic()
            if unknown_kid:
                if self._kid_refetch_at is not None and now - self._kid_refetch_at < (
                    self._refetch_after
                ):
                    return None
                self._kid_refetch_at = now
            if self._failed_at is not None and now - self._failed_at < self._retry_after:
                return self._failure
            try:
                keys = await asyncio.wait_for(
                    asyncio.to_thread(self._load), timeout=self._timeout * 3
                )
            except (Unavailable, TimeoutError) as exc:
                self._failed_at = time.monotonic()
                self._failure = exc.public if isinstance(exc, Unavailable) else _UNREACHABLE
                self._jwks_url = self._configured_jwks_url  # discover afresh next time
                _log.warning("OIDC: could not fetch the signing keys of %s: %s", self._issuer, exc)
                return self._failure
            self._all = keys
            self._keys = {key["kid"]: key for key in keys if isinstance(key.get("kid"), str)}
            self._fetched_at = time.monotonic()
            self._failed_at = None
            return None

    def _load(self) -> list[dict[str, Any]]:
        """The signing keys from the JWKS, discovering its URL if need be (blocking)."""
        if self._jwks_url is None:
            discovery_url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
            discovery = _get_json(discovery_url, self._timeout)
            if discovery.get("issuer") != self._issuer:
                message = (
                    f"the identity provider's discovery document names issuer "
                    f"{discovery.get('issuer')!r}, not {self._issuer!r} (CDM_OIDC_ISSUER)"
                )
                raise Unavailable(message, f"could not verify the token: {message}")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in (
                "http",
                "https",
            ):
                raise Unavailable(f"{discovery_url}: no usable jwks_uri ({jwks_uri!r})")
            self._jwks_url = jwks_uri
        document = _get_json(self._jwks_url, self._timeout)
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise Unavailable(f"{self._jwks_url}: not a JWK set (no `keys` list)")
        # Signing keys of the types we verify with; encryption and symmetric keys never.
        return [
            key for key in keys
            if isinstance(key, dict) and key.get("kty") in ("RSA", "EC", "OKP")
            and key.get("use", "sig") == "sig"
        ]  # fmt: skip


class OidcVerifier:
    """Turns a bearer JWT into a ``Caller``, or says why it does not authenticate anyone."""

    def __init__(self, settings: Settings, keys: KeySet | None = None) -> None:
        """Raises ValueError for settings that cannot work (checked at start-up, not on the
        first token): a malformed role map, a missing audience or claim name, a non-HTTP
        URL, or plain HTTP to a remote provider in production."""
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise ValueError("CDM_OIDC_ISSUER and CDM_OIDC_AUDIENCE must both be set")
        if not settings.oidc_role_claim.strip():
            raise ValueError("CDM_OIDC_ROLE_CLAIM must name a claim")
        for name, url in (
            ("CDM_OIDC_ISSUER", settings.oidc_issuer),
            ("CDM_OIDC_JWKS_URL", settings.oidc_jwks_url),
        ):
            if url is not None:
                _check_url(name, url, production=settings.production)
        self.issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        self._claim = settings.oidc_role_claim.strip()
        self._role_map = parse_role_map(settings.oidc_role_map)
        self._keys = keys or KeySet(self.issuer, settings.oidc_jwks_url)
        self._prepared: dict[tuple[str, str], jwt.PyJWK] = {}

    async def verify(self, token: str) -> Caller | str:
        """The caller a token proves, or why it proves none (for a 401)."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            return f"that is not a valid JWT ({exc})"
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            return _algorithm_refusal(alg)
        # Checked before fetching keys: the clearer message for a token from elsewhere, and no
        # JWKS request on its behalf. The signed value is checked again below.
        iss = unverified.get("iss")
        if iss != self.issuer:
            if iss is None:
                return "the token has no `iss` claim"
            return f"the token was issued by {iss!r}, not by {self.issuer!r} (CDM_OIDC_ISSUER)"

        kid = header.get("kid")
        jwk = await self._keys.find(kid)
        if isinstance(jwk, str):
            return jwk
        key = self._prepare(jwk, alg, kid)
        if isinstance(key, str):
            return key
        try:
            claims = jwt.decode(
                token, key=key, algorithms=list(ALGORITHMS), audience=self._audience,
                issuer=self.issuer, leeway=LEEWAY_SECONDS,
                options=_CHECKS,
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            return self._refusal(exc, unverified, kid)
        if not claims["sub"].strip():
            return "the token's `sub` claim is empty: it names nobody"
        role = role_from_claim(claims.get(self._claim), self._role_map, self._claim)
        if not isinstance(role, Role):  # not `isinstance(role, str)`: a Role is a str too
            return role
        return Caller(claims["sub"], role, via="oidc")

    def _prepare(self, jwk: dict[str, Any], alg: str, kid: str | None) -> jwt.PyJWK | str:
        """The key to verify an ``alg`` signature with, bound to that algorithm.

        A JWK without ``alg`` (common for RSA keys) serves any algorithm of its type, so
        ``PS256`` works too; one with ``alg`` serves only that."""
        name = _key_name(kid)
        if jwk.get("kty") != ALGORITHMS[alg] or jwk.get("alg", alg) != alg:
            return (
                f"the token's algorithm {alg} does not fit the identity provider's key {name} "
                f"({jwk.get('alg') or jwk.get('kty')})"
            )
        cache_key = (json.dumps(jwk, sort_keys=True), alg)  # the key itself: rotation-proof
        key = self._prepared.get(cache_key)
        if key is None:
            try:
                key = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError as exc:
                return f"the identity provider's key {name} is unusable: {exc}"
            if len(self._prepared) > 64:  # keys rotate rarely; bound it anyway
                self._prepared.clear()
            self._prepared[cache_key] = key
        return key

    def _refusal(self, exc: jwt.PyJWTError, claims: dict[str, Any], kid: str | None) -> str:
        """A specific message for each way a token fails verification."""
        if isinstance(exc, jwt.ExpiredSignatureError):
            return f"the token expired at {_when(claims.get('exp'))}"
        if isinstance(exc, jwt.ImmatureSignatureError):
            nbf = claims.get("nbf")
            if isinstance(nbf, int | float) and nbf > time.time() + LEEWAY_SECONDS:
                return f"the token is not valid before {_when(claims.get('nbf'))}"
            return f"the token claims to be issued in the future ({_when(claims.get('iat'))})"
        if isinstance(exc, jwt.InvalidAudienceError):
            return (
                f"the token is for audience {claims.get('aud')!r}, not {self._audience!r} "
                "(CDM_OIDC_AUDIENCE)"
            )
        if isinstance(exc, jwt.InvalidIssuerError):
            return f"the token was issued by {claims.get('iss')!r}, not by {self.issuer!r}"
        if isinstance(exc, jwt.InvalidSignatureError):
            return (
                "the token's signature does not verify against the identity provider's key "
                f"{_key_name(kid)}: it was not signed by the provider, or was altered"
            )
        if isinstance(exc, jwt.MissingRequiredClaimError):
            return f"the token has no `{exc.claim}` claim"
        if isinstance(exc, jwt.InvalidKeyError):
            return f"the identity provider's key {_key_name(kid)} is unusable: {exc}"
        return f"the token is invalid: {exc}"


def _algorithm_refusal(alg: object) -> str:
    accepted = ", ".join(ALGORITHMS)
    if not alg or (isinstance(alg, str) and alg.lower() == "none"):
        return f"the token is not signed (alg `none`); accepted algorithms: {accepted}"
    if isinstance(alg, str) and alg.upper().startswith("HS"):
        return (
            f"the token is signed with a shared secret ({alg}); only the identity provider's "
            f"public-key signatures are accepted ({accepted})"
        )
    return f"the token's algorithm {alg!r} is not accepted; accepted algorithms: {accepted}"


def _key_name(kid: str | None) -> str:
    return repr(kid) if kid is not None else "(the only one, as the token names none)"


def _when(timestamp: object) -> str:
    if isinstance(timestamp, int | float):
        return f"{datetime.fromtimestamp(timestamp, UTC):%Y-%m-%d %H:%M:%S} UTC"
    return "an unreadable time"


def _check_url(name: str, url: str, *, production: bool) -> None:
    """Keys fetched over plain HTTP could be swapped in transit: allowed in development and
    for a provider on this machine, refused for a remote one in production."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an https:// URL, not {url!r}")
    if production and parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError(f"{name} must use https in production (keys fetched over http: {url})")
