"""Login and logout handlers: endpoints resolved before redirecting, and logout ending the SSO session."""

from __future__ import annotations

from urllib.parse import urlencode

from oauthenticator.oauth2 import OAuthLoginHandler, OAuthLogoutHandler


def end_session_url(
    endpoint: str, *, client_id: str, post_logout_redirect_uri: str, id_token: str | None = None
) -> str:
    """The OIDC RP-initiated logout URL: with the id token as hint the provider logs out without asking."""
    params = {"client_id": client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
    if id_token:
        params["id_token_hint"] = id_token
    separator = "&" if "?" in endpoint else "?"
    return endpoint + separator + urlencode(params)


class CERNLoginHandler(OAuthLoginHandler):
    async def get(self):
        # The authorize URL may come from discovery, which is async; the base handler is not.
        await self.authenticator.resolve_provider_for_user()
        super().get()


class CERNLogoutHandler(OAuthLogoutHandler):
    _id_token: str | None = None

    async def handle_logout(self):
        await super().handle_logout()
        # The login cookie is cleared by now, but the handler still knows who is logging out.
        user = self.current_user
        if user is not None and hasattr(user, "get_auth_state"):
            auth_state = await user.get_auth_state()
            self._id_token = (auth_state or {}).get("id_token")

    async def render_logout_page(self):
        url = await self.authenticator.sso_logout_url(self, self._id_token)
        if url:
            self.redirect(url)
            return
        await super().render_logout_page()
