"""JWT verification against the issuer's JWKS: asymmetric algorithms only, key by `kid`, rotation-aware."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt

from .errors import ProviderUnavailable, TokenInvalid

# Only asymmetric signatures: `none` and HS* (which would let the public key act as a shared secret)
# are refused before any key is looked at.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SigningKey:
    """A public key and the algorithms it may verify (its JWK `alg` when given, else the RSA family)."""

    key: jwt.PyJWK
    algorithms: tuple[str, ...]


def parse_jwks(document: dict) -> dict[str, SigningKey]:
    """Signing keys of a JWKS document by kid; unusable entries (encryption keys, EC/oct, no kid) skipped."""
    keys: dict[str, SigningKey] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ProviderUnavailable("the JWKS document has no `keys` list")
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("kid") or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") not in ALLOWED_ALGORITHMS:
            continue
        algorithms = (entry["alg"],) if entry.get("alg") else ALLOWED_ALGORITHMS
        try:
            keys[entry["kid"]] = SigningKey(jwt.PyJWK(entry), algorithms)
        except jwt.PyJWTError as e:
            log.warning("Skipping JWKS key %s: %s", entry["kid"], e)
    return keys


class JWKSCache:
    """The issuer's signing keys, refetched when a token names an unknown kid (key rotation).

    Refetches are at most one per `min_refetch_interval` seconds of `clock`, so tokens with made-up
    kids cannot make the hub hammer the identity provider.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[dict]],
        *,
        min_refetch_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self._min_interval = min_refetch_interval
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def key(self, kid: str) -> SigningKey:
        """The key named `kid`; TokenInvalid when the JWKS lacks it even after an allowed refetch.

        ProviderUnavailable when the JWKS could not be fetched: the caller decides (refuse a login,
        keep a session).
        """
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            # Another request may have refetched while this one waited.
            if kid not in self._keys and self._may_refetch():
                await self._refetch()
        if kid in self._keys:
            return self._keys[kid]
        raise TokenInvalid(f"no key {kid!r} in the issuer's JWKS")

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._min_interval

    async def _refetch(self) -> None:
        # Counted before fetching so a failing provider is also rate-limited.
        self._fetched_at = self._clock()
        self.fetch_count += 1
        self._keys = parse_jwks(await self._fetch())


def verify_signed_claims(token: str, key: SigningKey, *, issuer: str, client_id: str, leeway: float) -> dict:
    """Claims of `token` after checking signature, algorithm, iss, exp and aud/azp; TokenInvalid otherwise."""
    try:
        claims = jwt.decode(
            token,
            key.key.key,
            algorithms=list(key.algorithms),
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iss", "sub"], "verify_aud": False},
        )
    except jwt.PyJWTError as e:
        raise TokenInvalid(f"token refused: {e}") from e
    check_audience(claims, client_id)
    return claims


def check_audience(claims: dict, client_id: str) -> None:
    """The token must be meant for this client: `aud` includes it or `azp` is it; another `azp` is refused."""
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise TokenInvalid(f"token issued to client {azp!r}, not {client_id!r}")
    if client_id not in audiences and azp != client_id:
        raise TokenInvalid(f"token audience {aud!r} does not include {client_id!r}")


async def verify_token(token: str, jwks: JWKSCache, *, issuer: str, client_id: str, leeway: float) -> dict:
    """Verify a JWT from `issuer` for `client_id`, choosing the key by the header's kid."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise TokenInvalid(f"not a JWT: {e}") from e
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise TokenInvalid(f"algorithm {alg!r} is not accepted (only {', '.join(ALLOWED_ALGORITHMS)})")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenInvalid("the token header names no key (kid)")
    key = await jwks.key(kid)
    return verify_signed_claims(token, key, issuer=issuer, client_id=client_id, leeway=leeway)
