"""cern-spawner smoke without a hub: each profile's row from what the hub answers, on a fake clock,
and the three reports with everything escaped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cern_spawner.cli import main
from cern_spawner.smoke import report
from cern_spawner.smoke.command import plan
from cern_spawner.smoke.run import Refusal, Row, exit_code, node_of, smoke, smoke_profile

pytestmark = pytest.mark.unit
PROFILES = str(Path(__file__).resolve().parents[2] / "profiles")
SCHEDULED = {
    "progress": 30,
    "message": "Scheduled",
    "details": "Scheduled: Successfully assigned u/jupyter-s to node-7",
}


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeHub:
    """A hub whose answers a test scripts; records the calls made."""

    def __init__(self, time, *, refuse=None, events=(), answer_after=0, stops=True, forever=False, node=None):
        self.time, self.refuse, self.events, self.answer_after = time, refuse, events, answer_after
        self.stops, self.forever, self.where = stops, forever, node
        self.calls: list[str] = []

    async def start(self, profile):
        self.calls.append(f"start {profile}")
        if self.refuse:
            raise Refusal(self.refuse)

    async def progress(self):
        for event in self.events:
            self.time.now += 1.0  # each event a second into the spawn
            yield event
        if self.forever:
            await asyncio.sleep(3600)

    async def answers(self):
        self.calls.append("answers?")
        self.answer_after -= 1
        return self.answer_after < 0

    async def stop(self):
        self.calls.append("stop")

    async def stopped(self):
        return self.stops

    async def node(self):
        self.calls.append("node?")
        return self.where


CASES = {
    "ready": (
        dict(events=[SCHEDULED, {"progress": 100, "ready": True}], answer_after=2),
        Row("s", "ready", 2.3, "node-7"),  # 2 events, then 0.1 + 0.2 s of polls
        ["start s", "answers?", "answers?", "answers?", "stop"],
    ),
    "ready-before-progress-node-from-hub": (
        dict(events=[{"progress": 100, "ready": True}], node="sandbox-cpu-node-2"),
        Row("s", "ready", 1.0, "sandbox-cpu-node-2"),
        ["start s", "node?", "answers?", "stop"],
    ),
    "refused-nothing-to-stop": (
        dict(refuse="The profile 'gpu-1' is not offered to you."),
        Row("s", "refused", None, None, "The profile 'gpu-1' is not offered to you."),
        ["start s"],
    ),
    "spawn-failed": (
        dict(events=[SCHEDULED, {"failed": True, "message": "Spawn failed: No GPU became free"}]),
        Row("s", "failed", None, "node-7", "Spawn failed: No GPU became free"),
        ["start s", "stop"],
    ),
    "stream-ended-early": (
        dict(events=[{"progress": 10, "message": "Pending"}]),
        Row("s", "failed", None, None, "the progress stream ended before the server was ready"),
        ["start s", "stop"],
    ),
    "not-ready-in-time": (
        dict(events=[SCHEDULED], forever=True),
        Row("s", "timeout", None, "node-7", "the server was not ready within 0 s"),
        ["start s", "stop"],
    ),
    "ready-but-no-answer": (
        dict(events=[{"ready": True}], answer_after=10**6),
        Row("s", "no-answer", None, None, "ready, but its URL did not answer within 0 s"),
        None,
    ),
    "never-stops": (
        dict(events=[{"ready": True}], stops=False),
        Row("s", "not-stopped", 1.0, None, "still running after 120 s"),
        ["start s", "node?", "answers?", "stop"],
    ),
}


@pytest.mark.parametrize(("hub", "row", "calls"), CASES.values(), ids=CASES.keys())
async def test_each_outcome_is_one_row(hub, row, calls):
    time = FakeTime()
    fake = FakeHub(time, **hub)
    within = 0.05 if hub.get("forever") or hub.get("answer_after", 0) > 100 else 600
    got = await smoke_profile(fake, "s", within=within, clock=time.clock, sleep=time.sleep)
    assert got == row
    if calls is not None:
        assert fake.calls == calls


async def test_a_round_goes_on_after_a_failure_and_exits_1():
    time = FakeTime()

    class Mixed(FakeHub):
        async def start(self, profile):
            await super().start(profile)
            if profile == "gpu-1":
                raise Refusal("not offered")

    hub = Mixed(time, events=[{"ready": True}])
    rows = await smoke(
        hub, [("shared-1g", 60), ("gpu-1", 60), ("shared-2g", 60)], clock=time.clock, sleep=time.sleep
    )
    assert [(r.profile, r.result) for r in rows] == [
        ("shared-1g", "ready"),
        ("gpu-1", "refused"),
        ("shared-2g", "ready"),
    ]
    assert exit_code(rows) == 1
    assert exit_code([r for r in rows if r.ok]) == 0
    assert exit_code([]) == 1  # nothing smoked is not a pass


@pytest.mark.parametrize(
    ("event", "node"),
    [
        (SCHEDULED, "node-7"),
        (
            {"message": "Successfully assigned users/jupyter-a to sandbox-gpu-v100-node-0"},
            "sandbox-gpu-v100-node-0",
        ),
        ({"message": "Pulling the image", "details": ""}, None),
        ({}, None),
    ],
    ids=["details", "message", "other-event", "empty"],
)
def test_the_node_comes_from_the_schedulers_line(event, node):
    assert node_of(event) == node


HOSTILE = Row(
    "<script>alert(1)</script>", "failed", None, "n|ode\nx", 'Spawn failed: <img src=x onerror="1"> | \\'
)
ROWS = [Row("shared-1g", "ready", 12.34, "node-a"), HOSTILE]
ABOUT = {"hub": "http://hub/<x>", "kubernetes": "1.31"}


def test_json_keeps_every_value():
    body = json.loads(report.to_json(ROWS, ABOUT))
    assert body["ok"] is False and body["kubernetes"] == "1.31"
    assert body["rows"][0] == {
        "profile": "shared-1g",
        "result": "ready",
        "seconds_to_ready": 12.34,
        "node": "node-a",
        "message": "",
    }
    assert body["rows"][1]["profile"] == HOSTILE.profile


def test_html_escapes_everything():
    page = report.to_html(ROWS, ABOUT)
    assert "<script>" not in page and "<img" not in page and "<x>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'class="ready"' in page and 'class="bad"' in page and "12.3 s" in page
    assert "<title>Smoke: FAILED</title>" in page


def test_markdown_cells_cannot_break_the_table():
    table = [line for line in report.to_markdown(ROWS, ABOUT).splitlines() if line.startswith("|")]
    assert len(table) == 4  # header, rule, two rows: the newline in a node name did not add one
    assert all(line.count("|") - line.count("\\|") == 6 for line in table)
    assert "&lt;script&gt;" in table[3] and "<img" not in table[3]


@pytest.mark.parametrize(
    ("chosen", "expected"),
    [
        (["shared-2g"], [("shared-2g", 600.0)]),  # no start_timeout of its own: the default
        (["gpu-1", "shared-1g"], [("shared-1g", 600.0), ("gpu-1", 1200.0)]),  # catalog order
    ],
    ids=["one", "subset-in-catalog-order"],
)
def test_plan_takes_the_catalogs_timeouts(chosen, expected):
    assert plan([PROFILES], chosen) == expected


def test_plan_names_unknown_profiles():
    with pytest.raises(ValueError, match=r"no such profile in the catalog: 'gpu-9'"):
        plan([PROFILES], ["gpu-9", "shared-1g"])


def test_the_command_needs_a_readable_token_file(tmp_path, capsys):
    code = main(
        [
            "smoke",
            "--url",
            "http://127.0.0.1:9",
            "--token-file",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 1
    assert "cannot read the token file" in capsys.readouterr().err


def test_a_label_must_be_key_value(capsys):
    with pytest.raises(SystemExit) as usage:
        main(["smoke", "--url", "u", "--token-file", "t", "--label", "nolabel"])
    assert usage.value.code == 2
    assert "--label wants KEY=VALUE, not 'nolabel'" in capsys.readouterr().err


# -- the REST client against a stand-in hub (aiohttp on a local port) -------------------------


@pytest.fixture
async def stand_in():
    """A hub answering as the test sets `answers` ({(method, path): (status, body)}); records requests."""
    from aiohttp import web

    answers: dict = {}
    seen: list = []

    async def handle(request):
        seen.append((request.method, request.path, request.headers.get("Authorization")))
        status, body = answers.get((request.method, request.path), (404, '{"message": "no"}'))
        return web.Response(
            status=status, text=body, headers={"Location": "/hub/login"} if status == 302 else {}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", answers, seen
    await runner.cleanup()


API = "/hub/api/users/cern-smoke"
RUNNING = json.dumps({"servers": {"": {"url": "/user/cern-smoke/", "ready": True}}})


@pytest.mark.parametrize(
    ("status", "answered"),
    [(200, True), (302, False), (403, False)],
    ids=["ok", "redirect-to-login", "forbidden"],
)
async def test_only_the_servers_own_200_is_an_answer(stand_in, status, answered):
    import aiohttp

    from cern_spawner.smoke.hub import RestHub

    url, answers, seen = stand_in
    answers[("GET", API)] = (200, RUNNING)
    answers[("GET", "/user/cern-smoke/api/status")] = (status, "{}")
    async with aiohttp.ClientSession() as session:
        assert await RestHub(session, url, "t0k", "cern-smoke").answers() is answered
    assert all(auth == "token t0k" for _, _, auth in seen)


@pytest.mark.parametrize(
    ("status", "raises"),
    [(201, None), (202, None), (403, "Refusal"), (500, "HubUnreachable")],
    ids=["created", "pending", "refused", "hub-error"],
)
async def test_a_start_is_refused_on_4xx_only(stand_in, status, raises):
    import aiohttp

    from cern_spawner.smoke.hub import HubUnreachable, RestHub

    url, answers, _ = stand_in
    answers[("POST", f"{API}/server")] = (
        status,
        '{"message": "The profile \'gpu-1\' is not offered to you."}',
    )
    errors = {"Refusal": Refusal, "HubUnreachable": HubUnreachable}
    async with aiohttp.ClientSession() as session:
        hub = RestHub(session, url, "t0k", "cern-smoke")
        if raises is None:
            await hub.start("gpu-1")
        else:
            with pytest.raises(errors[raises], match="not offered"):
                await hub.start("gpu-1")


async def test_a_spawn_gone_before_its_progress_is_read_is_a_failure(stand_in):
    import aiohttp

    from cern_spawner.smoke.hub import RestHub

    url, answers, _ = stand_in
    answers[("GET", f"{API}/server/progress")] = (400, '{"message": "cern-smoke\'s server is not running"}')
    async with aiohttp.ClientSession() as session:
        events = [e async for e in RestHub(session, url, "t", "cern-smoke").progress()]
    assert events == [
        {"failed": True, "message": "the spawn ended early: cern-smoke's server is not running"}
    ]


async def test_progress_events_are_read_from_the_event_stream(stand_in):
    import aiohttp

    from cern_spawner.smoke.hub import RestHub

    url, answers, _ = stand_in
    stream = (
        'data: {"progress": 30, "details": "x"}\n\n: keepalive\n\ndata: not json\n\ndata: {"ready": true}\n\n'
    )
    answers[("GET", f"{API}/server/progress")] = (200, stream)
    async with aiohttp.ClientSession() as session:
        events = [e async for e in RestHub(session, url, "t", "cern-smoke").progress()]
    assert events == [{"progress": 30, "details": "x"}, {"ready": True}]


@pytest.mark.parametrize(
    ("status", "body", "node"),
    [
        (
            200,
            {"servers": {"": {"node": "sandbox-cpu-node-0", "pod": "jupyter-cern-2dsmoke"}}},
            "sandbox-cpu-node-0",
        ),
        (200, {"servers": {"": {"node": None, "pod": None}}}, None),
        (200, {"servers": {}}, None),
        (404, {"message": "Not found"}, None),
    ],
    ids=["running", "unscheduled", "no-server", "older-hub"],
)
async def test_the_node_is_asked_of_the_hub(stand_in, status, body, node):
    import aiohttp

    from cern_spawner.smoke.hub import RestHub

    url, answers, _ = stand_in
    answers[("GET", "/hub/api/cern/servers/cern-smoke")] = (status, json.dumps(body))
    async with aiohttp.ClientSession() as session:
        assert await RestHub(session, url, "t", "cern-smoke").node() == node


@pytest.mark.parametrize(
    ("roles", "configured", "fixed"),
    [
        ((), {}, None),
        (("gpu-users",), {}, {"cern-smoke": ["gpu-users"]}),
        (
            ("gpu-users",),
            {"alice": ["x"], "cern-smoke": ["a100"]},
            {"alice": ["x"], "cern-smoke": ["a100", "gpu-users"]},
        ),
    ],
    ids=["no-roles", "gpu-role", "kept-beside-the-configs-own"],
)
def test_the_smoke_service_is_registered_with_least_scopes_and_its_roles(roles, configured, fixed):
    from traitlets.config import Config

    from cern_spawner.smoke.service import register_smoke_service

    c = Config()
    if configured:
        c.CERNSpawner.fixed_roles = configured
    register_smoke_service(c, "t0k", "cern-smoke", roles)
    assert c.JupyterHub.services == [{"name": "cern-smoke", "api_token": "t0k"}]
    [service_role, user_role] = c.JupyterHub.load_roles
    assert service_role["services"] == ["cern-smoke"]
    assert all(scope.endswith("!user=cern-smoke") for scope in service_role["scopes"])
    assert user_role == {"name": "cern-smoke-user", "scopes": [], "users": ["cern-smoke"]}
    assert (c.CERNSpawner.fixed_roles if "fixed_roles" in c.CERNSpawner else None) == fixed
