"""Each metric beyond scaling moves where it should, read back from prometheus_client's registry;
errors become a few fixed reasons; names follow Prometheus' conventions."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from types import SimpleNamespace

import pytest
import requests
from kubespawner import KubeSpawner
from prometheus_client import REGISTRY

from cern_spawner import metrics
from cern_spawner.auth.errors import GrantRejected, ProviderUnavailable, TokenInvalid, WrongAudience
from cern_spawner.auth.exchange import exchange_all
from cern_spawner.binder.errors import BinderRefused, BuildError, BuildFailed, NothingPushed, RegistryError
from cern_spawner.catalog_store import CatalogStore
from cern_spawner.errors import Refused
from cern_spawner.scaling.errors import (
    CeilingReached,
    CloudUnavailable,
    NotAllowed,
    PermanentError,
    QuotaExceeded,
    ScalingError,
    TemporaryError,
)
from cern_spawner.scaling.magnum import MagnumGroups
from cern_spawner.web.failures import GrowthImpossible, StartTimedOut
from tests.unit.test_auth_authenticator import idp, logged_in, make  # noqa: F401 (fixtures)
from tests.unit.test_binder_launch import FakeRegistry, launch
from tests.unit.test_controller import Cloud, View, cloud_state, controller, gpu_pod, run
from tests.unit.test_spawner_start import GPU_DEFAULT, spawner_for

pytestmark = pytest.mark.unit


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- reasons: a small fixed set, never a class name --------------------------------------------------
REASONS = {
    "scaling-quota": (metrics.scaling_reason, QuotaExceeded("q"), "quota"),
    "scaling-not-allowed": (metrics.scaling_reason, NotAllowed("n"), "not_allowed"),
    "scaling-ceiling": (metrics.scaling_reason, CeilingReached("c"), "ceiling"),
    "scaling-unavailable": (metrics.scaling_reason, CloudUnavailable("u"), "unavailable"),
    "scaling-permanent": (metrics.scaling_reason, PermanentError("p"), "permanent"),
    "scaling-temporary": (metrics.scaling_reason, TemporaryError("t"), "temporary"),
    "scaling-foreign": (metrics.scaling_reason, KeyError("x"), "other"),
    "auth-down": (metrics.auth_reason, ProviderUnavailable("x"), "provider_unavailable"),
    "auth-grant": (metrics.auth_reason, GrantRejected(400, "invalid_grant"), "grant_rejected"),
    "auth-audience": (metrics.auth_reason, WrongAudience("x"), "wrong_audience"),
    "auth-invalid": (metrics.auth_reason, TokenInvalid("x"), "token_invalid"),
    "auth-foreign": (metrics.auth_reason, ValueError("x"), "other"),
    "spawn-ok": (metrics.spawn_result, None, "success"),
    "spawn-timeout": (metrics.spawn_result, StartTimedOut("t"), "timeout"),
    "spawn-bare-timeout": (metrics.spawn_result, TimeoutError(), "timeout"),
    "spawn-no-gpu": (metrics.spawn_result, GrowthImpossible("g"), "no_gpu"),
    "spawn-refused": (metrics.spawn_result, Refused(403, "r"), "refused"),
    "spawn-cancelled": (metrics.spawn_result, asyncio.CancelledError(), "cancelled"),
    "spawn-other": (metrics.spawn_result, RuntimeError("x"), "error"),
    "build-ok": (metrics.build_result, None, "success"),
    "build-failed": (metrics.build_result, BuildFailed("f"), "failed"),
    "build-no-image": (metrics.build_result, NothingPushed("n"), "no_image"),
    "build-refused": (metrics.build_result, BinderRefused(429, "r"), "refused"),
    "build-cluster": (metrics.build_result, BuildError("b"), "cluster_error"),
    "build-registry": (metrics.build_result, RegistryError("r"), "registry_error"),
    "build-cancelled": (metrics.build_result, asyncio.CancelledError(), "cancelled"),
    "build-other": (metrics.build_result, OSError("x"), "error"),
}


@pytest.mark.parametrize("reason_of, error, expected", REASONS.values(), ids=REASONS.keys())
def test_errors_become_a_few_fixed_reasons(reason_of, error, expected):
    assert reason_of(error) == expected


CONVENTIONS = [pytest.param(m, id=m.describe()[0].name) for m in metrics.every_metric()]


@pytest.mark.parametrize("metric", CONVENTIONS)
def test_names_follow_prometheus_conventions(metric):
    (family,) = metric.describe()
    assert re.fullmatch(r"cern_spawner_[a-z0-9_]+", family.name)
    assert not family.name.endswith("_total")  # prometheus_client adds it to counters
    if family.type == "histogram":
        assert family.name.endswith("_seconds")
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", label) for label in metric._labelnames)
    assert family.documentation


def test_every_metric_of_the_module_is_in_all():
    from prometheus_client.metrics import MetricWrapperBase

    defined = {id(v) for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)}
    assert defined == {id(m) for m in metrics.ALL}


# -- timing --------------------------------------------------------------------------------------------
def test_timed_observes_the_duration_with_how_the_block_ended():
    now = [100.0]
    labels = {"profile": "timed-test"}
    with metrics.timed(metrics.SPAWN_SECONDS, metrics.spawn_result, "timed-test", clock=lambda: now[0]):
        now[0] += 42
    with pytest.raises(StartTimedOut):
        with metrics.timed(metrics.SPAWN_SECONDS, metrics.spawn_result, "timed-test", clock=lambda: now[0]):
            now[0] += 7
            raise StartTimedOut("late")
    name = "cern_spawner_spawn_duration_seconds"
    assert value(f"{name}_sum", **labels, result="success") == 42
    assert value(f"{name}_sum", **labels, result="timeout") == 7
    assert value(f"{name}_bucket", **labels, result="timeout", le="10.0") == 1


# -- the catalog -------------------------------------------------------------------------------------
def test_catalog_reloads_count_applied_and_refused_edits(tmp_path, caplog):
    (tmp_path / "profiles.yaml").write_text(GPU_DEFAULT)
    wall = [1_800_000_000.0]
    store = CatalogStore([tmp_path], log=logging.getLogger("t"), wall_clock=lambda: wall[0])
    assert value("cern_spawner_catalog_applied_timestamp_seconds") == wall[0]
    applied, refused = (
        value("cern_spawner_catalog_reloads_total", result="applied"),
        value("cern_spawner_catalog_reloads_total", result="refused"),
    )
    (tmp_path / "broken.yaml").write_text("profiles: [{slug: x}]\n")
    assert store.check() is False
    assert store.check() is False  # the same broken content is counted once
    assert value("cern_spawner_catalog_reloads_total", result="refused") == refused + 1
    assert value("cern_spawner_catalog_edit_refused") == 1
    (tmp_path / "broken.yaml").unlink()
    (tmp_path / "profiles.yaml").write_text(GPU_DEFAULT.replace("Shared, 1 GB", "Shared, one GB"))
    wall[0] += 60
    assert store.check() is True
    assert value("cern_spawner_catalog_reloads_total", result="applied") == applied + 1
    assert value("cern_spawner_catalog_edit_refused") == 0
    assert value("cern_spawner_catalog_applied_timestamp_seconds") == wall[0]


# -- spawns --------------------------------------------------------------------------------------------
SPAWNS = {
    "started": (None, "success"),
    "kubespawner-failed": (RuntimeError("pod create failed"), "error"),
}


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize("error, result", SPAWNS.values(), ids=SPAWNS.keys())
async def test_spawn_duration_is_observed_per_profile(tmp_path, monkeypatch, error, result):
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)

    async def start(self):
        if error:
            raise error
        return "http://10.0.0.1:8888"

    monkeypatch.setattr(KubeSpawner, "start", start)
    (tmp_path / "profiles.yaml").write_text(GPU_DEFAULT)
    spawner = spawner_for((), tmp_path)
    await spawner._run_apply_user_options({"profile": "shared-1g"})
    labels = {"profile": "shared-1g", "result": result}
    before = value("cern_spawner_spawn_duration_seconds_count", **labels)
    if error:
        with pytest.raises(type(error)):
            await spawner.start()
    else:
        assert await spawner.start() == "http://10.0.0.1:8888"
    assert value("cern_spawner_spawn_duration_seconds_count", **labels) == before + 1


# -- Binder builds ---------------------------------------------------------------------------------
BUILDS = {
    "pushed": (FakeRegistry(False, True), "success"),
    "nothing-pushed": (FakeRegistry(False, False), "no_image"),
}


@pytest.mark.parametrize("registry, result", BUILDS.values(), ids=BUILDS.keys())
async def test_binder_builds_are_counted_and_timed_by_result(registry, result):
    before = value("cern_spawner_binder_build_duration_seconds_count", result=result)
    try:
        await launch(registry)
    except NothingPushed:
        pass
    assert value("cern_spawner_binder_build_duration_seconds_count", result=result) == before + 1


async def test_a_found_image_is_no_build():
    before = sum(
        value("cern_spawner_binder_build_duration_seconds_count", result=r) for r in ("success", "no_image")
    )
    await launch(FakeRegistry(True))
    after = sum(
        value("cern_spawner_binder_build_duration_seconds_count", result=r) for r in ("success", "no_image")
    )
    assert after == before


# -- single sign-on --------------------------------------------------------------------------------
async def test_token_exchange_failures_by_audience_and_reason():
    async def post(form):
        if form["audience"] == "eos-down":
            raise ProviderUnavailable("HTTP 503")
        return {"access_token": "t", "expires_in": 300}

    before = value("cern_spawner_sso_token_exchanges_total", audience="eos-down")
    failed = value(
        "cern_spawner_sso_token_exchange_failures_total", audience="eos-down", reason="provider_unavailable"
    )
    ok_failed = sum(
        value("cern_spawner_sso_token_exchange_failures_total", audience="eos-up", reason=r)
        for r in ("provider_unavailable", "other")
    )
    tokens = await exchange_all(
        post, "subject", ["eos-down", "eos-up"], {}, now=0, log=logging.getLogger("t")
    )
    assert list(tokens) == ["eos-up"]
    assert value("cern_spawner_sso_token_exchanges_total", audience="eos-down") == before + 1
    assert (
        value(
            "cern_spawner_sso_token_exchange_failures_total",
            audience="eos-down",
            reason="provider_unavailable",
        )
        == failed + 1
    )
    assert ok_failed == sum(
        value("cern_spawner_sso_token_exchange_failures_total", audience="eos-up", reason=r)
        for r in ("provider_unavailable", "other")
    )


async def test_a_refused_refresh_is_counted_as_grant_rejected(idp, make):  # noqa: F811
    auth, user, clock, expires_at = await logged_in(idp, make)
    clock[0] = expires_at - 30
    idp.token_error = (400, {"error": "invalid_grant", "error_description": "Session not active"})
    refreshes = value("cern_spawner_sso_refreshes_total")
    rejected = value("cern_spawner_sso_refresh_failures_total", reason="grant_rejected")
    assert await auth.refresh_user(user) is False
    assert value("cern_spawner_sso_refreshes_total") == refreshes + 1
    assert value("cern_spawner_sso_refresh_failures_total", reason="grant_rejected") == rejected + 1


# -- the cloud -----------------------------------------------------------------------------------------
def response(status: int, body: dict) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer._content = status, json.dumps(body).encode()
    answer.headers["Content-Type"] = "application/json"
    answer.url = "https://magnum.example.org/v1/clusters/c/nodegroups/gpu"
    return answer


class Proxy:
    """openstacksdk's container-infra proxy, answering every call with `answer`."""

    def __init__(self, answer):
        self.answer = answer

    def get(self, url, **kwargs):
        return self.answer

    post = patch = get


