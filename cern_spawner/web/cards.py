"""What the profile picker shows on each card: resources in words, from the catalog. Pure.

KubeSpawner's profile dicts hold only traits to override, not the GPU model or whether a profile is
shared; `with_cards` adds a `cern_card` key to each dict. KubeSpawner keeps unknown keys (it
deep-copies the dicts and reads only the keys it knows), so the key reaches the form template.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ..catalog.model import Catalog, Profile
from ..catalog.quantities import parse_memory
from ..catalog.to_kubespawner import ProfileEntry, ProfileList

CARD_KEY = "cern_card"
# Optional: an availability verdict rendered into the page (the picker's script refreshes it anyway).
AVAILABILITY_KEY = "cern_availability"
# The picker's groups, in the order shown: key, legend.
GROUPS = (("shared", "Shared"), ("dedicated", "Dedicated GPU"))


# A catalog repeats a handful of quantities across its profiles: each is worded once per process.
@lru_cache(maxsize=1024)
def _cores(value: float) -> str:
    text = f"{value:g}"
    return f"{text} CPU core" if value == 1 else f"{text} CPU cores"


@lru_cache(maxsize=1024)
def _memory(text: str) -> str:
    # Catalog quantities count in powers of 1024 (as JupyterHub does), so say GiB/MiB.
    size = parse_memory(text)
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} bytes"


def _amount(guarantee: str, limit: str) -> str:
    # Shared profiles may burst from the guarantee up to the limit; say both only when they differ.
    return limit if guarantee == limit else f"{guarantee} guaranteed, up to {limit}"


def card(profile: Profile, catalog: Catalog) -> dict[str, Any]:
    """The card of one profile: plain strings and numbers, ready for a template or JSON."""
    group = catalog.node_groups.get(profile.node_group)
    gpu = group.gpu if group else None
    model = (gpu.product or "").replace("-", " ") if gpu else ""
    if profile.gpus:
        count = "1 GPU" if profile.gpus == 1 else f"{profile.gpus} GPUs"
        gpu_text = f"{count}, {model}" if model else count
    elif profile.mig_slice:
        count = f"1 MIG slice ({profile.mig_slice})"
        gpu_text = f"{count}, {model}" if model else count
    elif profile.shared_gpu:
        gpu_text = f"1 shared GPU (time-sliced), {model}" if model else "1 shared GPU (time-sliced)"
    else:
        gpu_text = ""
    kind = "dedicated" if profile.kind == "dedicated" or profile.gpus else "shared"
    return {
        "kind": kind,
        "cpu": _amount(_cores(profile.cpu_guarantee), _cores(profile.cpu_limit)),
        "memory": _amount(_memory(profile.mem_guarantee), _memory(profile.mem_limit)),
        "gpu": gpu_text,
        "gpus": profile.gpu_units,
        "node_group": profile.node_group,
    }


def with_cards(catalog: Catalog, profile_list: Iterable[dict]) -> ProfileList:
    """New profile dicts, each with its card under CARD_KEY; entries unknown to the catalog get none.

    A ProfileList of ProfileEntry (quick to deep-copy), as `to_profile_list` makes them.
    """
    result = ProfileList()
    for entry in profile_list:
        profile = catalog.profile(entry.get("slug", ""))  # an index lookup: linear in the list
        entry = ProfileEntry(entry)
        if profile is not None:
            entry[CARD_KEY] = card(profile, catalog)
        result.append(entry)
    return result


def with_availability(profile_list: Iterable[dict], body: dict) -> list[dict]:
    """New profile dicts carrying their verdict from an availability report (`availability.report`)."""
    verdicts = body.get("profiles", {})
    result = []
    for entry in profile_list:
        entry = dict(entry)
        if entry.get("slug") in verdicts:
            entry[AVAILABILITY_KEY] = verdicts[entry["slug"]]
        result.append(entry)
    return result


# Optional: the user's GPU quota on a GPU profile's card ({text, disabled, reason}, quota/hooks.py);
# per user and moment, so added at each render, never kept with the cards.
QUOTA_KEY = "cern_quota"


def with_quota(profile_list: Iterable[dict], notes: dict[str, dict]) -> list[dict]:
    """New profile dicts carrying their quota note, for the profiles that have one."""
    if not notes:
        return list(profile_list)
    return [
        {**entry, QUOTA_KEY: notes[entry["slug"]]} if entry.get("slug") in notes else entry
        for entry in profile_list
    ]
