"""Token verification against the issuer's JWKS, fetched over real HTTP from a local provider."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from tornado.httpclient import AsyncHTTPClient

from cern_spawner.auth.errors import ProviderUnavailable, TokenInvalid
from cern_spawner.auth.provider import fetch_json
from cern_spawner.auth.tokens import JWKSCache, parse_jwks, verify_token
from tests.unit.auth_idp import CLIENT_ID, FakeIdP, KeyPair, user_claims

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
async def idp():
    server = await FakeIdP().start()
    yield server
    await server.stop()


def jwks_cache(idp: FakeIdP, clock=None, interval=60.0) -> JWKSCache:
    client = AsyncHTTPClient(force_instance=True)
    return JWKSCache(
        lambda: fetch_json(client, f"{idp.base}/certs", request_timeout=5),
        min_refetch_interval=interval,
        clock=clock or Clock(),
    )


def _tamper(token: str) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["cern_upn"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def _unsigned(idp: FakeIdP) -> str:
    return jwt.encode(user_claims(idp.issuer), None, algorithm="none", headers={"kid": idp.key.kid})


def _hs256_with_public_key(idp: FakeIdP) -> str:
    # Algorithm confusion: the public key (which anyone can fetch) used as an HMAC secret.
    pem = idp.key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.key.kid}).encode()
    ).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(user_claims(idp.issuer)).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature.rstrip(b"=")).decode()


BAD_TOKENS = {
    "tampered-signature": lambda idp: _tamper(idp.key.sign(user_claims(idp.issuer))),
    "wrong-audience": lambda idp: idp.key.sign(user_claims(idp.issuer, aud="other", azp="other")),
    "azp-of-another-client": lambda idp: idp.key.sign(user_claims(idp.issuer, aud=CLIENT_ID, azp="other")),
    "no-audience": lambda idp: idp.key.sign(user_claims(idp.issuer, aud=None, azp=None)),
    "wrong-issuer": lambda idp: idp.key.sign(user_claims("https://evil.example/realms/cern")),
    "expired": lambda idp: idp.key.sign(user_claims(idp.issuer, exp=int(time.time()) - 60)),
    "no-exp": lambda idp: idp.key.sign(user_claims(idp.issuer, exp=None)),
    "alg-none": _unsigned,
    "hs256-with-public-key": _hs256_with_public_key,
    "signed-by-unpublished-key": lambda idp: KeyPair(idp.key.kid).sign(user_claims(idp.issuer)),
    "no-kid": lambda idp: jwt.encode(user_claims(idp.issuer), idp.key.private, algorithm="RS256"),
    "not-a-jwt": lambda idp: "opaque-access-token",
}


@pytest.mark.parametrize("make", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_tokens_are_refused(idp, make):
    with pytest.raises(TokenInvalid):
        await verify_token(make(idp), jwks_cache(idp), issuer=idp.issuer, client_id=CLIENT_ID, leeway=5)


GOOD_TOKENS = {
    "rs256-azp": lambda idp: idp.key.sign(user_claims(idp.issuer)),
    "aud-list": lambda idp: idp.key.sign(user_claims(idp.issuer, aud=["account", CLIENT_ID], azp=None)),
    "aud-string": lambda idp: idp.key.sign(user_claims(idp.issuer, aud=CLIENT_ID, azp=None)),
    "ps256": lambda idp: idp.key.sign(user_claims(idp.issuer), alg="PS256"),
    "rs512": lambda idp: idp.key.sign(user_claims(idp.issuer), alg="RS512"),
    "expired-within-leeway": lambda idp: idp.key.sign(user_claims(idp.issuer, exp=int(time.time()) - 2)),
}


@pytest.mark.parametrize("make", GOOD_TOKENS.values(), ids=GOOD_TOKENS.keys())
async def test_good_tokens_are_accepted(idp, make):
    claims = await verify_token(make(idp), jwks_cache(idp), issuer=idp.issuer, client_id=CLIENT_ID, leeway=5)
    assert claims["cern_upn"] == "alice"


async def test_unknown_kid_refetches_once_then_is_rate_limited(idp):
    clock = Clock()
    cache = jwks_cache(idp, clock, interval=60)
    good = idp.key.sign(user_claims(idp.issuer))
    await verify_token(good, cache, issuer=idp.issuer, client_id=CLIENT_ID, leeway=5)
    assert idp.jwks_fetches == 1
    stranger = KeyPair("key-unknown").sign(user_claims(idp.issuer))
    for _ in range(5):
        with pytest.raises(TokenInvalid, match="key-unknown"):
            await verify_token(stranger, cache, issuer=idp.issuer, client_id=CLIENT_ID, leeway=5)
    assert idp.jwks_fetches == 1, "unknown kids within the interval must not refetch"
    clock.now += 61
    with pytest.raises(TokenInvalid):
        await verify_token(stranger, cache, issuer=idp.issuer, client_id=CLIENT_ID, leeway=5)
    assert idp.jwks_fetches == 2, "one refetch per interval"


async def test_rotated_key_is_accepted_after_refetch(idp):
    clock = Clock()
    cache = jwks_cache(idp, clock, interval=60)
    await verify_token(
        idp.key.sign(user_claims(idp.issuer)), cache, issuer=idp.issuer, client_id=CLIENT_ID, leeway=5
    )
    new = KeyPair("key-2")
    idp.published = [idp.key, new]
    clock.now += 60
    claims = await verify_token(
        new.sign(user_claims(idp.issuer)), cache, issuer=idp.issuer, client_id=CLIENT_ID, leeway=5
    )
    assert claims["sub"] and idp.jwks_fetches == 2
    # The known key is served from the cache, without a fetch.
    await verify_token(
        idp.key.sign(user_claims(idp.issuer)), cache, issuer=idp.issuer, client_id=CLIENT_ID, leeway=5
    )
    assert idp.jwks_fetches == 2


async def test_unreachable_jwks_is_a_provider_error_and_rate_limited():
    clock = Clock()
    client = AsyncHTTPClient(force_instance=True)
    # Port 9 on loopback: nothing listens; the connection is refused at once.
    cache = JWKSCache(lambda: fetch_json(client, "http://127.0.0.1:9/certs", request_timeout=2), clock=clock)
    token = KeyPair("k").sign(user_claims("https://issuer"))
    with pytest.raises(ProviderUnavailable):
        await verify_token(token, cache, issuer="https://issuer", client_id=CLIENT_ID, leeway=5)
    with pytest.raises(TokenInvalid):
        await verify_token(token, cache, issuer="https://issuer", client_id=CLIENT_ID, leeway=5)
    assert cache.fetch_count == 1


JWKS_ENTRIES = {
    "signing-key": ({"use": "sig"}, True),
    "no-use": ({"use": None}, True),
    "encryption-key": ({"use": "enc"}, False),
    "hs-alg": ({"alg": "HS256"}, False),
    "rs256-alg": ({"alg": "RS256"}, True),
    "no-kid": ({"kid": None}, False),
}


@pytest.mark.parametrize("extra, kept", JWKS_ENTRIES.values(), ids=JWKS_ENTRIES.keys())
def test_parse_jwks_keeps_only_rsa_signing_keys(extra, kept):
    entry = {k: v for k, v in {**KeyPair("k").public_jwk(), **extra}.items() if v is not None}
    assert bool(parse_jwks({"keys": [entry, {"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})) is kept


async def test_key_restricted_to_its_jwk_alg(idp):
    # The JWKS entry says RS256: a PS256 signature by the same key is refused.
    cache = JWKSCache(lambda: _jwks_with(idp, alg="RS256"), clock=Clock())
    with pytest.raises(TokenInvalid):
        await verify_token(
            idp.key.sign(user_claims(idp.issuer), alg="PS256"),
            cache,
            issuer=idp.issuer,
            client_id=CLIENT_ID,
            leeway=5,
        )


async def _jwks_with(idp: FakeIdP, **extra) -> dict:
    return {"keys": [idp.key.public_jwk(**extra)]}
