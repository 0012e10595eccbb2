"""CERNAuthenticator's configuration: its own traits, and CERN SSO defaults for OAuthenticator's."""

from __future__ import annotations

from urllib.parse import urlparse

from traitlets import Bool, Dict, Float, List, Set, Unicode, default, validate
from traitlets.config import LoggingConfigurable

CERN_ISSUER = "https://auth.cern.ch/auth/realms/cern"


def _check_url(trait: str, value: str, *, allow_empty: bool) -> str:
    if allow_empty and not value:
        return value
    parsed = urlparse(value)
    if parsed.scheme not in ("https", "http") or not parsed.netloc or parsed.query or parsed.fragment:
        raise ValueError(
            f"CERNAuthenticator.{trait} must be an absolute http(s) URL without query, got {value!r}"
        )
    return value


class CERNAuthenticatorTraits(LoggingConfigurable):
    """Mixed into CERNAuthenticator (kept apart to keep each module short); set as c.CERNAuthenticator.*."""

    issuer_url = Unicode(
        CERN_ISSUER,
        config=True,
        help="""
        OpenID Connect issuer: tokens must carry exactly this `iss`, and the endpoints are read from
        `<issuer_url>/.well-known/openid-configuration` at start-up (or first login). The default is
        CERN's production SSO realm.
        """,
    )
    jwks_uri = Unicode(
        "",
        config=True,
        help="URL of the issuer's signing keys (JWKS). Empty (default): from the discovery document.",
    )
    end_session_url = Unicode(
        "",
        config=True,
        help="URL of the issuer's end-session (logout) endpoint. Empty (default): from discovery.",
    )
    http_timeout = Float(
        10.0,
        config=True,
        help="Seconds to wait for each request to the provider (discovery, keys, tokens); default 10.",
    )
    jwks_min_refetch_interval = Float(
        60.0,
        config=True,
        help="""
        Minimum seconds between two fetches of the signing keys. A token signed with an unknown key
        (kid) triggers a refetch, so key rotation needs no restart; the limit keeps forged kids from
        flooding the provider. Until a fetch is allowed, an unknown kid counts as "SSO unavailable"
        (login: retry later; refresh: session kept), not as invalid. Default 60.
        """,
    )
    jwks_max_age = Float(
        600.0,
        config=True,
        help="""
        Seconds the fetched signing keys are trusted before they are fetched again at their next use
        (default 600), so a key the issuer removed (rotated out, compromised) stops verifying tokens
        within this time. When that fetch fails, the keys held are kept.
        """,
    )
    access_token_audience_required = Bool(
        True,
        config=True,
        help="""
        The access token's `aud` must contain client_id. CERN's realm adds the hub's client to its
        access tokens' audience (an audience mapper), so by default (True) a token issued for another
        audience is refused, e.g. the user's token exchanged for eos-service, whose `azp` is still
        this hub. Set False only for a realm without that mapper: an access token whose `azp` is this
        client is then accepted whatever its `aud` (the id token's `aud` is always checked).
        """,
    )
    token_leeway = Float(
        10.0,
        config=True,
        help="Seconds of clock skew tolerated when checking a token's exp/iat/nbf; default 10.",
    )
    roles_claim = Unicode(
        "resource_access.{client_id}.roles",
        config=True,
        help="""
        Dotted path of the roles list in the verified token claims; `{client_id}` stands for this
        hub's client id. The default reads the client roles Keycloak puts in the access token; CERN
        SSO also offers `cern_roles`. Roles become JupyterHub groups of the same names. A missing or
        malformed claim gives no roles.
        """,
    )
    allowed_roles = Set(
        Unicode(),
        config=True,
        help="""
        Roles that may log in (any one suffices). Empty (default) together with no allowed_users,
        allowed_groups or allowed_scopes: every user the SSO authenticates may log in.
        """,
    )
    admin_roles = Set(
        Unicode(),
        config=True,
        help="""
        Roles that make a user a hub admin (and may log in). When set, admin status follows the role
        at every login and refresh (admin_users stay admins). Empty (default): no admins by role.
        """,
    )
    enable_refresh = Bool(
        True,
        config=True,
        help="""
        Keep a refresh token (scope offline_access) and renew the access token before it expires.
        Needs enable_auth_state and JUPYTERHUB_CRYPT_KEY. Default True.
        """,
    )
    refresh_margin = Float(
        60.0,
        config=True,
        help="""
        Seconds before the access token's expiry from which it is refreshed (default 60). Checked
        at most every auth_refresh_age seconds (60 by default here) and before each spawn.
        """,
    )
    exchange_audiences = List(
        Unicode(),
        config=True,
        help="""
        Audiences (e.g. ["eos-service"]) to obtain tokens for by RFC 8693 token exchange at login and
        at each refresh, kept in auth_state["exchanged_tokens"]. Empty (default): no exchange.
        """,
    )
    exchange_scopes = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="""
        Scope to request with the token exchange, per audience (e.g. {"eos-service":
        "eos-service-audience"}): Keycloak grants an audience only through a client scope that maps
        it. Audiences not listed are exchanged without a scope (default: none listed).
        """,
    )
    sso_logout = Bool(
        True,
        config=True,
        help="""
        Hub logout also ends the SSO session (redirect to the end-session endpoint). Default True.
        An explicit logout_redirect_url takes precedence.
        """,
    )
    post_logout_redirect_uri = Unicode(
        "",
        config=True,
        help="""
        Where the SSO sends the browser after logout; must be registered with the client. Empty
        (default): the hub's login page, as an absolute URL built from the request.
        """,
    )

    @validate("issuer_url")
    def _valid_issuer(self, proposal):
        value = _check_url("issuer_url", proposal.value, allow_empty=False)
        if value.endswith("/"):
            raise ValueError(
                f"CERNAuthenticator.issuer_url must not end with '/' (tokens' iss has none), got {value!r}"
            )
        return value

    @validate("jwks_uri", "end_session_url", "post_logout_redirect_uri")
    def _valid_urls(self, proposal):
        return _check_url(proposal.trait.name, proposal.value, allow_empty=True)

    @validate("http_timeout", "jwks_min_refetch_interval", "jwks_max_age", "token_leeway", "refresh_margin")
    def _non_negative(self, proposal):
        name, value = proposal.trait.name, proposal.value
        if value < 0 or (name == "http_timeout" and value == 0):
            raise ValueError(f"CERNAuthenticator.{name} must be a positive number of seconds, got {value!r}")
        return proposal.value

    @validate("roles_claim")
    def _valid_roles_claim(self, proposal):
        if not proposal.value or any(not part for part in proposal.value.split(".")):
            raise ValueError(
                f"CERNAuthenticator.roles_claim must be a dotted claim path, got {proposal.value!r}"
            )
        return proposal.value

    @validate("exchange_audiences")
    def _valid_audiences(self, proposal):
        names = proposal.value
        if any(not a.strip() for a in names) or len(set(names)) != len(names):
            raise ValueError(
                f"CERNAuthenticator.exchange_audiences must be distinct non-empty names, got {names!r}"
            )
        return proposal.value

    # CERN SSO defaults for OAuthenticator's and JupyterHub's traits.

    @default("login_service")
    def _default_login_service(self):
        return "CERN SSO"

    @default("username_claim")
    def _default_username_claim(self):
        # Unique and stable; preferred_username is for display only.
        return "cern_upn"

    @default("scope")
    def _default_scope(self):
        return ["openid", "profile", "email"] + (["offline_access"] if self.enable_refresh else [])

    @default("enable_auth_state")
    def _default_enable_auth_state(self):
        return bool(self.enable_refresh or self.exchange_audiences)

    @default("manage_groups")
    def _default_manage_groups(self):
        return True

    @default("auth_state_groups_key")
    def _default_groups_key(self):
        return "roles"

    @default("auth_refresh_age")
    def _default_auth_refresh_age(self):
        # refresh_user returns at once unless the token nears expiry, so checking often is cheap.
        return 60
