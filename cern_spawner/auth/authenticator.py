"""CERNAuthenticator: OAuthenticator's OIDC login with CERN SSO defaults and verified tokens.

OAuthenticator does the login flow (state cookie, PKCE, code exchange), auth_state, group sync and
the allow checks. This class adds: endpoints from discovery, verification of every token claims are
taken from, roles from a claim, refresh ahead of expiry, token exchange and SSO logout.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from urllib.parse import urlparse

from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets import Any

from .. import metrics
from .errors import AuthError, GrantRejected, ProviderUnavailable, TokenInvalid, WrongAudience
from .exchange import exchange_all
from .handlers import CERNLoginHandler, CERNLogoutHandler, end_session_url
from .provider import ProviderMetadata, discover, fetch_json
from .refresh import Decision, keep_after_failure, refresh_decision
from .roles import is_admin, is_allowed, roles_from_claims
from .token_secret import update_running_servers
from .tokens import Expected, JWKSCache, verify_token
from .traits import CERNAuthenticatorTraits

SSO_DOWN = "CERN SSO is unavailable right now. Please try again in a minute."
LOGIN_REFUSED = "CERN single sign-on did not confirm your login. Please log in again."
NOT_FOR_THIS_HUB = (
    "CERN single sign-on answered with a token that was not issued for this hub, so the login was "
    "refused. Please log in again; if this persists, tell the hub's administrators."
)


def crypt_key_problem(*, enable_auth_state: bool, environ: dict, configured_keys: bool) -> str | None:
    """Why auth_state cannot be stored, or None. Checked at start-up rather than at the first login."""
    if enable_auth_state and not environ.get("JUPYTERHUB_CRYPT_KEY", "").strip() and not configured_keys:
        return (
            "CERNAuthenticator.enable_auth_state is True (tokens are kept for refresh and token exchange), "
            "but JUPYTERHUB_CRYPT_KEY is not set: auth_state could not be encrypted. Set it to the output "
            "of `openssl rand -hex 32` (keep it stable across restarts), or set "
            "CERNAuthenticator.enable_refresh = False, exchange_audiences = [] and enable_auth_state = False."
        )
    return None


class CERNAuthenticator(CERNAuthenticatorTraits, GenericOAuthenticator):
    """Log in through CERN single sign-on (Keycloak, OpenID Connect)."""

    login_handler = CERNLoginHandler
    logout_handler = CERNLogoutHandler

    # Wall clock (epoch seconds, as token `exp`); replaced in tests.
    clock = Any(time.time)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        problem = crypt_key_problem(
            enable_auth_state=self.enable_auth_state,
            environ=os.environ,
            configured_keys=bool(self.config.get("CryptKeeper", {}).get("keys")),
        )
        if problem:
            raise ValueError(problem)
        if (self.enable_refresh or self.exchange_audiences) and not self.enable_auth_state:
            raise ValueError(
                "CERNAuthenticator.enable_refresh and CERNAuthenticator.exchange_audiences need "
                "CERNAuthenticator.enable_auth_state = True (tokens are kept in auth_state)"
            )
        self._provider: ProviderMetadata | None = None
        self._provider_lock = asyncio.Lock()
        self._jwks: JWKSCache | None = None

    # --- provider endpoints -------------------------------------------------------------------

    async def provider(self) -> ProviderMetadata:
        """The endpoints, discovered once (explicit endpoint traits win); ProviderUnavailable on failure."""
        if self._provider is None:
            async with self._provider_lock:
                if self._provider is None:
                    self._provider = await self._resolve_provider()
        return self._provider

    async def _resolve_provider(self) -> ProviderMetadata:
        explicit = {
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "jwks_uri": self.jwks_uri,
            "userinfo_endpoint": self.userdata_url,
            "end_session_endpoint": self.end_session_url,
        }
        if explicit["authorization_endpoint"] and explicit["token_endpoint"] and explicit["jwks_uri"]:
            found = ProviderMetadata(issuer=self.issuer_url, **explicit)
        else:
            discovered = await discover(
                self.http_client, self.issuer_url, request_timeout=self.http_timeout, **self._request_kwargs()
            )
            found = ProviderMetadata(
                issuer=self.issuer_url,
                **{key: value or getattr(discovered, key) for key, value in explicit.items()},
            )
            self.log.info("CERN SSO endpoints discovered from %s", self.issuer_url)
        # OAuthenticator's handlers read these traits.
        self.authorize_url, self.token_url = found.authorization_endpoint, found.token_endpoint
        self._jwks = JWKSCache(
            lambda: fetch_json(
                self.http_client, found.jwks_uri, request_timeout=self.http_timeout, **self._request_kwargs()
            ),
            min_refetch_interval=self.jwks_min_refetch_interval,
            max_age=self.jwks_max_age,
            # Through self.clock at each call, so that tests replacing the clock control the cache too.
            clock=lambda: self.clock(),
        )
        return found

    async def resolve_provider_for_user(self) -> ProviderMetadata:
        """provider(), with a short 503 for the user and the details in the log."""
        try:
            return await self.provider()
        except ProviderUnavailable as e:
            self.log.error("CERN SSO discovery at %s failed: %s", self.issuer_url, e)
            raise web.HTTPError(503, SSO_DOWN) from e

    def get_handlers(self, app):
        # Discover at start-up so the first login does not wait; a failure is retried on first use.
        try:
            self._prefetch = asyncio.get_running_loop().create_task(self._prefetch_provider())
        except RuntimeError:
            pass  # no running loop (not inside the hub): discovery happens at first use
        return super().get_handlers(app)

    async def _prefetch_provider(self):
        try:
            await self.provider()
        except ProviderUnavailable as e:
            self.log.warning("CERN SSO discovery failed at start-up (retried at first login): %s", e)

    def _request_kwargs(self) -> dict:
        return {"request_kwargs": {"validate_cert": self.validate_server_cert, **self.http_request_kwargs}}

    # --- token endpoint -----------------------------------------------------------------------

    def _client_auth(self) -> dict[str, str]:
        if self.basic_auth:
            return {}
        fields = {"client_id": self.client_id}
        if self.client_secret:
            fields["client_secret"] = self.client_secret
        return fields

    async def post_token_endpoint(self, form: dict) -> dict:
        """POST a grant to the token endpoint; GrantRejected / ProviderUnavailable on failure."""
        provider = await self.provider()
        headers = {}
        if self.basic_auth:
            pair = f"{self.client_id}:{self.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        # OAuthenticator's params carry a `data: None` and empty secrets for public clients.
        form = {k: str(v) for k, v in form.items() if v not in (None, "")}
        return await fetch_json(
            self.http_client,
            provider.token_endpoint,
            request_timeout=self.http_timeout,
            form=form,
            headers=headers,
            **self._request_kwargs(),
        )

    async def get_token_info(self, handler, params):
        """The code exchange at login (OAuthenticator builds `params`, with the PKCE verifier)."""
        try:
            token_info = await self.post_token_endpoint(params)
        except GrantRejected as e:
            self.log.warning("CERN SSO refused the authorization code: %s", e)
            raise web.HTTPError(403, LOGIN_REFUSED) from e
        except ProviderUnavailable as e:
            self.log.error("CERN SSO token endpoint failed: %s", e)
            raise web.HTTPError(503, SSO_DOWN) from e
        if not isinstance(token_info.get("access_token"), str):
            self.log.error("CERN SSO answered the code exchange without an access token")
            raise web.HTTPError(503, SSO_DOWN)
        return token_info

    # --- claims from verified tokens ----------------------------------------------------------

    async def verified_claims(self, token_info: dict) -> dict:
        """Claims of the access token, completed by the id token's; both verified. Typed errors."""
        provider = await self.provider()
        common = dict(issuer=provider.issuer, client_id=self.client_id, leeway=self.token_leeway)
        access = await verify_token(
            token_info["access_token"],
            self._jwks,
            Expected(**common, require_audience=self.access_token_audience_required),
        )
        id_token = token_info.get("id_token")
        if not id_token:
            return access
        # An id token's aud always names the client (OIDC Core 3.1.3.7), whatever the realm adds.
        identity = await verify_token(id_token, self._jwks, Expected(**common, kind="id"))
        if identity.get("sub") != access.get("sub"):
            raise TokenInvalid("the id token and the access token name different subjects")
        # The access token carries the authorization (roles): its claims win.
        return {**identity, **access}

    async def token_to_user(self, token_info):
        """Replaces OAuthenticator's userinfo call / unverified id-token decode with verified claims."""
        try:
            return await self.verified_claims(token_info)
        except WrongAudience as e:
            self.log.warning("Refusing a token from CERN SSO meant for another audience: %s", e)
            raise web.HTTPError(403, NOT_FOR_THIS_HUB) from e
        except TokenInvalid as e:
            self.log.warning("Refusing a token from CERN SSO: %s", e)
            raise web.HTTPError(403, LOGIN_REFUSED) from e
        except ProviderUnavailable as e:
            self.log.error("CERN SSO signing keys unavailable: %s", e)
            raise web.HTTPError(503, SSO_DOWN) from e

    async def build_auth_state_dict(self, token_info, user_info):
        state = super().build_auth_state_dict(token_info, user_info)
        # One copy of the refresh token, under "refresh_token"; token_response is often passed on.
        state["token_response"] = {k: v for k, v in token_info.items() if k != "refresh_token"}
        state["access_token_expires_at"] = user_info["exp"]
        state["roles"] = roles_from_claims(user_info, self.roles_claim, self.client_id)
        if self.exchange_audiences:
            state["exchanged_tokens"] = await exchange_all(
                self.post_token_endpoint,
                token_info["access_token"],
                list(self.exchange_audiences),
                self._client_auth(),
                now=self.clock(),
                log=self.log,
                scopes=dict(self.exchange_scopes),
            )
        return state

    # --- authorization ------------------------------------------------------------------------

    async def update_auth_model(self, auth_model):
        roles = auth_model["auth_state"]["roles"]
        if is_admin(roles, self.admin_roles):
            auth_model["admin"] = True
        elif self.admin_roles and not auth_model["admin"]:
            # Admin by role only while the role is held; admin_users stay admins.
            auth_model["admin"] = False
        return auth_model

    def _any_user_allowed(self) -> bool:
        return not (self.allowed_roles or self.allowed_users or self.allowed_groups or self.allowed_scopes)

    async def check_allowed(self, username, auth_model):
        if await super().check_allowed(username, auth_model):
            return True
        if auth_model is None:
            return True
        roles = auth_model["auth_state"]["roles"]
        if self._any_user_allowed():
            return True
        return bool(self.allowed_roles) and is_allowed(roles, self.allowed_roles)

    def check_allow_config(self):
        # The base class warns that nobody may log in when no allow rule is set; here that means
        # every authenticated user, which is the documented default.
        if self._any_user_allowed() and not self.allow_all:
            self.log.info("CERNAuthenticator: no allowed_roles: every user CERN SSO authenticates may log in")
            return
        super().check_allow_config()

    # --- refresh ------------------------------------------------------------------------------

    async def refresh_user(self, user, handler=None, **kwargs):
        """Refresh tokens within `refresh_margin` of expiry; roles and exchanged tokens follow.

        True: nothing to do (or a transient failure while the token is still valid); False: log in
        again; an auth model: new tokens, roles (as groups) and admin status.
        """
        if handler is not None and not hasattr(handler, "_token_authenticated"):
            # JupyterHub 6.1 reads this after a failed refresh but sets it only for token logins:
            # an admin's cookie-authenticated spawn for another user would end in a 500.
            handler._token_authenticated = False
        if not self.enable_auth_state:
            return True
        auth_state = await user.get_auth_state()
        if self.refresh_user_hook is not None:
            refreshed = await self._call_refresh_user_hook(user, auth_state)
            if refreshed is not None:
                return refreshed
        if not auth_state:
            return False
        now = self.clock()
        expires_at = auth_state.get("access_token_expires_at")
        refresh_token = auth_state.get("refresh_token") if self.enable_refresh else None
        decision = refresh_decision(
            now=now, expires_at=expires_at, margin=self.refresh_margin, has_refresh_token=bool(refresh_token)
        )
        if decision is Decision.KEEP:
            return True
        if decision is Decision.RELOGIN:
            self.log.info("Tokens of %s expired and cannot be refreshed: login required", user.name)
            return False
        metrics.SSO_REFRESHES.inc()
        try:
            token_info = await self.post_token_endpoint(
                self.build_refresh_token_request_params(refresh_token)
            )
            # Providers may keep the refresh token unchanged and not send it again.
            token_info.setdefault("refresh_token", refresh_token)
            auth_model = await self._token_to_auth_model(token_info)
        except (AuthError, web.HTTPError) as e:
            cause = e if isinstance(e, AuthError) else e.__cause__
            if not isinstance(cause, AuthError):
                cause = TokenInvalid(str(e))
            keep = keep_after_failure(cause, now=now, expires_at=expires_at)
            metrics.SSO_REFRESH_FAILURES.labels(metrics.auth_reason(cause)).inc()
            self.log.warning(
                "Token refresh for %s failed (%s): %s",
                user.name,
                "keeping the session" if keep else "login required",
                cause,
            )
            return keep
        if auth_model["name"] != user.name:
            self.log.error(
                "Refreshed tokens of %s name user %s: login required", user.name, auth_model["name"]
            )
            return False
        if not await self.check_allowed(user.name, auth_model):
            self.log.info("%s no longer holds an allowed role: login required", user.name)
            return False
        if self.exchange_audiences:
            await update_running_servers(user, auth_model["auth_state"], self.log)
        return auth_model

    # --- logout -------------------------------------------------------------------------------

    async def sso_logout_url(self, handler, id_token: str | None) -> str:
        """Where logout sends the browser: the provider's end-session endpoint, or "" (JupyterHub's page)."""
        if self.logout_redirect_url or not self.sso_logout:
            return self.logout_redirect_url
        try:
            provider = await self.provider()
        except ProviderUnavailable as e:
            self.log.warning("Cannot end the CERN SSO session (endpoints unknown): %s", e)
            return ""
        if not provider.end_session_endpoint:
            return ""
        back = self.post_logout_redirect_uri or _absolute(handler, handler.settings["login_url"])
        return end_session_url(
            provider.end_session_endpoint,
            client_id=self.client_id,
            post_logout_redirect_uri=back,
            id_token=id_token,
        )


def _absolute(handler, path: str) -> str:
    if urlparse(path).scheme:
        return path
    return f"{handler.request.protocol}://{handler.request.host}{path}"
