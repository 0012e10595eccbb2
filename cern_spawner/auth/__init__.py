"""CERN single sign-on for JupyterHub: CERNAuthenticator and the helpers the spawner uses."""

from .authenticator import CERNAuthenticator
from .token_secret import (
    TokenSecretError,
    apply_token_secret,
    delete_token_secret,
    mount_token_secret,
    token_secret_manifest,
    token_secret_name,
    tokens_from_auth_state,
    update_running_servers,
    write_user_tokens,
)

__all__ = [
    "CERNAuthenticator",
    "TokenSecretError",
    "apply_token_secret",
    "delete_token_secret",
    "mount_token_secret",
    "token_secret_manifest",
    "token_secret_name",
    "tokens_from_auth_state",
    "update_running_servers",
    "write_user_tokens",
]
