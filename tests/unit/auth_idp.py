"""A tiny OpenID provider over real HTTP on 127.0.0.1 for the authenticator's unit tests.

It serves a discovery document, a JWKS and a token endpoint (authorization_code, refresh_token,
token-exchange grants), signs tokens with RSA keys generated here, and records what it was sent.
Behaviour is changed per test through plain attributes.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

CLIENT_ID = "jupyterhub"


class KeyPair:
    def __init__(self, kid: str):
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_jwk(self, **extra) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", **extra}

    def sign(self, claims: dict, alg: str = "RS256", **headers) -> str:
        return jwt.encode(claims, self.private, algorithm=alg, headers={"kid": self.kid, **headers})


def user_claims(issuer: str, *, lifetime: float = 300, **overrides) -> dict:
    """Claims as CERN SSO puts them in an access token, valid for `lifetime` seconds from now."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "f2c5e0e4-0000-4000-8000-000000000001",
        # As in CERN's realm (and the sandbox's): an audience mapper adds the hub's client.
        "aud": [CLIENT_ID, "account"],
        "azp": CLIENT_ID,
        "typ": "Bearer",
        "iat": now,
        "exp": now + int(lifetime),
        "cern_upn": "alice",
        "preferred_username": "Alice",
        "email": "alice@cern.ch",
        "resource_access": {CLIENT_ID: {"roles": ["gpu-users"]}},
        "cern_roles": ["default-role"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


class FakeIdP:
    """Start with `await idp.start()`; `idp.issuer` is its issuer URL."""

    def __init__(self):
        self.key = KeyPair("key-1")
        self.published = [self.key]  # keys in the JWKS
        self.jwks_fetches = 0
        self.jwks_error: int | None = None  # HTTP status the JWKS endpoint answers instead of keys
        self.token_requests: list[dict] = []
        self.discovery_overrides: dict = {}
        self.access_claims: dict = {}  # overrides of user_claims() for issued access tokens
        self.lifetime = 300
        self.token_error: tuple[int, dict] | None = None  # answer of the token endpoint instead of tokens
        self.exchange_error_for: set[str] = set()
        self.token_overrides: dict = {}  # fields of the token response replaced (e.g. a swapped token)
        self.issued = 0
        self._server: HTTPServer | None = None

    async def start(self) -> FakeIdP:
        sock, self.port = bind_unused_port()
        app = web.Application(
            [
                (r"/realms/cern/.well-known/openid-configuration", _Discovery, {"idp": self}),
                (r"/realms/cern/certs", _JWKS, {"idp": self}),
                (r"/realms/cern/token", _Token, {"idp": self}),
            ]
        )
        self._server = HTTPServer(app)
        self._server.add_sockets([sock])
        return self

    async def stop(self):
        self._server.stop()
        await self._server.close_all_connections()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/cern"

    @property
    def issuer(self) -> str:
        return self.base

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base}/auth",
            "token_endpoint": f"{self.base}/token",
            "userinfo_endpoint": f"{self.base}/userinfo",
            "jwks_uri": f"{self.base}/certs",
            "end_session_endpoint": f"{self.base}/logout",
            **self.discovery_overrides,
        }

    def tokens(self) -> dict:
        """A token response for the current user claims."""
        self.issued += 1
        access = user_claims(self.issuer, lifetime=self.lifetime, **self.access_claims)
        identity = {**access, "aud": CLIENT_ID, "typ": "ID"}
        identity.pop("resource_access", None)
        return {
            "access_token": self.key.sign(access),
            "id_token": self.key.sign(identity),
            "refresh_token": f"refresh-{self.issued}",
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "scope": "openid profile email offline_access",
            **self.token_overrides,
        }

    def exchanged(self, audience: str) -> str:
        """The user's token as Keycloak exchanges it for `audience`: this hub stays its azp."""
        claims = user_claims(self.issuer, lifetime=self.lifetime, aud=audience)
        return self.key.sign(claims)


class _Base(web.RequestHandler):
    def initialize(self, idp: FakeIdP):
        self.idp = idp

    def check_xsrf_cookie(self):
        pass


class _Discovery(_Base):
    def get(self):
        self.write(self.idp.discovery())


class _JWKS(_Base):
    def get(self):
        self.idp.jwks_fetches += 1
        if self.idp.jwks_error:
            self.set_status(self.idp.jwks_error)
            self.write({"error": "unavailable"})
            return
        self.write({"keys": [k.public_jwk() for k in self.idp.published]})


class _Token(_Base):
    def post(self):
        form = dict(parse_qsl(self.request.body.decode()))
        self.idp.token_requests.append(form)
        if self.idp.token_error:
            status, body = self.idp.token_error
            self.set_status(status)
            self.write(body)
            return
        grant = form.get("grant_type")
        if grant in ("authorization_code", "refresh_token"):
            self.write(self.idp.tokens())
        elif grant == "urn:ietf:params:oauth:grant-type:token-exchange":
            audience = form["audience"]
            if audience in self.idp.exchange_error_for:
                self.set_status(400)
                self.write({"error": "invalid_request", "error_description": "audience not allowed"})
                return
            self.write(
                {
                    "access_token": f"exchanged-{audience}-{uuid.uuid4().hex[:6]}",
                    "refresh_token": "must-not-be-kept",
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": 120,
                }
            )
        else:
            self.set_status(400)
            self.write({"error": "unsupported_grant_type"})
