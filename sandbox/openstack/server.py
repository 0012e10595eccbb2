"""The simulator's HTTP side (tornado): Keystone v3 tokens, Magnum node groups, and an admin API
for tests (settings, fault injection, a log of requests)."""

from __future__ import annotations

import json
import secrets
import time
import uuid

from tornado import web

from .cloud import Cloud, Hung
from .rules import MAX_MICROVERSION, MIN_MICROVERSION, SERVICE, Refused, check_microversion, requested_version


class Base(web.RequestHandler):
    @property
    def cloud(self) -> Cloud:
        return self.application.settings["cloud"]

    @property
    def here(self) -> str:
        """The address the client asked at: version documents link there, as Keystone's and
        Magnum's do without a configured public endpoint (a pod asks at the gateway, the host at
        127.0.0.1, and each must be sent back to where it can reach)."""
        return f"{self.request.protocol}://{self.request.host}"

    def endpoints(self, service: str, path: str) -> list[dict]:
        """A catalog entry's endpoints: `public` at 127.0.0.1, and `internal` at the pod
        network's gateway when the simulator listens there (clouds.yaml `interface: internal`)."""
        urls = {"public": self.cloud.base_url, "internal": self.application.settings["internal_url"]}
        return [
            {
                "id": f"{service}-{interface}",
                "interface": interface,
                "region": "RegionOne",
                "region_id": "RegionOne",
                "url": f"{base}{path}",
            }
            for interface, base in urls.items()
            if base
        ]

    def reply(self, status: int, body: dict | None = None, **headers) -> None:
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name.replace("_", "-"), value)
        if body is not None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
        else:
            self.finish()

    def body(self):
        try:
            return json.loads(self.request.body or b"null")
        except ValueError as e:
            raise Refused(400, f"Request body is not JSON: {e}") from e


def _version(base: str) -> dict:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }


class IdentityRoot(Base):
    def get(self):
        self.reply(300 if self.request.path.rstrip("/").endswith("identity") else 200, self.document())

    def document(self):
        base = self.here
        if self.request.path.rstrip("/").endswith("identity"):
            return {"versions": {"values": [_version(base)]}}
        return {"version": _version(base)}


class Tokens(Base):
    def post(self):
        auth = ((self.body() or {}).get("auth") or {}).get("identity") or {}
        if not self.cloud.credentials_valid(auth):
            self.reply(
                401,
                {
                    "error": {
                        "code": 401,
                        "title": "Unauthorized",
                        "message": "The request you have made requires authentication.",
                    }
                },
            )
            return
        token = secrets.token_hex(16)
        expires = time.time() + 3600
        self.cloud.tokens[token] = expires
        stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(t))  # noqa: E731
        self.reply(
            201,
            {
                "token": {
                    "methods": auth.get("methods", []),
                    "expires_at": stamp(expires),
                    "issued_at": stamp(time.time()),
                    "user": {"id": "hub-user", "name": "hub", "domain": {"id": "default", "name": "Default"}},
                    "project": {
                        "id": "cern-spawner",
                        "name": "cern-spawner",
                        "domain": {"id": "default", "name": "Default"},
                    },
                    "roles": [{"id": "member", "name": "member"}],
                    "catalog": [
                        {
                            "type": "container-infra",
                            "name": "magnum",
                            "id": "magnum",
                            "endpoints": self.endpoints("magnum", "/container-infra/v1"),
                        },
                        {
                            "type": "identity",
                            "name": "keystone",
                            "id": "keystone",
                            "endpoints": self.endpoints("keystone", "/identity/v3"),
                        },
                    ],
                }
            },
            X_Subject_Token=token,
        )


class MagnumRoot(Base):
    def get(self):
        base = self.here
        version = {
            "id": "v1",
            "status": "CURRENT",
            "min_version": "1.1",
            "max_version": MAX_MICROVERSION,
            "links": [{"rel": "self", "href": f"{base}/container-infra/v1/"}],
        }
        if self.request.path.rstrip("/").endswith("v1"):
            self.reply(200, {**version, "media_types": [{"base": "application/json"}]})
        else:
            self.reply(200, {"versions": [version], "name": "OpenStack Magnum API"})


