"""RFC 8693 token exchange: the user's access token traded for tokens of other audiences (e.g. EOS)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .. import metrics
from .errors import AuthError

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def exchange_request(
    subject_token: str, audience: str, client_auth: dict[str, str], scope: str = ""
) -> dict[str, str]:
    """Form fields of an exchange for `audience`; `client_auth`: client_id/secret, or {} for Basic.

    `scope`, when given, is sent too: Keycloak only puts the audience in the token when a client
    scope mapping it is requested ("Requested audience not available" otherwise).
    """
    form = {
        "grant_type": GRANT_TYPE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "audience": audience,
        **client_auth,
    }
    if scope:
        form["scope"] = scope
    return form


def exchanged_token(response: dict, *, now: float) -> dict:
    """What is kept of an exchange response: the token and when it expires (epoch seconds, None: unknown).

    A refresh token in the response is dropped: exchanged tokens are renewed by a new exchange.
    """
    token = response.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError("the token exchange answered without an access_token")
    expires_in = response.get("expires_in")
    expires_at = now + expires_in if isinstance(expires_in, int | float) else None
    return {"access_token": token, "expires_at": expires_at}


async def exchange_all(
    post: Callable[[dict[str, str]], Awaitable[dict]],
    subject_token: str,
    audiences: list[str],
    client_auth: dict[str, str],
    *,
    now: float,
    log,
    scopes: dict[str, str] | None = None,
) -> dict[str, dict]:
    """Exchange `subject_token` for each audience; a failed audience is logged and left out.

    `post` sends the form to the token endpoint and returns its JSON (raising AuthError subclasses);
    `scopes` gives the scope to request per audience.
    Left out rather than failing the login: the notebook works without e.g. EOS, and the next
    refresh tries again.
    """
    tokens = {}
    for audience in audiences:
        metrics.TOKEN_EXCHANGES.labels(audience).inc()
        try:
            response = await post(
                exchange_request(subject_token, audience, client_auth, (scopes or {}).get(audience, ""))
            )
            tokens[audience] = exchanged_token(response, now=now)
        except AuthError as e:
            metrics.TOKEN_EXCHANGE_FAILURES.labels(audience, metrics.auth_reason(e)).inc()
            log.warning("Token exchange for audience %s failed: %s", audience, e)
    return tokens
