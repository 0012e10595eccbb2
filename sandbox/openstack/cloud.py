"""The simulated cloud's state: one Magnum cluster whose node groups become sandbox nodes.

Changes are asynchronous as in Magnum: the API checks the bounds and answers 202; the conductor
(magnum/conductor/handlers/cluster_conductor.py, Handler.cluster_resize) sets the group
UPDATE_IN_PROGRESS and updates the group's Heat stack; after the boot delay the new VMs join
nodes.json (the node agent registers them), their GPUs allocatable a little later; a shrink deletes
the VMs after `shrink_delay`, and their Node objects go `node_removal_lag` seconds after that.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path

from ..config import Topology
from ..nodeagent.nodes import load_specs, node_spec, save_specs
from .rules import Refused, apply_patch, check_resize, cluster_status, resize_allowed, victims

log = logging.getLogger(__name__)
DEFAULT_SETTINGS = {
    "boot_delay": 5.0,
    "gpu_delay": 2.0,
    # A Heat stack update that only deletes VMs (seconds): the group stays UPDATE_IN_PROGRESS.
    "shrink_delay": 3.0,
    # From a VM's deletion to its Node object's (the cloud controller manager's lag).
    "node_removal_lag": 5.0,
    # Magnum's periodic status sync (magnum/service/periodic.py, sync_cluster_status, every 10 s):
    # how long a PATCHed group stays UPDATE_IN_PROGRESS.
    "status_sync_interval": 2.0,
    # 1: a resize during a stack update supersedes it (Heat's convergence engine); 0: it fails with
    # ActionInProgress (Heat's legacy engine) and the group goes UPDATE_FAILED.
    "heat_convergence": 0.0,
    # Autoscaled groups: how often the autoscaler looks, and how long a node may sit idle (seconds).
    "autoscaler_interval": 2.0,
    "scale_down_unneeded": 10.0,
}
HANG_LIMIT = 3600.0
# Node index i owns the pod addresses 10.244.(i+1).0/24 of the /16 pod network
# (nodeagent/network.py, PodNetwork.node_pool; 10.244.0.0/24 is the gateway's): indices 0-254,
# so at most 255 VMs (live, or deleted but still in nodes.json) at once.
MAX_NODES = 255
# The fields of a node group in a list (NodeGroup.convert with expand=False, magnum/api/controllers/
# v1/nodegroup.py: unset_fields_except([...])); a GET of one group answers every field.
LIST_FIELDS = (
    "uuid",
    "name",
    "flavor_id",
    "node_count",
    "role",
    "is_default",
    "image_id",
    "status",
    "stack_id",
)


class Hung(Exception):
    """An injected hang ended (cleared, or after an hour): the request gets no answer at all."""


def _position(spec: dict) -> int:
    return spec.get("position", int(spec["name"].rsplit("-", 1)[-1]))


class Cloud:
    def __init__(self, state: Path, topology: Topology, credentials: dict, base_url: str):
        self.state, self.topology, self.credentials, self.base_url = state, topology, credentials, base_url
        self.settings = dict(DEFAULT_SETTINGS)
        self.group_settings: dict[str, dict[str, float]] = {}  # node group -> its overrides
        self.tokens: dict[str, float] = {}
        self.faults: list[dict] = []
        self.requests: list[dict] = []
        self.stacks: dict[str, asyncio.Task] = {}  # node group -> its running Heat stack update
        self.stack_status: dict[str, str] = {}  # node group -> its stack's last status
        # Requests held by `hang` faults wait on the event of the fault's group (None: group-less).
        self.releases: dict[str | None, asyncio.Event] = {}
        self.cluster = {
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, topology.cluster)),
            "name": topology.cluster,
        }
        saved = state / "openstack-state.json"
        self.groups = json.loads(saved.read_text()) if saved.exists() else self._initial_groups()
        for group in self.groups.values():  # a restart finishes nothing it had started
            if group["status"].endswith("_IN_PROGRESS"):
                group["status"], group["status_reason"] = (
                    "UPDATE_FAILED",
                    "the cloud restarted during the update",
                )
        self._save()
        specs = load_specs(state)
        if specs is not None and any("server_id" not in n for n in specs):
            for spec in specs:  # nodes.json of an older sandbox: give each VM its server
                spec.setdefault("position", _position(spec))
                spec.setdefault(
                    "server_id", str(uuid.uuid5(uuid.NAMESPACE_URL, f"nova-server/{spec['name']}"))
                )
            save_specs(state, specs)

    def _initial_groups(self) -> dict:
        groups = {}
        for group in self.topology.node_groups:
            groups[group.name] = {
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.topology.cluster}/{group.name}")),
                "name": group.name,
                "cluster_id": self.cluster["uuid"],
                "project_id": "cern-spawner",
                "role": group.role,
                "flavor_id": group.flavor,
                "image_id": "fedora-coreos-40",
                "docker_volume_size": None,
                "node_addresses": [],
                "node_count": group.nodes,
                "min_node_count": group.min_nodes,
                "max_node_count": group.max_nodes,
                "is_default": group.name == self.topology.node_groups[0].name,
                "labels": {"auto_scaling_enabled": "true"} if group.autoscaled else {},
                "stack_id": str(uuid.uuid4()),
                "status": "CREATE_COMPLETE",
                "status_reason": "Stack CREATE completed successfully",
                "version": None,
            }
        return groups

    def _save(self) -> None:
        staging = self.state / "openstack-state.json.tmp"
        staging.write_text(json.dumps(self.groups, indent=1))
        staging.replace(self.state / "openstack-state.json")

    # -- identity ------------------------------------------------------------------------------
    def credentials_valid(self, identity: dict) -> bool:
        methods = identity.get("methods") or []
        if "password" in methods:
            user = (identity.get("password") or {}).get("user") or {}
            return user.get("name") == "hub" and user.get("password") == self.credentials["password"]
        if "application_credential" in methods:
            credential = identity.get("application_credential") or {}
            return (
                credential.get("id") == self.credentials["application_credential_id"]
                and credential.get("secret") == self.credentials["application_credential_secret"]
            )
        return False

    def token_valid(self, token: str | None) -> bool:
        return bool(token) and self.tokens.get(token, 0) > time.time()

    # -- settings ----------------------------------------------------------------------------------
    def setting(self, name: str, group: str | None = None) -> float:
        """A setting for an action on `group`: the group's override if any, else the global value."""
        return self.group_settings.get(group or "", {}).get(name, self.settings[name])

    def group_name(self, ref: str | None) -> str | None:
        """The name of the node group `ref` (a name or uuid) names; unknown references as given."""
        if ref is None:
            return None
        for group in self.groups.values():
            if ref in (group["name"], group["uuid"]):
                return group["name"]
        return ref

    def _known_group(self, group) -> str:
        if not isinstance(group, str) or group not in self.groups:
            raise Refused(404, f"Nodegroup {group} could not be found.")
        return group

    def update_settings(self, body: dict) -> dict:
        """POST /_simulator/settings: global values, or with `group` that group's overrides.
        Answers the values in force (for the group when one is given); unknown names are ignored."""
        values = {k: float(v) for k, v in body.items() if k in self.settings}
        group = body.get("group")
        if group is None:
            self.settings.update(values)
            return self.settings
        self.group_settings.setdefault(self._known_group(group), {}).update(values)
        return {**self.settings, **self.group_settings[group]}

    def clear_group_settings(self, group: str | None = None) -> None:
        """DELETE /_simulator/settings: drop one group's overrides, or every group's (globals stay)."""
        if group is None:
            self.group_settings.clear()
        else:
            self.group_settings.pop(self._known_group(group), None)

    # -- faults and the request log -------------------------------------------------------------
    def _release(self, group: str | None) -> asyncio.Event:
        return self.releases.setdefault(group, asyncio.Event())

    async def injected_fault(self, action: str, body, group: str | None = None) -> None:
        """Apply the first matching fault. A fault with a `group` matches only requests about that
        group (`group`: the node group of the path or of the resize body; None for the others)."""
        for fault in list(self.faults):
            if fault.get("never_join") or fault["match"] not in ("any", action):
                continue
            if fault.get("group") is not None and fault["group"] != group:
                continue
            if fault.get("quota") and not (action == "resize" and self._grows(body)):
                continue
            fault["count"] -= 1
            if fault["count"] <= 0:
                self.faults.remove(fault)
            if fault.get("hang"):
                release = self._release(fault.get("group"))
                try:
                    await asyncio.wait_for(release.wait(), HANG_LIMIT)
                except TimeoutError:
                    pass
                raise Hung()
            if fault.get("delay"):
                await asyncio.sleep(float(fault["delay"]))
            if fault.get("quota"):
                raise Refused(
                    403, "Quota exceeded for instances: Requested 1, but already used 20 of 20 instances"
                )
            if fault.get("status"):
                raise Refused(int(fault["status"]), f"Injected fault: HTTP {fault['status']}")

    def add_fault(self, body: dict) -> None:
        if body.get("group") is not None:
            self._known_group(body["group"])
        fault = {"status": 500, "count": 1, "match": "any", "delay": 0, "quota": False, "group": None}
        self.faults.append({**fault, **body})

    def clear_faults(self, group: str | None = None) -> None:
        """Without `group`: every fault goes and every held request ends. With it: only the faults of
        that group, and only the requests held by that group's `hang` faults."""
        if group is None:
            self.faults.clear()
            released, self.releases = self.releases, {}
        else:
            self._known_group(group)
            self.faults[:] = [f for f in self.faults if f.get("group") != group]
            released = {group: self.releases.pop(group)} if group in self.releases else {}
        for event in released.values():
            event.set()  # held requests end without an answer

    def _never_joins(self, group: str) -> bool:
        """Whether the next new VM of `group` is one that never registers (a `never_join` fault)."""
        for fault in self.faults:
            if fault.get("never_join") and fault.get("group") in (None, group):
                fault["count"] -= 1
                if fault["count"] <= 0:
                    self.faults.remove(fault)
                return True
        return False

    def _grows(self, body) -> bool:
        group = self.groups.get((body or {}).get("nodegroup", ""))
        return bool(group) and (body or {}).get("node_count", 0) > group["node_count"]

    def log(self, method: str, path: str, status: int, group: str | None = None, **extra) -> None:
        # `seq` keeps counting when old entries are dropped, so readers can ask for what came after.
        self._seq = getattr(self, "_seq", 0) + 1
        entry = {
            "seq": self._seq,
            "method": method,
            "path": path,
            "status": status,
            "at": time.time(),
            "group": group,  # the node group the request was about (its path or resize body)
        }
        self.requests.append({**entry, **extra})
        del self.requests[:-1000]

    def snapshot(self) -> dict:
        return {
            "cluster": self._cluster_view(),
            "groups": self.groups,
            "requests": self.requests,
            "settings": self.settings,
            "group_settings": self.group_settings,
            "faults": self.faults,
        }

    # -- Magnum --------------------------------------------------------------------------------
    def _cluster(self, cluster: str) -> None:
        if cluster not in (self.cluster["uuid"], self.cluster["name"]):
            raise Refused(404, f"Cluster {cluster} could not be found.")

    def _group(self, cluster: str, name: str) -> dict:
        self._cluster(cluster)
        for group in self.groups.values():
            if name in (group["name"], group["uuid"]):
                return group
        raise Refused(404, f"Nodegroup {name} could not be found.")

    def status(self) -> str:
        return cluster_status([g["status"] for g in self.groups.values()])

    def _cluster_view(self) -> dict:
        """The fields of Magnum's cluster list (magnum/api/controllers/v1/cluster.py,
        Cluster._convert_with_links with expand=False)."""
        workers = [g for g in self.groups.values() if g["role"] != "master"]
        failed = [f"{g['name']} failed" for g in self.groups.values() if g["status"].endswith("_FAILED")]
        return {
            **self.cluster,
            "cluster_template_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "template/" + self.topology.cluster)),
            "keypair": None,
            "docker_volume_size": None,
            "labels": {},
            "node_count": sum(g["node_count"] for g in workers),
            "master_count": 1,
            "status": self.status(),
            "status_reason": ", ".join(failed) or None,
            "health_status": "HEALTHY",
            "master_flavor_id": "m2.medium",
            "flavor_id": workers[0]["flavor_id"] if workers else None,
            "create_timeout": 60,
            "stack_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "stack/" + self.topology.cluster)),
            "links": [
                {"href": f"{self.base_url}/container-infra/v1/clusters/{self.cluster['uuid']}", "rel": "self"}
            ],
        }

    def get_cluster(self, cluster):
        self._cluster(cluster)
        return 200, self._cluster_view()

    def list_clusters(self):
        return 200, {"clusters": [self._cluster_view()]}

    def list_groups(self, cluster):
        """magnum/api/controllers/v1/nodegroup.py: NodeGroupController.get_all converts each group
        with expand=False, which unsets every field but LIST_FIELDS (WSME leaves unset fields out of
        the JSON): no min/max_node_count, labels, status_reason or links in a list; those need a
        GET of the group itself."""
        self._cluster(cluster)
        groups = [{k: g[k] for k in LIST_FIELDS if k in g} for g in self.groups.values()]
        return 200, {"nodegroups": groups}

    def get_group(self, cluster, name):
        return 200, self._group(cluster, name)

    def patch_group(self, cluster, name, patch):
        """magnum/api/controllers/v1/nodegroup.py: NodeGroupController.patch validates and answers 202
        with the patched group; the conductor (nodegroup_conductor.py, nodegroup_update, allowed in
        UPDATE_IN_PROGRESS) marks group and cluster UPDATE_IN_PROGRESS, the Heat driver only saves
        (drivers/heat/driver.py, update_nodegroup), and the periodic sync restores the stack's status."""
        group = self._group(cluster, name)
        group.update(apply_patch(group, patch))
        answer = dict(group)
        group["status"], group["status_reason"] = "UPDATE_IN_PROGRESS", None
        self._save()
        asyncio.get_running_loop().call_later(
            self.setting("status_sync_interval", group["name"]), self._sync, group["name"]
        )
        return 202, answer

    def _sync(self, name: str) -> None:
        """Magnum's periodic sync: a group with no running stack update takes its stack's status."""
        if name in self.stacks:
            return
        group = self.groups[name]
        if group["status"] == "UPDATE_IN_PROGRESS":
            group["status"] = self.stack_status.get(name, "CREATE_COMPLETE")
            group["status_reason"] = f"Stack {group['status'].split('_')[0]} completed successfully"
            self._save()

    def resize_group(self, body) -> str | None:
        """The node group a resize body is for (Magnum's default group when it names none)."""
        if not isinstance(body, dict):
            return None
        return self.group_name(str(body.get("nodegroup") or self.topology.node_groups[0].name))

    def resize(self, cluster, body):
        """magnum/api/controllers/v1/cluster_actions.py: ActionsController._resize checks the bounds
        (400), then casts cluster_resize_async to the conductor and answers 202 with the cluster's uuid."""
        self._cluster(cluster)
        group = self._group(cluster, str(body.get("nodegroup") or self.topology.node_groups[0].name))
        target = body.get("node_count")
        check_resize(group, target)
        remove = body.get("nodes_to_remove") or []
        if not isinstance(remove, list):
            raise Refused(400, "Invalid input for field/attribute nodes_to_remove.")
        self._conduct(group["name"], target, [str(entry) for entry in remove])
        return 202, {"uuid": self.cluster["uuid"]}

    def _conduct(self, name: str, target: int, remove: list[str]) -> None:
        """The conductor's cluster_resize (magnum/conductor/handlers/cluster_conductor.py), after the cast."""
        group = self.groups[name]
        refusal = resize_allowed(self.status())
        if refusal:  # raised in the conductor: the client already has its 202; nothing changes
            log.warning("conductor: %s", refusal)
            return
        running = self.stacks.get(name)
        if running and not self.setting("heat_convergence", name):
            # Heat's legacy engine refuses an update while one runs (heat exception ActionInProgress);
            # the conductor restores node_count and marks the group and the cluster UPDATE_FAILED.
            group["status"] = "UPDATE_FAILED"
            group["status_reason"] = (
                f"ERROR: Stack {self.topology.cluster}-{name} already has an action (UPDATE) in progress."
            )
            self._save()
            return
        if running:
            running.cancel()  # convergence: the new traversal supersedes the running one
        group.update(node_count=target, status="UPDATE_IN_PROGRESS", status_reason=None)
        self._save()
        self.stacks[name] = asyncio.ensure_future(self._converge(name, target, remove))

    # -- the autoscaler of autoscaled groups ------------------------------------------------------
    def autoscaled_groups(self) -> list[str]:
        return [g.name for g in self.topology.node_groups if g.autoscaled]

    def _members(self, nodes: list[dict], name: str) -> list[dict]:
        """The VMs of a group that exist (not deleted)."""
        label = self.topology.node_group_label
        return [n for n in nodes if n["labels"].get(label) == name and n.get("gone_at") is None]

    def member_nodes(self, name: str) -> list[str]:
        return [
            n["name"] for n in self._members(load_specs(self.state) or [], name) if not n.get("never_join")
        ]

    def autoscaler_remove(self, name: str, node: str) -> None:
        # The cluster autoscaler's Magnum provider names the VM by the server id of the Node's providerID.
        spec = next(n for n in self._members(load_specs(self.state) or [], name) if n["name"] == node)
        self._conduct(name, self.groups[name]["node_count"] - 1, [spec["server_id"]])

    def _next_free_index(self, indices: set[int]) -> int | None:
        """Indices go round (below MAX_NODES) rather than reusing the lowest free one: a removed
        node's pods keep their network namespaces until their objects are garbage-collected, and a
        new node given the same address range at once would collide with them."""
        start = getattr(self, "_index_cursor", max(indices, default=-1) + 1)
        for step in range(MAX_NODES):
            index = (start + step) % MAX_NODES
            if index not in indices:
                self._index_cursor = index + 1
                return index
        return None

    async def _converge(self, name: str, target: int, remove: list[str]) -> None:
        try:
            await self._update_stack(name, target, remove)
        finally:
            if self.stacks.get(name) is asyncio.current_task():
                del self.stacks[name]

    async def _update_stack(self, name: str, target: int, remove: list[str]) -> None:
        group = self.groups[name]
        spec = next(g for g in self.topology.node_groups if g.name == name)
        members = self._members(load_specs(self.state) or [], name)
        doomed, ignored = victims(members, remove, target)
        if ignored:
            log.warning("heat: nodes_to_remove entries %s name no member of %s: ignored", ignored, name)
        creates = target - (len(members) - len(doomed))
        await asyncio.sleep(self.setting("boot_delay" if creates > 0 else "shrink_delay", name))
        now = time.time()
        nodes = self._pruned(load_specs(self.state) or [], now)
        for node in nodes:
            if node["name"] in doomed and node.get("gone_at") is None:
                node["gone_at"], node["delete_at"] = now, now + self.setting("node_removal_lag", name)
        used = {n["name"] for n in nodes}
        indices = {n["index"] for n in nodes}  # each index owns a /24 of the pod network (a /16)
        position = 0
        for _ in range(max(creates, 0)):
            while f"{self.topology.cluster}-{name}-node-{position}" in used:
                position += 1
            index = self._next_free_index(indices)
            if index is None:
                log.warning("heat: no pod-address range left for a new VM of %s", name)
                break
            new = node_spec(self.topology, spec, position, index, server_id=str(uuid.uuid4()))
            if spec.gpus_per_node:
                new["gpu_ready_at"] = now + self.setting("gpu_delay", name)
            if self._never_joins(name):
                new["never_join"] = True
            nodes.append(new)
            used.add(new["name"])
            indices.add(index)
        save_specs(self.state, nodes)
        if doomed:
            lag = self.setting("node_removal_lag", name)
            asyncio.get_running_loop().call_later(lag + 0.05, self._prune)
        group["node_addresses"] = [n["name"] for n in self._members(nodes, name)]
        group.update(status="UPDATE_COMPLETE", status_reason="Stack UPDATE completed successfully")
        self.stack_status[name] = "UPDATE_COMPLETE"
        self._save()

    @staticmethod
    def _pruned(nodes: list[dict], now: float) -> list[dict]:
        return [n for n in nodes if n.get("delete_at") is None or n["delete_at"] > now]

    def _prune(self) -> None:
        """Drop from nodes.json the deleted VMs whose Node object is gone by now."""
        nodes = load_specs(self.state)
        if nodes is not None and len(self._pruned(nodes, time.time())) < len(nodes):
            save_specs(self.state, self._pruned(nodes, time.time()))
