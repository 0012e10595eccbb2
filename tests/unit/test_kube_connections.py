"""Idle connections to the API server kept longer than aiohttp's 15 s (cern_spawner/kube_connections.py)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from cern_spawner.kube_connections import (
    environment_configures_requests,
    keep_connections,
    skip_environment_lookups,
)

pytestmark = pytest.mark.unit


@contextlib.asynccontextmanager
async def ok_server(**runner_settings):
    """A local HTTP server answering "ok" at /; yields its port."""

    async def ok(request):
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, **runner_settings)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("asked", "expected"),
    [(45.0, 45.0), (15.0, 15.0), (5.0, 15.0), (0.0, None)],
    ids=["longer", "same", "never-shorter", "zero-leaves-it"],
)
async def test_the_clients_connector_keeps_idle_connections(asked, expected):
    api = CoreV1Api(ApiClient(Configuration(host="https://127.0.0.1:1")))
    try:
        assert keep_connections(api, asked) == expected
        assert api.api_client.rest_client.pool_manager.connector._keepalive_timeout == (expected or 15.0)
    finally:
        await api.api_client.close()


@pytest.mark.parametrize(
    "api",
    [object(), None, type("Fake", (), {"api_client": object()})()],
    ids=["object", "none", "fake-client"],
)
def test_a_client_we_do_not_know_is_left_alone(api):
    assert keep_connections(api, 45.0) is None


@pytest.mark.parametrize(
    ("keepalive", "reused"), [(None, False), (45.0, True)], ids=["aiohttp-15s", "kept-45s"]
)
async def test_a_request_after_20_idle_seconds_reuses_the_connection(monkeypatch, keepalive, reused):
    """aiohttp reads the attribute when it looks for a pooled connection: 20 s of idleness (a
    clock moved on) closes it at aiohttp's 15 s and keeps it at 45 s."""
    reuses = []
    trace = aiohttp.TraceConfig()

    async def on_reuse(session, context, params):
        reuses.append(params)

    trace.on_connection_reuseconn.append(on_reuse)
    now = [1000.0]
    monkeypatch.setattr("aiohttp.connector.monotonic", lambda: now[0])
    async with ok_server() as port, aiohttp.ClientSession(trace_configs=[trace]) as session:
        holder = type("Rest", (), {"pool_manager": session})()
        if keepalive is not None:
            assert keep_connections(type("Client", (), {"rest_client": holder})(), keepalive) == keepalive
        async with session.get(f"http://127.0.0.1:{port}/") as response:
            assert await response.text() == "ok"
        now[0] += 20.0
        async with session.get(f"http://127.0.0.1:{port}/") as response:
            assert await response.text() == "ok"
        assert bool(reuses) is reused


async def test_the_spawner_tunes_kubespawners_shared_client(monkeypatch):
    from tests.unit.test_spawner_pod import make_spawner

    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
    spawner = make_spawner(k8s_api_keepalive=77.0)
    assert spawner.api.api_client.rest_client.pool_manager.connector._keepalive_timeout == 77.0


async def test_a_connection_the_server_closed_first_is_not_reused():
    """A balancer or API server that closes idle connections sooner than we keep them: the next
    request opens a new connection and succeeds, it is not sent on the closed one."""
    reuses, creates = [], []
    trace = aiohttp.TraceConfig()

    async def on_reuse(session, context, params):
        reuses.append(params)

    async def on_create(session, context, params):
        creates.append(params)

    trace.on_connection_reuseconn.append(on_reuse)
    trace.on_connection_create_end.append(on_create)
    # The other side drops idle connections after 0.2 s.
    async with (
        ok_server(keepalive_timeout=0.2) as port,
        aiohttp.ClientSession(trace_configs=[trace]) as session,
    ):
        holder = type("Rest", (), {"pool_manager": session})()
        assert keep_connections(type("Client", (), {"rest_client": holder})(), 45.0) == 45.0
        async with session.get(f"http://127.0.0.1:{port}/") as response:
            assert await response.text() == "ok"
        await asyncio.sleep(0.6)  # the server has closed the idle connection by now
        async with session.get(f"http://127.0.0.1:{port}/") as response:
            assert await response.text() == "ok"
        assert not reuses and len(creates) == 2


