"""A spawn's deadline, the group it waits on, its progress story and its cancellation, without a cluster."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubespawner import KubeSpawner

from cern_spawner import CERNSpawner
from cern_spawner.scaling.state import GroupStatus
from cern_spawner.web.failures import ClusterTimedOut, SpawnFailed, StartTimedOut, own_deadline
from cern_spawner.web.progress_stream import SpawnPlan, SpawnStory, merged_progress
from tests.unit.test_spawner_pod import make_spawner

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="function")]

HUB_TIMEOUT = 300
REPO = "https://gitlab.cern.ch/physics/analysis"
GPU_DEFAULT = """
node_groups:
  default-worker: {}
  gpu-v100:
    gpu: {resource: nvidia.com/gpu, per_node: 4, product: Tesla-V100}
    scaling: {backend: magnum, cluster: sandbox, mode: resize, min_nodes: 0, max_nodes: 4}
profiles:
  - slug: gpu-1
    display_name: "Dedicated 1 GPU"
    kind: dedicated
    cpu: 1
    memory: 1G
    gpus: 1
    node_group: gpu-v100
    allowed_roles: [gpu-users]
    start_timeout: 1200
    default: true
  - slug: shared-1g
    display_name: "Shared, 1 GB"
    kind: shared
    cpu: {guarantee: 0.1, limit: 0.5}
    memory: {guarantee: 512M, limit: 1G}
    node_group: default-worker
    start_timeout: 120
"""


@pytest.fixture(autouse=True)
def no_kube_config(monkeypatch):
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)


def spawner_for(roles=(), profiles=None, **config) -> CERNSpawner:
    config.setdefault("start_timeout", HUB_TIMEOUT)
    spawner = make_spawner(roles=roles, **config)
    if profiles is not None:
        spawner.profiles_path = [str(profiles)]
    return spawner


@pytest.fixture
def gpu_default(tmp_path) -> Path:
    (tmp_path / "profiles.yaml").write_text(GPU_DEFAULT)
    return tmp_path


@pytest.mark.parametrize(
    ("path", "roles", "options", "seconds", "group"),
    [
        ("rest", ["gpu-users"], {"profile": "gpu-1"}, 1200, "gpu-v100"),
        ("form", ["gpu-users"], {"profile": ["gpu-1"]}, 1200, "gpu-v100"),
        ("rest", ["gpu-users"], {"profile": "shared-2g"}, HUB_TIMEOUT, None),
        ("rest", [], {}, HUB_TIMEOUT, None),  # the seed's default, shared-2g, has no timeout of its own
    ],
    ids=["rest-gpu", "form-gpu", "rest-shared", "no-profile-seed-default"],
)
async def test_the_profiles_timeout_is_set_before_start(path, roles, options, seconds, group):
    spawner = spawner_for(roles)
    if path == "form":
        options = spawner.options_from_form(options)
    # As JupyterHub's User.spawn: the hook runs, then start() is called and start_timeout read.
    await spawner._run_apply_user_options(options)
    assert spawner.start_timeout == seconds
    assert spawner.spawn_state.plan.group == group


@pytest.mark.parametrize(
    ("roles", "slug", "seconds", "group"),
    [
        (["gpu-users"], "gpu-1", 1200, "gpu-v100"),
        # No GPU role: KubeSpawner starts the first offered profile, a CPU pod; nothing to wait on.
        ([], "shared-1g", 120, None),
    ],
    ids=["gpu-user-gets-the-gpu-default", "cpu-user-gets-the-first-offered"],
)
async def test_no_profile_given_is_the_offered_default(gpu_default, roles, slug, seconds, group):
    spawner = spawner_for(roles, gpu_default)
    await spawner._run_apply_user_options({})
    plan = spawner.spawn_state.plan
    assert (plan.slug, plan.group, spawner.start_timeout) == (slug, group, seconds)
    spawner.user_options = {}
    await spawner.load_user_options()
    assert bool(spawner.extra_resource_limits) == bool(group)  # what KubeSpawner really applied


async def test_a_repository_launch_adds_its_build_time_to_the_profiles_timeout():
    spawner = spawner_for(["gpu-users"])
    build = spawner.binder_config.resolve_timeout + spawner.binder_config.build_timeout
    spawner.binder_config.registry = "registry.cern.ch"
    spawner.binder_config.allowed_hosts = ["gitlab.cern.ch"]
    await spawner._run_apply_user_options({"profile": "gpu-1", "binder_repo": REPO, "binder_ref": "main"})
    assert spawner.start_timeout == int(1200 + build)
    await spawner._run_apply_user_options({"profile": "gpu-1"})
    assert spawner.start_timeout == 1200


# -- start: its own deadline, cancellation ---------------------------------------------------


class FakeController:
    """The scaling controller as a spawn reads it; statuses set by the test."""

    def __init__(self, **status):
        self.now = 1000.0
        self.boot: float | None = None
        self.arrivals: list[str] = []  # starts under way, as `arriving` counts them
        self.group = GroupStatus(capacity=SimpleNamespace(free_gpus=0), events=["Node x joined gpu-v100"])
        self.group.__dict__.update(status)

    def clock(self) -> float:
        return self.now

    def status(self, group):
        return self.group

    def expected_boot_seconds(self, group):
        return self.boot

    @contextlib.contextmanager
    def arriving(self, group, pod_key):
        self.arrivals.append(pod_key)
        try:
            yield
        finally:
            self.arrivals.remove(pod_key)


@pytest.fixture
def waiting_forever(monkeypatch):
    """KubeSpawner's start never finishes (no GPU); records its task for the test."""
    started = []

    def start(self):
        async def wait():
            await asyncio.sleep(3600)

        started.append(asyncio.ensure_future(wait()))
        return started[-1]

    monkeypatch.setattr(KubeSpawner, "start", start)
    controller = FakeController()
    monkeypatch.setattr("cern_spawner.spawner.shared_controller", lambda spawner, log: controller)
    return started


