"""The user's exchanged tokens, given to their notebook as files of a Secret.

A mixin of CERNSpawner (before KubeSpawner): the Secret is written when the pod is made, renewed
after each auth refresh while the server runs, and deleted when the user's last server stops.
The pure parts (manifest, names, mount) are `auth.token_secret`.
"""

from __future__ import annotations

import asyncio

from .auth import token_secret


class ExchangedTokens:
    """Needs `token_mount_path` and `binder_tokens_allowed()` from the spawner it is mixed into."""

    def __init__(self, *args, **kwargs):
        # Keeps a refresh's write from landing after stop() deleted the Secret.
        self._token_lock = asyncio.Lock()
        super().__init__(*args, **kwargs)

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        if not self.binder_tokens_allowed():
            # A repository's code the user may not have read: no token volume, and the Secret is
            # neither written nor referenced (BinderConfig.token_launches, or the user's tick).
            self.log.info("%s: repository launch without the user's tokens (not asked for)", self._log_name)
            return pod
        # Written here: the options are accepted by now and the pod is created right after.
        try:
            name = await self._write_token_secret(await self.user.get_auth_state())
        except token_secret.TokenSecretError as e:
            # As a failed exchange: the server starts, without the tokens.
            self.log.error("Starting %s without its tokens: %s", self._log_name, e)
            name = None
        if name:
            token_secret.mount_token_secret(pod, name, self.token_mount_path)
        return pod

    async def _write_token_secret(self, auth_state) -> str | None:
        return await token_secret.write_user_tokens(
            self.api.api_client, self.user.name, self.namespace, auth_state
        )

    async def update_token_secret(self, auth_state) -> None:
        """After an auth refresh, renew the Secret of a running server (called by the authenticator)."""
        async with self._token_lock:
            # Not while starting (the spawn writes it) nor stopping (stop deletes it), nor for a
            # server started without the tokens (its user_options are kept across hub restarts).
            if self.ready and self.binder_tokens_allowed():
                await self._write_token_secret(auth_state)

    async def stop(self, now=False):
        await super().stop(now=now)
        # One Secret per user: kept while another of the user's servers runs.
        if any(other is not self and other.active for other in self.user.spawners.values()):
            return
        async with self._token_lock:
            try:
                await token_secret.delete_token_secret(self.api.api_client, self.user.name, self.namespace)
            except token_secret.TokenSecretError as e:
                self.log.warning("Could not delete the tokens of %s: %s", self._log_name, e)
