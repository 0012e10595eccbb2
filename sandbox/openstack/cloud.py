"""The simulated cloud's state: one Magnum cluster whose node groups become sandbox nodes.

Changes are asynchronous as in Magnum: a resize answers 202, the group goes UPDATE_IN_PROGRESS,
and after the boot delay the new nodes are added to nodes.json (the node agent registers them),
their GPUs allocatable a little later; then UPDATE_COMPLETE.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

from ..config import Topology
from ..nodeagent.nodes import load_specs, node_spec, save_specs
from .rules import Refused, apply_patch, check_bounds, check_resize

DEFAULT_SETTINGS = {
    "boot_delay": 5.0,
    "gpu_delay": 2.0,
    "shrink_delay": 1.0,
    # Autoscaled groups: how often the autoscaler looks, and how long a node may sit idle (seconds).
    "autoscaler_interval": 2.0,
    "scale_down_unneeded": 10.0,
}


class Cloud:
    def __init__(self, state: Path, topology: Topology, credentials: dict, base_url: str):
        self.state, self.topology, self.credentials, self.base_url = state, topology, credentials, base_url
        self.settings = dict(DEFAULT_SETTINGS)
        self.tokens: dict[str, float] = {}
        self.faults: list[dict] = []
        self.requests: list[dict] = []
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

    # -- faults and the request log -------------------------------------------------------------
    async def injected_fault(self, action: str, body) -> None:
        for fault in list(self.faults):
            if fault["match"] not in ("any", action):
                continue
            if fault.get("quota") and not (action == "resize" and self._grows(body)):
                continue
            fault["count"] -= 1
            if fault["count"] <= 0:
                self.faults.remove(fault)
            if fault.get("delay"):
                await asyncio.sleep(float(fault["delay"]))
            if fault.get("quota"):
                raise Refused(
                    403, "Quota exceeded for instances: Requested 1, but already used 20 of 20 instances"
                )
            if fault.get("status"):
                raise Refused(int(fault["status"]), f"Injected fault: HTTP {fault['status']}")

    def _grows(self, body) -> bool:
        group = self.groups.get((body or {}).get("nodegroup", ""))
        return bool(group) and (body or {}).get("node_count", 0) > group["node_count"]

    def log(self, method: str, path: str, status: int) -> None:
        # `seq` keeps counting when old entries are dropped, so readers can ask for what came after.
        self._seq = getattr(self, "_seq", 0) + 1
        entry = {"seq": self._seq, "method": method, "path": path, "status": status, "at": time.time()}
        self.requests.append(entry)
        del self.requests[:-1000]

    def snapshot(self) -> dict:
        return {
            "groups": self.groups,
            "requests": self.requests,
            "settings": self.settings,
            "faults": self.faults,
        }

    # -- Magnum --------------------------------------------------------------------------------
    def _cluster(self, cluster: str) -> None:
        if cluster not in (self.cluster["uuid"], self.cluster["name"]):
            raise Refused(404, f"Cluster {cluster} could not be found")

    def _group(self, cluster: str, name: str) -> dict:
        self._cluster(cluster)
        for group in self.groups.values():
            if name in (group["name"], group["uuid"]):
                return group
        raise Refused(404, f"Nodegroup {name} could not be found")

    def get_cluster(self, cluster):
        self._cluster(cluster)
        total = sum(g["node_count"] for g in self.groups.values())
        return 200, {**self.cluster, "status": "UPDATE_COMPLETE", "node_count": total, "master_count": 1}

    def list_groups(self, cluster):
        self._cluster(cluster)
        return 200, {"nodegroups": list(self.groups.values())}

    def get_group(self, cluster, name):
        return 200, self._group(cluster, name)

    def patch_group(self, cluster, name, patch):
        group = self._group(cluster, name)
        group.update(apply_patch(group, patch))
        self._save()
        return 202, group

    def resize(self, cluster, body):
        group = self._group(cluster, str(body.get("nodegroup") or self.topology.node_groups[0].name))
        target = body.get("node_count")
        check_resize(group, target)
        previous = group["node_count"]
        group.update(node_count=target, status="UPDATE_IN_PROGRESS", status_reason="")
        check_bounds(group)
        self._save()
        asyncio.ensure_future(
            self._converge(group["name"], previous, target, list(body.get("nodes_to_remove") or []))
        )
        return 202, {"uuid": self.cluster["uuid"]}

    # -- the autoscaler of autoscaled groups ------------------------------------------------------
    def autoscaled_groups(self) -> list[str]:
        return [g.name for g in self.topology.node_groups if g.autoscaled]

    def member_nodes(self, name: str) -> list[str]:
        label = self.topology.node_group_label
        return [n["name"] for n in load_specs(self.state) or [] if n["labels"].get(label) == name]

    def autoscaler_remove(self, name: str, node: str) -> None:
        group = self.groups[name]
        previous = group["node_count"]
        group.update(node_count=previous - 1, status="UPDATE_IN_PROGRESS", status_reason="autoscaler")
        self._save()
        asyncio.ensure_future(self._converge(name, previous, previous - 1, [node]))

    async def _converge(self, name: str, previous: int, target: int, remove: list[str]) -> None:
        group = self.groups[name]
        spec = next(g for g in self.topology.node_groups if g.name == name)
        await asyncio.sleep(
            self.settings["boot_delay"] if target > previous else self.settings["shrink_delay"]
        )
        nodes = load_specs(self.state) or []
        mine = [n for n in nodes if n["labels"].get(self.topology.node_group_label) == name]
        if target > len(mine):
            used = {n["name"] for n in nodes}
            index = max((n["index"] for n in nodes), default=-1) + 1
            position = 0
            for _ in range(target - len(mine)):
                while f"{self.topology.cluster}-{name}-node-{position}" in used:
                    position += 1
                new = node_spec(self.topology, spec, position, index)
                if spec.gpus_per_node:
                    new["gpu_ready_at"] = time.time() + self.settings["gpu_delay"]
                nodes.append(new)
                used.add(new["name"])
                index += 1
        elif target < len(mine):
            doomed = [n["name"] for n in mine if n["name"] in remove]
            doomed += [
                n["name"]
                for n in sorted(mine, key=lambda n: n["name"], reverse=True)
                if n["name"] not in doomed
            ]
            gone = set(doomed[: len(mine) - target])
            nodes = [n for n in nodes if n["name"] not in gone]
        save_specs(self.state, nodes)
        group["node_addresses"] = [
            n["name"] for n in nodes if n["labels"].get(self.topology.node_group_label) == name
        ]
        group.update(status="UPDATE_COMPLETE", status_reason="Stack UPDATE completed successfully")
        self._save()
