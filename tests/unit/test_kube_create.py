"""A create that times out after the API server made the object: adopted when ours, never deleted.

The fake API below is a server with a store: each create is written (or refused with 409) on the
"server side", and the answer can be lost after the write (slow, reset, 5xx), as under a burst.
"""

from __future__ import annotations

import asyncio
import copy
from functools import partial

import aiohttp
import pytest
from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client import V1ObjectMeta, V1Pod, V1PodSpec
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner

from cern_spawner.kube_create import (
    START_MARKER,
    Outcome,
    Ownership,
    create_or_adopt,
    create_unread,
    decide,
    outcome_unknown,
    stamp_start,
    until_settled,
)
from tests.unit.test_spawner_pod import make_spawner

pytestmark = pytest.mark.unit

TIMEOUT = 0.05  # the client's request timeout in these tests, in seconds
MINE = Ownership({"hub.jupyter.org/username": "alice"}, {START_MARKER: "start-2"})


def meta(labels=None, annotations=None, deleting=False, owner=None) -> dict:
    m = {"name": "jupyter-alice", "labels": labels or {}, "annotations": annotations or {}}
    if deleting:
        m["deletionTimestamp"] = "2026-12-03T18:00:00Z"
    if owner:
        m["ownerReferences"] = [{"uid": owner, "kind": "Pod", "name": "jupyter-alice"}]
    return {"metadata": m}


ALICE = {"hub.jupyter.org/username": "alice"}


@pytest.mark.parametrize(
    ("existing", "ownership", "expected"),
    [
        (None, MINE, Outcome.RETRY),
        (meta(ALICE, {START_MARKER: "start-2"}), MINE, Outcome.ADOPTED),
        (meta(ALICE, {START_MARKER: "start-1"}), MINE, Outcome.FOREIGN),
        (meta(ALICE), MINE, Outcome.FOREIGN),
        (meta({"hub.jupyter.org/username": "bob"}, {START_MARKER: "start-2"}), MINE, Outcome.FOREIGN),
        (meta(ALICE, {START_MARKER: "start-2"}, deleting=True), MINE, Outcome.FOREIGN),
        (meta(ALICE, owner="uid-1"), Ownership(ALICE, owner_uid="uid-1"), Outcome.ADOPTED),
        (meta(ALICE, owner="uid-0"), Ownership(ALICE, owner_uid="uid-1"), Outcome.FOREIGN),
        (meta(ALICE), Ownership(ALICE), Outcome.ADOPTED),
    ],
    ids=[
        "absent",
        "this-starts-pod",
        "earlier-starts-pod",
        "no-marker",
        "other-user",
        "being-deleted",
        "owned-by-our-pod",
        "owned-by-another-pod",
        "users-claim",
    ],
)
def test_decide(existing, ownership, expected):
    assert decide(existing, ownership) is expected


@pytest.mark.parametrize(
    ("error", "unknown"),
    [
        (TimeoutError(), True),
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), True),
        (ConnectionResetError(), True),
        (ApiException(status=500), True),
        (ApiException(status=504), True),
        (ApiException(status=409), False),
        (ApiException(status=403), False),
        (ApiException(status=422), False),
        (ValueError("bad manifest"), False),
    ],
    ids=["timeout", "disconnected", "reset-aiohttp", "reset", "500", "504", "409", "403", "422", "other"],
)
def test_outcome_unknown(error, unknown):
    assert outcome_unknown(error) is unknown


class RawAnswer:
    """The client's answer when `_preload_content=False` (an aiohttp response), as create_unread reads it."""

    def __init__(self, status: int, reason: str):
        self.status, self.reason, self.headers = status, reason, {}
        self.released = False

    async def read(self) -> bytes:
        return b'{"kind": "Status"}' if self.status >= 300 else b'{"kind": "Pod"}'

    def release(self) -> None:
        self.released = True


