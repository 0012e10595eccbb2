"""Helpers for tests that run JupyterHub's MockHub in the test process (no proxy, no cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from jupyterhub import orm, roles
from jupyterhub.proxy import Proxy
from jupyterhub.tests.mocking import MockHub
from traitlets.config import Config


class NoProxy(Proxy):
    """Routes kept in memory: the tests talk to the hub directly, not through a proxy."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.routes = {}

    async def start(self):
        pass

    async def stop(self):
        pass

    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self.routes)


@asynccontextmanager
async def running_hub(c: Config) -> AsyncIterator[MockHub]:
    """A started MockHub with config `c`, behind NoProxy; stopped and forgotten on exit.

    A spawn POST that outlasts JupyterHub's slow_spawn_timeout (10 s) is answered with a redirect to
    the pending page instead of the spawner's answer; on a loaded machine a refusal can take that
    long, so these hubs wait up to 600 s unless `c` says otherwise.
    """
    c.JupyterHub.proxy_class = NoProxy
    settings = dict(c.JupyterHub.tornado_settings) if "tornado_settings" in c.JupyterHub else {}
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 600, **settings}
    MockHub.clear_instance()
    app = MockHub.instance(config=c)
    try:
        await app.initialize([])
        await app.start()
        yield app
    finally:
        await app.stop()
        MockHub.clear_instance()


def add_user(app: MockHub, name: str, *, admin: bool = False, groups: list[orm.Group] = ()):
    """A user in the hub's database with the roles the hub gives (`user`; `admin` for admins)."""
    user = orm.User(name=name, admin=admin)
    user.groups = list(groups)
    app.db.add(user)
    app.db.commit()
    roles.assign_default_roles(app.db, user)
    return app.users[user]


def add_standard_users(app: MockHub) -> tuple[dict[str, str], dict[str, str]]:
    """alice (no groups), bob (group gpu-users) and carol (admin); returns (tokens, server_tokens).

    A server token has what a notebook server gets as JUPYTERHUB_API_TOKEN: the 'server' role's scopes.
    """
    gpu_users = orm.Group(name="gpu-users")
    app.db.add(gpu_users)
    tokens, server_tokens = {}, {}
    for name, groups, admin in (
        ("alice", [], False),
        ("bob", [gpu_users], False),
        ("carol", [], True),
    ):
        user = add_user(app, name, admin=admin, groups=groups)
        tokens[name] = user.new_api_token()
        server_tokens[name] = user.new_api_token(
            scopes=[f"access:servers!server={name}/", f"users:activity!user={name}"]
        )
    return tokens, server_tokens
