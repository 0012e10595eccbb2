"""Helpers for tests that run JupyterHub's MockHub in the test process (no proxy, no cluster)."""

from __future__ import annotations

from jupyterhub.proxy import Proxy


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
