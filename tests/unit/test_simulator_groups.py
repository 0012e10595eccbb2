"""The OpenStack simulator scoped per node group: settings overrides, faults, hang release, the log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from sandbox.config import load_topology
from sandbox.nodeagent.nodes import load_specs, node_specs, save_specs
from sandbox.openstack.cloud import Cloud
from sandbox.openstack.server import make_app

pytestmark = pytest.mark.unit
V = {"OpenStack-API-Version": "container-infra 1.10"}
FAST = {"boot_delay": 0.05, "gpu_delay": 0.05, "shrink_delay": 0.05, "node_removal_lag": 0.1}
GROUP_PATH = "/container-infra/v1/clusters/sandbox/nodegroups/"
RESIZE_PATH = "/container-infra/v1/clusters/sandbox/actions/resize"


class Sim:
    """A simulator on an unused port, and a client for it."""

    def __init__(self, state: Path):
        topology = load_topology()
        save_specs(state, node_specs(topology))
        creds = {"password": "p", "application_credential_id": "i", "application_credential_secret": "s"}
        self.state = state
        self.cloud = Cloud(state, topology, creds, "http://127.0.0.1")
        self.cloud.tokens["t"] = 1e12
        self.cloud.settings.update(FAST)
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(make_app(self.cloud))
        self.server.add_sockets([sock])

    async def call(self, method, path, body=None, headers=V):
        try:
            response = await AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{self.port}{path}",
                method=method,
                headers={"X-Auth-Token": "t", **(headers or {})},
                body=None if body is None else json.dumps(body),
                allow_nonstandard_methods=True,
                request_timeout=5,
            )
        except HTTPClientError as e:
            if e.response is None:
                raise
            response = e.response
        return response.code, json.loads(response.body or b"null")

    async def admin(self, method, what, body=None, query=""):
        return await self.call(method, f"/_simulator/{what}{query}", body, headers=None)

    async def resize(self, group, count):
        return await self.call("POST", RESIZE_PATH, {"node_count": count, "nodegroup": group})

    async def settle(self):
        while self.cloud.stacks:
            await asyncio.gather(*self.cloud.stacks.values(), return_exceptions=True)
            await asyncio.sleep(0)

    def members(self, group):
        label = "magnum.openstack.org/nodegroup"
        return [n for n in load_specs(self.state) if n["labels"][label] == group]


def simulate(tmp_path, scenario):
    async def main():
        sim = Sim(tmp_path)
        try:
            await scenario(sim)
        finally:
            sim.server.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("override", "group", "expected"),
    [
        ({"boot_delay": 9.0}, "gpu-a100", 9.0),
        ({"boot_delay": 9.0}, "gpu-h100", 0.05),
        ({"boot_delay": 9.0}, None, 0.05),
        ({"gpu_delay": 7.0}, "gpu-a100", 7.0),
        ({"heat_convergence": 1}, "gpu-a100", 1.0),
        ({"scale_down_unneeded": 1}, "gpu-l4", 10.0),
    ],
    ids=["own-group", "other-group", "global", "gpu-delay", "convergence", "autoscaler-other-group"],
)
def test_a_group_override_applies_only_to_its_group(tmp_path, override, group, expected):
    async def scenario(sim):
        status, answer = await sim.admin("POST", "settings", {"group": "gpu-a100", "bogus": 1, **override})
        assert status == 200
        name = next(iter(override))
        assert answer[name] == float(override[name])  # what is in force for gpu-a100
        assert sim.cloud.setting(name, group) == expected
        _, state = await sim.admin("GET", "state")
        assert state["group_settings"] == {"gpu-a100": {name: float(override[name])}}
        assert "bogus" not in state["group_settings"]["gpu-a100"]

    simulate(tmp_path, scenario)


def test_a_group_boot_delay_holds_only_that_group(tmp_path):
    async def scenario(sim):
        await sim.admin("POST", "settings", {"group": "gpu-a100", "boot_delay": 150})
        await sim.resize("gpu-a100", 1)
        await sim.resize("gpu-h100", 1)
        await asyncio.sleep(0.3)
        assert sim.cloud.groups["gpu-h100"]["status"] == "UPDATE_COMPLETE"
        assert sim.cloud.groups["gpu-a100"]["status"] == "UPDATE_IN_PROGRESS"
        await sim.admin("DELETE", "settings", query="?group=gpu-a100")
        assert sim.cloud.group_settings == {}
        sim.cloud.stacks["gpu-a100"].cancel()

    simulate(tmp_path, scenario)


@pytest.mark.parametrize(
    ("method", "what", "body", "query"),
    [
        ("POST", "settings", {"group": "gpu-x", "boot_delay": 1}, ""),
        ("POST", "faults", {"group": "gpu-x"}, ""),
        ("DELETE", "faults", None, "?group=gpu-x"),
        ("DELETE", "settings", None, "?group=gpu-x"),
    ],
    ids=["settings", "fault", "clear-faults", "clear-settings"],
)
def test_an_unknown_group_is_404(tmp_path, method, what, body, query):
    async def scenario(sim):
        assert (await sim.admin(method, what, body, query))[0] == 404
        assert sim.cloud.faults == [] and sim.cloud.group_settings == {}

    simulate(tmp_path, scenario)


@pytest.mark.parametrize(
    ("fault", "request_", "expected"),
    [
        ({"group": "gpu-a100", "status": 503}, ("GET", "gpu-a100", None), 503),
        ({"group": "gpu-a100", "status": 503}, ("GET", "gpu-h100", None), 200),
        ({"group": "gpu-a100", "status": 503}, ("PATCH", "gpu-a100", []), 503),
        ({"group": "gpu-a100", "status": 503}, ("RESIZE", "gpu-a100", 1), 503),
        ({"group": "gpu-a100", "status": 503}, ("RESIZE", "gpu-h100", 1), 202),
        ({"group": "gpu-a100", "status": 503}, ("LIST", None, None), 200),
        ({"group": "gpu-a100", "status": 503}, ("CLUSTER", None, None), 200),
        ({"group": "gpu-a100", "quota": True}, ("RESIZE", "gpu-a100", 1), 403),
        ({"group": "gpu-a100", "quota": True}, ("RESIZE", "gpu-h100", 1), 202),
        ({"status": 503}, ("GET", "gpu-h100", None), 503),
        ({"status": 503}, ("LIST", None, None), 503),
    ],
    ids=[
        "get-own",
        "get-other",
        "patch-own",
        "resize-own",
        "resize-other",
        "list",
        "cluster",
        "quota-own",
        "quota-other",
        "group-less-get",
        "group-less-list",
    ],
)
def test_a_group_fault_matches_only_its_group(tmp_path, fault, request_, expected):
    async def scenario(sim):
        assert (await sim.admin("POST", "faults", fault))[0] == 201
        kind, group, arg = request_
        if kind == "GET":
            status, _ = await sim.call("GET", GROUP_PATH + group)
        elif kind == "PATCH":
            status, _ = await sim.call("PATCH", GROUP_PATH + group, arg)
        elif kind == "RESIZE":
            status, _ = await sim.resize(group, arg)
        elif kind == "LIST":
            status, _ = await sim.call("GET", GROUP_PATH)
        else:
            status, _ = await sim.call("GET", "/container-infra/v1/clusters/sandbox")
        assert status == expected
        assert sim.cloud.requests[-1]["group"] == group
        await sim.settle()

    simulate(tmp_path, scenario)


def test_a_never_join_fault_with_a_group_spares_other_groups(tmp_path):
    async def scenario(sim):
        await sim.admin("POST", "faults", {"never_join": True, "group": "gpu-a100", "count": 1})
        await sim.resize("gpu-h100", 1)
        await sim.settle()
        await sim.resize("gpu-a100", 2)
        await sim.settle()
        assert [bool(n.get("never_join")) for n in sim.members("gpu-h100")] == [False]
        assert [bool(n.get("never_join")) for n in sim.members("gpu-a100")] == [True, False]
        assert sim.cloud.faults == []

    simulate(tmp_path, scenario)


@pytest.mark.parametrize(
    ("query", "released", "left"),
    [
        ("?group=gpu-a100", {"gpu-a100"}, {"gpu-h100", None}),
        ("?group=gpu-h100", {"gpu-h100"}, {"gpu-a100", None}),
        ("", {"gpu-a100", "gpu-h100", None}, set()),
    ],
    ids=["one-group", "the-other-group", "everything"],
)
def test_clearing_a_groups_faults_releases_only_its_hung_requests(tmp_path, query, released, left):
    async def scenario(sim):
        for group in ("gpu-a100", "gpu-h100", None):
            await sim.admin("POST", "faults", {"hang": True, "match": "get", "group": group})
            await sim.admin("POST", "faults", {"status": 500, "match": "patch", "group": group})
        paths = {"gpu-a100": GROUP_PATH + "gpu-a100", "gpu-h100": GROUP_PATH + "gpu-h100", None: GROUP_PATH}
        # The nodegroup list is about no group: only the group-less hang holds it.
        pending = {g: asyncio.ensure_future(sim.call("GET", path)) for g, path in paths.items()}
        await asyncio.sleep(0.2)
        assert not any(p.done() for p in pending.values())
        assert (await sim.admin("DELETE", "faults", query=query))[0] == 204
        await asyncio.sleep(0.2)
        assert {g for g, p in pending.items() if p.done()} == released
        for group in released:
            with pytest.raises(HTTPClientError):
                await pending[group]  # the connection closes without an answer
        assert {f["group"] for f in sim.cloud.faults} == left  # the patch faults of the others
        assert {r["group"] for r in sim.cloud.requests if r.get("hung")} == released
        await sim.admin("DELETE", "faults")
        await asyncio.gather(*pending.values(), return_exceptions=True)

    simulate(tmp_path, scenario)


@pytest.mark.parametrize(
    ("method", "path", "body", "group"),
    [
        ("GET", GROUP_PATH + "gpu-l4", None, "gpu-l4"),
        ("GET", GROUP_PATH + "nope", None, "nope"),
        ("PATCH", GROUP_PATH + "gpu-a40", [], "gpu-a40"),
        ("POST", RESIZE_PATH, {"node_count": 1, "nodegroup": "gpu-h100"}, "gpu-h100"),
        ("POST", RESIZE_PATH, {"node_count": 3}, "default-worker"),
        ("GET", GROUP_PATH, None, None),
        ("GET", "/container-infra/v1/clusters/sandbox", None, None),
    ],
    ids=["get", "unknown", "patch", "resize-body", "resize-default", "list", "cluster"],
)
def test_the_log_names_the_group(tmp_path, method, path, body, group):
    async def scenario(sim):
        await sim.call(method, path, body)
        await sim.settle()
        _, state = await sim.admin("GET", "state")
        assert state["requests"][-1]["group"] == group

    simulate(tmp_path, scenario)


def test_a_group_addressed_by_uuid_is_logged_by_name(tmp_path):
    async def scenario(sim):
        await sim.call("GET", GROUP_PATH + sim.cloud.groups["gpu-a100"]["uuid"])
        assert sim.cloud.requests[-1]["group"] == "gpu-a100"

    simulate(tmp_path, scenario)


def test_node_indices_go_round_so_a_removed_nodes_address_range_is_not_reused_at_once(tmp_path):
    async def scenario(sim):
        await sim.resize("gpu-a100", 2)
        await sim.settle()
        await sim.resize("gpu-h100", 1)
        await sim.settle()
        assert [n["index"] for n in sim.members("gpu-h100")] == [6]
        await sim.resize("gpu-a100", 0)
        await sim.settle()
        await asyncio.sleep(0.2)  # the Node objects go after node_removal_lag
        await sim.resize("gpu-l4", 1)
        await sim.settle()
        # Not 4 (freed a moment ago: its pods' network namespaces may still exist), but the next one.
        assert [n["index"] for n in sim.members("gpu-l4")] == [7]

    simulate(tmp_path, scenario)
