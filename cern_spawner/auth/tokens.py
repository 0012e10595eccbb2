"""JWT verification against the issuer's JWKS: asymmetric algorithms only, key by `kid`, rotation-aware."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt

from .errors import GrantRejected, ProviderUnavailable, TokenInvalid, WrongAudience

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
    kids cannot make the hub hammer the identity provider. A key set older than `max_age` seconds is
    refetched at its next use, so a key the issuer removed (rotated out) stops being trusted; if that
    refetch fails, the keys held are kept (they did come from the issuer).

    An unknown kid is TokenInvalid only when a fetch made for it succeeded without it (the issuer
    does not publish that key). Otherwise it is ProviderUnavailable: the fetch failed, or the rate
    limit allows none yet (a key published since the last fetch, during a rotation). Either way the
    key may well exist and the hub cannot tell yet: a login is asked to retry, a session is kept.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[dict]],
        *,
        min_refetch_interval: float = 60.0,
        max_age: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self._min_interval = min_refetch_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None  # last attempt, successful or not
        self._loaded_at: float | None = None  # last successful fetch
        self._failure: ProviderUnavailable | None = None  # why the last attempt failed
        self._absent: set[str] = set()  # kids the last successful fetch was made for and lacked
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def key(self, kid: str) -> SigningKey:
        """The key named `kid`: TokenInvalid when a successful fetch lacks it, ProviderUnavailable when
        the key set could not be fetched (the caller decides: refuse a login for now, keep a session)."""
        if kid in self._keys and not self._stale():
            return self._keys[kid]
        async with self._lock:
            # Another request may have refetched while this one waited.
            if (kid not in self._keys or self._stale()) and self._may_refetch():
                try:
                    await self._refetch()
                except ProviderUnavailable:
                    if kid not in self._keys:
                        raise
                    log.warning("Keeping the issuer's signing keys of an earlier fetch: %s", self._failure)
                if kid not in self._keys and self._failure is None:
                    self._absent.add(kid)
        if kid in self._keys:
            return self._keys[kid]
        if kid in self._absent:
            raise TokenInvalid(f"no key {kid!r} in the issuer's JWKS")
        if self._failure is not None:
            raise ProviderUnavailable(
                f"key {kid!r} unknown and the JWKS could not be fetched: {self._failure}"
            )
        age = self._elapsed(self._fetched_at)
        raise ProviderUnavailable(
            f"key {kid!r} is not among the issuer's keys fetched {age:.0f} s ago; "
            f"the next fetch is allowed {self._min_interval:.0f} s after that one"
        )

    def _elapsed(self, since: float | None) -> float | None:
        if since is None:
            return None
        elapsed = self._clock() - since
        # A clock set back must not stop refetches until it catches up.
        return elapsed if elapsed >= 0 else float("inf")

    def _stale(self) -> bool:
        elapsed = self._elapsed(self._loaded_at)
        return elapsed is not None and elapsed >= self._max_age

    def _may_refetch(self) -> bool:
        elapsed = self._elapsed(self._fetched_at)
        return elapsed is None or elapsed >= self._min_interval

    async def _refetch(self) -> None:
        # Counted before fetching so a failing provider is also rate-limited.
        self._fetched_at = self._clock()
        self.fetch_count += 1
        try:
            keys = parse_jwks(await self._fetch())
        except ProviderUnavailable as e:
            self._failure = e
            raise
        except GrantRejected as e:  # a 4xx for the key set: the issuer is misconfigured or down
            self._failure = ProviderUnavailable(f"the JWKS request was refused: {e}")
            raise self._failure from e
        self._keys, self._loaded_at, self._failure, self._absent = keys, self._clock(), None, set()


# Keycloak's `typ` claim of each kind of token.
TOKEN_TYPES = {"access": "Bearer", "id": "ID"}


@dataclass(frozen=True)
class Expected:
    """What a token must say besides a good signature: who issued it, for whom, and which kind it is.

    `kind` "id": `aud` must contain `client_id` and, with several audiences, `azp` must be present
    (OIDC Core 3.1.3.7). `kind` "access": `aud` must contain `client_id` when `require_audience`
    (the realm adds the client to its access tokens' audience); without it, `azp` naming this client
    suffices. A `typ` claim (Keycloak's "ID" / "Bearer"), when present, must match the kind, so one
    kind of token cannot stand in for the other.
    """

    issuer: str
    client_id: str
    leeway: float
    kind: str = "access"
    require_audience: bool = True


def verify_signed_claims(token: str, key: SigningKey, expected: Expected) -> dict:
    """Claims of `token` once signature, algorithm, iss, exp, aud/azp and typ check out; else TokenInvalid."""
    try:
        claims = jwt.decode(
            token,
            key.key.key,
            algorithms=list(key.algorithms),
            issuer=expected.issuer,
            leeway=expected.leeway,
            options={"require": ["exp", "iss", "sub"], "verify_aud": False},
        )
    except jwt.PyJWTError as e:
        raise TokenInvalid(f"token refused: {e}") from e
    identity = expected.kind == "id"
    check_audience(
        claims,
        expected.client_id,
        required=identity or expected.require_audience,
        azp_for_several=identity,
    )
    typ, wanted = claims.get("typ"), TOKEN_TYPES[expected.kind]
    if typ is not None and typ != wanted:
        raise TokenInvalid(f"token of type {typ!r} where the {expected.kind} token ({wanted!r}) belongs")
    return claims


def check_audience(
    claims: dict, client_id: str, *, required: bool = True, azp_for_several: bool = False
) -> None:
    """The token must be meant for this client; WrongAudience otherwise.

    `aud` must include `client_id` (when `required`; otherwise `azp` naming it suffices); an `azp`
    naming another client is refused; with `azp_for_several`, so are several audiences without an
    `azp` (OIDC Core 3.1.3.7 items 3-5). A token exchanged for another service keeps this hub as
    `azp` but not as audience: only the `aud` check tells it apart.
    """
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise WrongAudience(f"token issued to client {azp!r}, not {client_id!r}")
    if client_id not in audiences and (required or azp != client_id):
        raise WrongAudience(f"token audience {aud!r} does not include {client_id!r}")
    if azp_for_several and len(audiences) > 1 and azp is None:
        raise WrongAudience(f"token for several audiences {aud!r} names no authorized party (azp)")


async def verify_token(token: str, jwks: JWKSCache, expected: Expected) -> dict:
    """Verify a JWT from `expected.issuer` for `expected.client_id`, choosing the key by the header's kid."""
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
    return verify_signed_claims(token, key, expected)
