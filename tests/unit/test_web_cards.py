"""The picker's per-profile cards: resources in words, carried on KubeSpawner's profile dicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cern_spawner.catalog import load_catalog, to_profile_list
from cern_spawner.web.cards import AVAILABILITY_KEY, CARD_KEY, card, with_availability, with_cards

pytestmark = pytest.mark.unit

CATALOG = load_catalog([Path(__file__).resolve().parents[2] / "profiles"])


@pytest.mark.parametrize(
    ("slug", "expected"),
    [
        pytest.param(
            "gpu-1",
            {
                "kind": "dedicated",
                "cpu": "2 CPU cores",
                "memory": "4 GiB",
                "gpu": "1 GPU, Tesla V100 PCIE 32GB",
                "gpus": 1,
                "node_group": "gpu-v100",
            },
            id="dedicated-gpu",
        ),
        pytest.param(
            "shared-1g",
            {
                "kind": "shared",
                "cpu": "0.1 CPU cores guaranteed, up to 0.5 CPU cores",
                "memory": "512 MiB guaranteed, up to 1 GiB",
                "gpu": "",
                "gpus": 0,
                "node_group": "default-worker",
            },
            id="shared-burstable",
        ),
    ],
)
def test_card(slug, expected):
    assert card(CATALOG.profile(slug), CATALOG) == expected


def test_with_cards_adds_a_key_and_leaves_the_input_alone():
    profiles = to_profile_list(CATALOG)
    carded = with_cards(CATALOG, [*profiles, {"slug": "not-in-catalog", "display_name": "X"}])
    assert [entry.get(CARD_KEY, {}).get("kind") for entry in carded] == [
        "shared",
        "shared",
        "shared",
        "dedicated",
        None,
    ]
    assert all(CARD_KEY not in entry for entry in profiles)
    assert carded[0]["kubespawner_override"] == profiles[0]["kubespawner_override"]


def test_with_availability_adds_each_profiles_verdict():
    verdict = {"state": "free", "text": "3 of 4 GPUs free", "reason": "", "disabled": False}
    profiles = with_availability(to_profile_list(CATALOG), {"profiles": {"gpu-1": verdict}})
    assert {entry["slug"]: entry.get(AVAILABILITY_KEY) for entry in profiles}["gpu-1"] == verdict
    assert sum(AVAILABILITY_KEY in entry for entry in profiles) == 1
