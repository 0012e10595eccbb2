"""Log in through Keycloak's HTML login form with plain HTTP, as a browser would.

For integration tests of anything that needs a user's authorization code: no browser, and no
server behind the redirect URI — the flow stops at the redirect and returns its Location.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from html.parser import HTMLParser


class LoginError(RuntimeError):
    """Keycloak did not redirect back: wrong password, a required action, an unknown redirect URI."""


def pkce() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(kc: dict, redirect_uri: str, challenge: str, state: str, scope: str = "openid") -> str:
    """The authorization endpoint of the sandbox's realm, asking for a code for client `jupyterhub`."""
    query = {
        "client_id": kc["client_id"],
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{kc['issuer']}/protocol/openid-connect/auth?{urllib.parse.urlencode(query)}"


class _Forms(HTMLParser):
    """The forms of a page, with their action and the names of their inputs."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.errors: list[str] = []
        self._in_error = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"id": attributes.get("id"), "action": attributes.get("action"), "inputs": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(attributes.get("name"))
        # Keycloak's theme puts "Invalid username or password." and the like in this class.
        self._in_error = "kc-feedback-text" in (attributes.get("class") or "")

    def handle_data(self, data):
        if self._in_error and data.strip():
            self.errors.append(data.strip())


LOOPBACK = {"127.0.0.1", "localhost", "localhost.local", "[::1]", "::1"}


def _trust_loopback(session) -> None:
    """Send Keycloak's `Secure` cookies over plain http to a loopback address, as browsers do.

    Browsers treat http://127.0.0.1 as a secure context; requests' cookie jar does not, and
    without AUTH_SESSION_ID the login form answers 400.
    """
    for cookie in session.cookies:
        if cookie.secure and cookie.domain in LOOPBACK:
            cookie.secure = False


def _same_server(url: str, other: str) -> bool:
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(other)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _follow(session, response, keycloak: str):
    """Follow redirects within Keycloak; stop at the first one that leaves it."""
    for _ in range(10):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response, None
        location = urllib.parse.urljoin(response.url, response.headers["Location"])
        if not _same_server(location, keycloak):
            return response, location
        response = session.get(location, allow_redirects=False, timeout=30)
        _trust_loopback(session)
    raise LoginError(f"too many redirects, last at {response.url}")


def login_code_flow(session, authorize_url: str, username: str, password: str) -> str:
    """Log `username` in via `authorize_url`; return the Location Keycloak redirects back to.

    `session` is a `requests.Session` (it keeps Keycloak's cookies, so a second call with the same
    session is answered from the SSO session without a form). The returned URL carries `code` and
    `state` in its query, or `error` when Keycloak refused the request.
    """
    response = session.get(authorize_url, allow_redirects=False, timeout=30)
    _trust_loopback(session)
    response, location = _follow(session, response, authorize_url)
    if location:
        return location
    page = _Forms()
    page.feed(response.text)
    form = next((f for f in page.forms if "username" in f["inputs"] and "password" in f["inputs"]), None)
    if response.status_code != 200 or form is None or not form["action"]:
        raise LoginError(f"no login form at {response.url} (HTTP {response.status_code})")
    answer = session.post(
        urllib.parse.urljoin(response.url, form["action"]),
        data={"username": username, "password": password, "credentialId": ""},
        allow_redirects=False,
        timeout=30,
    )
    _trust_loopback(session)
    answer, location = _follow(session, answer, authorize_url)
    if location:
        return location
    after = _Forms()
    after.feed(answer.text)
    reason = "; ".join(after.errors) or f"HTTP {answer.status_code} at {answer.url}"
    raise LoginError(f"login of {username} did not redirect back: {reason}")
