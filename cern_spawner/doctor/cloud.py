"""The cloud side of scalable node groups: clouds.yaml logs in, the Magnum node group exists, and
its min/max and autoscaling fit the catalog's `mode`.

openstacksdk is synchronous: its calls run in a worker thread, each bounded by openstacksdk's
api_timeout (the runner's timeout bounds the check as a whole). `fit` is pure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..catalog import NodeGroup
from ..scaling.errors import NotAllowed, PermanentError, QuotaExceeded, ScalingError
from ..scaling.magnum import GroupState, MagnumGroups, translate
from .result import Result, failed, passed


@dataclass(frozen=True)
class Problem:
    text: str
    fix: str
    fatal: bool


def fit(group: NodeGroup, cloud: GroupState) -> list[Problem]:
    """What in the catalog's scaling settings the cloud's node group contradicts."""
    scaling = group.scaling or {}
    mode = scaling.get("mode", "resize")
    low, high = int(scaling.get("min_nodes", 0)), int(scaling.get("max_nodes", 0))
    at = f"node_groups.{group.name}.scaling"
    problems = []
    if high == 0:
        problems.append(Problem(
            "max_nodes is 0 (or unset): the hub never adds a node",
            f"set {at}.max_nodes to the most nodes the hub may run (within the project's GPU quota).",
            fatal=True,
        ))  # fmt: skip
    if mode == "raise-min" and not cloud.autoscaled:
        problems.append(Problem(
            "mode raise-min, but the cloud's group has no autoscaler (label auto_scaling_enabled): "
            "nodes the hub adds would never be removed",
            f"set {at}.mode: resize, or enable the cluster autoscaler on this node group.",
            fatal=True,
        ))  # fmt: skip
    if mode == "resize" and cloud.autoscaled:
        problems.append(Problem(
            "mode resize, but the cloud's autoscaler removes idle nodes above min_node_count "
            f"({cloud.min_nodes}): a node the hub adds may be taken away before its user's pod lands",
            f"set {at}.mode: raise-min for autoscaled groups.",
            fatal=True,
        ))  # fmt: skip
    if mode == "resize" and cloud.min_nodes > low:
        problems.append(Problem(
            f"the cloud's min_node_count {cloud.min_nodes} is above min_nodes {low}: the group never "
            f"shrinks below {cloud.min_nodes}",
            f"lower the node group's min_node_count in Magnum, or set {at}.min_nodes: {cloud.min_nodes}.",
            fatal=False,
        ))  # fmt: skip
    if cloud.failed:
        problems.append(Problem(
            f"the cloud's group is {cloud.status} ({cloud.status_reason or 'no reason given'})",
            "see `openstack coe nodegroup show` for the cause; the hub may not be able to resize it.",
            fatal=False,
        ))  # fmt: skip
    return problems


@dataclass(frozen=True)
class CloudGroup:
    """What the cloud said about one node group: its state, or the error (ours) asking for it."""

    group: NodeGroup
    state: GroupState | None = None
    error: ScalingError | None = None

    @property
    def summary(self) -> str:
        s, mode = self.state, (self.group.scaling or {}).get("mode", "resize")
        assert s is not None
        top = "no max" if s.max_nodes is None else f"max {s.max_nodes}"
        scaling = self.group.scaling or {}
        return (
            f"Magnum cluster {scaling['cluster']} has it ({_nodes(s.node_count)}, min {s.min_nodes}, {top}, "
            f"{s.status}{', autoscaled' if s.autoscaled else ''}); mode {mode}"
        )

    @property
    def problems(self) -> list[Problem]:
        return fit(self.group, self.state) if self.state is not None else []

    @property
    def error_words(self) -> str:
        assert self.error is not None
        return (
            f"{self.error.user_message} ({self.error.detail})"
            if self.error.detail
            else self.error.user_message
        )

    @property
    def fix(self) -> str:
        return fix_for(self.error, self.group)


def _nodes(count: int) -> str:
    return f"{count} node{'' if count == 1 else 's'}"


def fix_for(error: ScalingError | None, group: NodeGroup | None = None) -> str:
    """What an operator does about a cloud error."""
    cause = getattr(error, "__cause__", None)
    status = getattr(cause, "status_code", None) or getattr(cause, "http_status", None)
    cluster = (group.scaling or {}).get("cluster", "CLUSTER") if group else "CLUSTER"
    if status == 404 and group is not None:
        return (
            f"create it (openstack coe nodegroup create {cluster} {group.name} ...), or correct "
            f"node_groups.{group.name}.scaling.cluster or the group's name in the catalog "
            f"(openstack coe nodegroup list {cluster})."
        )
    if status == 401 or (isinstance(error, PermanentError) and "credentials" in error.user_message):
        return "renew the application credential in clouds.yaml (openstack application credential create)."
    if isinstance(error, QuotaExceeded):
        return "ask for more quota in the cloud project, or lower max_nodes."
    if isinstance(error, NotAllowed):
        return "give the hub's application credential the member role on the cluster's project."
    return (
        "check the cloud's API is reachable from the hub (auth_url in clouds.yaml, egress NetworkPolicy) "
        "and its status page."
    )


class Cloud:
    """One login to the cloud, shared by every check that needs it (made at the first ask)."""

    def __init__(self, cloud: str, clouds_yaml: str, api_timeout: float):
        self.cloud, self.clouds_yaml, self.api_timeout = cloud, clouds_yaml, api_timeout
        self._login: asyncio.Future | None = None

    async def connection(self):
        if self._login is None:
            self._login = asyncio.ensure_future(asyncio.to_thread(self._connect))
        # shield: one check's timeout must not cancel the login the others wait on
        return await asyncio.shield(self._login)

    def _connect(self):
        from openstack import exceptions as os_exceptions

        from ..scaling.hub import connect

        try:
            connection = connect(self.cloud, self.clouds_yaml, self.api_timeout)
            # A Keystone token: the credentials work. (Connection.authorize would re-raise
            # keystoneauth's errors as a bare SDKException, losing the 401.)
            connection.session.get_token()
        except os_exceptions.ConfigException as e:
            where = self.clouds_yaml or "openstacksdk's usual places"
            raise PermanentError(f"clouds.yaml ({where}) has no usable cloud {self.cloud!r}.", str(e)) from e
        except Exception as e:
            raise translate(e, f"log in to cloud {self.cloud}") from e
        return connection

    async def group(self, group: NodeGroup) -> CloudGroup:
        try:
            connection = await self.connection()
            groups = MagnumGroups(connection, (group.scaling or {})["cluster"])
            return CloudGroup(group, state=await asyncio.to_thread(groups.state, group.name))
        except ScalingError as e:
            return CloudGroup(group, error=e)


async def check_login(cloud: Cloud, name: str = "cloud login") -> Result:
    try:
        connection = await cloud.connection()
    except ScalingError as e:
        words = f"{e.user_message} ({e.detail})" if e.detail else e.user_message
        return failed(name, words, fix_for(e) + f" Try it: openstack --os-cloud {cloud.cloud} token issue.")
    where = cloud.clouds_yaml or "openstacksdk's usual places"
    auth_url = (connection.config.config.get("auth") or {}).get("auth_url", "?")
    return passed(name, f"cloud {cloud.cloud!r} of {where} logs in at {auth_url}")
