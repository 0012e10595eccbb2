"""Creating a pod, Secret or PVC when the API server is slow: adopt what our own request created.

Under load a create can outlive KubeSpawner's `k8s_api_request_timeout` (3 s) while the API server
still completes it. KubeSpawner then retries, meets its own pod (409 AlreadyExists), deletes it and
tries again until `k8s_api_request_retry_timeout`: the user's spawn fails, and a create still in
flight may land after the clean-up and leave a pod nobody serves. Here a create whose outcome is
unknown (client timeout, connection reset, 5xx) or that meets an existing object looks at the
object under that name and **adopts** it when it is ours: same name, our labels, and for a pod the
marker of *this* start (an annotation written into the manifest once per start), so a pod of an
earlier start is still handled as KubeSpawner handles it (deleted, then created anew).

Decide, then do: `decide` is pure; `create_or_adopt` makes at most one create and one read and
says what to do next; `AdoptingCreates` plugs it into KubeSpawner's three create hooks.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
from kubernetes_asyncio.client.rest import ApiException, RESTResponse
from kubespawner import KubeSpawner

from .waiting import Backoff, Sleep, full_jitter

# Written into each pod manifest once per start; a pod carrying another value is not this start's.
START_MARKER = "cern-spawner.cern.ch/start"


class Outcome(enum.Enum):
    CREATED = "created"  # our create answered 201
    ADOPTED = "adopted"  # the object under that name is the one our (timed-out) create made
    RETRY = "retry"  # nothing there yet (or we could not look): create again after a back-off
    FOREIGN = "foreign"  # another object holds the name (an earlier start's, or not ours at all)


@dataclass(frozen=True)
class Ownership:
    """What makes an existing object ours: every label and annotation given, with these values,
    and (for objects owned by our pod) an owner reference to that pod's uid."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    owner_uid: str | None = None


def decide(existing: Mapping | None, ownership: Ownership) -> Outcome:
    """What an object found under our name means for our create (pure)."""
    if existing is None:
        return Outcome.RETRY
    meta = existing.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Outcome.FOREIGN  # on its way out: never ours to serve, whatever its labels say
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if any(labels.get(k) != v for k, v in ownership.labels.items()):
        return Outcome.FOREIGN
    if any(annotations.get(k) != v for k, v in ownership.annotations.items()):
        return Outcome.FOREIGN
    if ownership.owner_uid is not None:
        owners = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
        if ownership.owner_uid not in owners:
            return Outcome.FOREIGN
    return Outcome.ADOPTED


