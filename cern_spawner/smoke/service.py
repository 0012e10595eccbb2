"""The smoke round's identity in a hub's config: the service cern-smoke, holding only what a round
needs on one user's servers, and that user (docs/operator/smoke.md). The chart calls it with
smoke.enabled; any hub may."""

from __future__ import annotations

from traitlets.config import Config

from ..configure import _extend

SERVICE = "cern-smoke"
# Start, stop, read (status and progress) and reach (through the proxy) the smoke user's servers.
SCOPES = ("read:servers", "start:servers", "delete:servers", "access:servers")


def register_smoke_service(c: Config, token: str, user: str, roles: tuple[str, ...] | list[str] = ()) -> None:
    """Add the service cern-smoke with `token` and a role of SCOPES on `user` alone; listing the
    user in a role makes JupyterHub create it at startup. `roles` are the catalog roles the user
    holds (CERNSpawner.fixed_roles): it never logs in, so single sign-on gives it none."""
    _extend(c.JupyterHub, "services", [{"name": SERVICE, "api_token": token}])
    jupyterhub_roles = [
        {"name": SERVICE, "scopes": [f"{scope}!user={user}" for scope in SCOPES], "services": [SERVICE]},
        {"name": f"{SERVICE}-user", "scopes": [], "users": [user]},
    ]
    _extend(c.JupyterHub, "load_roles", jupyterhub_roles)
    if roles:
        fixed = dict(c.CERNSpawner.fixed_roles) if "fixed_roles" in c.CERNSpawner else {}
        c.CERNSpawner.fixed_roles = {**fixed, user: sorted(set(fixed.get(user, [])) | set(roles))}
