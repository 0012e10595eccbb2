"""CERN single sign-on for JupyterHub: CERNAuthenticator and the helpers the spawner uses."""

from .authenticator import CERNAuthenticator
from .token_secret import (
    TokenSecretError,
    apply_token_secret,
    token_secret_manifest,
    token_secret_name,
    tokens_from_auth_state,
)

__all__ = [
    "CERNAuthenticator",
    "TokenSecretError",
    "apply_token_secret",
    "token_secret_manifest",
    "token_secret_name",
    "tokens_from_auth_state",
]
