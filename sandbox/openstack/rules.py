"""Magnum's rules for node-group changes, as pure functions (the simulator enforces them).

Each rule names the file of Magnum (github.com/openstack/magnum) it models. The Heat driver was
removed from Magnum's master in 2026 (commit 31b84327); its files are cited at the commit before.
"""

from __future__ import annotations

import re

# magnum/api/controllers/versions.py: BASE_VER, CURRENT_MAX_VER, Version.service_strings.
MIN_MICROVERSION = "1.1"
MAX_MICROVERSION = "1.14"
SERVICE = "container-infrastructure-management"
SERVICES = (SERVICE, "container-infrastructure", "container-infra")
# Magnum serves node groups from 1.9 (nodegroup.py, api_version("1.9")) and 0-node groups from 1.10;
# the simulator asks for 1.10, what the hub needs to grow a group from zero (stricter than Magnum).
NODEGROUP_MICROVERSION = (1, 10)
PATCHABLE = {"/min_node_count", "/max_node_count", "/node_labels", "/node_taints"}
COMPLETE_STATES_FOR_RESIZE = (
    # magnum/conductor/handlers/cluster_conductor.py: Handler.cluster_resize, allow_update_status.
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "RESUME_COMPLETE",
    "RESTORE_COMPLETE",
    "ROLLBACK_COMPLETE",
    "SNAPSHOT_COMPLETE",
    "CHECK_COMPLETE",
    "ADOPT_COMPLETE",
    "UPDATE_FAILED",
    "UPDATE_IN_PROGRESS",
)


class Refused(Exception):
    def __init__(self, status: int, detail: str, extra: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.extra = status, detail, extra or {}


def _pair(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def _not_acceptable(detail: str) -> Refused:
    # magnum/api/http_error.py: HTTPNotAcceptableAPIVersion adds these fields to the error.
    return Refused(
        406,
        detail,
        {
            "code": "magnum.microversion-unsupported",
            "title": "Requested microversion is unsupported",
            "min_version": MIN_MICROVERSION,
            "max_version": MAX_MICROVERSION,
            "links": [
                {"rel": "help", "href": "http://docs.openstack.org/api-guide/compute/microversions.html"}
            ],
        },
    )


def requested_version(header: str | None) -> tuple[int, int]:
    """The microversion a request asks for, as Magnum reads `OpenStack-API-Version`.

    magnum/api/controllers/versions.py: Version.parse_headers (no header = the minimum, `latest` =
    the maximum, another service or a malformed value = 406) and
    magnum/api/controllers/v1/__init__.py: Controller._check_version (another major, or a minor
    outside [min, max] = 406 naming the range).
    """
    if header is None:
        return _pair(MIN_MICROVERSION)
    parts = header.split()
    if len(parts) != 2 or parts[0] not in SERVICES:
        raise Refused(406, "Invalid service type for OpenStack-API-Version header")
    if parts[1].lower() == "latest":
        return _pair(MAX_MICROVERSION)
    if not re.fullmatch(r"\d+\.\d+", parts[1]):
        raise Refused(406, "Invalid value for OpenStack-API-Version header")
    version = _pair(parts[1])
    shown = f"{version[0]}.{version[1]}"
    supported = f"[{SERVICE} {MIN_MICROVERSION}, {SERVICE} {MAX_MICROVERSION}]"
    if version[0] != 1:
        raise _not_acceptable(
            f"Mutually exclusive versions requested. Version {shown} requested but not supported by "
            f"this service.The supported version range is: {supported}."
        )
    if not _pair(MIN_MICROVERSION) <= version <= _pair(MAX_MICROVERSION):
        raise _not_acceptable(
            f"Version {shown} was requested but the minor version is not supported by this service. "
            f"The supported version range is: {supported}."
        )
    return version


def check_microversion(header: str | None, api: str = "get_one") -> tuple[int, int]:
    """Node-group calls need 1.10 or newer: magnum/api/controllers/base.py, Controller.version_select."""
    version = requested_version(header)
    if version < NODEGROUP_MICROVERSION:
        raise Refused(
            406,
            f"Version {version[0]}.{version[1]} was requested but the requested API {api} is not "
            "supported for this version.",
        )
    return version


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
    """What the resize API checks before it hands the work to the conductor.

    magnum/api/controllers/v1/cluster_actions.py: ActionsController._resize checks only the bounds
    (exception.NGResizeOutBounds, an Invalid: HTTP 400); the status of the cluster is checked by the
    conductor after the API answered 202 (see `resize_allowed`). A max_node_count of 0/None is no bound.
    """
    if not isinstance(node_count, int) or isinstance(node_count, bool) or node_count < 0:
        raise Refused(
            400, f"Invalid input for field/attribute node_count. Value: '{node_count}'. Value should be >= 0"
        )
    low, high = group["min_node_count"], group.get("max_node_count")
    if group.get("role") != "master" and (node_count < low or (high and node_count > high)):
        raise Refused(
            400,
            f"Resizing {group['name']} outside the allowed range: min_node_count = {low}, "
            f"max_node_count = {high}",
        )


def resize_allowed(cluster_status: str) -> str | None:
    """The conductor's refusal (logged, never answered: the API cast the call), or None."""
    if cluster_status in COMPLETE_STATES_FOR_RESIZE:
        return None
    return f'Resizing a cluster when status is "{cluster_status}" is not supported.'


def cluster_status(group_states: list[str]) -> str:
    """The cluster's status from its node groups' (more than one group, as in the sandbox).

    magnum/drivers/heat/driver.py: HeatPoller.aggregate_nodegroup_statuses, IN_PROGRESS before
    FAILED before COMPLETE, all called UPDATE_*; a cluster no update has touched stays CREATE_COMPLETE.
    """
    if all(state == "CREATE_COMPLETE" for state in group_states):
        return "CREATE_COMPLETE"
    for state in ("_IN_PROGRESS", "_FAILED", "_COMPLETE"):
        if any(s.endswith(state) for s in group_states):
            return "UPDATE" + state
    return "UPDATE_COMPLETE"


def victims(members: list[dict], nodes_to_remove: list, target: int) -> tuple[list[str], list[str]]:
    """The VMs a Heat stack update removes, and the entries of `nodes_to_remove` it ignored.

    `members` are node specs with `name`, `server_id` and `position` (the ResourceGroup index).
    Magnum passes nodes_to_remove to Heat as `minions_to_remove` (magnum/drivers/heat/
    k8s_template_def.py: K8sTemplateDefinition.get_scale_params), the `removal_policies:
    resource_list` of the kube_minions ResourceGroup (k8s_fedora_coreos_v1/templates/kubecluster.yaml).
    Heat's ResourceGroup accepts a member's index ("3") or its reference, which kubeminion.yaml sets
    to the Nova server id (output OS::stack_id); any other entry is silently ignored (Heat's
    resource_group.py, _name_blacklist). Named members go even when the count does not shrink; of
    the others the highest indices go first (Heat keeps the lowest `count` names).
    """
    by_key = {}
    for member in members:
        by_key[str(member["server_id"])] = member["name"]
        by_key[str(member["position"])] = member["name"]
    named, ignored = [], []
    for entry in nodes_to_remove:
        name = by_key.get(str(entry))
        if name is None:
            ignored.append(str(entry))
        elif name not in named:
            named.append(name)
    survivors = sorted((m for m in members if m["name"] not in named), key=lambda m: m["position"])
    return named + [m["name"] for m in survivors[target:]][::-1], ignored