class FakeServer:
    """Pods by name, as dicts. `lose` says how the answer to the next creates is lost after the
    server wrote the object: "slow" (answers after the client's timeout), "reset", "500"."""

    def __init__(self, lose=(), before_write=0.0, stalled_reads=0):
        self.pods: dict[str, dict] = {}
        self.lose = list(lose)
        self.before_write = before_write
        self.stalled_reads = stalled_reads  # the first reads answer after the client's timeout
        self.creates = self.deletes = 0
        self.tasks: list[asyncio.Future] = []
        self.api_client = ApiClient.__new__(ApiClient)  # only its serializer is used

    async def create_namespaced_pod(self, namespace, body, _preload_content=True):
        # The server goes on with a request whose client gave up: a task of its own, shielded.
        self.creates += 1
        lose = self.lose.pop(0) if self.lose else None
        work = asyncio.ensure_future(self._create(body, lose))
        self.tasks.append(work)
        if _preload_content:
            return await asyncio.shield(work)
        try:  # as the client's raw answer: an error status is an answer, not an exception
            await asyncio.shield(work)
        except ApiException as e:
            return RawAnswer(e.status, e.reason)
        return RawAnswer(201, "Created")

    async def _create(self, body, lose):
        await asyncio.sleep(self.before_write)
        obj = self.api_client.sanitize_for_serialization(body)
        name = obj["metadata"]["name"]
        if name in self.pods:
            raise ApiException(status=409, reason="AlreadyExists")
        self.pods[name] = copy.deepcopy(obj)
        if lose == "slow":
            await asyncio.sleep(TIMEOUT * 4)
        elif lose == "reset":
            raise aiohttp.ServerDisconnectedError()
        elif lose == "500":
            raise ApiException(status=500, reason="etcdserver: request timed out")
        return body

    async def read_namespaced_pod(self, name, namespace):
        if self.stalled_reads:
            self.stalled_reads -= 1
            await asyncio.sleep(TIMEOUT * 2)
        if name not in self.pods:
            raise ApiException(status=404, reason="NotFound")
        return self.pods[name]

    def delete(self, name):
        self.deletes += 1
        self.pods.pop(name, None)


def pod(name="jupyter-alice", user="alice") -> V1Pod:
    labels = {"hub.jupyter.org/username": user, "component": "singleuser-server"}
    return V1Pod(metadata=V1ObjectMeta(name=name, labels=labels), spec=V1PodSpec(containers=[]))


def bind(server: FakeServer, manifest: V1Pod):
    ownership = Ownership(ALICE, {START_MARKER: stamp_start(manifest)})
    return (
        lambda: server.create_namespaced_pod("ns", manifest),
        lambda: server.read_namespaced_pod(name="jupyter-alice", namespace="ns"),
        ownership,
    )


@pytest.mark.parametrize(
    ("lose", "before_write", "existing", "expected"),
    [
        ([], 0, None, Outcome.CREATED),
        (["slow"], 0, None, Outcome.ADOPTED),
        (["reset"], 0, None, Outcome.ADOPTED),
        (["500"], 0, None, Outcome.ADOPTED),
        ([], TIMEOUT * 3, None, Outcome.RETRY),  # timed out before the write: nothing to adopt yet
        ([], 0, "start-1", Outcome.FOREIGN),
    ],
    ids=[
        "answered",
        "slow-after-write",
        "reset-after-write",
        "500-after-write",
        "slow-before-write",
        "stale",
    ],
)
async def test_create_or_adopt(lose, before_write, existing, expected):
    server = FakeServer(lose, before_write)
    if existing:
        server.pods["jupyter-alice"] = meta(ALICE, {START_MARKER: existing})
    outcome, why = await create_or_adopt(*bind(server, pod()), TIMEOUT)
    await asyncio.gather(*server.tasks, return_exceptions=True)
    assert outcome is expected, why
    assert server.creates == 1


async def test_a_refusal_is_raised_unchanged():
    async def refuse():
        raise ApiException(status=403, reason="Forbidden: violates PodSecurity")

    async def read():
        raise AssertionError("a clear refusal needs no look")

    with pytest.raises(ApiException) as raised:
        await create_or_adopt(refuse, read, MINE, TIMEOUT)
    assert raised.value.status == 403


@pytest.mark.parametrize(
    ("status", "raised"),
    [(201, None), (200, None), (409, 409), (403, 403), (500, 500)],
    ids=["created", "ok", "exists", "refused", "server-error"],
)
async def test_create_unread_raises_as_the_client_would_and_frees_the_connection(status, raised):
    answers = []

    async def create(namespace, body, _preload_content=True):
        assert _preload_content is False  # the created object is never turned into models
        answers.append(RawAnswer(status, "reason"))
        return answers[-1]

    if raised is None:
        assert await create_unread(create, "ns", pod()) is None
    else:
        with pytest.raises(ApiException) as error:
            await create_unread(create, "ns", pod())
        assert error.value.status == raised and error.value.body == b'{"kind": "Status"}'
    assert answers[0].released