class Magnum(Base):
    """Calls under /container-infra/v1/clusters/...: token, microversion, faults, then the cloud."""

    def prepare(self):
        if not self.cloud.token_valid(self.request.headers.get("X-Auth-Token")):
            self.reply(
                401,
                {
                    "errors": [
                        {"status": 401, "code": "client", "title": "Unauthorized", "detail": "Invalid token"}
                    ]
                },
            )

    async def handle(
        self, action: str, call, *args, api: str | None = None, group: str | None = None
    ) -> None:
        """`api` names a node-group call (it needs microversion 1.10); every v1 call has its version
        checked and the version headers set (magnum/api/controllers/v1/__init__.py, Controller._route).
        `group` is the node group the call is about (faults and the log are per group)."""
        header = self.request.headers.get("OpenStack-API-Version")
        try:
            version = requested_version(header)
            self.set_header("OpenStack-API-Minimum-Version", f"{SERVICE} {MIN_MICROVERSION}")
            self.set_header("OpenStack-API-Maximum-Version", f"{SERVICE} {MAX_MICROVERSION}")
            self.set_header("OpenStack-API-Version", f"{SERVICE} {version[0]}.{version[1]}")
            self.set_header("Vary", "OpenStack-API-Version")
        except Refused as e:
            if "min_version" in e.extra:  # a well-formed version out of range: headers as Magnum's
                self.set_header("OpenStack-API-Minimum-Version", f"{SERVICE} {MIN_MICROVERSION}")
                self.set_header("OpenStack-API-Maximum-Version", f"{SERVICE} {MAX_MICROVERSION}")
                self.set_header("OpenStack-API-Version", f"{SERVICE} {header.split()[1]}")
                self.set_header("Vary", "OpenStack-API-Version")
        try:
            if api is not None:
                check_microversion(header, api)
            else:
                requested_version(header)
            await self.cloud.injected_fault(action, self.body() if self.request.body else None, group)
            status, body = call(*args)
        except Hung:
            self.cloud.log(self.request.method, self.request.path, 599, group=group, hung=True)
            self.request.connection.close()
            self._finished = True  # nothing more is written to this request
            return
        except Refused as e:
            status = e.status
            if "min_version" in e.extra:  # HTTPNotAcceptableAPIVersion's own error format
                error = {"message": e.detail, **e.extra}
            else:
                error = {
                    "request_id": "",
                    "code": "client" if status < 500 else "server",
                    "status": status,
                    "title": self._reason_for(status),
                    "detail": e.detail,
                    "links": [],
                }
            body = {"errors": [error]}
        self.cloud.log(self.request.method, self.request.path, status, group=group)
        self.reply(status, body)

    @staticmethod
    def _reason_for(status: int) -> str:
        return {
            400: "Bad Request",
            403: "Forbidden",
            404: "Not Found",
            406: "Not Acceptable",
            409: "Conflict",
        }.get(status, "Internal Server Error")


class ClusterList(Magnum):
    async def get(self):
        await self.handle("cluster", self.cloud.list_clusters)


class ClusterHandler(Magnum):
    async def get(self, cluster):
        await self.handle("cluster", self.cloud.get_cluster, cluster)


class NodegroupList(Magnum):
    async def get(self, cluster):
        await self.handle("get", self.cloud.list_groups, cluster, api="get_all")


class NodegroupHandler(Magnum):
    async def get(self, cluster, group):
        name = self.cloud.group_name(group)
        await self.handle("get", self.cloud.get_group, cluster, group, api="get_one", group=name)

    async def patch(self, cluster, group):
        name = self.cloud.group_name(group)
        await self.handle(
            "patch", lambda: self.cloud.patch_group(cluster, group, self.body()), api="patch", group=name
        )


class Resize(Magnum):
    async def post(self, cluster):
        try:
            group = self.cloud.resize_group(self.body())
        except Refused:
            group = None  # not JSON: handle() answers 400
        await self.handle(
            "resize", lambda: self.cloud.resize(cluster, self.body() or {}), api="resize", group=group
        )


class Admin(Base):
    def check_xsrf_cookie(self):
        pass

    def prepare(self):
        # The simulator also listens on the pod network's gateway (for hubs in pods): its test API
        # stays for tests on this machine.
        if self.request.remote_ip not in ("127.0.0.1", "::1"):
            raise web.HTTPError(403, "the simulator's test API answers on loopback only")

    def get(self, what):
        if what == "state":
            self.reply(200, self.cloud.snapshot())
        else:
            raise web.HTTPError(404)

    def post(self, what):
        try:
            body = self.body() or {}
            if what == "settings":
                self.reply(200, self.cloud.update_settings(body))
            elif what == "faults":
                self.cloud.add_fault(body)
                self.reply(201, {"faults": self.cloud.faults})
            else:
                raise web.HTTPError(404)
        except Refused as e:  # an unknown group
            self.reply(e.status, {"error": e.detail})

    def delete(self, what):
        """`?group=<name>`: only that group's faults (and held requests), or settings overrides."""
        group = self.get_query_argument("group", None)
        try:
            if what == "faults":
                self.cloud.clear_faults(group)
            elif what == "settings":
                self.cloud.clear_group_settings(group)
            else:
                raise web.HTTPError(404)
        except Refused as e:
            self.reply(e.status, {"error": e.detail})
            return
        self.reply(204)


def make_app(cloud: Cloud, internal_url: str | None = None) -> web.Application:
    c = r"/container-infra/v1/clusters/([^/]+)"
    return web.Application(
        [
            (r"/identity/?", IdentityRoot),
            (r"/identity/v3/?", IdentityRoot),
            (r"/identity/v3/auth/tokens", Tokens),
            (r"/container-infra/?", MagnumRoot),
            (r"/container-infra/v1/?", MagnumRoot),
            (r"/container-infra/v1/clusters/?", ClusterList),
            (c, ClusterHandler),
            (c + r"/nodegroups/?", NodegroupList),
            (c + r"/nodegroups/([^/]+)", NodegroupHandler),
            (c + r"/actions/resize", Resize),
            (r"/_simulator/(state|settings|faults)", Admin),
        ],
        cloud=cloud,
        internal_url=internal_url,
    )


def new_uuid() -> str:
    return str(uuid.uuid4())
