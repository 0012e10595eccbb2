"""A pod's events picked before sorting: the same list as KubeSpawner's `events`, in fewer steps."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from kubespawner import KubeSpawner
from kubespawner.reflector import ResourceReflector
from kubespawner.spawner import EventReflector

from cern_spawner import CERNSpawner
from cern_spawner.pod_events import PodEventsFirst, pod_events

pytestmark = pytest.mark.unit


def event(uid: str, pod: str, stamp: str | None, event_time: str | None = None) -> dict:
    return {
        "metadata": {"uid": uid},
        "involvedObject": {"name": pod},
        "lastTimestamp": stamp,
        "eventTime": event_time,
    }


def kubespawner_events(resources: dict, pod_name: str, last_event: str | None) -> list[dict]:
    """KubeSpawner's own property, on a reflector holding `resources`."""
    reflector = SimpleNamespace(resources=resources)
    reflector.events = EventReflector.events.fget(reflector)  # sorts every event
    spawner = SimpleNamespace(event_reflector=reflector, pod_name=pod_name, _last_event=last_event)
    return KubeSpawner.events.fget(spawner)


A, B = "jupyter-alice", "jupyter-bob"


@pytest.mark.parametrize(
    "stored, last_event, expected",
    [
        pytest.param([], None, [], id="no-events"),
        pytest.param([event("1", B, "t1")], None, [], id="only-another-pods"),
        pytest.param(
            [event("2", A, "t2"), event("1", A, "t1"), event("3", B, "t0")], None, ["1", "2"], id="time-order"
        ),
        pytest.param(
            [event("1", A, None, "t3"), event("2", A, "t2")],
            None,
            ["2", "1"],
            id="eventTime-when-no-lastTimestamp",
        ),
        pytest.param(
            [event("1", A, "t1"), event("2", A, "t1"), event("3", A, "t1")],
            None,
            ["1", "2", "3"],
            id="ties-stored-order",
        ),
        pytest.param(
            [event("1", A, "t1"), event("2", A, "t2"), event("3", A, "t3")], "2", ["3"], id="after-the-marker"
        ),
        pytest.param([event("1", A, "t1"), event("2", A, "t2")], "2", [], id="marker-is-the-last"),
        pytest.param([event("1", A, "t1"), event("2", A, "t2")], "gone", ["1", "2"], id="marker-not-held"),
        pytest.param([event("1", A, "t1"), event("9", B, "t2")], "9", ["1"], id="marker-of-another-pod"),
    ],
)
def test_a_pods_events(stored, last_event, expected):
    resources = {e["metadata"]["uid"]: e for e in stored}
    ours = pod_events(resources.values(), A, last_event)
    assert [e["metadata"]["uid"] for e in ours] == expected
    assert ours == kubespawner_events(resources, A, last_event)


@pytest.mark.parametrize("seed", range(20))
def test_the_same_list_as_kubespawners_on_a_busy_namespace(seed):
    rng = random.Random(seed)
    pods = [f"jupyter-{i}" for i in range(12)]
    stored = [
        event(
            str(i),
            rng.choice(pods),
            *(
                (f"t{rng.randrange(30):02d}", None)
                if rng.random() < 0.8
                else (None, f"t{rng.randrange(30):02d}")
            ),
        )
        for i in range(400)
    ]
    resources = {e["metadata"]["uid"]: e for e in stored}
    for pod in pods[:4]:
        marker = rng.choice(
            [None, *[e["metadata"]["uid"] for e in stored if e["involvedObject"]["name"] == pod]]
        )
        assert pod_events(resources.values(), pod, marker) == kubespawner_events(resources, pod, marker)


def test_the_spawner_reads_its_events_this_way():
    assert CERNSpawner.events is PodEventsFirst.events
    reflector = ResourceReflector.__new__(EventReflector)
    reflector.resources = {"1": event("1", A, "t1"), "2": event("2", B, "t1")}
    spawner = SimpleNamespace(event_reflector=reflector, pod_name=A, _last_event=None)
    assert [e["metadata"]["uid"] for e in PodEventsFirst.events.fget(spawner)] == ["1"]
    assert PodEventsFirst.events.fget(SimpleNamespace(event_reflector=None)) == []
