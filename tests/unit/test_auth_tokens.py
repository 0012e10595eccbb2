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

from cern_spawner.auth.errors import ProviderUnavailable, TokenInvalid, WrongAudience
from cern_spawner.auth.provider import fetch_json
from cern_spawner.auth.tokens import Expected, JWKSCache, check_audience, parse_jwks, verify_token
from tests.unit.auth_idp import CLIENT_ID, FakeIdP, KeyPair, user_claims

pytestmark = pytest.mark.unit


def expect(issuer: str, **kwargs) -> Expected:
    return Expected(issuer=issuer, client_id=CLIENT_ID, leeway=5, **kwargs)


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
    # The user's token exchanged for another service: this hub is still its azp.
    "exchanged-for-eos": lambda idp: idp.key.sign(user_claims(idp.issuer, aud="eos-service")),
    "azp-only": lambda idp: idp.key.sign(user_claims(idp.issuer, aud="account")),
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
        await verify_token(make(idp), jwks_cache(idp), expect(idp.issuer))


GOOD_TOKENS = {
    "rs256-aud-and-azp": lambda idp: idp.key.sign(user_claims(idp.issuer)),
    "aud-list": lambda idp: idp.key.sign(user_claims(idp.issuer, aud=["account", CLIENT_ID], azp=None)),
    "aud-string": lambda idp: idp.key.sign(user_claims(idp.issuer, aud=CLIENT_ID, azp=None)),
    "ps256": lambda idp: idp.key.sign(user_claims(idp.issuer), alg="PS256"),
    "rs512": lambda idp: idp.key.sign(user_claims(idp.issuer), alg="RS512"),
    "expired-within-leeway": lambda idp: idp.key.sign(user_claims(idp.issuer, exp=int(time.time()) - 2)),
}


@pytest.mark.parametrize("make", GOOD_TOKENS.values(), ids=GOOD_TOKENS.keys())
async def test_good_tokens_are_accepted(idp, make):
    claims = await verify_token(make(idp), jwks_cache(idp), expect(idp.issuer))
    assert claims["cern_upn"] == "alice"


async def test_unknown_kid_refetches_once_then_is_rate_limited(idp):
    clock = Clock()
    cache = jwks_cache(idp, clock, interval=60)
    good = idp.key.sign(user_claims(idp.issuer))
    await verify_token(good, cache, expect(idp.issuer))
    assert idp.jwks_fetches == 1
    stranger = KeyPair("key-unknown").sign(user_claims(idp.issuer))
    # Within the interval the key cannot be looked up yet: it may be a new key of a rotation, so
    # "try again later", not "invalid" (a refresh meeting this keeps the session).
    with pytest.raises(ProviderUnavailable, match="next fetch"):
        await verify_token(stranger, cache, expect(idp.issuer))
    assert idp.jwks_fetches == 1, "unknown kids within the interval must not refetch"
    clock.now += 60
    for _ in range(5):
        # Looked up by a fetch made for it and absent: invalid, and no further fetch.
        with pytest.raises(TokenInvalid, match="key-unknown"):
            await verify_token(stranger, cache, expect(idp.issuer))
    assert idp.jwks_fetches == 2, "one refetch per interval"


async def test_rotated_key_is_accepted_after_refetch(idp):
    clock = Clock()
    cache = jwks_cache(idp, clock, interval=60)
    await verify_token(idp.key.sign(user_claims(idp.issuer)), cache, expect(idp.issuer))
    new = KeyPair("key-2")
    idp.published = [idp.key, new]
    clock.now += 60
    claims = await verify_token(new.sign(user_claims(idp.issuer)), cache, expect(idp.issuer))
    assert claims["sub"] and idp.jwks_fetches == 2
    # The known key is served from the cache, without a fetch.
    await verify_token(idp.key.sign(user_claims(idp.issuer)), cache, expect(idp.issuer))
    assert idp.jwks_fetches == 2


async def test_unreachable_jwks_is_a_provider_error_and_rate_limited():
    clock = Clock()
    client = AsyncHTTPClient(force_instance=True)
    # Port 9 on loopback: nothing listens; the connection is refused at once.
    cache = JWKSCache(lambda: fetch_json(client, "http://127.0.0.1:9/certs", request_timeout=2), clock=clock)
    token = KeyPair("k").sign(user_claims("https://issuer"))
    for _ in range(3):
        # Not "invalid": the key may exist, the hub cannot tell (one failed fetch used to make every
        # unknown kid invalid for a minute, and refreshes then logged users out).
        with pytest.raises(ProviderUnavailable):
            await verify_token(token, cache, expect("https://issuer"))
    assert cache.fetch_count == 1


async def test_jwks_outage_then_recovery(idp):
    clock = Clock()
    cache = jwks_cache(idp, clock, interval=60)
    token = idp.key.sign(user_claims(idp.issuer))
    idp.jwks_error = 503
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await verify_token(token, cache, expect(idp.issuer))
    assert idp.jwks_fetches == 1
    idp.jwks_error = None
    clock.now += 60
    assert (await verify_token(token, cache, expect(idp.issuer)))["cern_upn"] == "alice"
    stranger = KeyPair("key-unknown").sign(user_claims(idp.issuer))
    clock.now += 60
    with pytest.raises(TokenInvalid, match="key-unknown"):  # unknown after a successful fetch for it
        await verify_token(stranger, cache, expect(idp.issuer))


