"""Why a start was given up, in words users read on the progress page and in the REST answer."""

from __future__ import annotations

from ..errors import UserFacingError
from .progress_stream import SpawnPlan
from .progress_words import minutes


class SpawnFailed(UserFacingError):
    """A start given up, with a reason users read: the REST API answers with it when the spawn
    fails within its first seconds, and the progress stream shows it (JupyterHub reads
    `jupyterhub_message`; its own timeout would say only "Spawn failed")."""

    status = 503

    def __init__(self, message: str):
        super().__init__(type(self).status, message)


class GrowthImpossible(SpawnFailed):
    """No GPU can be had for this spawn (ceiling, quota, cloud error): fail now, not at the timeout."""


class StartTimedOut(SpawnFailed):
    """The profile's start timeout is over."""

    status = 504


class ClusterTimedOut(SpawnFailed):
    """KubeSpawner gave up on a Kubernetes request of its own (creating the pod or its volume)."""


def is_pod_start_deadline(error: BaseException, pod_key: str, start_timeout: float) -> bool:
    """Whether `error` is KubeSpawner's wait for the pod `namespace/name` to run giving up: its
    deadline is the start's own start_timeout, unlike its request retries' (which say "Could not
    create …"). Known by its words only, pinned by test_kubespawner_contract."""
    return isinstance(error, TimeoutError) and str(error) == (
        f"pod {pod_key} did not start in {start_timeout} seconds!"
    )


def own_deadline(start_timeout: float) -> float:
    """Seconds our start may take: a little less than JupyterHub's deadline, which began a moment
    earlier, so that our message, not JupyterHub's bare timeout, ends the spawn."""
    return max(start_timeout - min(5.0, max(0.5, start_timeout * 0.05)), 0.1)


def timeout_message(plan: SpawnPlan | None, start_timeout: float, waiting_for_node: bool) -> str:
    within = f"within the profile's start timeout ({minutes(start_timeout)})"
    if plan is not None and plan.gpus and waiting_for_node:
        return f"No GPU became free {within}; try again later or pick a shared profile."
    return f"Your server did not start {within}; try again later."
