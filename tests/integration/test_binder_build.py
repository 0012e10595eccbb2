"""Build pods on the sandbox: the real API server, scheduler, admission (PSA restricted) and node agent.

The builder is a stand-in run by the node agent as a process: it prints numbered lines and exits
0, or 3 when the image name holds "broken"; "slow" in the name makes it run long enough for the
per-user limit to be checked while it runs. Nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from traitlets.config import Config

from cern_spawner.binder import build as build_module
from cern_spawner.binder.admission import IMAGE_LABEL, image_key, slot_pod_name
from cern_spawner.binder.build import COMPONENT, COMPONENT_LABEL, GONE, run_build
from cern_spawner.binder.config import BinderConfig
from cern_spawner.binder.errors import BinderRefused, BuildFailed
from cern_spawner.binder.images import image_name
from cern_spawner.waiting import until

pytestmark = pytest.mark.integration

BUILDER = """
import sys, time
image = sys.argv[1]
count = 600 if "slow" in image else 6
for n in range(1, count + 1):
    print(f"build line {n}", flush=True)
    time.sleep(0.3)
sys.exit(3 if "broken" in image else 0)
"""
COMMIT = "ab" * 20
FINISHED = "The build finished."


@pytest.fixture
async def kube(sandbox):
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=sandbox["kubeconfig"], client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def binder():
    return BinderConfig(
        config=Config(
            {
                "BinderConfig": {
                    "registry": "127.0.0.1:5000",
                    "http_registries": ["127.0.0.1:5000"],
                    "builder_image": "sandbox",
                    "builder_command": ["python3", "-c", BUILDER, "{image}"],
                    "engine_socket": "",  # no engine in the sandbox: the restricted context applies
                    "build_resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                    "build_timeout": 300,
                    "log_tail_lines": 4,
                }
            }
        )
    )


def an_image(kind: str) -> tuple[str, str]:
    repo_url = f"https://git.example.org/tests/{kind}-{uuid.uuid4().hex[:8]}"
    return repo_url, image_name("127.0.0.1:5000", "binder-", repo_url, COMMIT)


async def build(kube, binder, namespace, repo_url, image, messages, user="alice"):
    await run_build(
        kube,
        binder,
        repo_url=repo_url,
        ref="main",
        commit=COMMIT,
        image=image,
        user=user,
        namespace=namespace,
        report=messages.append,
    )


async def pod_gone(kube, namespace, name):
    from kubernetes_asyncio.client import ApiException

    async def gone():
        try:
            await kube.read_namespaced_pod(name, namespace)
        except ApiException as e:
            return e.status == 404
        return False

    return await until(gone, within=60, what=f"pod {name} removed")


def build_lines(messages):
    return [m for m in messages if m.startswith("build line")]


async def test_build_succeeds_streams_lines_in_order_and_removes_its_pod(kube, binder, namespace):
    repo_url, image = an_image("ok")
    messages = []
    await build(kube, binder, namespace, repo_url, image, messages)
    name = slot_pod_name("alice", 0)
    assert messages[0] == f"Building the image (build pod {name})…"
    assert build_lines(messages) == [f"build line {n}" for n in range(1, 7)], messages
    assert messages[-1] == "The build finished."
    assert await pod_gone(kube, namespace, name)


async def test_concurrent_builds_of_one_image_share_one_pod(kube, binder, namespace):
    from kubernetes_asyncio import watch

    repo_url, image = an_image("shared")
    listed = await kube.list_namespaced_pod(namespace)
    created, deleted = set(), asyncio.Event()

    async def record():
        # Every pod the API server admits, from before the builds start.
        async with watch.Watch().stream(
            kube.list_namespaced_pod,
            namespace,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=240,
        ) as events:
            async for event in events:
                if event["type"] == "ADDED":
                    created.add(event["object"].metadata.uid)
                elif event["type"] == "DELETED" and event["object"].metadata.labels.get(IMAGE_LABEL) == key:
                    deleted.set()

    key = image_key(image)
    recorder = asyncio.create_task(record())
    first, second = [], []
    try:
        await asyncio.gather(
            build(kube, binder, namespace, repo_url, image, first, user="alice"),
            build(kube, binder, namespace, repo_url, image, second, user="bob"),
        )
        await asyncio.wait_for(deleted.wait(), 60)
    finally:
        recorder.cancel()
    assert len(created) == 1
    starts = sorted(m for m in (*first, *second) if m.startswith(("Building", "Joining")))
    assert starts in (
        [
            f"Building the image (build pod {slot_pod_name(user, 0)})…",
            "Joining the build already running for this commit…",
        ]
        for user in ("alice", "bob")
    ), starts
    # Whoever sees the end first removes the pod: the other may find it gone (then its caller asks
    # the registry), but both saw the whole log.
    ends = sorted(messages[-1] for messages in (first, second))
    assert ends in ([FINISHED, FINISHED], [FINISHED, GONE]), (first, second)
    for messages in (first, second):
        assert build_lines(messages) == [f"build line {n}" for n in range(1, 7)], messages


async def test_failed_build_shows_its_log_tail_and_removes_its_pod(kube, binder, namespace):
    repo_url, image = an_image("broken")
    with pytest.raises(BuildFailed) as failed:
        await build(kube, binder, namespace, repo_url, image, [])
    text = str(failed.value)
    assert "The image build failed (exit code 3" in text
    assert text.endswith("\n".join(f"build line {n}" for n in range(3, 7))), text
    assert failed.value.exit_code == 3
    assert await pod_gone(kube, namespace, slot_pod_name("alice", 0))


async def test_per_user_limit_refuses_a_second_build_while_the_first_runs(kube, binder, namespace):
    slow_repo, slow_image = an_image("slow")
    slow_name = slot_pod_name("alice", 0)
    slow = asyncio.create_task(build(kube, binder, namespace, slow_repo, slow_image, [], user="alice"))

    async def running():
        pods = await kube.list_namespaced_pod(namespace, label_selector=f"{COMPONENT_LABEL}={COMPONENT}")
        return any(p.metadata.name == slow_name and p.status.phase == "Running" for p in pods.items)

    try:
        await until(running, within=120, what="the slow build running")
        other_repo, other_image = an_image("other")
        with pytest.raises(BinderRefused) as refused:
            await build(kube, binder, namespace, other_repo, other_image, [], user="alice")
        assert refused.value.status == 429
        assert "You already have 1 image build running" in refused.value.message
        bobs = []
        await build(kube, binder, namespace, other_repo, other_image, bobs, user="bob")
        assert bobs[-1] == "The build finished."
    finally:
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
    # A cancelled waiter leaves the (possibly shared) build running.
    pod = await kube.read_namespaced_pod(slow_name, namespace)
    assert pod.metadata.deletion_timestamp is None
    await kube.delete_namespaced_pod(slow_name, namespace)
    assert await pod_gone(kube, namespace, slow_name)


class OtherHub:
    """A lock of its own for each launch: as if each came to a different hub process."""

    async def __aenter__(self):
        return None

    async def __aexit__(self, *exc):
        return None


@pytest.mark.parametrize(
    ("users", "limits", "words"),
    [
        (("alice", "alice"), {"per_user_build_limit": 1}, "You already have 1 image build running"),
        (("alice", "bob"), {"max_concurrent_builds": 1}, "as many image builds as it allows at once (1)"),
    ],
    ids=["per-user-across-hubs", "global-cap"],
)
async def test_concurrent_launches_cannot_exceed_a_limit(
    kube, binder, namespace, monkeypatch, users, limits, words
):
    """Two launches at once, each of another image: exactly one build pod is created and the other
    launch gets a 429. Across hubs (no shared lock), the API server's 409 on the user's slot name
    is what holds the per-user limit."""
    for trait, value in limits.items():
        setattr(binder, trait, value)
    if "per_user_build_limit" in limits:
        monkeypatch.setattr(build_module, "admission_lock", OtherHub)
    from kubernetes_asyncio import watch

    images = [an_image(f"race{n}") for n in range(2)]
    messages = [[], []]
    listed = await kube.list_namespaced_pod(namespace)
    created, deleted = set(), asyncio.Event()

    async def record():
        async with watch.Watch().stream(
            kube.list_namespaced_pod,
            namespace,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=240,
        ) as events:
            async for event in events:
                if event["type"] == "ADDED":
                    created.add(event["object"].metadata.uid)
                elif event["type"] == "DELETED":
                    deleted.set()

    recorder = asyncio.create_task(record())
    try:
        results = await asyncio.gather(
            *(
                build(kube, binder, namespace, repo_url, image, out, user=user)
                for (repo_url, image), out, user in zip(images, messages, users, strict=True)
            ),
            return_exceptions=True,
        )
        # The built pod's deletion comes after every creation: once the watch saw it, it saw them.
        await asyncio.wait_for(deleted.wait(), 60)
    finally:
        recorder.cancel()
    assert len(created) == 1
    refused = [r for r in results if isinstance(r, BinderRefused)]
    assert len(refused) == 1 and refused[0].status == 429, results
    assert words in refused[0].message
    built = next(m for r, m in zip(results, messages, strict=True) if r is None)
    assert built[-1] == FINISHED, built
    refused_messages = next(m for r, m in zip(results, messages, strict=True) if r is not None)
    assert not any(m.startswith("Building") for m in refused_messages)  # nothing created for it
