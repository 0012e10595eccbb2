"""Magnum's rules for node-group changes, as pure functions (the simulator enforces them)."""

from __future__ import annotations

import re

MIN_MICROVERSION = (1, 10)
MAX_MICROVERSION = "1.12"
PATCHABLE = {"/min_node_count", "/max_node_count", "/node_labels", "/node_taints"}


class Refused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def check_microversion(header: str | None) -> None:
    """Node-group calls need `OpenStack-API-Version: container-infra 1.10` or newer (406 otherwise)."""
    match = re.fullmatch(r"\s*container-infra\s+(latest|\d+\.\d+)\s*", header or "")
    if not match:
        raise Refused(
            406, "Node group calls need the header OpenStack-API-Version: container-infra 1.10 or newer"
        )
    if match.group(1) == "latest":
        return
    major, minor = (int(part) for part in match.group(1).split("."))
    if (major, minor) < MIN_MICROVERSION:
        raise Refused(406, f"Version {match.group(1)} was requested but the minimum for node groups is 1.10")


def apply_patch(group: dict, patch) -> dict:
    """The node group after a JSON patch, or Refused(400) as Magnum answers."""
    if not isinstance(patch, list) or not patch:
        raise Refused(400, "The request body must be a non-empty JSON patch (a list of operations)")
    updated = dict(group)
    for operation in patch:
        if not isinstance(operation, dict) or operation.get("op") not in ("add", "replace", "remove"):
            raise Refused(400, f"Invalid patch operation: {operation!r}")
        path = operation.get("path")
        if path not in PATCHABLE:
            raise Refused(400, f"'{path}' is an internal attribute and can not be updated")
        field = path[1:]
        if operation["op"] == "add" and updated.get(field) is not None:
            raise Refused(400, f"Adding a new attribute ({path}) to the root of the resource is not allowed")
        if operation["op"] == "replace" and updated.get(field) is None:
            raise Refused(400, f"Attribute {path} has no value to replace; use 'add'")
        updated[field] = None if operation["op"] == "remove" else operation.get("value")
    check_bounds(updated)
    return updated


def check_bounds(group: dict) -> None:
    low, count, high = group["min_node_count"], group["node_count"], group.get("max_node_count")
    if not isinstance(low, int) or low < 0:
        raise Refused(400, f"min_node_count ({low!r}) must be a non-negative integer")
    if low > count:
        raise Refused(400, f"min_node_count ({low}) should be less or equal to node_count ({count})")
    if high is not None and (not isinstance(high, int) or high < count):
        raise Refused(400, f"max_node_count ({high}) should be greater or equal to node_count ({count})")


def check_resize(group: dict, node_count) -> None:
    if not isinstance(node_count, int) or node_count < 0:
        raise Refused(400, f"node_count must be a non-negative integer, not {node_count!r}")
    if group["status"].endswith("_IN_PROGRESS"):
        raise Refused(409, f"Node group {group['name']} is in {group['status']}; try again when it completes")
    low, high = group["min_node_count"], group.get("max_node_count")
    if node_count < low or (high is not None and node_count > high):
        upper = "∞" if high is None else high
        raise Refused(409, f"Resizing {group['name']} to {node_count} is outside its bounds [{low}, {upper}]")