def unscheduled_pod(spawner, monkeypatch):
    key = f"{spawner.namespace}/{spawner.pod_name}"
    reflector = SimpleNamespace(pods={key: {"spec": {}}})
    monkeypatch.setattr(CERNSpawner, "pod_reflector", property(lambda self: reflector))


async def test_a_short_start_timeout_fails_with_its_own_words(gpu_default, waiting_forever, monkeypatch):
    spawner = spawner_for(["gpu-users"], gpu_default)
    await spawner._run_apply_user_options({"profile": "gpu-1"})
    spawner.start_timeout = 2
    unscheduled_pod(spawner, monkeypatch)
    with pytest.raises(StartTimedOut) as failed:
        # JupyterHub's own deadline around it: ours ends first, with the reason.
        await asyncio.wait_for(spawner.start(), spawner.start_timeout)
    assert failed.value.jupyterhub_message == (
        "No GPU became free within the profile's start timeout (2 s); "
        "try again later or pick a shared profile."
    )
    assert waiting_forever[0].cancelled()


async def test_cancel_while_waiting_for_a_gpu_stops_kubespawners_start(waiting_forever):
    spawner = spawner_for(["gpu-users"])
    await spawner._run_apply_user_options({"profile": "gpu-1"})
    spawn = asyncio.ensure_future(spawner.start())
    await asyncio.sleep(0.2)
    assert waiting_forever and not waiting_forever[0].done()
    spawn.cancel()  # what JupyterHub's DELETE of a pending server does, before calling stop()
    with pytest.raises(asyncio.CancelledError):
        await spawn
    await asyncio.sleep(0)
    assert waiting_forever[0].cancelled()  # nothing keeps waiting, nothing will create a pod


async def test_a_gpu_start_counts_in_its_groups_burst_from_its_first_moment_until_it_ends(
    waiting_forever, monkeypatch
):
    controller = FakeController()
    monkeypatch.setattr("cern_spawner.spawner.shared_controller", lambda spawner, log: controller)
    spawner = spawner_for(["gpu-users"])
    await spawner._run_apply_user_options({"profile": "gpu-1"})
    spawn = asyncio.ensure_future(spawner.start())
    await asyncio.sleep(0.2)
    assert controller.arrivals == [f"{spawner.namespace}/{spawner.pod_name}"]
    spawn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await spawn
    assert controller.arrivals == []  # a growth held for its pod no longer waits


