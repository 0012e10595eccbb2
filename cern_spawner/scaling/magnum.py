"""Magnum node groups through openstacksdk: fetch, JSON-patch, resize. Synchronous; the controller
runs these calls in a worker thread.

openstacksdk has no node-group resource, and its `Resource` machinery cost more CPU per idle read
than the HTTP request (about half of ~2 ms): a node group's JSON is read here as a plain dict
(`group_state`), and openstacksdk is kept for what it is for (clouds.yaml, Keystone auth, the
service catalog, the HTTP session). Magnum answers node-group calls only with microversion 1.10 or
newer, so every call sends it.
Errors are wrapped at this boundary into `errors` with messages a user can act on.
"""

from __future__ import annotations

import keystoneauth1.exceptions as ks_exceptions
from openstack import exceptions as os_exceptions

from .. import metrics

# grow, shrink, baseline: the write order shared by all backends (re-exported for callers).
from .backend import GroupState, baseline, grow, shrink  # noqa: F401
from .errors import NotAllowed, PermanentError, QuotaExceeded, ScalingError, TemporaryError

MICROVERSION = "1.10"
HEADERS = {"OpenStack-API-Version": f"container-infra {MICROVERSION}"}
PATCHABLE = ("min_node_count", "max_node_count", "node_labels", "node_taints")


def json_patch(current: dict, changes: dict) -> list[dict]:
    """Magnum's rule: `add` sets a field that is null, `replace` one that has a value."""
    patch = []
    for field, value in changes.items():
        if field not in PATCHABLE:
            raise ValueError(f"Magnum does not allow changing {field!r} of a node group")
        op = "add" if current.get(field) is None else "replace"
        patch.append({"op": op, "path": f"/{field}", "value": value})
    return patch


def _count(body: dict, field: str, default: int | None) -> int | None:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{field} is {value!r}, not a whole number")
    return int(value)  # a string that is no number raises ValueError too


def group_state(body) -> GroupState:
    """A node group as Magnum's `GET /v1/clusters/{id}/nodegroups/{id}` answers it (the detailed
    view: magnum/api/controllers/v1/nodegroup.py, NodeGroup.convert with expand=True). A missing
    count is 0 (a null `max_node_count` means no maximum); anything else unexpected raises
    ValueError, which the caller reports as the cloud's API failing."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise ValueError(f"not a node group: {str(body)[:200]}")
    labels = body.get("labels") or {}
    if not isinstance(labels, dict):
        raise ValueError(f"labels is {labels!r}, not an object")
    return GroupState(
        name=body["name"],
        node_count=_count(body, "node_count", 0),
        min_nodes=_count(body, "min_node_count", 0),
        max_nodes=_count(body, "max_node_count", None),
        status=body.get("status") or "UNKNOWN",
        status_reason=body.get("status_reason") or "",
        autoscaled=str(labels.get("auto_scaling_enabled", "")).lower() == "true",
    )


def translate(error: Exception, action: str) -> ScalingError:
    """An openstacksdk/keystoneauth error as one of ours, with what to do about it."""
    if isinstance(error, os_exceptions.HttpException):
        status = error.status_code or 0
        # Magnum's error bodies ({"errors": [{"detail": ...}]}) are not parsed by openstacksdk.
        body = getattr(error.response, "text", "") if error.response is not None else ""
        detail = f"{action}: HTTP {status}: {error.details or error.message} {body}".strip()
        text = f"{error.details or ''} {error.message or ''} {body}".lower()
        if status == 403 and "quota" in text:
            return QuotaExceeded("The cloud project has no quota left for another GPU node.", detail)
        if status == 401:
            return PermanentError("The hub's OpenStack credentials were rejected.", detail)
        if status == 403:
            return NotAllowed("The hub may not resize this node group.", detail)
        if status == 409 and "progress" in text:
            return TemporaryError("The node group is busy with another change.", detail, delay=10)
        if status in (400, 409):
            return PermanentError("The cloud refused the new node group size.", detail)
        if status == 404:
            return PermanentError("The node group does not exist in the cloud.", detail)
        if status == 406:
            return PermanentError(
                "The cloud's Magnum is older than API 1.10 and cannot resize node groups.", detail
            )
        return TemporaryError("The cloud's API is failing.", detail)
    if isinstance(error, ks_exceptions.Unauthorized):  # Keystone refused the login itself
        return PermanentError("The hub's OpenStack credentials were rejected.", f"{action}: {error}")
    if isinstance(error, ks_exceptions.ClientException):  # connection refused, timeouts, discovery
        return TemporaryError("The cloud's API cannot be reached.", f"{action}: {error!r}")
    return TemporaryError("Unexpected error talking to the cloud.", f"{action}: {error!r}")


# The `call` label of cern_spawner_cloud_request_duration_seconds, by the HTTP method we use.
CALLS = {"get": "get_node_group", "patch": "patch_node_group", "post": "resize"}


def _call_result(error: BaseException | None) -> str:
    return "ok" if error is None else metrics.scaling_reason(error)


class MagnumGroups:
    """The node groups of one Magnum cluster, through an openstacksdk connection."""

    def __init__(self, connection, cluster: str):
        self.connection = connection
        self.cluster = cluster

    @property
    def proxy(self):
        return self.connection.container_infrastructure_management

    def _call(self, action: str, method: str, url: str, **kwargs):
        with metrics.timed(metrics.CLOUD_REQUEST_SECONDS, _call_result, "magnum", CALLS[method]):
            try:
                response = getattr(self.proxy, method)(url, headers=HEADERS, raise_exc=False, **kwargs)
                os_exceptions.raise_from_response(response)
                return response
            except (os_exceptions.SDKException, ks_exceptions.ClientException) as e:
                raise translate(e, action) from e

    def state(self, group: str) -> GroupState:
        response = self._call(
            f"get node group {group}", "get", f"/clusters/{self.cluster}/nodegroups/{group}"
        )
        try:
            return group_state(response.json())
        except ValueError as e:  # not JSON, or not a node group
            raise TemporaryError(
                "The cloud's API answered something unexpected.", f"get node group {group}: {e}"
            ) from e

    def patch(self, group: str, current: GroupState, **changes) -> None:
        fields = {"min_node_count": current.min_nodes, "max_node_count": current.max_nodes}
        self._call(
            f"patch node group {group} {changes}",
            "patch",
            f"/clusters/{self.cluster}/nodegroups/{group}",
            json=json_patch(fields, changes),
        )

    def resize(self, group: str, node_count: int, nodes_to_remove: list[str] | None = None) -> None:
        body = {"node_count": node_count, "nodegroup": group}
        if nodes_to_remove:
            body["nodes_to_remove"] = nodes_to_remove
        self._call(
            f"resize {group} to {node_count}", "post", f"/clusters/{self.cluster}/actions/resize", json=body
        )
