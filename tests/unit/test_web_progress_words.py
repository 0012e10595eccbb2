"""The progress page's words and bar, from the facts of a spawn (pure)."""

from __future__ import annotations

import pytest

from cern_spawner.web.progress_words import SpawnFacts, html_message, minutes, words

pytestmark = pytest.mark.unit

A100 = "Dedicated 1 A100 GPU"
GPU = SpawnFacts(profile=A100, gpu=True, scaled=True, free_gpus=0)


def facts(**changes) -> SpawnFacts:
    return SpawnFacts(**{**GPU.__dict__, **changes})


@pytest.mark.parametrize(
    ("spawn", "now", "progress", "message"),
    [
        pytest.param(
            SpawnFacts(profile="Shared, 2 GB"), 0, 5, "Finding a place for your server", id="cpu-waiting"
        ),
        pytest.param(
            facts(), 0, 5, f"No GPU is free for “{A100}”: asking the cloud for a new GPU node", id="asking"
        ),
        pytest.param(facts(scaled=False), 0, 5, f"Waiting for a free GPU for “{A100}”", id="not-grown"),
        pytest.param(
            facts(growth_since=100.0, expected_boot=600.0),
            100 + 240,
            25,
            "A new GPU node is starting — 4 min so far, usually about 10 min",
            id="growing-measured",
        ),
        pytest.param(
            facts(growth_since=100.0, expected_boot=600.0),
            100 + 3600,
            49,
            "A new GPU node is starting — 1 h so far, usually about 10 min",
            id="growing-late-never-reaches-joined",
        ),
        pytest.param(
            facts(growth_since=0.0),
            300,
            29,
            "A new GPU node is starting — 5 min so far; a new node takes several minutes",
            id="growing-unmeasured",
        ),
        pytest.param(
            facts(growth_since=0.0, retrying_since=30.0),
            150,
            10,
            "The cloud is not answering; retrying (2 min so far). Your place in the queue is kept.",
            id="retrying",
        ),
        pytest.param(
            facts(growth_since=0.0, node_joined=True),
            400,
            60,
            "The node joined; its GPU is being prepared",
            id="joined",
        ),
        pytest.param(facts(node_joined=True, pod="pulling"), 400, 70, "Pulling the image", id="pulling"),
        pytest.param(
            facts(pod="started"), 400, 80, "The container started; starting the notebook", id="started"
        ),
        pytest.param(facts(pod="notebook"), 400, 90, "Starting the notebook", id="notebook"),
        pytest.param(
            facts(blocker="The GPU limit is reached: try again later."),
            0,
            5,
            "The GPU limit is reached: try again later.",
            id="blocked",
        ),
    ],
)
def test_words(spawn, now, progress, message):
    event = words(spawn, now)
    assert (event["progress"], event["message"]) == (progress, message)


def test_growth_bar_rises_with_elapsed_time_and_stays_below_the_next_phase():
    bars = [words(facts(growth_since=0.0, expected_boot=600.0), t)["progress"] for t in range(0, 4000, 60)]
    assert bars == sorted(bars)
    assert bars[0] == 10 and max(bars) == 49


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59.9, "59 s"), (60, "1 min"), (300, "5 min"), (1200, "20 min"), (3900, "1 h 5 min")],
    ids=["zero", "seconds", "one-minute", "five", "twenty", "hour"],
)
def test_minutes(seconds, text):
    assert minutes(seconds) == text


def test_the_clusters_text_is_only_in_the_escaped_details():
    raw = 'FailedScheduling: 0/5 nodes are available: 1 Insufficient nvidia.com/gpu <script>"x"</script>'
    event = words(facts(details=(raw,)), 0)
    assert "nodes are available" not in event["message"]
    assert event["details"] == raw
    page = html_message(event)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.startswith(event["message"]) and "<details>" in page


def test_no_details_no_disclosure():
    assert "<details>" not in html_message(words(facts(), 0))