# -- the environment's proxy and netrc, looked up before each request -----------------------------
@pytest.mark.parametrize(
    ("proxies", "netrc", "configured"),
    [
        pytest.param({}, None, False, id="nothing"),
        pytest.param({"https": "http://proxy:3128"}, None, True, id="https-proxy"),
        pytest.param({"http": "http://proxy:3128"}, None, True, id="http-proxy"),
        pytest.param({"ftp": "http://proxy:3128", "no": "*"}, None, False, id="only-schemes-aiohttp-ignores"),
        pytest.param({}, "NETRC", True, id="netrc-named-by-NETRC"),
        pytest.param({}, "home", True, id="netrc-in-home"),
        pytest.param({}, "NETRC-missing", False, id="NETRC-names-no-file"),
    ],
)
def test_what_in_the_environment_could_change_a_request(tmp_path, proxies, netrc, configured):
    environ, home = {}, tmp_path / "home"
    home.mkdir()
    if netrc == "NETRC":
        (tmp_path / "netrc").write_text("machine api login a password b\n")
        environ["NETRC"] = str(tmp_path / "netrc")
    elif netrc == "home":
        (home / ".netrc").write_text("machine api login a password b\n")
    elif netrc == "NETRC-missing":
        (home / ".netrc").write_text("machine api login a password b\n")  # NETRC wins, as in aiohttp
        environ["NETRC"] = str(tmp_path / "absent")
    assert environment_configures_requests(environ, lambda: proxies, lambda: home) is configured


def test_no_home_directory_means_no_netrc():
    def no_home():
        raise RuntimeError("Could not determine home directory.")

    assert environment_configures_requests({}, dict, no_home) is False


@pytest.mark.parametrize("configured", [False, True], ids=["plain-environment", "proxy-or-netrc"])
async def test_a_request_looks_up_the_environment_only_where_it_could_matter(monkeypatch, configured):
    """aiohttp looks up the proxy and the netrc entry (each in a worker thread) only while the
    session trusts the environment: off in a plain environment, kept where a proxy or netrc is."""
    looked_up = []
    real_proxy, real_netrc = aiohttp.client.get_env_proxy_for_url, aiohttp.ClientSession._get_netrc_auth
    monkeypatch.setattr(
        aiohttp.client, "get_env_proxy_for_url", lambda url: looked_up.append("proxy") or real_proxy(url)
    )
    monkeypatch.setattr(
        aiohttp.ClientSession,
        "_get_netrc_auth",
        lambda self, host: looked_up.append("netrc") or real_netrc(self, host),
    )
    async with ok_server() as port:
        api = CoreV1Api(ApiClient(Configuration(host=f"http://127.0.0.1:{port}")))
        try:
            assert skip_environment_lookups(api, lambda: configured) is not configured
            session = api.api_client.rest_client.pool_manager
            async with session.get(f"http://127.0.0.1:{port}/") as response:
                assert await response.text() == "ok"
            assert sorted(looked_up) == (["netrc", "proxy"] if configured else [])
        finally:
            await api.api_client.close()


def test_a_client_we_do_not_know_keeps_its_lookups():
    assert skip_environment_lookups(object(), lambda: False) is False


async def test_the_spawner_skips_the_lookups_of_kubespawners_shared_client(monkeypatch):
    from tests.unit.test_spawner_pod import make_spawner

    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
    configured = {"answer": True}
    monkeypatch.setattr(
        "cern_spawner.kube_connections.environment_configures_requests", lambda: configured["answer"]
    )
    session = make_spawner().api.api_client.rest_client.pool_manager
    session._trust_env = True  # as the client comes (an earlier test's spawner may have shared it)
    make_spawner()
    assert session.trust_env is True  # a proxy or netrc here: the client looks them up as before
    configured["answer"] = False
    make_spawner()  # the next spawner finds a plain environment: the shared client stops looking
    assert session.trust_env is False
