"""The OpenStack simulator over HTTP: Magnum's answers, shrink lag, concurrent changes, faults."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import HTTPClientError
from tornado.testing import AsyncHTTPTestCase, gen_test

from sandbox.config import load_topology
from sandbox.nodeagent.nodes import load_specs, node_specs, save_specs
from sandbox.openstack.cloud import LIST_FIELDS, Cloud
from sandbox.openstack.server import make_app

pytestmark = pytest.mark.unit
V = {"OpenStack-API-Version": "container-infra 1.10"}
FAST = {"boot_delay": 0.05, "gpu_delay": 0.05, "shrink_delay": 0.1, "node_removal_lag": 0.2}


class SimulatorCase(AsyncHTTPTestCase):
    def setUp(self):
        import tempfile
        from pathlib import Path

        self.tmp = tempfile.TemporaryDirectory()
        self.state = Path(self.tmp.name)
        self.topology = load_topology()
        save_specs(self.state, node_specs(self.topology))
        super().setUp()

    def tearDown(self):
        super().tearDown()
        self.tmp.cleanup()

    def get_app(self):
        creds = {"password": "p", "application_credential_id": "i", "application_credential_secret": "s"}
        self.cloud = Cloud(self.state, self.topology, creds, "http://127.0.0.1")
        self.cloud.tokens["t"] = 1e12
        self.cloud.settings.update(FAST)
        return make_app(self.cloud)

    async def call(self, method, path, body=None, headers=V):
        try:
            response = await self.http_client.fetch(
                self.get_url(path),
                method=method,
                headers={"X-Auth-Token": "t", **(headers or {})},
                body=None if body is None else json.dumps(body),
                request_timeout=5,
            )
        except HTTPClientError as e:
            if e.response is None:
                raise
            response = e.response
        return response.code, json.loads(response.body or b"null"), response.headers

    def members(self, group):
        return [n for n in load_specs(self.state) if n["labels"]["magnum.openstack.org/nodegroup"] == group]

    async def resize(self, count, remove=(), group="gpu-v100"):
        body = {"node_count": count, "nodegroup": group, "nodes_to_remove": list(remove)}
        return await self.call("POST", "/container-infra/v1/clusters/sandbox/actions/resize", body)

    async def settle(self):
        while self.cloud.stacks:
            await asyncio.gather(*self.cloud.stacks.values(), return_exceptions=True)
            await asyncio.sleep(0)

    @gen_test
    async def test_clusters_are_listed(self):
        status, body, _ = await self.call("GET", "/container-infra/v1/clusters", headers=None)
        assert status == 200
        (cluster,) = body["clusters"]
        assert cluster["name"] == "sandbox"
        assert cluster["status"] == "CREATE_COMPLETE"
        assert {"uuid", "node_count", "master_count", "stack_id", "health_status"} <= set(cluster)

    @gen_test
    async def test_microversion_out_of_range_is_406_naming_min_and_max(self):
        for header in ("container-infra 1.99", "container-infra 2.10"):
            status, body, headers = await self.call(
                "GET", "/container-infra/v1/clusters/sandbox", headers={"OpenStack-API-Version": header}
            )
            assert status == 406, header
            error = body["errors"][0]
            assert (error["min_version"], error["max_version"]) == ("1.1", "1.14")
            assert headers["OpenStack-API-Maximum-Version"] == "container-infrastructure-management 1.14"
        status, _, headers = await self.call(
            "GET",
            "/container-infra/v1/clusters/sandbox/nodegroups/gpu-v100",
            headers={"OpenStack-API-Version": "container-infra latest"},
        )
        assert status == 200
        assert headers["OpenStack-API-Version"] == "container-infrastructure-management 1.14"

    @gen_test
    async def test_shrink_removes_the_named_server_after_the_update_and_its_node_later(self):
        await self.resize(3)
        await self.settle()
        target = self.members("gpu-v100")[1]
        status, _, _ = await self.resize(2, [target["server_id"]])
        assert status == 202
        assert self.cloud.groups["gpu-v100"]["status"] == "UPDATE_IN_PROGRESS"
        assert self.cloud.status() == "UPDATE_IN_PROGRESS"
        assert all("gone_at" not in n for n in self.members("gpu-v100"))  # during shrink_delay
        await self.settle()
        gone = [n["name"] for n in self.members("gpu-v100") if n.get("gone_at")]
        assert gone == [target["name"]]  # the VM is deleted; its Node object is still listed
        assert self.cloud.status() == "UPDATE_COMPLETE"
        await asyncio.sleep(0.35)
        assert target["name"] not in [n["name"] for n in self.members("gpu-v100")]

    @gen_test
    async def test_a_node_name_in_nodes_to_remove_is_ignored_and_heat_picks(self):
        await self.resize(3)
        await self.settle()
        first = self.members("gpu-v100")[0]
        await self.resize(2, [first["name"]])
        await self.settle()
        gone = [n["position"] for n in self.members("gpu-v100") if n.get("gone_at")]
        assert gone == [2]

    @gen_test
    async def test_a_resize_during_an_update_is_accepted_then_fails(self):
        self.cloud.settings["boot_delay"] = 0.3
        assert (await self.resize(2))[0] == 202
        assert (await self.resize(3))[0] == 202
        group = self.cloud.groups["gpu-v100"]
        assert group["status"] == "UPDATE_FAILED"
        assert "already has an action (UPDATE) in progress" in group["status_reason"]
        assert group["node_count"] == 2
        await self.settle()
        assert group["status"] == "UPDATE_COMPLETE"
        assert len(self.members("gpu-v100")) == 2

    @gen_test
    async def test_with_heat_convergence_the_second_resize_supersedes(self):
        self.cloud.settings.update(boot_delay=0.3, heat_convergence=1)
        await self.resize(2)
        await self.resize(3)
        assert self.cloud.groups["gpu-v100"]["status"] == "UPDATE_IN_PROGRESS"
        await self.settle()
        assert len(self.members("gpu-v100")) == 3

    @gen_test
    async def test_a_patch_marks_the_group_busy_until_the_status_sync(self):
        self.cloud.settings["status_sync_interval"] = 0.1
        path = "/container-infra/v1/clusters/sandbox/nodegroups/gpu-v100"
        patch = [{"op": "replace", "path": "/max_node_count", "value": 3}]
        status, body, _ = await self.call("PATCH", path, patch)
        assert (status, body["max_node_count"]) == (202, 3)
        assert self.cloud.groups["gpu-v100"]["status"] == "UPDATE_IN_PROGRESS"
        await asyncio.sleep(0.2)
        assert self.cloud.groups["gpu-v100"]["status"] == "CREATE_COMPLETE"

    @gen_test
    async def test_a_list_of_node_groups_has_magnums_short_fields_only(self):
        status, body, _ = await self.call("GET", "/container-infra/v1/clusters/sandbox/nodegroups")
        assert status == 200
        listed = {g["name"]: g for g in body["nodegroups"]}
        assert set(listed) == set(self.cloud.groups)
        assert {tuple(sorted(g)) for g in listed.values()} == {tuple(sorted(LIST_FIELDS))}
        _, one, _ = await self.call("GET", "/container-infra/v1/clusters/sandbox/nodegroups/gpu-v100")
        assert {"min_node_count", "max_node_count", "labels"} <= set(one)
        assert listed["gpu-v100"]["node_count"] == one["node_count"]

    @gen_test
    async def test_a_hung_request_gets_no_answer_until_cleared(self):
        await self.call("POST", "/_simulator/faults", {"hang": True, "match": "get"}, headers=None)
        path = "/container-infra/v1/clusters/sandbox/nodegroups/gpu-v100"
        pending = asyncio.ensure_future(self.call("GET", path))
        await asyncio.sleep(0.2)
        assert not pending.done()
        await self.call("DELETE", "/_simulator/faults", headers=None)
        with pytest.raises(HTTPClientError):
            await pending  # the connection closes without an answer
        status, _, _ = await self.call("GET", path)
        assert status == 200
        assert any(r.get("hung") for r in self.cloud.requests)

    @gen_test
    async def test_never_join_vms_count_in_the_cloud_only(self):
        await self.call("POST", "/_simulator/faults", {"never_join": True, "count": 1}, headers=None)
        status, _, _ = await self.call("GET", "/container-infra/v1/clusters/sandbox/nodegroups/gpu-v100")
        assert status == 200  # the fault matches no request
        await self.resize(3)
        await self.settle()
        assert self.cloud.groups["gpu-v100"]["node_count"] == 3
        assert [bool(n.get("never_join")) for n in self.members("gpu-v100")] == [False, True, False]
        assert self.cloud.faults == []

    @gen_test
    async def test_posted_settings_apply_to_the_next_resize(self):
        await self.call("POST", "/_simulator/settings", {"boot_delay": 150}, headers=None)
        await self.resize(2)
        await asyncio.sleep(0.2)
        assert self.cloud.groups["gpu-v100"]["status"] == "UPDATE_IN_PROGRESS"
        self.cloud.stacks["gpu-v100"].cancel()