NODEGROUP = {"uuid": "u", "name": "gpu", "node_count": 1, "min_node_count": 0, "max_node_count": 4}
CALLS = {
    "read-ok": (
        lambda groups: groups.state("gpu"),
        response(200, {**NODEGROUP, "status": "UPDATE_COMPLETE"}),
        "get_node_group",
        "ok",
    ),
    "resize-over-quota": (
        lambda groups: groups.resize("gpu", 2),
        response(403, {"errors": [{"detail": "Quota exceeded for instances"}]}),
        "resize",
        "quota",
    ),
    "patch-5xx": (
        lambda groups: groups.patch("gpu", cloud_state(1), max_node_count=5),
        response(500, {"errors": [{"detail": "boom"}]}),
        "patch_node_group",
        "temporary",
    ),
}


@pytest.mark.parametrize("call_it, answer, call, result", CALLS.values(), ids=CALLS.keys())
def test_cloud_api_latency_per_call_and_result(call_it, answer, call, result):
    connection = SimpleNamespace(container_infrastructure_management=Proxy(answer))
    before = value(
        "cern_spawner_cloud_request_duration_seconds_count", backend="magnum", call=call, result=result
    )
    if result == "ok":
        call_it(MagnumGroups(connection, "c"))
    else:
        with pytest.raises(ScalingError) as failed:
            call_it(MagnumGroups(connection, "c"))
        assert metrics.scaling_reason(failed.value) == result
    assert (
        value("cern_spawner_cloud_request_duration_seconds_count", backend="magnum", call=call, result=result)
        == before + 1
    )


class NoQuotaCloud(Cloud):
    def resize(self, group, node_count, nodes_to_remove=None):
        raise QuotaExceeded("No quota left.")


def test_a_refused_growth_is_counted_by_reason_not_class_name():
    scaler = controller(NoQuotaCloud(cloud_state(0)), View(pods=[gpu_pod("waiting")]))
    labels = {"node_group": "gpu-v100", "action": "grow"}
    before = value("cern_spawner_backend_requests_total", **labels, result="quota")
    run(scaler.reconcile())
    assert value("cern_spawner_backend_requests_total", **labels, result="quota") == before + 1
    assert value("cern_spawner_backend_requests_total", **labels, result="QuotaExceeded") == 0
