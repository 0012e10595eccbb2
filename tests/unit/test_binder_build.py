"""Build pods: the manifest, log cleaning, and run_build against an in-process stand-in of the API.

The stand-in keeps pods by name, moves each through a scripted list of phases (one step per read),
answers 404/409 as the API server does, and records every call, so tests assert what was created,
joined and deleted. The real API server is used in tests/integration/test_binder_build.py.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.client import ApiException
from traitlets.config import Config

from cern_spawner.binder.admission import IMAGE_LABEL, Seen, Slot, choose_slot, image_key, slot_pod_name
from cern_spawner.binder.build import (
    COMPONENT_LABEL,
    GONE,
    USER_LABEL,
    build_pod_manifest,
    builder_argv,
    cleanup_finished_builds,
    run_build,
    user_label,
)
from cern_spawner.binder.buildlogs import MAX_LINE, clean_line, log_lines
from cern_spawner.binder.config import RESTRICTED_CONTEXT, BinderConfig
from cern_spawner.binder.errors import BinderRefused, BuildError, BuildFailed

pytestmark = pytest.mark.unit

IMAGE = "registry.example.org/binder-org-repo-abc123:" + "c" * 40
UTC = datetime.UTC
NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_config(**traits) -> BinderConfig:
    return BinderConfig(config=Config({"BinderConfig": {"registry": "registry.example.org", **traits}}))


def manifest(config=None, user="jane", image=IMAGE, slot=0) -> dict:
    return build_pod_manifest(
        config or make_config(),
        repo_url="https://github.com/org/repo",
        ref="main",
        commit="c" * 40,
        image=image,
        user=user,
        namespace="ns",
        name=slot_pod_name(user, slot),
    )


JANE = slot_pod_name("jane", 0)


# --- pure parts ----------------------------------------------------------------------------------

SOCKET = {
    "engine_socket": "/var/run/docker.sock",
    "build_namespace": "builds",
    "build_node_selector": {"pool": "builds"},
    "build_tolerations": [{"key": "builds", "operator": "Exists"}],
}


def test_pod_name_is_deterministic_per_user_slot_and_dns_safe():
    name = slot_pod_name("jane", 0)
    assert name == slot_pod_name("jane", 0)
    assert name != slot_pod_name("jane", 1) and name != slot_pod_name("bob", 0)
    assert slot_pod_name("Jane.Doe@cern.ch", 12).startswith("binder-build-")
    assert name.startswith("binder-build-") and len(slot_pod_name("x" * 300, 99)) <= 63
    assert name.replace("-", "").isalnum() and name == name.lower()


@pytest.mark.parametrize(
    ("user", "expected"),
    [("jane", "jane"), ("j0", "j0"), ("jane.doe", "jane-2edoe"), ("Ann", None), ("x" * 70, None)],
    ids=["plain", "digits", "dot-escaped", "upper-hashed", "long-hashed"],
)
def test_user_label(user, expected):
    label = user_label(user)
    if expected:
        assert label == expected
    assert len(label) <= 63 and label[0].isalnum() and label[-1].isalnum()
    assert label == user_label(user)
    assert label != user_label(user + "x")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["b", "{image}"], ["b", IMAGE]),
        (["b", "--ref={commit}", "{repo_url}#{ref}"], ["b", "--ref=" + "c" * 40, "https://r/x#{image}"]),
        (["python", "-c", "print({'a': 1})", "{image}"], ["python", "-c", "print({'a': 1})", IMAGE]),
        (["b", "{other}", "{image}"], ["b", "{other}", IMAGE]),
    ],
    ids=["image", "no-double-substitution", "code-braces-kept", "unknown-kept"],
)
def test_builder_argv(command, expected):
    values = {"repo_url": "https://r/x", "ref": "{image}", "commit": "c" * 40, "image": IMAGE}
    assert builder_argv(command, **values) == expected


@pytest.mark.parametrize(
    ("traits", "check"),
    [
        (SOCKET, "socket"),
        ({}, "restricted"),
        ({**SOCKET, "engine_socket": "/run/podman/podman.sock"}, "podman"),
        ({"buildkit_address": "tcp://buildkitd:1234", "engine_socket": ""}, "buildkit"),
        ({"push_secret": "push-creds"}, "push"),
        ({"build_node_selector": {"pool": "cpu"}, "build_tolerations": [{"key": "k"}]}, "placement"),
        ({"build_timeout": 90.5}, "deadline"),
        ({"builder_env": {"R2D_X": "1"}}, "env"),
    ],
    ids=["socket", "restricted", "podman", "buildkit", "push", "placement", "deadline", "env"],
)
def test_manifest(traits, check):
    pod = manifest(make_config(**traits), user="jane.doe")
    spec, meta = pod["spec"], pod["metadata"]
    container = spec["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    # Always: the slot's name, labels, no service account token, no shell, never restarted.
    assert meta["name"] == slot_pod_name("jane.doe", 0)
    assert meta["labels"][IMAGE_LABEL] == image_key(IMAGE)
    assert meta["labels"][COMPONENT_LABEL] == "binder-build"
    assert meta["labels"][USER_LABEL] == user_label("jane.doe")
    assert meta["annotations"]["cern-spawner.cern.ch/image"] == IMAGE
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    assert container["command"][0] == "repo2docker" and IMAGE in container["command"]
    assert not any("TOKEN" in name for name in env)
    if check == "socket":
        assert volumes["engine"]["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
        assert mounts["engine"]["mountPath"] == "/var/run/docker.sock"
        assert env["DOCKER_HOST"] == "unix:///var/run/docker.sock"
        assert container["securityContext"]["runAsUser"] == 0
    elif check == "restricted":
        assert volumes == {} and "DOCKER_HOST" not in env
        assert container["securityContext"] == RESTRICTED_CONTEXT
    elif check == "podman":
        assert volumes["engine"]["hostPath"]["path"] == "/run/podman/podman.sock"
        assert env["DOCKER_HOST"] == "unix:///run/podman/podman.sock"
    elif check == "buildkit":
        assert env["BUILDKIT_HOST"] == "tcp://buildkitd:1234"
    elif check == "push":
        assert volumes["push-config"]["secret"]["secretName"] == "push-creds"
        assert mounts["push-config"]["readOnly"] is True
        assert env["DOCKER_CONFIG"] == mounts["push-config"]["mountPath"]
    elif check == "placement":
        assert spec["nodeSelector"] == {"pool": "cpu"} and spec["tolerations"] == [{"key": "k"}]
    if check != "placement" and "build_node_selector" not in traits:
        assert spec["nodeSelector"] == {} and spec["tolerations"] == []
    elif check == "deadline":
        assert spec["activeDeadlineSeconds"] == 91
    elif check == "env":
        assert env["R2D_X"] == "1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain\n", "plain"),
        ("\x1b[32mgreen\x1b[0m text", "green text"),
        ("10%\r50%\r100%\r\n", "100%"),
        ("bell\x07 and tab\tkept", "bell and tab\tkept"),
        ("x" * (MAX_LINE + 10), "x" * (MAX_LINE - 1) + "…"),
    ],
    ids=["newline", "ansi", "carriage-returns", "control", "long"],
)
def test_clean_line(raw, expected):
    assert clean_line(raw) == expected


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ((b"one\ntw", b"o\nthree"), ["one", "two", "three"]),
        ((b"caf\xc3", b"\xa9\n"), ["café"]),
        ((b"a" * 50, b"a" * 50, b"b\nnext\n"), ["a" * 40, "next"]),
    ],
    ids=["split-lines", "split-utf8", "endless-line-cut"],
)
async def test_log_lines(parts, expected):
    assert [line async for line in log_lines(_chunks(*parts), limit=40)] == expected


# --- run_build against a stand-in API ------------------------------------------------------------


def pod_object(body: dict, uid: str, phase: str, *, exit_code=None, reason=None, condition=None, created=NOW):
    terminated = None
    if phase in ("Succeeded", "Failed") and exit_code is not None:
        terminated = SimpleNamespace(exit_code=exit_code, reason=reason, finished_at=created)
    statuses = [SimpleNamespace(state=SimpleNamespace(terminated=terminated, waiting=None))]
    meta = body["metadata"]
    return SimpleNamespace(
        metadata=SimpleNamespace(
            name=meta["name"],
            uid=uid,
            labels=meta.get("labels", {}),
            deletion_timestamp=None,
            creation_timestamp=created,
        ),
        status=SimpleNamespace(
            phase=phase,
            conditions=[condition] if condition else [],
            container_statuses=statuses,
            reason=None if phase != "Failed" or exit_code is not None else reason,
            message=None,
        ),
    )


class LogResponse:
    def __init__(self, status: int, lines: list[str], fail: Exception | None = None):
        self.status, self.lines, self.fail, self.closed = status, lines, fail, False
        self.content = SimpleNamespace(iter_any=self._iter)

    async def _iter(self):
        for line in self.lines:
            yield (line + "\n").encode()
            await asyncio.sleep(0)
        if self.fail:
            raise self.fail

    async def text(self):
        return "not found"

    def close(self):
        self.closed = True


class FakeCore:
    """Pods by name; each read moves a pod one step along its script of phases."""

    def __init__(self, *, phases=("Pending", "Running", "Succeeded"), exit_code=0, log=("one", "two")):
        self.pods: dict[str, SimpleNamespace] = {}
        self.scripts: dict[str, list] = {}
        self.phases, self.exit_code, self.log = list(phases), exit_code, list(log)
        self.calls: list[tuple] = []
        self.uids = (f"uid-{n}" for n in itertools.count())
        self.log_status, self.log_fail, self.create_conflict = 200, None, False
        self.responses: list[LogResponse] = []

    def add(self, body, phases, **kw):
        pod = pod_object(body, next(self.uids), phases[0], **kw)
        self.pods[body["metadata"]["name"]] = pod
        self.scripts[body["metadata"]["name"]] = list(phases[1:])
        return pod

    async def read_namespaced_pod(self, name, namespace):
        self.calls.append(("read", name))
        pod = self.pods.get(name)
        if pod is None:
            raise ApiException(status=404, reason="Not Found")
        script = self.scripts[name]
        if script:
            step = script.pop(0)
            if step == "vanish":
                del self.pods[name]
                raise ApiException(status=404, reason="Not Found")
            pod.status.phase = step
            if step in ("Succeeded", "Failed"):
                pod.status.container_statuses[0].state.terminated = SimpleNamespace(
                    exit_code=self.exit_code, reason="Completed" if step == "Succeeded" else "Error"
                )
        return pod

    async def create_namespaced_pod(self, namespace, body):
        self.calls.append(("create", body["metadata"]["name"]))
        name = body["metadata"]["name"]
        if self.create_conflict:  # another hub process created it between our read and create
            self.create_conflict = False
            self.add(body, ["Running", *self.phases[2:]])
            raise ApiException(status=409, reason="AlreadyExists")
        if name in self.pods:
            raise ApiException(status=409, reason="AlreadyExists")
        return self.add(body, self.phases)

    async def delete_namespaced_pod(self, name, namespace, body=None):
        self.calls.append(("delete", name))
        pod = self.pods.get(name)
        if pod is None:
            raise ApiException(status=404, reason="Not Found")
        if body and body["preconditions"]["uid"] != pod.metadata.uid:
            raise ApiException(status=409, reason="Conflict")
        del self.pods[name]

    async def list_namespaced_pod(self, namespace, label_selector):
        self.calls.append(("list", label_selector))
        wanted = dict(part.split("=") for part in label_selector.split(","))
        items = [p for p in self.pods.values() if wanted.items() <= p.metadata.labels.items()]
        return SimpleNamespace(items=items)

    async def read_namespaced_pod_log(self, name, namespace, container=None, **kw):
        self.calls.append(("log", name, kw.get("follow", False)))
        if kw.get("follow"):
            response = LogResponse(self.log_status, self.log, self.log_fail)
            self.responses.append(response)
            return response
        return "".join(line + "\n" for line in self.log[-kw["tail_lines"] :])

    def count(self, verb):
        return sum(1 for call in self.calls if call[0] == verb)


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.now += seconds
        await asyncio.sleep(0)


async def build(core, config=None, user="jane", image=IMAGE, report=None):
    messages = [] if report is None else report
    fake = FakeTime()
    await run_build(
        core,
        config or make_config(engine_socket=""),
        repo_url="https://github.com/org/repo",
        ref="main",
        commit="c" * 40,
        image=image,
        user=user,
        namespace="ns",
        report=messages.append,
        clock=fake.clock,
        sleep=fake.sleep,
        wall_clock=lambda: NOW,
    )
    return messages


async def test_build_creates_streams_in_order_and_deletes():
    core = FakeCore(log=("Step 1", "\x1b[1mStep 2\x1b[0m", "Pushing"))
    messages = await build(core)
    name = JANE
    assert messages == [
        f"Building the image (build pod {name})…",
        "Step 1",
        "Step 2",
        "Pushing",
        "The build finished.",
    ]
    assert core.count("create") == 1 and name not in core.pods
    assert ("delete", name) in core.calls
    assert core.responses[0].closed


@pytest.mark.parametrize("how", ["already-running", "created-meanwhile"], ids=["read", "conflict-409"])
async def test_joining_a_running_build_does_not_count_against_the_limit(how):
    core = FakeCore()
    if how == "already-running":
        core.add(manifest(user="bob"), ["Running", "Running", "Succeeded"])
    else:
        core.create_conflict = True
    # jane already has a build of another image running: only joining is possible for her.
    core.add(manifest(user="jane", image=IMAGE + "x"), ["Running"])
    messages = await build(core, user="jane" if how == "already-running" else "amy")
    assert "Joining the build already running for this commit…" in messages
    assert not any(m.startswith("Building the image") for m in messages)
    assert messages[-1] == "The build finished."
    assert not any(p.metadata.labels[IMAGE_LABEL] == image_key(IMAGE) for p in core.pods.values())


async def test_per_user_limit_refuses_a_second_build_with_429():
    core = FakeCore()
    core.add(manifest(user="jane", image=IMAGE + "x"), ["Running"])
    with pytest.raises(BinderRefused) as refused:
        await build(core, user="jane")
    assert refused.value.status == 429
    assert "You already have 1 image build running" in refused.value.message
    assert core.count("create") == 0
    await build(core, user="bob")  # another user's build is not limited by jane's
    assert core.count("create") == 1


async def test_failed_build_raises_with_tail_and_exit_code_and_deletes():
    lines = [f"line {n}" for n in range(50)]
    core = FakeCore(phases=("Pending", "Running", "Failed"), exit_code=3, log=lines)
    messages = []
    with pytest.raises(BuildFailed) as failed:
        await build(core, config=make_config(engine_socket="", log_tail_lines=5), report=messages)
    text = str(failed.value)
    assert "The image build failed (exit code 3, Error)" in text
    assert text.endswith("\n".join(lines[-5:]))
    assert "line 44" not in text
    assert failed.value.exit_code == 3 and failed.value.tail == tuple(lines[-5:])
    assert JANE not in core.pods
    assert messages[-1] == "line 49"  # streamed before the failure


async def test_pod_vanishing_before_the_end_returns_without_error():
    core = FakeCore(phases=("Pending", "Running", "vanish"))
    messages = await build(core)
    assert messages[-1] == GONE
    assert core.count("delete") == 0


@pytest.mark.parametrize(
    ("status", "fail", "shown"),
    [(404, None, "HTTP 404"), (200, ConnectionResetError("peer gone"), "ConnectionResetError")],
    ids=["endpoint-missing", "stream-broken"],
)
async def test_log_trouble_is_reported_not_fatal(status, fail, shown):
    core = FakeCore()
    core.log_status, core.log_fail = status, fail
    messages = await build(core)
    trouble = [m for m in messages if m.startswith("(build logs unavailable")]
    assert len(trouble) == 1 and shown in trouble[0]
    assert messages[-1] == "The build finished."


async def test_timeout_stops_the_build():
    core = FakeCore(phases=["Pending", "Running", *["Running"] * 1000])
    core.log = []
    with pytest.raises(BuildFailed, match="did not finish within 100 s"):
        await build(core, config=make_config(engine_socket="", build_timeout=100))
    assert JANE not in core.pods


def waiting_in(core, reason: str, message: str):
    """Make every pod the fake creates wait (container state) for `reason`."""
    original_add = core.add

    def add_waiting(body, phases, **kw):
        pod = original_add(body, phases, **kw)
        pod.status.container_statuses[0].state.waiting = SimpleNamespace(reason=reason, message=message)
        return pod

    core.add = add_waiting


@pytest.mark.parametrize(
    ("reason", "pending_reads"),
    [("InvalidImageName", 1), ("CreateContainerConfigError", 1), ("ImagePullBackOff", 400)],
    ids=["invalid-image-name", "config-error", "pull-back-off-past-patience"],
)
async def test_a_builder_that_cannot_start_ends_the_build_before_its_timeout(reason, pending_reads):
    core = FakeCore(phases=["Pending"] * (pending_reads + 1000))
    waiting_in(core, reason, 'pulling image "quay.io/nope:1"')
    messages = []
    with pytest.raises(BuildError, match="operators") as raised:
        await build(core, config=make_config(engine_socket="", build_timeout=3600), report=messages)
    assert reason in str(raised.value)
    assert JANE not in core.pods  # nothing left behind
    assert core.count("read") <= pending_reads + 5  # not waiting for the whole build_timeout


async def test_a_pull_failure_that_passes_does_not_end_the_build():
    core = FakeCore(phases=["Pending", "Pending", "Running", "Succeeded"])
    waiting_in(core, "ErrImagePull", "registry unavailable")
    messages = await build(core)
    assert messages[-1] == "The build finished."
    assert any("ErrImagePull" in m for m in messages)


async def test_scheduling_trouble_is_reported_once():
    core = FakeCore(phases=["Pending", "Pending", "Pending", "Running", "Succeeded"])
    original_add = core.add

    def add_unschedulable(body, phases, **kw):
        condition = SimpleNamespace(
            type="PodScheduled", status="False", reason="Unschedulable", message="0/3 nodes are available"
        )
        return original_add(body, phases, condition=condition, **kw)

    core.add = add_unschedulable
    messages = await build(core)
    assert messages.count("The build pod is waiting for a node: 0/3 nodes are available") == 1


@pytest.mark.parametrize("phase", ["Failed", "Succeeded"])
async def test_a_finished_pod_in_the_users_slot_is_replaced(phase):
    core = FakeCore()
    old = core.add(manifest(image=IMAGE + "old"), [phase], exit_code=1, reason="Error")
    messages = await build(core)
    assert ("delete", JANE) in core.calls and core.count("create") == 1
    assert messages[0] == f"Building the image (build pod {JANE})…" and messages[-1] == "The build finished."
    assert core.pods.get(JANE) is not old


async def test_cancelled_waiter_leaves_the_shared_pod_running():
    core = FakeCore(phases=["Pending", *["Running"] * 10000])
    core.log = []
    waiting = asyncio.Event()
    read = core.read_namespaced_pod

    async def read_and_signal(name, namespace):
        if core.count("read") >= 5:
            waiting.set()  # the build is running and being waited for
        return await read(name, namespace)

    core.read_namespaced_pod = read_and_signal
    task = asyncio.create_task(build(core))
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert JANE in core.pods and core.count("delete") == 0


async def test_cleanup_deletes_only_long_finished_builds():
    core = FakeCore()
    old = core.add(manifest(image=IMAGE + "a"), ["Succeeded"], exit_code=0, created=NOW.replace(hour=11))
    core.add(
        manifest(image=IMAGE + "b", slot=1), ["Failed"], exit_code=1, created=NOW.replace(minute=0, second=30)
    )
    core.add(manifest(image=IMAGE + "c", slot=2), ["Running"], created=NOW.replace(hour=10))
    deleted = await cleanup_finished_builds(core, "ns", older_than=300, now=NOW)
    assert deleted == [old.metadata.name]
    assert len(core.pods) == 2


async def test_failed_build_whose_log_cannot_be_read_says_why():
    core = FakeCore(phases=("Pending", "Running", "Failed"), exit_code=2, log=())
    core.log_status = 500
    read_log = core.read_namespaced_pod_log

    async def no_tail(name, namespace, container=None, **kw):
        if kw.get("follow"):
            return await read_log(name, namespace, container, **kw)
        raise ApiException(status=500, reason="Internal")

    core.read_namespaced_pod_log = no_tail
    with pytest.raises(BuildFailed) as failed:
        await build(core)
    assert (
        str(failed.value)
        == "The image build failed (exit code 2, Error); its log could not be read (HTTP 500)."
    )
    assert JANE not in core.pods


# --- admission: limits under the lock, names per user slot ---------------------------------------


@pytest.mark.parametrize(
    ("pods", "per_user", "total", "expected"),
    [
        ([], 1, 4, ("slot", 0, False)),
        ([("jane", 0, True)], 1, 4, ("refused", "You already have 1 image build running")),
        ([("jane", 0, True)], 2, 4, ("slot", 1, False)),
        ([("jane", 0, False)], 1, 4, ("slot", 0, True)),
        ([("jane", 0, False), ("jane", 1, True)], 2, 4, ("slot", 0, True)),
        ([("jane", 0, True), ("jane", 1, True)], 3, 4, ("slot", 2, False)),
        (
            [("bob", 0, True), ("amy", 0, True)],
            1,
            2,
            ("refused", "as many image builds as it allows at once (2)"),
        ),
        ([("bob", 0, True), ("amy", 0, False)], 1, 2, ("slot", 0, False)),
        ([("jane", 0, True, "bob")], 1, 4, ("refused", "You already have 1 image build running")),
    ],
    ids=[
        "nothing-running",
        "per-user-limit",
        "second-slot",
        "finished-pod-in-slot",
        "stale-slot-before-none",
        "third-slot",
        "global-cap",
        "finished-pods-do-not-count",
        "slot-taken-by-a-relabelled-pod",
    ],
)
def test_admission_decisions(pods, per_user, total, expected):
    seen = [
        Seen(slot_pod_name(owner, slot), live, (label[0] if label else owner) == "jane")
        for owner, slot, live, *label in pods
    ]
    decision = choose_slot("jane", per_user, seen, total)
    if expected[0] == "slot":
        assert decision == Slot(slot_pod_name("jane", expected[1]), stale=expected[2])
    else:
        assert isinstance(decision, BinderRefused) and decision.status == 429
        assert expected[1] in decision.message


class YieldingCore(FakeCore):
    """A list answers what was there, then gives other tasks their turn before the caller sees it,
    as a real API call does: a count-then-create race shows if there is one."""

    async def list_namespaced_pod(self, namespace, label_selector):
        listed = await super().list_namespaced_pod(namespace, label_selector)
        await asyncio.sleep(0)
        return listed


async def test_global_cap_holds_for_concurrent_launches():
    core = YieldingCore(phases=["Pending", "Running", *["Running"] * 50, "Succeeded"])
    config = make_config(engine_socket="", max_concurrent_builds=1)
    results = await asyncio.gather(
        build(core, config=config, user="jane", image=IMAGE + "a"),
        build(core, config=config, user="bob", image=IMAGE + "b"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, BinderRefused)]
    assert len(refused) == 1 and refused[0].status == 429
    assert "as many image builds as it allows at once (1)" in refused[0].message
    assert core.count("create") == 1


async def test_per_user_limit_holds_when_another_hub_takes_the_slot():
    """Another hub process creates jane's slot between our count and our create: the API server's
    409 on the name, then a recount, refuses this launch; nothing of ours is created."""
    core = FakeCore()
    create = core.create_namespaced_pod

    async def other_hub_first(namespace, body):
        if not core.pods:
            core.add(manifest(image=IMAGE + "other-hub"), ["Running"])
        return await create(namespace, body)

    core.create_namespaced_pod = other_hub_first
    with pytest.raises(BinderRefused) as refused:
        await build(core)
    assert refused.value.status == 429 and "You already have 1 image build running" in refused.value.message
    assert [p.metadata.labels[IMAGE_LABEL] for p in core.pods.values()] == [image_key(IMAGE + "other-hub")]