def pod_deadline(spawner) -> TimeoutError:
    """KubeSpawner's wait for the pod to run, ending (its start_timeout, from the pod's creation)."""
    return TimeoutError(
        f"pod {spawner.namespace}/{spawner.pod_name} did not start in {spawner.start_timeout} seconds!"
    )


@pytest.mark.parametrize(
    ("raised", "failure", "words"),
    [
        (pod_deadline, StartTimedOut, "Your server did not start within the profile's start timeout (5 min)"),
        (
            lambda s: TimeoutError(f"Could not create pod {s.namespace}/jupyter-mock-name"),
            ClusterTimedOut,
            "Could not create pod default/jupyter-mock-name: the cluster did not answer in time",
        ),
        (
            lambda s: TimeoutError("Could not create PVC claim-bob"),
            ClusterTimedOut,
            "Could not create PVC claim-bob: the cluster did not answer in time",
        ),
        (
            lambda s: TimeoutError("pod default/jupyter-alice did not start in 300 seconds!"),
            ClusterTimedOut,
            "jupyter-alice",
        ),
    ],
    ids=[
        "kubespawners-wait-for-the-pod",
        "could-not-create-pod",
        "could-not-create-pvc",
        "another-pods-words",
    ],
)
async def test_only_the_start_deadline_reads_as_the_profiles_timeout(monkeypatch, raised, failure, words):
    """KubeSpawner's request retries time out too: their words are kept, not called the profile's timeout."""
    spawner = spawner_for([])
    await spawner._run_apply_user_options({})

    async def start(self):
        raise raised(self)

    monkeypatch.setattr(KubeSpawner, "start", start)
    monkeypatch.setattr("cern_spawner.spawner.shared_controller", lambda spawner, log: FakeController())
    with pytest.raises(SpawnFailed) as failed:
        await spawner.start()
    assert type(failed.value) is failure
    assert words in failed.value.jupyterhub_message


@pytest.mark.parametrize("seconds", [10, 300, 1200])
async def test_own_deadline_is_a_little_before_jupyterhubs(seconds):
    assert seconds - 5 <= own_deadline(seconds) < seconds


# -- the progress story ----------------------------------------------------------------------

PLAN = SpawnPlan("a100-1", "Dedicated 1 A100 GPU", 1, 300, "gpu-a100")


def kube_event(reason, message, kind="Normal"):
    return {
        "progress": 30,
        "message": f"t [{kind}] {message}",
        "raw_event": {"reason": reason, "type": kind, "message": message},
    }


async def test_the_story_of_a_grown_node_in_plain_words():
    controller = FakeController()
    controller.boot = 600.0
    story = SpawnStory(PLAN, controller)
    kube: asyncio.Queue = asyncio.Queue()
    done = asyncio.Event()

    async def kube_events():
        while not (done.is_set() and kube.empty()):
            try:
                yield await asyncio.wait_for(kube.get(), 0.05)
            except TimeoutError:
                pass

    events: list[dict] = []

    async def read():
        async for event in merged_progress(story, kube_events(), lambda: True, interval=0.01):
            events.append(event)

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(0.05)
    await kube.put(
        kube_event(
            "FailedScheduling",
            "0/5 nodes are available: 4 node(s) didn't match Pod's node affinity/selector.",
            "Warning",
        )
    )
    status = controller.group
    status.requested, status.requested_at = (0, 1), controller.now
    controller.now += 120
    await asyncio.sleep(0.05)
    # The node joins and the pod is scheduled between two looks: "joined" is still told.
    status.joined = {"sandbox-gpu-a100-node-0": controller.now}
    await kube.put(kube_event("Scheduled", "Successfully assigned u/jupyter-x to sandbox-gpu-a100-node-0"))
    await kube.put(kube_event("Pulling", "Pulling image x"))
    await kube.put(kube_event("Started", "Started container notebook"))
    await asyncio.sleep(0.05)
    done.set()
    await asyncio.wait_for(reader, 2)

    messages = [e["message"] for e in events]
    assert messages[0] == "No GPU is free for “Dedicated 1 A100 GPU”: asking the cloud for a new GPU node"
    assert "A new GPU node is starting — 2 min so far, usually about 10 min" in messages
    order = [
        "The node joined; its GPU is being prepared",
        "Pulling the image",
        "The container started; starting the notebook",
        "Starting the notebook",
    ]
    # Said in order; a phase is said again only with new details from the cluster.
    assert list(dict.fromkeys(m for m in messages if m in order)) == order, messages
    assert not [m for m in messages if "gpu-a100" in m or "nodes are available" in m], messages
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 90
    # The scheduler's text is kept, behind the details.
    assert any("nodes are available" in e.get("details", "") for e in events)
    assert all("<details>" in e["html_message"] for e in events if e.get("details"))


