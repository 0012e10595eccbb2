"""Which checks the hub's settings call for, each run with one timeout: `examine(settings, clients)`.

The catalog is read first (it names the node groups and images to check); everything else runs at
once. The node list and the cloud login are fetched once and shared by the checks that need them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..catalog import Catalog, CatalogError, NodeGroup, load_catalog
from . import access, cloud, cluster, web
from .result import Check, Result, failed, passed, run_checks
from .settings import DoctorSettings

DEFAULT_TIMEOUT = 10.0  # seconds per check
KUBE_FIX = "run the doctor where the hub runs (kubectl exec into the hub pod), or pass --kubeconfig FILE."


def catalog_result(paths: tuple[str, ...]) -> tuple[Result, Catalog | None]:
    """The catalog as the hub loads it; the loader's problems (file:line) are the detail."""
    try:
        catalog = load_catalog(paths)
    except CatalogError as error:
        problems = error.problems
        listed = "; ".join(str(p) for p in problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        fix = (
            f"fix the profile files: `cern-spawner profiles validate {' '.join(paths)}` lists every problem."
        )
        return failed("catalog", f"{len(problems)} problem(s): {listed}{more}", fix), None
    profiles, groups = len(catalog.profiles), len(catalog.node_groups)
    detail = f"{profiles} profiles, {groups} node groups from {', '.join(paths)}"
    if catalog.warnings:  # served all the same, but probably not meant
        detail += "; " + "; ".join(str(w) for w in catalog.warnings)
        return passed(
            "catalog", detail, "see the warnings (also in `cern-spawner profiles validate`)."
        ), catalog
    return passed("catalog", detail), catalog


class Shared:
    """An awaitable made at the first ask and shared: a check's timeout cancels only its own wait,
    never the fetch other checks wait on."""

    def __init__(self, make: Callable[[], Awaitable]):
        self._make, self._task = make, None

    async def get(self):
        if self._task is None:
            self._task = asyncio.ensure_future(self._make())
        return await asyncio.shield(self._task)


@dataclass(frozen=True)
class Clients:
    """How checks reach the cluster: a kubernetes_asyncio ApiClient, or None and why there is none."""

    kube: object | None
    kube_error: str = ""


def images(settings: DoctorSettings, catalog: Catalog) -> dict[str, list[str]]:
    """Each image a notebook may run, with the profiles that use it (in catalog order)."""
    used: dict[str, list[str]] = {}
    for profile in catalog.profiles:
        choices = [choice.image for choice in profile.image_choices]
        for image in choices or [profile.image or settings.default_image]:
            used.setdefault(image, []).append(profile.slug)
    return used


def plan(
    settings: DoctorSettings, catalog: Catalog | None, clients: Clients, *, timeout: float
) -> list[Check]:
    """The checks, in the order the table shows them."""
    growth_on = bool(settings.openstack_cloud)
    the_cloud = cloud.Cloud(settings.openstack_cloud, settings.clouds_yaml, timeout) if growth_on else None
    nodes = Shared(lambda: cluster.list_nodes(clients.kube))
    checks: list[Check] = []

    def add(name: str, run: Callable[[], Awaitable[Result]], fix: str) -> None:
        checks.append(Check(name, run, fix))

    def add_kube(name: str, run: Callable[[object], Awaitable[Result]], fix: str) -> None:
        async def go() -> Result:
            if clients.kube is None:
                return failed(name, f"no Kubernetes API: {clients.kube_error}", KUBE_FIX)
            return await run(clients.kube)

        add(name, go, fix)

    if catalog is not None:
        for group in catalog.node_groups.values():
            slugs = [p.slug for p in catalog.profiles if p.node_group == group.name]
            add_kube(
                f"node group {group.name}",
                _group_check(group, slugs, nodes, the_cloud, growth_on),
                "check that the API server and the cloud answer the hub.",
            )
            if group.gpu is not None:
                add_kube(f"GPUs {group.name}", _gpu_check(group, nodes), "check that the API server answers.")
    if the_cloud is not None:
        add("cloud login", lambda: cloud.check_login(the_cloud), cloud.fix_for(None))
    binder = settings.binder
    http_registries = binder.http_registries if binder else ()
    for image, used_by in (images(settings, catalog) if catalog is not None else {}).items():
        add(
            f"image {image}",
            lambda image=image, used_by=used_by: web.check_image(
                image,
                used_by,
                credentials_path=settings.registry_auth,
                http_registries=http_registries,
                request_timeout=timeout,
            ),
            "check that the hub reaches the image's registry.",
        )
    if settings.sso is not None:
        sso = settings.sso
        add(
            web.sso_check_name(sso),
            lambda: web.check_sso(sso, request_timeout=timeout),
            "check that the hub reaches the SSO (CERNAuthenticator.issuer_url).",
        )
    namespaces = {
        access.NOTEBOOKS: settings.namespace,
        access.BUILDS: binder.build_namespace if binder else "",
    }
    wanted = access.required(binder=binder is not None, scaling=growth_on)
    add_kube(
        "permissions",
        lambda api: access.check_access(api, wanted, namespaces, "permissions"),
        "check that the API server answers SelfSubjectAccessReviews.",
    )
    if binder is not None:
        add(
            "Binder registry",
            lambda: web.check_registry(
                binder.registry, binder.http_registries, binder.credentials_path, request_timeout=timeout
            ),
            "check that the hub reaches BinderConfig.registry.",
        )
        origins, wildcards = web.git_origins(binder.allowed_hosts, binder.insecure_origins)
        for origin in origins:
            add(
                f"git {origin.split('://', 1)[-1]}",
                lambda origin=origin: web.check_git_host(origin, request_timeout=timeout),
                "let the hub reach the git host.",
            )
        if wildcards:
            add("git wildcards", lambda: _now(web.wildcard_note(wildcards)), "")
    return checks


async def _now(result: Result) -> Result:
    return result


def _group_check(group: NodeGroup, profiles: list[str], nodes: Shared, the_cloud, growth_on: bool):
    async def run(api) -> Result:
        try:
            found = await nodes.get()
        except Exception as e:
            return _no_nodes(f"node group {group.name}", e)
        answer = await the_cloud.group(group) if the_cloud is not None and group.scaling else None
        return cluster.node_group_verdict(group, profiles, found, answer, growth_on)

    return run


def _gpu_check(group: NodeGroup, nodes: Shared):
    async def run(api) -> Result:
        try:
            found = await nodes.get()
        except Exception as e:
            return _no_nodes(f"GPUs {group.name}", e)
        return cluster.gpu_verdict(group, found)

    return run


def _no_nodes(name: str, error: Exception) -> Result:
    status = getattr(error, "status", None)
    why = (
        f"HTTP {status} {getattr(error, 'reason', '')}".strip()
        if status
        else f"{type(error).__name__}: {error}"
    )
    return failed(name, f"cannot list nodes: {why}", "see the permissions check (list nodes). " + KUBE_FIX)


async def examine(
    settings: DoctorSettings, clients: Clients, *, per_check: float = DEFAULT_TIMEOUT
) -> list[Result]:
    """Every check's result: the catalog's first, then the others in plan order."""
    first, catalog = catalog_result(settings.profiles)
    return [
        first,
        *await run_checks(plan(settings, catalog, clients, timeout=per_check), per_check=per_check),
    ]
