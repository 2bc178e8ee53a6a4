"""OpenID Connect bearer tokens over HTTP, against a real (local) identity provider.

The provider is a small HTTP server in a thread serving a discovery document and a JWKS made
from keys generated here; tokens are signed with PyJWT, and the app verifies them the way it
would in production (discovery, JWKS fetch in a thread, caching, rotation)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.app import create_app
from api.auth import Authenticator
from cdm.settings import Mode
from domain.access import Caller, Role
from domain.oidc import parse_role_map, role_from_claim
from tests.conftest import api_key, serving
from tests.factories import add_customer, add_identity
from tests.http_client import GRAPHQL_RESPONSE

AUDIENCE = "cdm-api"
ROLE_MAP = "crm-admins=admin,frontend=app,marketing=analyst,recs=personalization"
PERSON = """query($id: ID!) { customer(id: $id) { id email fullName identities { value } } }"""
MODELS = "{ models { task } }"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Key:
    """A signing key of the test provider and the JWK it publishes for it."""

    kid: str
    private: Any
    jwk: dict[str, Any]
    alg: str


def rsa_key(kid: str, *, alg: str | None = "RS256") -> Key:
    private = _rsa()
    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", **({"alg": alg} if alg else {}))
    return Key(kid, private, jwk, alg or "RS256")


KEY = rsa_key("k1")
NEW_KEY = rsa_key("k2")  # what the provider rotates to
IMPOSTOR = rsa_key("k1")  # same kid, someone else's key
UNBOUND = rsa_key("k3", alg=None)  # an RSA JWK without `alg`: RS* and PS* both fit
EC_PRIVATE = ec.generate_private_key(ec.SECP256R1())
EC_KEY = Key(
    "e1", EC_PRIVATE,
    {**ECAlgorithm.to_jwk(EC_PRIVATE.public_key(), as_dict=True), "kid": "e1", "alg": "ES256"},
    "ES256",
)  # fmt: skip


@dataclass
class Provider:
    """What the test identity provider serves, and what it was asked for."""

    url: str
    keys: list[Key] = field(default_factory=list)
    failing: bool = False  # answer 503 to everything
    hits: Counter[str] = field(default_factory=Counter)

    def token(
        self, key: Key = KEY, *, alg: str | None = None, kid: str | None = "same",
        **claims: Any,
    ) -> str:  # fmt: skip
        """A token signed by ``key``, valid for this app unless ``claims`` say otherwise
        (a claim set to None is left out)."""
        now = int(time.time())
        payload = {
            "iss": self.url, "aud": AUDIENCE, "sub": "alice", "iat": now, "nbf": now,
            "exp": now + 300, "cdm_role": "analyst", **claims,
        }  # fmt: skip
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {"kid": key.kid if kid == "same" else kid} if kid is not None else {}
        return jwt.encode(payload, key.private, algorithm=alg or key.alg, headers=headers)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        provider = self.server.provider
        provider.hits[self.path] += 1
        if provider.failing:
            self._send(503, {"error": "down for maintenance"})
        elif self.path == "/.well-known/openid-configuration":
            self._send(200, {"issuer": provider.url, "jwks_uri": f"{provider.url}/jwks"})
        elif self.path == "/jwks":
            self._send(200, {"keys": [k.jwk for k in provider.keys]})
        else:
            self._send(404, {"error": "not found"})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    provider: Provider


@pytest.fixture(scope="module")
def _server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.provider = Provider(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def idp(_server: _Server) -> Provider:
    """The provider, reset: publishing KEY, UNBOUND and EC_KEY, answering, nothing asked."""
    _server.provider = Provider(_server.provider.url, [KEY, UNBOUND, EC_KEY])
    return _server.provider


@pytest.fixture
def oidc_settings(settings, idp):
    return settings.model_copy(
        update={"oidc_issuer": idp.url, "oidc_audience": AUDIENCE, "oidc_role_map": ""}
    )


async def call(http, token: str, query: str = MODELS, variables: dict | None = None):
    return await http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Accept": GRAPHQL_RESPONSE, "Authorization": f"Bearer {token}"},
    )


def refusal(response) -> str:
    """The 401's message (asserting it is one)."""
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    return error["message"]