async def test_jwks_answering_404_is_unavailable_not_invalid(idp):
    idp.jwks_error = 404
    with pytest.raises(ProviderUnavailable, match="refused"):
        await verify_token(idp.key.sign(user_claims(idp.issuer)), jwks_cache(idp), expect(idp.issuer))


async def test_a_removed_key_stops_verifying_after_max_age(idp):
    clock = Clock()
    cache = JWKSCache(
        lambda: fetch_json(AsyncHTTPClient(force_instance=True), f"{idp.base}/certs", request_timeout=5),
        min_refetch_interval=60,
        max_age=600,
        clock=clock,
    )
    old = idp.key.sign(user_claims(idp.issuer))
    await verify_token(old, cache, expect(idp.issuer))
    idp.published = [KeyPair("key-2")]  # the issuer rotated key-1 out
    clock.now += 599
    await verify_token(old, cache, expect(idp.issuer))  # still within max_age: no fetch
    assert idp.jwks_fetches == 1
    clock.now += 1
    with pytest.raises(TokenInvalid, match="key-1"):
        await verify_token(old, cache, expect(idp.issuer))
    assert idp.jwks_fetches == 2


async def test_stale_keys_are_kept_while_the_jwks_cannot_be_fetched(idp):
    clock = Clock()
    cache = JWKSCache(
        lambda: fetch_json(AsyncHTTPClient(force_instance=True), f"{idp.base}/certs", request_timeout=5),
        max_age=600,
        clock=clock,
    )
    token = idp.key.sign(user_claims(idp.issuer))
    await verify_token(token, cache, expect(idp.issuer))
    idp.jwks_error = 503
    clock.now += 700
    for _ in range(2):
        await verify_token(token, cache, expect(idp.issuer))
    assert idp.jwks_fetches == 2, "one failed refetch, then rate-limited"


async def test_a_clock_set_back_does_not_stop_refetches(idp):
    clock = Clock()
    cache = jwks_cache(idp, clock, interval=60)
    await verify_token(idp.key.sign(user_claims(idp.issuer)), cache, expect(idp.issuer))
    new = KeyPair("key-2")
    idp.published = [idp.key, new]
    clock.now -= 3600
    await verify_token(new.sign(user_claims(idp.issuer)), cache, expect(idp.issuer))
    assert idp.jwks_fetches == 2


AUDIENCES = {
    # (aud, azp, audience required, azp needed with several audiences (id tokens), accepted)
    "aud-and-azp": ([CLIENT_ID, "account"], CLIENT_ID, True, True, True),
    "aud-string-no-azp": (CLIENT_ID, None, True, True, True),
    "exchanged-token": ("eos-service", CLIENT_ID, True, False, False),
    "exchanged-token-aud-not-required": ("eos-service", CLIENT_ID, False, False, True),
    "azp-only-aud-required": ("account", CLIENT_ID, True, False, False),
    "azp-only-aud-not-required": ("account", CLIENT_ID, False, False, True),
    "other-azp": (CLIENT_ID, "other", True, False, False),
    "other-azp-aud-not-required": ("other", "other", False, False, False),
    "several-audiences-no-azp-id-token": ([CLIENT_ID, "eos-service"], None, True, True, False),
    "several-audiences-no-azp-access-token": ([CLIENT_ID, "eos-service"], None, True, False, True),
    "no-aud-no-azp": (None, None, False, False, False),
    "aud-not-a-string": ({"jupyterhub": 1}, CLIENT_ID, True, False, False),
}


@pytest.mark.parametrize("aud, azp, required, several, accepted", AUDIENCES.values(), ids=AUDIENCES.keys())
def test_check_audience(aud, azp, required, several, accepted):
    claims = {k: v for k, v in {"aud": aud, "azp": azp}.items() if v is not None}
    if accepted:
        check_audience(claims, CLIENT_ID, required=required, azp_for_several=several)
    else:
        with pytest.raises(WrongAudience):
            check_audience(claims, CLIENT_ID, required=required, azp_for_several=several)


TYPES = {
    "access-token-as-id-token": ("Bearer", "id", False),
    "id-token-as-access-token": ("ID", "access", False),
    "refresh-token-as-access-token": ("Refresh", "access", False),
    "id-token": ("ID", "id", True),
    "access-token": ("Bearer", "access", True),
    "no-typ-claim": (None, "id", True),
}


@pytest.mark.parametrize("typ, kind, accepted", TYPES.values(), ids=TYPES.keys())
async def test_token_type_is_checked_when_present(idp, typ, kind, accepted):
    token = idp.key.sign(user_claims(idp.issuer, typ=typ))
    verify = verify_token(token, jwks_cache(idp), expect(idp.issuer, kind=kind))
    if accepted:
        assert (await verify)["cern_upn"] == "alice"
    else:
        with pytest.raises(TokenInvalid, match="type"):
            await verify


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
            expect(idp.issuer),
        )


async def _jwks_with(idp: FakeIdP, **extra) -> dict:
    return {"keys": [idp.key.public_jwk(**extra)]}
