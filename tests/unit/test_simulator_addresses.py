"""Where the OpenStack simulator sends its clients: the catalog's `public` endpoints (127.0.0.1) and,
when it also listens on the pod network's gateway, `internal` ones there (hubs in pods); version
documents link to the address a client asked at; the test API answers loopback clients only."""

from __future__ import annotations

import asyncio
import http.client
import json
import tempfile
from pathlib import Path

import pytest
from tornado.testing import AsyncHTTPTestCase, gen_test

from sandbox.config import load_topology
from sandbox.nodeagent.nodes import node_specs, save_specs
from sandbox.openstack.cloud import Cloud
from sandbox.openstack.server import make_app

pytestmark = pytest.mark.unit
INTERNAL = "http://10.244.0.1:5000"
CREDENTIALS = {"password": "p", "application_credential_id": "i", "application_credential_secret": "s"}
LOGIN = {
    "auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "hub", "password": "p"}}}}
}


class Addresses(AsyncHTTPTestCase):
    internal_url: str | None = INTERNAL

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.state = Path(self.tmp.name)
        self.topology = load_topology()
        save_specs(self.state, node_specs(self.topology))
        super().setUp()

    def tearDown(self):
        super().tearDown()
        self.tmp.cleanup()

    def get_app(self):
        return make_app(
            Cloud(self.state, self.topology, CREDENTIALS, "http://127.0.0.1:5000"), self.internal_url
        )

    def raw(self, method: str, path: str, source: str = "127.0.0.1", host: str | None = None, body=None):
        """A request from `source` (a loopback address of this machine), with a Host header of choice."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.get_http_port(), timeout=5, source_address=(source, 0)
        )
        try:
            headers = {"Host": host} if host else {}
            connection.request(method, path, body=json.dumps(body) if body else None, headers=headers)
            answer = connection.getresponse()
            text = answer.read()
            is_json = answer.getheader("Content-Type", "").startswith("application/json")
            return answer.status, json.loads(text) if is_json else text
        finally:
            connection.close()

    async def call(self, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.raw(*args, **kwargs))

    @gen_test
    async def test_the_catalog_lists_public_and_internal_endpoints(self):
        status, body = await self.call("POST", "/identity/v3/auth/tokens", body=LOGIN)
        assert status == 201, body
        endpoints = {
            (entry["type"], e["interface"]): e["url"]
            for entry in body["token"]["catalog"]
            for e in entry["endpoints"]
        }
        expected = {
            ("container-infra", "public"): "http://127.0.0.1:5000/container-infra/v1",
            ("identity", "public"): "http://127.0.0.1:5000/identity/v3",
        }
        if self.internal_url:
            expected |= {
                ("container-infra", "internal"): f"{INTERNAL}/container-infra/v1",
                ("identity", "internal"): f"{INTERNAL}/identity/v3",
            }
        assert endpoints == expected

    @gen_test
    async def test_version_documents_link_where_the_client_asked(self):
        for path in ("/identity/v3", "/container-infra/v1"):
            status, body = await self.call("GET", path, host="10.244.0.1:5000")
            assert status == 200, body
            document = body.get("version", body)  # Keystone nests it, Magnum does not
            (link,) = [k["href"] for k in document["links"] if k["rel"] == "self"]
            assert link.startswith("http://10.244.0.1:5000/"), link

    @gen_test
    async def test_the_test_api_answers_loopback_only(self):
        status, body = await self.call("GET", "/_simulator/state")
        assert status == 200, body
        # 127.0.0.2 stands for a pod at the gateway: any other source address than loopback's own.
        status, _ = await self.call("GET", "/_simulator/state", source="127.0.0.2")
        assert status == 403


class WithoutInternal(Addresses):
    """A fake sandbox has no pod network: public endpoints only."""

    internal_url = None