async def person(db) -> int:
    cid = await add_customer(db, first_name="Grace", last_name="Hopper", email="grace@navy.mil")
    await add_identity(db, cid, "email", "navy", "grace@navy.mil")
    return cid


async def test_tokens_get_the_role_their_claim_maps_to(db, database_url, oidc_settings, idp):
    cid = await person(db)
    configured = oidc_settings.model_copy(
        update={"oidc_role_claim": "groups", "oidc_role_map": ROLE_MAP}
    )
    async with serving(database_url, configured) as http:
        ids = {"id": str(cid)}
        # Unmapped groups are ignored; `marketing` makes an analyst: personal data masked.
        analyst = idp.token(groups=["staff", "marketing"], cdm_role=None)
        r = await call(http, analyst, PERSON, ids)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["customer"] == {
            "id": str(cid), "email": "g***@navy.mil", "fullName": "G***",
            "identities": [{"value": "g***@navy.mil"}],
        }  # fmt: skip
        r = await call(http, idp.token(groups="frontend"), PERSON, ids)  # a string claim
        assert r.json()["data"]["customer"]["email"] == "grace@navy.mil"
        # Personalization may not see the person at all: 403 before anything runs.
        r = await call(http, idp.token(groups=["recs"]), PERSON, ids)
        assert r.status_code == 403
        (error,) = r.json()["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert "Query.customer" in error["message"]
        assert (await call(http, idp.token(groups=["recs"]))).status_code == 200  # models: fine
        # Discovered once, fetched once, for all of that.
        assert idp.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}


async def test_the_caller_is_named_by_sub_and_marked_oidc(oidc_settings, idp):
    authenticator = Authenticator(oidc_settings)
    caller = await authenticator.authenticate(None, f"Bearer {idp.token(cdm_role='admin')}")
    assert caller == Caller("alice", Role.ADMIN, via="oidc")
    assert caller.actor == "oidc:alice"


async def test_other_asymmetric_algorithms_and_clock_skew_are_accepted(
    db, database_url, oidc_settings, idp
):
    async with serving(database_url, oidc_settings) as http:
        for token in (
            idp.token(EC_KEY),  # ES256
            idp.token(UNBOUND, alg="PS256"),  # an RSA JWK without `alg`: PS256 fits
            idp.token(exp=int(time.time()) - 10),  # expired 10 s ago: within the leeway
            idp.token(nbf=int(time.time()) + 10),
        ):
            r = await call(http, token)
            assert r.status_code == 200, r.text