@pytest.mark.parametrize(
    ("joined", "first_messages"),
    [
        (False, ["No GPU is free", "A new GPU node is starting"]),
        (True, ["No GPU is free", "A new GPU node is starting", "The node joined"]),
    ],
    ids=["asked-before-the-first-look", "joined-before-the-first-look"],
)
async def test_a_story_first_read_after_the_cloud_was_asked_still_says_why(joined, first_messages):
    controller = FakeController()
    status = controller.group
    status.requested, status.requested_at = (0, 1), controller.now - 5
    if joined:
        status.joined = {"sandbox-gpu-a100-node-0": controller.now - 1}
    story = SpawnStory(PLAN, controller)
    messages = [e["message"] for e in story.events()]
    assert len(messages) == len(first_messages), messages
    assert all(m.startswith(start) for m, start in zip(messages, first_messages, strict=True)), messages
    assert story.events() == []  # said once


@pytest.fixture
async def notebook(monkeypatch):
    """KubeSpawner's start returns the pod's URL at once; the notebook there records each request."""
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets
    from tornado.web import Application, RequestHandler

    requests = []

    class Lab(RequestHandler):
        def get(self, _path):
            requests.append(self.request.path)
            self.write("lab")

    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server = HTTPServer(Application([(r"/(.*)", Lab)]))
    server.add_sockets(sockets)

    async def start(self):
        return f"http://127.0.0.1:{port}"

    monkeypatch.setattr(KubeSpawner, "start", start)
    monkeypatch.setattr("cern_spawner.spawner.shared_controller", lambda spawner, log: FakeController())
    yield SimpleNamespace(requests=requests)
    server.stop()


def with_server(spawner: CERNSpawner) -> CERNSpawner:
    spawner.server = SimpleNamespace(base_url="/user/bob/")  # what JupyterHub's User gives a spawner
    return spawner


@pytest.mark.parametrize(
    ("configured", "start_timeout", "expected"),
    [(30, HUB_TIMEOUT, (HUB_TIMEOUT - 20, HUB_TIMEOUT)), (600, HUB_TIMEOUT, (600, 600))],
    ids=["the-starts-remaining-time", "a-longer-configured-timeout-kept"],
)
async def test_the_notebooks_check_gets_the_starts_remaining_time(
    notebook, configured, start_timeout, expected
):
    """JupyterHub checks the notebook after start() for http_timeout only; its first start on a
    node that just booted is part of the start. One check (JupyterHub's), given the time left."""
    spawner = with_server(spawner_for([], start_timeout=start_timeout, http_timeout=configured))
    await spawner._run_apply_user_options({})
    url = await asyncio.wait_for(spawner.start(), 10)
    assert url.startswith("http://127.0.0.1:")
    assert expected[0] <= spawner.http_timeout <= expected[1]
    assert notebook.requests == []  # no check of ours: JupyterHub's is the one
    await spawner._run_apply_user_options({})  # the next start begins from the configured value
    assert spawner.http_timeout == configured