def outcome_unknown(error: BaseException) -> bool:
    """Whether the object may exist after this failed create: the request may have reached the
    API server (timeout, connection lost, server error), as opposed to a clear refusal."""
    if isinstance(error, (asyncio.TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
        return True
    if isinstance(error, ConnectionError):  # ConnectionResetError and kin, raised below aiohttp
        return True
    return isinstance(error, ApiException) and (error.status or 0) >= 500


async def create_or_adopt(
    create: Callable[[], Awaitable],
    read: Callable[[], Awaitable[Mapping]],
    ownership: Ownership,
    request_timeout: float,
    known: Callable[[], Mapping | None] | None = None,
) -> tuple[Outcome, str]:
    """One create, and when its outcome is unknown or the name is taken, one look to decide.

    `create()` and `read()` make the API calls (`read` returns the object as a dict, raising
    ApiException 404 when absent); each gets `request_timeout` seconds. `known()`, if given, returns
    the object from a local watch (or None): when that copy is ours no read is made — under load
    the read may time out as the create did. Returns the outcome and a short reason for the log.
    Errors that are neither transient nor a conflict are raised unchanged.
    """
    try:
        await asyncio.wait_for(create(), request_timeout)
        return Outcome.CREATED, "created"
    except ApiException as e:
        if e.status != 409 and not outcome_unknown(e):
            raise
        why = "already exists" if e.status == 409 else f"API server answered {e.status}"
    except Exception as e:
        if not outcome_unknown(e):
            raise
        why = "timed out" if isinstance(e, asyncio.TimeoutError) else f"connection lost ({e})"
    seen = known() if known else None
    if seen is not None and decide(seen, ownership) is Outcome.ADOPTED:
        return Outcome.ADOPTED, f"{why}; the watched object is ours"
    try:
        existing = await asyncio.wait_for(read(), request_timeout)
    except ApiException as e:
        if e.status == 404:
            return Outcome.RETRY, f"{why}; not there (yet)"
        if not outcome_unknown(e):
            raise
        return Outcome.RETRY, f"{why}; could not look ({e.status})"
    except Exception as e:
        if not outcome_unknown(e):
            raise
        return Outcome.RETRY, f"{why}; could not look ({type(e).__name__})"
    outcome = decide(existing, ownership)
    return outcome, f"{why}; the existing object is {'ours' if outcome is Outcome.ADOPTED else 'not ours'}"


async def until_settled(
    attempt: Callable[[float], Awaitable[tuple[Outcome, str]]],
    request_timeout: float,
    on_retry: Callable[[str], None],
    longest: float = 30.0,
    first_wait: float = 0.2,
    max_wait: float = 5.0,
    sleep: Sleep = asyncio.sleep,
    jitter: Callable[[float], float] = full_jitter,
) -> tuple[Outcome, str]:
    """`attempt(timeout)` again after a jittered, doubling pause while it says RETRY; its last answer.

    Each attempt's request timeout doubles from `request_timeout` up to `longest` seconds: a burst
    queues requests in the client's connection pool and on the API server, and a fixed 3 s cancels
    each request before its turn, again and again (safe to wait longer: what a slow create makes is
    adopted). No deadline of its own: the caller's start has one (JupyterHub's start_timeout cancels
    it). KubeSpawner's budget for its retries, k8s_api_request_retry_timeout (30 s), gave up on users
    whose pods were running: under a burst the hub's event loop lags, and 30 s may hold two attempts.
    """
    backoff = Backoff(first_wait, max_wait, sleep=sleep, jitter=jitter)
    timeout = request_timeout
    while True:
        outcome, why = await attempt(timeout)
        if outcome is not Outcome.RETRY:
            return outcome, why
        on_retry(why)
        await backoff.sleep()
        timeout = min(timeout * 2, max(longest, request_timeout))


async def create_unread(create_method: Callable[..., Awaitable], namespace: str, body) -> None:
    """`create_method(namespace, body)` (e.g. CoreV1Api.create_namespaced_pod), the answer's status
    read but not its object. KubeSpawner's create hooks discard the created object, and turning the
    API server's JSON into model classes cost ~1 ms of hub CPU per pod (a twenty-fifth of a spawn).
    A status other than 2xx raises ApiException as the client would."""
    response = await create_method(namespace, body, _preload_content=False)
    try:
        data = await response.read()
    finally:
        response.release()
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=RESTResponse(response, data))


def stamp_start(pod) -> str:
    """This start's marker on a pod manifest (a V1Pod), set once: KubeSpawner retries with the same
    object, and every start builds a new manifest."""
    annotations = pod.metadata.annotations = pod.metadata.annotations or {}
    return annotations.setdefault(START_MARKER, uuid.uuid4().hex)


def _labels(manifest, keys) -> dict[str, str]:
    labels = manifest.metadata.labels or {}
    return {k: labels[k] for k in keys if k in labels}


# The labels that name a server's user and component in KubeSpawner's manifests.
OWNER_LABELS = ("hub.jupyter.org/username", "hub.jupyter.org/servername", "component")


class AdoptingCreates:
    """KubeSpawner's create hooks (pod, PVC, Secret/Service) adopting our own objects.

    A base class placed before KubeSpawner. Each hook keeps KubeSpawner's contract for
    `exponential_backoff`: True when the object is there for us, False to be called again.
    """

    async def _read_dict(self, kind: str, name: str) -> dict:
        obj = await getattr(self.api, f"read_namespaced_{kind}")(name=name, namespace=self.namespace)
        return self.api.api_client.sanitize_for_serialization(obj)

    async def _make_create_pod_request(self, pod, request_timeout):
        name = pod.metadata.name
        ownership = Ownership(_labels(pod, OWNER_LABELS), {START_MARKER: stamp_start(pod)})
        self.log.info("Creating pod %s/%s (timeout %s s)", self.namespace, name, request_timeout)
        reflector = self.pod_reflector
        outcome, why = await until_settled(
            lambda timeout: create_or_adopt(
                lambda: create_unread(self.api.create_namespaced_pod, self.namespace, pod),
                lambda: self._read_dict("pod", name),
                ownership,
                timeout,
                known=lambda: reflector.pods.get(f"{self.namespace}/{name}") if reflector else None,
            ),
            request_timeout,
            lambda why: self.log.info("Pod %s: %s; trying again", name, why),
        )
        if outcome is Outcome.ADOPTED:
            self.log.info("Pod %s: %s; adopted", name, why)
        if outcome is Outcome.FOREIGN:
            # As KubeSpawner does with a stale pod: delete it, then create anew. Its own stop only,
            # not a subclass's (which may also remove what this start just wrote, such as Secrets).
            self.log.info("Pod %s: %s; deleting it before creating ours", name, why)
            await KubeSpawner.stop(self, now=True)
            return False
        return True

    async def _make_create_pvc_request(self, pvc, request_timeout):
        # A user's claim outlives their servers: a claim of that user under the name is theirs.
        name = pvc.metadata.name
        try:
            outcome, why = await until_settled(
                lambda timeout: create_or_adopt(
                    lambda: create_unread(
                        self.api.create_namespaced_persistent_volume_claim, self.namespace, pvc
                    ),
                    lambda: self._read_dict("persistent_volume_claim", name),
                    Ownership(_labels(pvc, ("hub.jupyter.org/username",))),
                    timeout,
                ),
                request_timeout,
                lambda why: self.log.info("PVC %s: %s; trying again", name, why),
            )
        except ApiException as e:
            if e.status != 403:
                raise
            # A quota refusal is checked before existence: as KubeSpawner, fine if the claim exists.
            await self.api.read_namespaced_persistent_volume_claim(name=name, namespace=self.namespace)
            return True
        if outcome is Outcome.FOREIGN:
            # KubeSpawner uses whatever claim holds the name; so do we, saying so.
            self.log.warning("PVC %s lacks %s's labels; using it, as KubeSpawner does", name, self._log_name)
        elif outcome is not Outcome.CREATED:
            self.log.info("PVC %s: %s", name, why)
        return True

    async def _make_create_resource_request(self, kind, manifest):
        # Secrets and Services KubeSpawner makes for a pod (internal_ssl, services_enabled): owned by
        # that pod, whose uid is in the manifest's owner reference.
        name = manifest.metadata.name
        owners = manifest.metadata.owner_references or []
        create = getattr(self.api, f"create_namespaced_{kind}")
        outcome, why = await until_settled(
            lambda timeout: create_or_adopt(
                lambda: create_unread(create, self.namespace, manifest),
                lambda: self._read_dict(kind, name),
                Ownership(_labels(manifest, OWNER_LABELS), owner_uid=owners[0].uid if owners else None),
                timeout,
            ),
            self.k8s_api_request_timeout,
            lambda why: self.log.info("%s %s: %s; trying again", kind, name, why),
        )
        if outcome is Outcome.FOREIGN:
            # KubeSpawner deleted any earlier one just before and keeps what it finds: so do we, saying so.
            self.log.warning("%s %s is not this pod's; using it, as KubeSpawner does", kind, name)
        elif outcome is not Outcome.CREATED:
            self.log.info("%s %s: %s", kind, name, why)
        return True
