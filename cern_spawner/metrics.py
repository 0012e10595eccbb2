"""Prometheus metrics of cern-spawner, served with JupyterHub's own on /hub/metrics.

Names follow Prometheus' conventions: the unit in the name (`_seconds`), counters exposed with
`_total`, labels with a small fixed set of values. An error becomes one of a few `reason`s (the
functions below), never its class name: a renamed class would silently split a dashboard's series.
docs/reference/metrics.md lists every metric of `ALL` (a unit test keeps them in step), and
dashboards/grafana-cern-spawner.json queries only names in `exposed_names()`.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

# -- GPU growth ------------------------------------------------------------------------------------
GPU_PENDING = Gauge(
    "cern_spawner_gpus_pending",
    "GPUs requested by pods that no node has taken yet, per node group",
    ["node_group"],
)
GPU_FREE = Gauge(
    "cern_spawner_gpus_free", "Allocatable GPUs not requested, on ready nodes, per node group", ["node_group"]
)
NODES_TARGET = Gauge(
    "cern_spawner_nodes_target", "Node count the controller last asked the cloud for", ["node_group"]
)
NODES_BASELINE = Gauge(
    "cern_spawner_nodes_baseline", "Node count the group returns to without demand", ["node_group"]
)
BACKEND_REQUESTS = Counter(
    "cern_spawner_backend_requests",
    "Writes to the cloud by node group, action (grow, shrink, restore-max) and result (accepted, or a "
    "reason of scaling_reason)",
    ["node_group", "action", "result"],
)
NODE_READY_SECONDS = Histogram(
    "cern_spawner_node_ready_seconds",
    "Seconds from asking the cloud for nodes to their GPUs being allocatable",
    ["node_group"],
    buckets=(10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600),
)
NODES_LOST = Counter(
    "cern_spawner_nodes_lost",
    "VMs the cloud counted that did not join Kubernetes within the join deadline, per node group",
    ["node_group"],
)
CLOUD_REQUEST_SECONDS = Histogram(
    "cern_spawner_cloud_request_duration_seconds",
    "Seconds one call to a node-group backend took, by backend (magnum, clusterapi), call "
    "(get_node_group, patch_node_group, resize) and result (ok, or a reason of scaling_reason)",
    ["backend", "call", "result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)

# -- spawns ----------------------------------------------------------------------------------------
SPAWN_SECONDS = Histogram(
    "cern_spawner_spawn_duration_seconds",
    "Seconds from a server's start to its notebook answering (or the start failing), by catalog "
    "profile and result (success, timeout, no_gpu, refused, cancelled, error)",
    ["profile", "result"],
    buckets=(2, 5, 10, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600),
)

# -- the profile catalog ---------------------------------------------------------------------------
CATALOG_RELOADS = Counter(
    "cern_spawner_catalog_reloads",
    "Edits of the profile files read by the hub, by result (applied, refused)",
    ["result"],
)
CATALOG_EDIT_REFUSED = Gauge(
    "cern_spawner_catalog_edit_refused",
    "1 while the latest edit of the profile files is refused (the previous catalog is served), else 0",
)
CATALOG_APPLIED_AT = Gauge(
    "cern_spawner_catalog_applied_timestamp_seconds",
    "Unix time at which the catalog being served was applied",
)

# -- repository (Binder) launches ------------------------------------------------------------------
BINDER_BUILD_SECONDS = Histogram(
    "cern_spawner_binder_build_duration_seconds",
    "Seconds an image build took (its _count is the number of builds), by result (success, "
    "failed, no_image, cluster_error, registry_error, refused, cancelled)",
    ["result"],
    buckets=(10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600),
)

# -- single sign-on --------------------------------------------------------------------------------
SSO_REFRESHES = Counter(
    "cern_spawner_sso_refreshes", "Token refreshes asked of the SSO (refresh_token grants)"
)
SSO_REFRESH_FAILURES = Counter(
    "cern_spawner_sso_refresh_failures",
    "Token refreshes that failed, by reason (see auth_reason)",
    ["reason"],
)
TOKEN_EXCHANGES = Counter(
    "cern_spawner_sso_token_exchanges", "Token exchanges asked of the SSO, by audience", ["audience"]
)
TOKEN_EXCHANGE_FAILURES = Counter(
    "cern_spawner_sso_token_exchange_failures",
    "Token exchanges that failed, by audience and reason (see auth_reason)",
    ["audience", "reason"],
)

ALL = (
    GPU_PENDING,
    GPU_FREE,
    NODES_TARGET,
    NODES_BASELINE,
    BACKEND_REQUESTS,
    NODE_READY_SECONDS,
    NODES_LOST,
    CLOUD_REQUEST_SECONDS,
    SPAWN_SECONDS,
    CATALOG_RELOADS,
    CATALOG_EDIT_REFUSED,
    CATALOG_APPLIED_AT,
    BINDER_BUILD_SECONDS,
    SSO_REFRESHES,
    SSO_REFRESH_FAILURES,
    TOKEN_EXCHANGES,
    TOKEN_EXCHANGE_FAILURES,
)

# Metrics declared next to the code they count, in their packages' own modules: listed here so that
# the docs and the dashboard cover them too (tests/unit/test_metrics_docs.py checks the hub's registry
# holds no other cern_spawner_ metric).
ELSEWHERE = ("cern_spawner.quota.metrics", "cern_spawner.culling.service")


def every_metric() -> list[MetricWrapperBase]:
    """`ALL` and the metrics of the modules in `ELSEWHERE` (imported here)."""
    found = list(ALL)
    for name in ELSEWHERE:
        module = importlib.import_module(name)
        found += [v for v in vars(module).values() if isinstance(v, MetricWrapperBase) and v not in found]
    return found


_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def exposed_names(metrics=ALL) -> set[str]:
    """The sample names Prometheus scrapes for `metrics` (e.g. a histogram's _bucket, _count, _sum)."""
    names = set()
    for metric in metrics:
        for family in metric.describe():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


# -- errors as a few reasons -----------------------------------------------------------------------
def scaling_reason(error: BaseException) -> str:
    """quota, not_allowed, ceiling, unavailable, permanent, temporary, or other."""
    from .scaling import errors

    table = (
        (errors.QuotaExceeded, "quota"),
        (errors.NotAllowed, "not_allowed"),
        (errors.CeilingReached, "ceiling"),
        (errors.CloudUnavailable, "unavailable"),
        (errors.PermanentError, "permanent"),
        (errors.TemporaryError, "temporary"),
    )
    return next((reason for kind, reason in table if isinstance(error, kind)), "other")


def auth_reason(error: BaseException) -> str:
    """provider_unavailable, grant_rejected, wrong_audience, token_invalid, or other."""
    from .auth import errors

    table = (
        (errors.ProviderUnavailable, "provider_unavailable"),
        (errors.GrantRejected, "grant_rejected"),
        (errors.WrongAudience, "wrong_audience"),
        (errors.TokenInvalid, "token_invalid"),
    )
    return next((reason for kind, reason in table if isinstance(error, kind)), "other")


def spawn_result(error: BaseException | None) -> str:
    """success, timeout, no_gpu, refused, cancelled, or error."""
    from .errors import Refused
    from .web.failures import GrowthImpossible, StartTimedOut

    table = (
        (asyncio.CancelledError, "cancelled"),
        (GrowthImpossible, "no_gpu"),
        ((StartTimedOut, TimeoutError), "timeout"),
        (Refused, "refused"),
    )
    if error is None:
        return "success"
    return next((reason for kind, reason in table if isinstance(error, kind)), "error")


def build_result(error: BaseException | None) -> str:
    """success, failed (the builder failed or timed out), no_image (nothing pushed), cluster_error,
    registry_error, refused (over a build limit), cancelled, or error."""
    from .binder import errors

    table = (
        (asyncio.CancelledError, "cancelled"),
        (errors.NothingPushed, "no_image"),
        (errors.BuildFailed, "failed"),
        (errors.BinderRefused, "refused"),
        (errors.BuildError, "cluster_error"),
        (errors.RegistryError, "registry_error"),
    )
    if error is None:
        return "success"
    return next((reason for kind, reason in table if isinstance(error, kind)), "error")


@contextmanager
def timed(
    histogram: Histogram,
    result: Callable[[BaseException | None], str],
    *labels: str,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Observe the block's duration in `histogram` with `labels` and the result of how it ended
    (`result(None)` or `result(the exception)`); the exception goes on."""
    began = clock()
    try:
        yield
    except BaseException as e:
        histogram.labels(*labels, result(e)).observe(clock() - began)
        raise
    histogram.labels(*labels, result(None)).observe(clock() - began)