def _unsigned(header: dict, payload: dict, secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: alg none, or HMAC keyed with a public key."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return f"{signing_input}.{b64(signature)}"


async def test_every_bad_token_is_refused_with_its_reason(db, database_url, oidc_settings, idp):
    now = int(time.time())
    claims = jwt.decode(idp.token(), options={"verify_signature": False})
    public_pem = KEY.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cases = {
        "the token expired at": idp.token(exp=now - 120),
        "the token is not valid before": idp.token(nbf=now + 600),
        f"the token is for audience 'someone-else', not '{AUDIENCE}'": idp.token(
            aud="someone-else"
        ),
        "the token is for audience ['a', 'b']": idp.token(aud=["a", "b"]),
        "was issued by 'https://evil.example', not by": idp.token(iss="https://evil.example"),
        "signature does not verify against the identity provider's key 'k1'": idp.token(IMPOSTOR),
        "the token is not signed (alg `none`)": _unsigned(
            {"alg": "none", "typ": "JWT", "kid": "k1"}, claims, None
        ),
        "signed with a shared secret (HS256)": _unsigned(
            {"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims, public_pem
        ),
        "the token's algorithm PS256 does not fit the identity provider's key 'k1' (RS256)": (
            idp.token(alg="PS256")
        ),
        "unknown signing key 'nope'": idp.token(kid="nope"),
        "the token names no signing key (`kid`) and the identity provider publishes 3": (
            idp.token(kid=None)
        ),
        "the token has no `exp` claim": idp.token(exp=None),
        "the token has no `sub` claim": idp.token(sub=None),
        "the token's `sub` claim is empty": idp.token(sub=""),
        "the token has no `cdm_role` claim": idp.token(cdm_role=None),
        "the token's `cdm_role` claim ('superuser') names no CDM role": idp.token(
            cdm_role="superuser"
        ),
        "maps to several CDM roles ('admin' → admin, 'analyst' → analyst)": idp.token(
            cdm_role=["admin", "analyst"]
        ),
        "the token's `cdm_role` claim must be a string or a list of strings": idp.token(
            cdm_role={"role": "admin"}
        ),
        "that is not a valid JWT": "aaaa.bbbb.cccc",
        "that is neither a CDM API key nor a JWT": "swordfish",
    }
    async with serving(database_url, oidc_settings) as http:
        for says, token in cases.items():
            message = refusal(await call(http, token))
            assert says in message, (says, message)
        # The shared-secret forgery is not even worth a key lookup; a foreign issuer's token
        # makes no requests either; one made-up kid made one refetch, not one per token.
        assert idp.hits["/jwks"] == 2


async def test_api_keys_still_work_alongside_tokens(db, database_url, oidc_settings, idp):
    cid = await person(db)
    async with serving(database_url, oidc_settings, key=await api_key(db, Role.ANALYST)) as http:
        r = await call(http, await api_key(db, Role.ANALYST), PERSON, {"id": str(cid)})
        assert r.json()["data"]["customer"]["email"] == "g***@navy.mil"
        says = refusal(await call(http, "cdm_0123456789_" + "A" * 43))
        assert says == "unknown API key"
        http.headers.pop("Authorization")
        r = await http.post(
            "/graphql", json={"query": MODELS}, headers={"Accept": GRAPHQL_RESPONSE}
        )
        assert f"or a JWT from {idp.url}" in refusal(r)
    assert idp.hits == {}  # API keys never touch the provider


async def test_rotated_keys_are_fetched_once_and_made_up_ones_are_rate_limited(
    db, database_url, oidc_settings, idp
):
    async with serving(database_url, oidc_settings) as http:
        assert (await call(http, idp.token(KEY))).status_code == 200
        assert idp.hits["/jwks"] == 1
        idp.keys = [NEW_KEY]  # the provider rotates: k1 retired, k2 signs
        # Many requests at once with the new key id: one refetch, and all of them succeed.
        tokens = [idp.token(NEW_KEY, sub=f"user-{i}") for i in range(20)]
        responses = await asyncio.gather(*(call(http, t) for t in tokens))
        assert [r.status_code for r in responses] == [200] * 20
        assert idp.hits["/jwks"] == 2
        # The retired key no longer works, and a flood of made-up key ids right after
        # does not reach the provider (one refetch per 15 s at most).
        assert "unknown signing key 'k1'" in refusal(await call(http, idp.token(KEY)))
        for i in range(10):
            says = refusal(await call(http, idp.token(KEY, kid=f"bogus-{i}")))
            assert f"unknown signing key 'bogus-{i}'" in says
        assert idp.hits["/jwks"] == 2
        assert idp.hits["/.well-known/openid-configuration"] == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_provider_means_401_not_500(db, database_url, oidc_settings, idp):
    down = f"http://127.0.0.1:{_closed_port()}"
    nobody = oidc_settings.model_copy(update={"oidc_issuer": down})
    async with serving(database_url, nobody) as http:
        for _ in range(2):
            says = refusal(await call(http, idp.token(iss=down)))
            assert says == (
                "could not verify the token: the identity provider is unreachable; "
                "try again shortly"
            )
    idp.failing = True  # up, but answering 503
    async with serving(database_url, oidc_settings) as http:
        for _ in range(3):
            assert "identity provider is unreachable" in refusal(await call(http, idp.token()))
        # Retried at most every few seconds, not once per request.
        assert idp.hits == {"/.well-known/openid-configuration": 1}
        key = await api_key(db, Role.APP)
        assert (await call(http, key)).status_code == 200  # API keys are unaffected


async def test_keys_outlive_a_provider_outage_and_a_configured_jwks_url_skips_discovery(
    db, database_url, oidc_settings, idp
):
    direct = oidc_settings.model_copy(update={"oidc_jwks_url": f"{idp.url}/jwks"})
    authenticator = Authenticator(direct)
    keys = authenticator._oidc._keys  # the cache, aged by hand below
    assert await authenticator.authenticate(None, f"Bearer {idp.token()}") == Caller(
        "alice", Role.ANALYST, via="oidc"
    )
    assert idp.hits == {"/jwks": 1}
    idp.failing = True
    keys._fetched_at -= 900  # past the 10 minutes: a refetch is due, and fails
    assert isinstance(await authenticator.authenticate(None, f"Bearer {idp.token()}"), Caller)
    assert idp.hits == {"/jwks": 2}
    keys._fetched_at -= 3600  # over an hour stale: no longer trusted
    keys._failed_at = None
    says = await authenticator.authenticate(None, f"Bearer {idp.token()}")
    assert says.startswith("could not verify the token: the identity provider is unreachable")


async def test_a_discovery_document_for_another_issuer_is_refused(oidc_settings, idp):
    other = oidc_settings.model_copy(update={"oidc_issuer": idp.url + "/"})  # not the same
    says = await Authenticator(other).authenticate(None, f"Bearer {idp.token(iss=idp.url + '/')}")
    assert says == (
        "could not verify the token: the identity provider's discovery document names issuer "
        f"'{idp.url}', not '{idp.url}/' (CDM_OIDC_ISSUER)"
    )


@pytest.mark.parametrize(
    ("update", "says"),
    [
        ({"oidc_role_map": "crm-admins=superuser"}, "'superuser', which is not a role"),
        ({"oidc_role_map": "crm-admins"}, "'crm-admins' is not `claim-value=role`"),
        ({"oidc_role_map": "a=admin,a=analyst"}, "'a' is mapped to both admin and analyst"),
        ({"oidc_role_claim": " "}, "CDM_OIDC_ROLE_CLAIM must name a claim"),
        ({"oidc_jwks_url": "file:///etc/passwd"}, "CDM_OIDC_JWKS_URL must be an https:// URL"),
        (
            {"mode": Mode.PRODUCTION, "oidc_issuer": "http://idp.example.com"},
            "CDM_OIDC_ISSUER must use https in production",
        ),
    ],
)
def test_unusable_settings_stop_the_server_at_start_up(oidc_settings, database_url, update, says):
    with pytest.raises(ValueError, match="CDM_OIDC") as raised:
        create_app(oidc_settings.model_copy(update=update), database_url)
    assert says in str(raised.value)


def test_valid_role_maps_and_production_over_https_are_fine(oidc_settings, database_url):
    for update in (
        {"oidc_role_map": " crm-admins=admin, , cn=ops=app ,"},
        {"mode": Mode.PRODUCTION, "oidc_issuer": "https://idp.example.com"},
        {"mode": Mode.PRODUCTION},  # http to this machine
    ):
        create_app(oidc_settings.model_copy(update=update), database_url)


def test_role_maps_and_claim_values():
    mapping = parse_role_map("crm-admins=admin,cn=ops=app,marketing=analyst,analysts=analyst")
    assert mapping == {
        "crm-admins": Role.ADMIN, "cn=ops": Role.APP, "marketing": Role.ANALYST,
        "analysts": Role.ANALYST,
    }  # fmt: skip
    assert role_from_claim(["marketing", "analysts"], mapping, "groups") is Role.ANALYST
    assert role_from_claim([], mapping, "groups") == (
        "the token's `groups` claim (empty) maps to no CDM role in CDM_OIDC_ROLE_MAP"
    )
    assert role_from_claim("admin", mapping, "groups").startswith("the token's `groups` claim")
    assert role_from_claim("admin", {}, "groups") is Role.ADMIN