async def test_a_raw_conflict_is_adopted_like_a_raised_one():
    server = FakeServer()
    manifest = pod()
    ownership = Ownership(ALICE, {START_MARKER: stamp_start(manifest)})
    server.pods["jupyter-alice"] = meta(ALICE, {START_MARKER: ownership.annotations[START_MARKER]})
    outcome, why = await create_or_adopt(
        lambda: create_unread(server.create_namespaced_pod, "ns", manifest),
        lambda: server.read_namespaced_pod(name="jupyter-alice", namespace="ns"),
        ownership,
        TIMEOUT,
    )
    assert outcome is Outcome.ADOPTED and why.startswith("already exists"), why


def test_the_marker_is_set_once_per_manifest():
    manifest = pod()
    first = stamp_start(manifest)
    assert stamp_start(manifest) == first
    assert stamp_start(pod()) != first  # the next start builds a new manifest: a new marker


@pytest.fixture(autouse=True)
def no_kube_config(monkeypatch):
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)


class Watch:
    """KubeSpawner's pod reflector as the hook reads it: `pods` by "namespace/name"."""

    def __init__(self, server: FakeServer):
        self.server = server

    @property
    def pods(self):
        return {f"ns/{name}": pod for name, pod in self.server.pods.items()}


@pytest.fixture
def spawner_on(monkeypatch):
    def make(server: FakeServer, watched: bool = False):
        spawner = make_spawner()
        spawner.api = server
        spawner.namespace = "ns"
        monkeypatch.setattr(
            type(spawner), "pod_reflector", property(lambda self: Watch(server) if watched else None)
        )

        async def kubespawner_stop(self, now=False):  # KubeSpawner's stop: delete the pod, wait
            server.delete(self.pod_name)

        monkeypatch.setattr(KubeSpawner, "stop", kubespawner_stop)
        return spawner

    return make


@pytest.mark.parametrize(
    ("server", "watched", "stale", "deletes"),
    [
        (FakeServer(["slow"]), False, False, 0),
        (FakeServer(["slow"] * 3, before_write=TIMEOUT * 2), False, False, 0),  # answers lost, writes late
        (FakeServer(["reset"]), False, False, 0),
        (FakeServer(["slow"], stalled_reads=3), False, False, 0),  # looks time out too, past the budget
        (FakeServer(["slow"], stalled_reads=10**6), True, False, 0),  # reads never answer: the watch sees it
        (FakeServer(), False, True, 1),  # an earlier start's pod: deleted and replaced, as KubeSpawner does
    ],
    ids=["one-slow-answer", "slow-server", "reset", "slow-reads", "watched", "stale-pod-replaced"],
)
async def test_the_spawners_pod_create_ends_with_exactly_its_pod(spawner_on, server, watched, stale, deletes):
    """KubeSpawner's own retry loop around CERNSpawner's hook, with a retry budget (its
    k8s_api_request_retry_timeout) shorter than the slow server needs. Before, the retry met the pod
    its timed-out create had made (409), deleted it and tried again until that budget ran out."""
    spawner = spawner_on(server, watched)
    if stale:
        server.pods[spawner.pod_name] = meta(ALICE, {START_MARKER: "an-earlier-start"})
    manifest = pod(spawner.pod_name, spawner.user.name)
    await exponential_backoff(
        partial(spawner._make_create_pod_request, manifest, TIMEOUT), "could not create", timeout=TIMEOUT
    )
    await asyncio.gather(*server.tasks, return_exceptions=True)  # creates still in flight land too
    assert list(server.pods) == [spawner.pod_name]
    annotations = server.pods[spawner.pod_name]["metadata"]["annotations"]
    assert annotations[START_MARKER] == manifest.metadata.annotations[START_MARKER]
    assert server.deletes == deletes


@pytest.mark.parametrize(
    ("request_timeout", "retries", "timeouts"),
    [
        (3, 0, [3]),
        (3, 5, [3, 6, 12, 24, 30, 30]),
        (40, 2, [40, 40, 40]),  # a configured timeout above the cap is kept
    ],
    ids=["first-try", "doubling-to-the-cap", "configured-above-cap"],
)
async def test_each_retry_waits_longer_for_its_answer(request_timeout, retries, timeouts):
    """A burst queues requests: a fixed 3 s would cancel each one before its turn, again and again."""
    seen, retried = [], []

    async def attempt(seconds):
        seen.append(seconds)
        return (Outcome.RETRY, "timed out") if len(seen) <= retries else (Outcome.CREATED, "created")

    outcome, _ = await until_settled(attempt, request_timeout, retried.append, first_wait=0)
    assert outcome is Outcome.CREATED
    assert seen == timeouts
    assert len(retried) == retries
