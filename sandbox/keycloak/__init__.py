"""A real Keycloak 26 for the sandbox: CERN's single sign-on, realm `cern`, issuer under /auth.

Other code uses: `settings(state)` (what `up` recorded), `client_secret(state)`,
`allow_redirect(state, uri)`, `allow_post_logout_redirect(state, uri)`, and for tests
`pkce()`, `authorize_url(...)`, `login_code_flow(session, url, username, password)`.
"""

from .admin import allow_post_logout_redirect, allow_redirect, client_secret, settings
from .login import LoginError, authorize_url, login_code_flow, pkce
from .server import CLIENT_ID, DEMO_PASSWORD, DEMO_USERS, EXCHANGE_AUDIENCE, REALM, start

__all__ = [
    "CLIENT_ID",
    "DEMO_PASSWORD",
    "DEMO_USERS",
    "EXCHANGE_AUDIENCE",
    "REALM",
    "LoginError",
    "allow_post_logout_redirect",
    "allow_redirect",
    "authorize_url",
    "client_secret",
    "login_code_flow",
    "pkce",
    "settings",
    "start",
]
