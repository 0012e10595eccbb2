"""What the hub's Kubernetes account must be allowed to do, asked of the API server itself.

`HUB_ACCESS` is the one list: the doctor asks a SelfSubjectAccessReview for each entry, and the
integration tests apply the chart's RBAC and check that it grants every entry. Where an entry is
needed only with a feature on (Binder launches, GPU growth) it says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from .result import Result, failed, passed

NOTEBOOKS, BUILDS, CLUSTER = "notebooks", "builds", "cluster"  # where: namespaces, or all of them


@dataclass(frozen=True)
class Access:
    verb: str
    resource: str
    where: str  # NOTEBOOKS, BUILDS or CLUSTER (every namespace / cluster-scoped)
    why: str
    subresource: str = ""
    feature: str = ""  # "", "binder" or "scaling": needed only with that feature on

    def words(self, namespaces: dict[str, str]) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = "in every namespace" if self.where == CLUSTER else f"in namespace {namespaces[self.where]}"
        if self.resource == "nodes":
            where = ""  # cluster-scoped
        return " ".join(part for part in (self.verb, what, where) if part)


def _each(verbs: str, resource: str, where: str, why: str, **kwargs) -> tuple[Access, ...]:
    return tuple(Access(verb, resource, where, why, **kwargs) for verb in verbs.split())


HUB_ACCESS: tuple[Access, ...] = (
    *_each("get list watch create delete", "pods", NOTEBOOKS, "KubeSpawner starts and follows notebooks"),
    *_each("get create delete", "persistentvolumeclaims", NOTEBOOKS, "home volumes of notebooks"),
    *_each("get create update delete", "secrets", NOTEBOOKS, "each user's exchanged-token Secret"),
    *_each("get create delete", "services", NOTEBOOKS, "KubeSpawner's notebook Services"),
    *_each("get list watch", "events", NOTEBOOKS, "spawn progress"),
    *_each("get list watch", "nodes", CLUSTER, "free GPUs and node groups"),
    *_each("list watch", "pods", CLUSTER, "a GPU used by any pod is not free"),
    Access("patch", "nodes", CLUSTER, "GPU growth cordons a node it gives back", feature="scaling"),
    *_each("get list create delete", "pods", BUILDS, "Binder build pods", feature="binder"),
    Access("get", "pods", BUILDS, "Binder build logs", subresource="log", feature="binder"),
)


def required(*, binder: bool, scaling: bool) -> list[Access]:
    features = {""} | ({"binder"} if binder else set()) | ({"scaling"} if scaling else set())
    return [access for access in HUB_ACCESS if access.feature in features]


def review(access: Access, namespaces: dict[str, str]) -> dict:
    """The SelfSubjectAccessReview asking for `access`."""
    attributes = {"verb": access.verb, "resource": access.resource, "group": ""}
    if access.subresource:
        attributes["subresource"] = access.subresource
    if access.where != CLUSTER:
        attributes["namespace"] = namespaces[access.where]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}  # fmt: skip


def verdict(
    name: str, accesses: Sequence[Access], allowed: Sequence[bool], namespaces: dict[str, str], who: str
) -> Result:
    denied = [access for access, ok in zip(accesses, allowed, strict=True) if not ok]
    as_whom = f" as {who}" if who else ""
    if not denied:
        return passed(name, f"all {len(accesses)} permissions the hub uses are granted{as_whom}")
    listed = "; ".join(f"{a.words(namespaces)} ({a.why})" for a in denied)
    return failed(
        name,
        f"{len(denied)} of {len(accesses)} permissions denied{as_whom}: {listed}",
        "grant them to the hub's service account: the chart's RBAC (templates/rbac.yaml) does; on "
        "Zero to JupyterHub add docs/operator/z2jh-rbac.yaml. Run the doctor as the hub's account "
        "(kubectl exec into the hub pod) so that these answers are the hub's.",
    )


async def check_access(
    api_client, accesses: Sequence[Access], namespaces: dict[str, str], name: str
) -> Result:
    """Ask the API server, as the doctor's own identity, whether it may do each of `accesses`."""
    from kubernetes_asyncio import client

    authz = client.AuthorizationV1Api(api_client)
    answers = await asyncio.gather(
        *(authz.create_self_subject_access_review(review(a, namespaces)) for a in accesses)
    )
    return verdict(
        name, accesses, [bool(a.status.allowed) for a in answers], namespaces, await whoami(api_client)
    )


async def whoami(api_client) -> str:
    """The user the API server sees (SelfSubjectReview), or "" when it will not say."""
    from kubernetes_asyncio import client

    try:
        review = await client.AuthenticationV1Api(api_client).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        return review.status.user_info.username or ""
    except Exception:  # only decoration for the detail: older API servers, or not allowed
        return ""
